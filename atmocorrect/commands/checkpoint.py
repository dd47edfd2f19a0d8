"""`atmocorrect checkpoint`: inspect checkpoints or write analytic (weightless) ones."""

from __future__ import annotations

import argparse
import json

from ..checkpoint import read_manifest, read_weights, write_analytic_checkpoint
from ..errors import UsageError

DESCRIPTION = """\
Inspect a checkpoint directory (manifest.json + weights.safetensors), or write an analytic
checkpoint to smoke-test a coupling before any training:

  # a constant tendency of 1e-4 K/s on field t:
  atmocorrect checkpoint analytic --field t --units K --tendency 1e-4 --out ckpt_const/
  # relaxation of t towards 280 K with a 6-hour timescale:
  atmocorrect checkpoint analytic --field t --units K --relax-to 280 --timescale 21600 --out ckpt_relax/
  # check a checkpoint (manifest, sha256 of the weights) and print its summary:
  atmocorrect checkpoint show runs/demo/corrector/
  # compile the network with AOTInductor (model.pt2) for the bridge's libtorch backend
  # (run.backend = "aot" or ATMOCORRECT_BACKEND=aot; transformer and MLP checkpoints):
  atmocorrect checkpoint export-aot runs/demo/corrector/
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = sub.add_parser("analytic", help="write a weightless checkpoint (constant tendency or relaxation)")
    a.add_argument("--field", action="append", required=True,
                   help="field name the host registers (repeat for several fields)")
    a.add_argument("--units", action="append",
                   help="units of the field(s), checked at registration: once for all fields, or "
                   "once per --field in the same order (default: 1)")
    kind = a.add_mutually_exclusive_group(required=True)
    kind.add_argument("--tendency", type=float, help="constant tendency in field units per second")
    kind.add_argument("--relax-to", type=float, help="value to relax towards (field units)")
    a.add_argument("--timescale", type=float, help="relaxation timescale in seconds (with --relax-to)")
    a.add_argument("--mode", default="apply", choices=("apply", "diagnose", "off"), help="run mode (default: apply)")
    a.add_argument("--out", required=True, help="checkpoint directory to write")
    a.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint")
    s = sub.add_parser("show", help="validate a checkpoint and print its manifest summary")
    s.add_argument("directory")
    s.add_argument("--json", action="store_true", help="print the whole manifest as JSON")
    e = sub.add_parser(
        "export-aot",
        help="compile the network with torch.export + AOTInductor into DIR/model.pt2 (backend 'aot')",
    )
    e.add_argument("directory")


def run(args: argparse.Namespace) -> int:
    if args.action == "analytic":
        if args.relax_to is not None and args.timescale is None:
            raise UsageError("--relax-to needs --timescale SECONDS")
        out = write_analytic_checkpoint(
            args.out, field=args.field, units=args.units or ["1"], tendency=args.tendency,
            relax_to=args.relax_to, timescale=args.timescale, mode=args.mode,
            overwrite=args.overwrite,
        )
        print(f"wrote analytic checkpoint {out}")
        return 0
    if args.action == "export-aot":
        from ..aot import export_aot

        entry = export_aot(args.directory)
        print(f"wrote {args.directory.rstrip('/')}/{entry['file']} in {entry['compile_seconds']} s "
              f"(sha256 {entry['sha256'][:16]}..., torch {entry['torch']}, "
              f"{entry['platform']['machine']} {entry['platform']['cpu_capability']})")
        return 0
    manifest = read_manifest(args.directory)
    tensors = read_weights(args.directory, manifest)
    if args.json:
        print(json.dumps(manifest.to_dict(), indent=2))
        return 0
    print(f"checkpoint {args.directory}")
    print(f"  model:   {manifest.model_class} {json.dumps(manifest.hyperparameters)[:200]}")
    for f in manifest.fields:
        print(f"  field:   {f.name} [{f.units}] dims={f.dims} levels={f.levels}")
    print(f"  halo:    {manifest.halo} periodic={manifest.periodic}")
    print(f"  run:     {manifest.run.to_dict()}")
    if manifest.aot:
        print(f"  aot:     {manifest.aot.get('file')} (torch {manifest.aot.get('torch')}, "
              f"{(manifest.aot.get('platform') or {}).get('cpu_capability')})")
    n = sum(int(t.numel()) for t in tensors.values())
    print(f"  weights: {len(tensors)} tensors, {n} parameters, sha256 verified" if tensors else "  weights: none")
    if manifest.metrics:
        print(f"  metrics: {json.dumps(manifest.metrics)[:300]}")
    return 0
