"""`atmocorrect prepare`: build a training set from a reference and a simulation."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Build a training set (netCDF, CF-1.8) from a reference run (a truth file, ERA5) and,
optionally, a simulation: align them in time with xarray, compute the correction targets
(one-step residuals or the tendencies of a run nudged towards the reference), split the samples
in time into train / validation / test with gaps between (no overlap), and store the training
split's normalisation statistics."""

EPILOG = """\
examples:
  # one-step residuals, the model step from the built-in one-scale Lorenz-96 (F=18)
  atmocorrect prepare --truth truth.nc --out train.nc
  # nudging tendencies recorded by a nudged run (examples/lorenz96/l96_model)
  atmocorrect prepare --truth truth.nc --simulation nudged.nc --kind nudging --out train.nc
  # residuals written by the Fortran model's residual mode
  atmocorrect prepare --truth truth.nc --simulation residual.nc --out train.nc

The input the corrector learns from depends on where the host applies the correction:
--placement after (default: x <- M(x); x <- x + dt*c(x), input = the model forecast) or
before (x <- x + dt*c(x); x <- M(x), input = the state). See docs/training.md."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--truth", required=True, help="reference file (netCDF), e.g. X(time,k)")
    parser.add_argument("--simulation", help="simulation file: nudged run or one-step residuals")
    parser.add_argument("--out", required=True, help="training set to write (netCDF)")
    parser.add_argument("--kind", choices=("residual", "nudging"), default="residual",
                        help="correction target (default: residual)")
    parser.add_argument("--var", default="X", help="state variable name (default: X)")
    parser.add_argument("--placement", choices=("after", "before"), default="after",
                        help="where the host applies the correction (default: after the step)")
    parser.add_argument("--forcing", type=float, default=18.0,
                        help="F of the built-in Lorenz-96 model for residuals (default: 18)")
    parser.add_argument("--split", type=float, nargs=3, default=(0.7, 0.1, 0.2),
                        metavar=("TRAIN", "VAL", "TEST"), help="time fractions (default: 0.7 0.1 0.2)")
    parser.add_argument("--gap", type=int, default=200,
                        help="samples left out between splits (default: 200 = 1 MTU)")
    parser.add_argument("--skip", type=int, default=0, help="drop the first N samples (spin-up)")


def run(args: argparse.Namespace) -> int:
    from ..training.prepare import PrepareConfig, prepare

    path = prepare(
        PrepareConfig(
            truth=args.truth,
            out=args.out,
            simulation=args.simulation,
            kind=args.kind,
            var=args.var,
            placement=args.placement,
            forcing=args.forcing,
            fractions=tuple(args.split),
            gap_samples=args.gap,
            start_sample=args.skip,
        )
    )
    print(f"wrote {path}")
    return 0
