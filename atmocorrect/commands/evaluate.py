"""`atmocorrect evaluate twin|offline`: score corrections."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Score corrections.

  twin     the Lorenz-96 twin experiment: forecasts from held-out truth states (RMSE at
           0.2/0.5/1.0 MTU, skill horizon), long free runs (mean, std, Hellinger distance to
           a truth run, and the truth's own floor), stability; writes report.json, report.md
           and plots.
  offline  bias metrics of offline-corrected output against a reference (atmocorrect.offline).
"""

EPILOG = """\
examples:
  atmocorrect evaluate twin --test runs/demo/train.nc --climate runs/demo/data/climate.nc \\
      --floor runs/demo/data/floor.nc --model quartic=runs/demo/quartic \\
      --model transformer=runs/demo/corrector --out runs/demo/
  atmocorrect evaluate offline --help"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="evaluate_kind", metavar="KIND")
    twin = sub.add_parser(
        "twin", help="Lorenz-96 twin experiment (forecast skill, climate, stability)",
        description="The Lorenz-96 twin experiment: every row (uncorrected, wilks2005, each --model) is "
        "forecast from held-out truth states and run freely for a long time; see docs/lorenz96.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_twin_arguments(twin)
    # The offline evaluation (atmocorrect.offline.evaluate, with xarray) is imported only when
    # it runs: every `atmocorrect` call builds this parser, and `atmocorrect config` must stay fast.
    offline = sub.add_parser("offline", help="offline bias-correction metrics (atmocorrect.offline)",
                             add_help=False, prefix_chars="\x00")  # every argument passes through
    offline.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)


def add_twin_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--test", required=True,
                   help="held-out truth: a training set (its test split is used) or a truth file")
    p.add_argument("--climate", required=True, help="truth run for the free-run climate (netCDF)")
    p.add_argument("--floor", required=True, help="an independent truth run of the same length (floor)")
    p.add_argument("--model", action="append", default=[], metavar="NAME=CHECKPOINT",
                   help="a row from a checkpoint directory (repeatable)")
    p.add_argument("--out", required=True, help="directory for report.json, report.md and plots")
    p.add_argument("--forecasts", type=int, default=300, help="initial states (default: 300)")
    p.add_argument("--max-lead", type=float, default=2.5, help="forecast length in MTU (default: 2.5)")
    p.add_argument("--free-run", type=float, default=1000.0, help="free-run length in MTU (default: 1000)")
    p.add_argument("--members", type=int, default=100,
                   help="free-run ensemble members sharing that length (default: 100)")
    p.add_argument("--spinup", type=float, default=5.0, help="discarded spin-up per member, MTU (default: 5)")
    p.add_argument("--stability", type=float, default=10000.0,
                   help="stability run of each checkpoint, MTU in total; 0 skips (default: 10000)")
    p.add_argument("--stability-members", type=int, default=100, help="members of that run (default: 100)")
    p.add_argument("--forcing", type=float, default=18.0, help="F of the one-scale model (default: 18)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process (default: 1)")
    p.add_argument("--workers", type=int, default=1,
                   help="processes sharing the rows and stability runs (default: 1)")


def run(args: argparse.Namespace) -> int:
    from ..errors import UsageError

    if args.evaluate_kind == "offline":
        try:
            from ..offline import evaluate as offline_evaluate
        except ImportError as exc:
            raise UsageError(f"'atmocorrect evaluate offline' needs atmocorrect.offline: {exc}") from exc
        parser = argparse.ArgumentParser(
            prog="atmocorrect evaluate offline",
            description=getattr(offline_evaluate, "DESCRIPTION", None),
            epilog=getattr(offline_evaluate, "EPILOG", None),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        offline_evaluate.add_arguments(parser)
        return int(offline_evaluate.run(parser.parse_args(args.rest)) or 0)
    if args.evaluate_kind != "twin":
        raise UsageError("say what to evaluate: 'atmocorrect evaluate twin ...' or 'atmocorrect evaluate offline ...'")
    return run_twin(args)


def run_twin(args: argparse.Namespace) -> int:
    import torch

    from ..errors import UsageError
    from ..evaluation import twin

    torch.set_num_threads(max(1, args.threads))
    test, dt = twin.load_truth(args.test, split="test")
    clim, dt_c = twin.load_truth(args.climate)
    floor, dt_f = twin.load_truth(args.floor)
    if not (abs(dt - dt_c) < 1e-9 and abs(dt - dt_f) < 1e-9):
        raise UsageError(f"sampling intervals differ: test {dt}, climate {dt_c}, floor {dt_f} MTU")
    cfg = twin.TwinConfig(
        n_forecasts=args.forecasts, max_lead_mtu=args.max_lead, free_run_mtu=args.free_run,
        members=args.members, spinup_mtu=args.spinup, stability_mtu=args.stability,
        stability_members=args.stability_members, forcing=args.forcing, dt_mtu=dt, threads=args.threads,
    )
    rows = twin.builtin_rows()
    for item in args.model:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise UsageError(f"--model {item!r}: expected NAME=CHECKPOINT_DIR")
        rows.append(twin.checkpoint_row(name, path, threads=args.threads))
    report = twin.evaluate(rows, test, clim, floor, cfg, args.out, workers=max(1, args.workers))
    print(twin.markdown_table(report), end="")
    return 0
