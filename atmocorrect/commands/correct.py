"""`atmocorrect correct`: correct simulation output offline (learned or classical method)."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from ..errors import UsageError

DESCRIPTION = """\
Correct a simulation's netCDF/GRIB/zarr output after the fact and write CF-compliant netCDF
(or a zarr store, for an --output ending in .zarr).

Methods:
  ml                 the learned distribution correction of a checkpoint (--model), trained on
                     a calibration period; keeps the simulation's climate-change signal (QDM-like)
  linear-scaling     ibicus linear scaling          } classical methods from ibicus (ECMWF):
  quantile-mapping   ibicus quantile mapping        } need the reference (--reference) and the
  qdm                ibicus quantile delta mapping  } historical run (--historical), or a --model
                                                      checkpoint whose provenance names them

Sub-daily data (3-hourly, hourly) are corrected per time of day by default (--diurnal
slots): each time of day is a daily series of its own, calibrated on the historical run's
values at that time of day and the reference's values over the same steps, so a wrong diurnal
cycle is corrected; --diurnal pooled gives one correction over all hours.

The input is read lazily and corrected in chunks of grid points (dask), so memory stays
bounded; the output keeps the input's variable names and dimensions, gets a history line, and
is written to a temporary file that is renamed into place."""

EPILOG = """\
examples:
  # learned correction of a scenario run with a trained checkpoint
  atmocorrect correct --model runs/offline/checkpoint --input tas_ssp585.nc --output tas_ssp585_bc.nc

  # train the checkpoint first (calibration 1979-2004), then correct the held-out decade
  atmocorrect correct --method ml --train --model ckpt/ --historical tas_hist.nc \\
      --reference era5_t2m.nc --input tas_hist.nc --period 2005-2014 --output tas_2005-2014_bc.nc

  # ibicus QDM for comparison
  atmocorrect correct --method qdm --reference era5_t2m.nc --historical tas_hist.nc \\
      --input tas_ssp585.nc --output tas_ssp585_qdm.nc

  # 3-hourly tas against hourly ERA5: QDM per time of day (the default), or over all hours
  atmocorrect correct --method qdm --reference era5_t2m_1h_*.nc --historical tas_3hr_hist.nc \\
      --input tas_3hr_ssp585.nc --output tas_3hr_ssp585_qdm.nc [--diurnal pooled]
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..offline.config import DIURNAL, TrainConfig, add_pair_arguments

    parser.add_argument("--model", metavar="DIR",
                        help="checkpoint directory (needed for ml; optional for classical methods)")
    parser.add_argument("--input", nargs="+", required=True, metavar="SIM",
                        help="simulation file(s) to correct (netCDF, GRIB or zarr stores)")
    parser.add_argument("--output", required=True, metavar="OUT",
                        help="file to write: netCDF-4, or a zarr store when OUT ends in .zarr "
                        "(written to a temporary name beside it, renamed when complete)")
    parser.add_argument("--method", default="ml",
                        choices=("ml", "linear-scaling", "quantile-mapping", "qdm"),
                        help="correction method (default ml)")
    parser.add_argument("--reference", nargs="+", default=[], metavar="REF",
                        help="reference file(s), e.g. ERA5 (classical methods, --train)")
    parser.add_argument("--historical", nargs="+", default=[], metavar="HIST",
                        help="historical simulation over the calibration period (classical, --train)")
    parser.add_argument("--calibration", default=None, metavar="YYYY-YYYY",
                        help="calibration years (default: the checkpoint's, else 1979-2004)")
    parser.add_argument("--period", default=None, metavar="YYYY-YYYY",
                        help="correct and write only these years of the input")
    parser.add_argument("--variables", nargs="+", default=[], metavar="VAR",
                        help="variables to correct (default: all the checkpoint knows)")
    parser.add_argument("--train", action="store_true",
                        help="(ml) train the checkpoint into --model first, from --historical "
                        "and --reference over --calibration")
    parser.add_argument("--diurnal", choices=DIURNAL, default=None,
                        help="sub-daily data (3-hourly, hourly): correct each time of day on its "
                        "own (slots: each time of day a daily series, calibrated on the "
                        "historical run's values at that time of day, so a wrong diurnal cycle "
                        "is corrected) or with one correction over all hours (pooled). Applies "
                        "to --train (how the checkpoint is trained, as 'train offline "
                        "--diurnal') and to the classical methods; an ml checkpoint corrects as "
                        "it was trained. Daily and monthly data are not affected (default "
                        f"{TrainConfig.diurnal})")
    add_pair_arguments(parser, from_checkpoint=True)
    parser.add_argument("--chunk-points", type=int, default=None, metavar="N",
                        help="grid points per dask chunk (bounds memory; default 256)")
    parser.add_argument("--threads", type=int, default=1,
                        help="dask/torch threads (default 1)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from ..data.pairs import PairConfig
    from ..data.timeaxis import parse_period
    from ..offline.apply import CorrectionRequest, check_paths, correct_file
    from ..offline.config import TrainConfig, parse_mapping
    from ..offline.train import train_offline

    started = time.perf_counter()
    check_paths(args.input, args.output, args.overwrite)
    calibration = parse_period(args.calibration) if args.calibration else None
    names = parse_mapping(args.reference_name, "--reference-name")
    diurnal = args.diurnal or TrainConfig.diurnal
    if args.diurnal and args.method == "ml" and not args.train:
        # the checkpoint's slots decide; a silently ignored --diurnal would mislead
        raise UsageError(f"--diurnal {args.diurnal} with --method ml applies to --train only: "
                         f"{'the checkpoint ' + str(args.model) if args.model else 'a checkpoint'}"
                         " corrects as it was trained (per time of day or over all hours); "
                         "train one with --train --diurnal "
                         f"{args.diurnal}, or give --diurnal to a classical method")
    if args.train:
        if args.method != "ml":
            raise UsageError("--train applies to --method ml only")
        if not (args.model and args.reference and args.historical):
            raise UsageError("--train needs --model DIR, --historical and --reference")
        if not args.variables:
            raise UsageError("--train needs --variables (e.g. --variables tas)")
        print(f"training the offline correction into {args.model} ...", file=sys.stderr)
        train_offline(
            args.historical, args.reference, args.model,
            PairConfig(variables=tuple(args.variables), reference_names=names,
                       outside=args.outside or "error",
                       convert_calendar=True if args.convert_calendar is None
                       else args.convert_calendar,
                       accumulation_period=args.accumulation_period),
            TrainConfig(calibration=calibration or TrainConfig.calibration,
                        threads=max(1, args.threads), diurnal=diurnal),
            overwrite=True, progress=not args.quiet,
        )
    elif args.method == "ml" and args.model and not Path(args.model).exists():
        raise UsageError(f"checkpoint {args.model} does not exist; train one (add --train with "
                         "--historical, --reference and --variables)")
    # how to run, not what to compute: the checkpoint's own apply settings stay
    execution = {"threads": max(1, args.threads)}
    if args.chunk_points:
        execution["chunk_points"] = args.chunk_points
    overrides = {"reference_names": names, "outside": args.outside,
                 "convert_calendar": args.convert_calendar,
                 "accumulation_period": args.accumulation_period}
    req = CorrectionRequest(
        method=args.method,
        inputs=tuple(args.input),
        output=args.output,
        model=args.model,
        reference=tuple(args.reference),
        historical=tuple(args.historical),
        variables=tuple(args.variables),
        period=parse_period(args.period) if args.period else None,
        calibration=calibration,
        apply_overrides=execution,
        overwrite=args.overwrite,
        progress=not args.quiet and sys.stderr.isatty(),
        command=shlex.join(["atmocorrect", "correct", *sys.argv[2:]])
        if len(sys.argv) > 1 and sys.argv[1] == "correct" else None,
        pair_overrides=overrides,
        diurnal=diurnal,
    )
    out = correct_file(req)
    print(f"wrote {out} ({args.method}, {time.perf_counter() - started:.1f} s)")
    return 0
