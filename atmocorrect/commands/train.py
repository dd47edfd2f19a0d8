"""`atmocorrect train`: train a correction model and write a checkpoint."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Train a correction model (the AtmoRep-style transformer, or a baseline: mlp, quartic, zero)
on a training set from `atmocorrect prepare`, and write a checkpoint directory
(manifest.json + weights.safetensors) that `atmocorrect.load` and the Fortran bridge read.
Under torchrun or mpirun the training is data-parallel (torch.distributed, gloo). After every
epoch the checkpoint, the resumable state (<out>.work/state) and the metrics log
(<out>.work/metrics.jsonl) are written atomically; --resume continues an interrupted run."""

EPILOG = """\
examples:
  atmocorrect train --config training/lorenz96_transformer.toml --data train.nc --out corrector/
  atmocorrect train --config training/lorenz96_quartic.toml --data train.nc --out quartic/
  torchrun --nproc-per-node 2 -m atmocorrect.cli train --config ... --out corrector/
  mpirun -np 2 atmocorrect train --config ... --out corrector/
  atmocorrect train --config ... --out corrector/ --resume      # after an interruption

--set overrides any config value: --set train.epochs=2 --set model.d_model=16"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="experiment config (TOML), see training/")
    parser.add_argument("--data", help="training set (overrides [data] path)")
    parser.add_argument("--out", required=True, help="checkpoint directory to write")
    parser.add_argument("--work", help="state and metrics directory (default: <out>.work)")
    parser.add_argument("--resume", action="store_true", help="continue from <work>/state")
    parser.add_argument("--set", action="append", default=[], metavar="TABLE.KEY=VALUE",
                        help="override a config value (repeatable)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _parse_value(text: str):
    import json

    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def run(args: argparse.Namespace) -> int:
    from ..errors import UsageError
    from ..training.config import ExperimentConfig
    from ..training.trainer import train

    cfg = ExperimentConfig.from_toml(args.config)
    if args.data:
        cfg = cfg.replace(data=args.data)
    for item in args.set:
        key, sep, value = item.partition("=")
        table, dot, name = key.partition(".")
        if not sep or not dot or table not in ("model", "train", "finetune"):
            raise UsageError(f"--set {item!r}: expected TABLE.KEY=VALUE with TABLE model, train or finetune")
        if table == "model" and name == "class":
            name = "model_class"
        val = _parse_value(value)
        if name == "hidden":
            val = tuple(val)
        try:
            cfg = cfg.replace(**{table: {name: val}})
        except TypeError as exc:
            raise UsageError(f"--set {item!r}: {exc}") from exc
    train(cfg, args.out, work=args.work, resume=args.resume, progress=not args.no_progress)
    return 0
