"""The ``atmocorrect`` command line: one subcommand a module under ``atmocorrect.commands``.

Each command module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args)``
returning an exit status; it is imported only when its subcommand runs, so
``atmocorrect config --fflags`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__
from .errors import AtmocorrectError

COMMANDS = {
    "prepare": "Build a training set from a simulation and a reference (truth, ERA5).",
    "train": "Train a correction model (transformer or baseline) and write a checkpoint.",
    "evaluate": "Score corrections: forecast skill and climate (twin) or offline bias metrics.",
    "correct": "Correct simulation output offline (netCDF/GRIB) with a checkpoint or a classical method.",
    "checkpoint": "Inspect checkpoints, or write analytic ones to smoke-test a coupling.",
    "config": "Print the compiler and linker flags, or the CMake directory, for host models.",
    "demo": "Run the Lorenz-96 twin experiment end to end (what `make demo` runs).",
}

EPILOG = """\
typical session:
  atmocorrect checkpoint analytic --field t --units K --tendency 1e-4 --out ckpt/
  mpif90 host.f90 $(atmocorrect config --fflags) $(atmocorrect config --libs) -o host
  mpirun -np 2 ./host
  atmocorrect correct --model corrector/ --input sim.nc --output sim_corrected.nc

Every subcommand has its own --help. Docs: docs/ in the source tree.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="atmocorrect",
        description="Learned corrections for climate models: learn from a reference such as "
        "ERA5, correct a Fortran model online under MPI, or correct its output offline.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"atmocorrect {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, summary in COMMANDS.items():
        module = importlib.import_module(f"atmocorrect.commands.{name}")
        p = sub.add_parser(
            name,
            help=summary,
            description=getattr(module, "DESCRIPTION", summary),
            epilog=getattr(module, "EPILOG", None),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args._module.run(args) or 0)
    except AtmocorrectError as exc:
        print(f"atmocorrect {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # disk full, unwritable location, missing file: no traceback needed
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"atmocorrect {args.command}: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"atmocorrect {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
