"""`atmocorrect train`: train a correction model and write a checkpoint."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Train a correction model (the AtmoRep-style transformer, or a baseline: mlp, quartic, zero)
on a training set from `atmocorrect prepare`, and write a checkpoint directory
(manifest.json + weights.safetensors) that `atmocorrect.load` and the Fortran bridge read.

`atmocorrect train offline ...` instead trains the learned offline correction of finished
simulation output against a reference such as ERA5 (used by `atmocorrect correct`); see
`atmocorrect train offline --help`.
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
  atmocorrect train offline --simulation tas_day_hist.nc --reference era5_t2m.nc \\
      --variables tas --calibration 1979-2004 --out ckpt/     # offline correction, see --help

--set overrides any config value: --set train.epochs=2 --set model.d_model=16"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="experiment config (TOML), see training/ (required)")
    parser.add_argument("--data", help="training set (overrides [data] path)")
    parser.add_argument("--out", help="checkpoint directory to write (required)")
    parser.add_argument("--work", help="state and metrics directory (default: <out>.work)")
    parser.add_argument("--resume", action="store_true", help="continue from <work>/state")
    parser.add_argument("--set", action="append", default=[], metavar="TABLE.KEY=VALUE",
                        help="override a config value (repeatable)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    # `atmocorrect train offline`: its own arguments, documented by its own --help; the
    # module (xarray, the readers) is imported only when it runs, to keep the CLI fast.
    sub = parser.add_subparsers(dest="train_kind", metavar="{offline}")
    offline = sub.add_parser(
        "offline", help="train the learned offline correction (atmocorrect train offline --help)",
        add_help=False, prefix_chars="\x00")  # every argument passes through
    offline.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)


def run_offline(rest: list[str]) -> int:
    from ..offline import train as offline_train

    parser = argparse.ArgumentParser(
        prog="atmocorrect train offline",
        description=offline_train.DESCRIPTION,
        epilog=offline_train.EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    offline_train.add_arguments(parser)
    return int(offline_train.run(parser.parse_args(rest)) or 0)


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

    if getattr(args, "train_kind", None) == "offline":
        return run_offline(args.rest)
    if not args.config or not args.out:
        missing = " and ".join(o for o, v in (("--config", args.config), ("--out", args.out))
                               if not v)
        raise UsageError(f"atmocorrect train needs {missing} (or: atmocorrect train offline ...)")
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
