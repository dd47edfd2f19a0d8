#!/usr/bin/env python
r"""Split-sample validation of the offline corrections: raw, ibicus QDM and ``ml`` on several
calibration/validation splits of one reference/simulation pair.

The design of the learned correction is judged on the *inner* splits, which lie entirely inside
the default calibration period 1979-2004 (the held-out 2005-2014 is never used for a choice);
the *outer* splits (the official 1979-2004 -> 2005-2014 and the reverse 1989-2014 ->
1979-1988) are reported beside them so that a claim about generalisation rests on several
decades rather than one.

For every split each method is calibrated on the calibration years only and scored on the
validation years (the metrics of ``atmocorrect evaluate offline``, per point then averaged),
and the climate-change signal (scenario mean minus calibration-period mean, corrected minus
raw) is computed when a scenario file is given. ``ml`` is trained once per split (checkpoints
cached in ``--out``) and applied with every ``--variant`` of :class:`ApplyConfig`.

    OMP_NUM_THREADS=1 python examples/offline/crossval.py                  # all splits
    OMP_NUM_THREADS=1 python examples/offline/crossval.py --splits inner   # design splits only
    # another pair, e.g. daily precipitation against ERA5 daily tp (m per day):
    OMP_NUM_THREADS=1 python examples/offline/crossval.py --historical pr_day.nc \
        --reference tp_day.nc --future pr_ssp.nc --variable pr --outside drop \
        --accumulation-period 86400
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from atmocorrect.data import samples  # noqa: E402
from atmocorrect.data.pairs import PairConfig, load_pair  # noqa: E402
from atmocorrect.data.readers import open_dataset  # noqa: E402
from atmocorrect.data.timeaxis import format_period, season_position, years  # noqa: E402
from atmocorrect.offline.apply import (  # noqa: E402
    cells_of,
    crop_to_cells,
    load_offline_model,
    ml_correct_points,
)
from atmocorrect.offline.classical import correct_block  # noqa: E402
from atmocorrect.offline.config import (  # noqa: E402
    ApplyConfig,
    NetworkConfig,
    TrainConfig,
    physical_bounds,
)
from atmocorrect.offline.evaluate import display_units, event_thresholds  # noqa: E402
from atmocorrect.offline.metrics import METRICS, TimeInfo, marginal_metrics, score  # noqa: E402
from atmocorrect.offline.train import train_offline  # noqa: E402

#: name -> (calibration years, validation years, kind)
SPLITS = {
    "inner-fwd": ((1979, 1994), (1995, 2004), "inner"),
    "inner-bwd": ((1989, 2004), (1979, 1988), "inner"),
    "inner-mid": ((1979, 1991), (1992, 2004), "inner"),
    "official": ((1979, 2004), (2005, 2014), "outer"),
    "reverse": ((1989, 2014), (1979, 1988), "outer"),
}


def _rows(yrs: np.ndarray, period: tuple[int, int]) -> np.ndarray:
    return np.flatnonzero((yrs >= period[0]) & (yrs <= period[1]))


def _flat(da) -> np.ndarray:
    return np.asarray(da.values, dtype=np.float64).reshape(da.shape[0], -1)


def run(args: argparse.Namespace) -> dict:
    data = args.data or samples.sample_data_dir()
    hist = args.historical or data / samples.DAILY_HISTORICAL
    ref = args.reference or data / samples.DAILY_REFERENCE
    fut = args.future if args.future is not None else (
        data / samples.DAILY_SCENARIO if args.historical is None else None)
    var = args.variable
    pair_cfg = PairConfig(variables=(var,), outside=args.outside,
                          accumulation_period=args.accumulation_period)
    pair = load_pair([hist], [ref], pair_cfg)
    freq = pair.frequency
    units = str(pair.sim[var].attrs.get("units", ""))
    bounds = physical_bounds(var, units)
    # every method works in the data's units; the metrics are taken in the evaluation's
    # (precipitation in mm/day), with its frost- and wet-day thresholds
    scale, shown = display_units(units)
    frost, wet = event_thresholds(var, shown, pair.sim[var].attrs)
    xs, xr_ = _flat(pair.sim[var]), _flat(pair.ref[var])
    ts, tr = pair.sim["time"].values, pair.ref["time"].values
    ys, yr = years(ts), years(tr)
    ss = season_position(ts, freq)
    xf = tf = None
    if fut is not None:
        fds = open_dataset(fut)
        if args.outside == "drop":  # the pair's cells (inside the reference box) only
            fds = crop_to_cells(fds, *cells_of(pair.sim), str(fut))
        xf, tf = _flat(fds[var]), fds["time"].values
    variants = {"ml": ApplyConfig()}
    for item in args.variant:
        name, _, spec = item.partition("=")
        kw = json.loads(spec) if spec else {}
        variants[name] = ApplyConfig(**kw)
    # training variants: own checkpoints, applied with the default ApplyConfig
    train_variants = {"": {}}
    for item in args.train_variant:
        name, _, spec = item.partition("=")
        kw = json.loads(spec) if spec else {}
        if isinstance(kw.get("network"), dict):  # nested network settings, e.g. the trunk
            kw["network"] = NetworkConfig.from_mapping(kw["network"])
        train_variants[name] = kw
        variants[name] = ApplyConfig()
    chosen = [s for s in SPLITS if args.splits == "all" or SPLITS[s][2] == args.splits
              or s in args.splits.split(",")]
    results: dict = {}
    for split in chosen:
        cal, val, _ = SPLITS[split]
        t0 = time.perf_counter()
        models = {}
        for tv, kw in train_variants.items():
            ckpt = args.out / f"{split}_{format_period(cal)}{'_' + tv if tv else ''}"
            if args.retrain or not (ckpt / "manifest.json").exists():
                train_offline([hist], [ref], ckpt, pair_cfg,
                              TrainConfig(calibration=cal, steps=args.steps, **kw))
            models[tv] = load_offline_model(ckpt)[1]
        model = models[""]
        t_train = time.perf_counter() - t0
        pts = model.point_index(*_latlon(pair.sim[var]))
        rc_s, rv_s = _rows(ys, cal), _rows(ys, val)
        rc_r, rv_r = _rows(yr, cal), _rows(yr, val)
        ti_v, ti_r = TimeInfo.of(ts[rv_s], freq), TimeInfo.of(tr[rv_r], freq)
        out: dict = {"raw": xs[rv_s]}
        out["qdm"] = correct_block("qdm", var, freq, xr_[rc_r], xs[rc_s], xs[rv_s],
                                   tr[rc_r], ts[rc_s], ts[rv_s], bounds)
        for name, acfg in variants.items():
            mdl = models.get(name, model)
            out[name] = ml_correct_points(mdl, var, xs[rv_s], pts, ss[rv_s], ys[rv_s],
                                          acfg, freq)
        res = {m: marginal_metrics(v * scale, xr_[rv_r] * scale, ti_v, ti_r, freq, frost,
                                   wet)
               for m, v in out.items()}
        if xf is not None:
            sf, yf = season_position(tf, freq), years(tf)

            def signal(base: np.ndarray, future: np.ndarray) -> float:
                return float(np.mean(future.mean(0) - base.mean(0)) * scale)

            raw_sig = signal(xs[rc_s], xf)
            res["raw"]["cc_signal_change"] = 0.0
            base_q = correct_block("qdm", var, freq, xr_[rc_r], xs[rc_s], xs[rc_s],
                                   tr[rc_r], ts[rc_s], ts[rc_s], bounds)
            fut_q = correct_block("qdm", var, freq, xr_[rc_r], xs[rc_s], xf,
                                  tr[rc_r], ts[rc_s], tf, bounds)
            res["qdm"]["cc_signal_change"] = signal(base_q, fut_q) - raw_sig
            for name, acfg in variants.items():
                mdl = models.get(name, model)
                b = ml_correct_points(mdl, var, xs[rc_s], pts, ss[rc_s], ys[rc_s], acfg, freq)
                f = ml_correct_points(mdl, var, xf, pts, sf, yf, acfg, freq)
                res[name]["cc_signal_change"] = signal(b, f) - raw_sig
        results[split] = {"calibration": format_period(cal), "validation": format_period(val),
                          "metrics": res}
        print(f"\n### {split}: calibrate {format_period(cal)}, validate {format_period(val)}"
              f" ({time.perf_counter() - t0:.0f} s, training {t_train:.0f} s)\n", flush=True)
        print(table(res), flush=True)
    print("\n### summary: ml variants at least as good as qdm (score <= qdm's), per split\n")
    print(summary(results, list(variants)))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return results


def _latlon(da):
    import xarray as xr

    la, lo = xr.broadcast(da["lat"], da["lon"])
    spatial = [d for d in da.dims if d != "time"]
    return (la.transpose(*[d for d in spatial if d in la.dims]).values.ravel(),
            lo.transpose(*[d for d in spatial if d in lo.dims]).values.ravel())


KEYS = [(k, lab, how) for k, lab, how in METRICS] + [("cc_signal_change", "CC signal change",
                                                      "abs")]


def table(res: dict) -> str:
    keys = [k for k in KEYS if any(k[0] in r for r in res.values())]
    lines = ["| method | " + " | ".join(lab for _, lab, _ in keys) + " |",
             "|---" * (len(keys) + 1) + "|"]
    for m, r in res.items():
        lines.append(f"| {m} | " + " | ".join(
            f"{r[k]:+.3f}" if k in r else "" for k, _, _ in keys) + " |")
    return "\n".join(lines)


def summary(results: dict, variants: list[str]) -> str:
    present = {k for r in results.values() for m in r["metrics"].values() for k in m}
    keys = [k for k in KEYS if k[0] != "lag1_anomaly_autocorr_diff" and k[0] in present]
    lines = ["| split | variant | " + " | ".join(lab for _, lab, _ in keys) + " | wins |",
             "|---" * (len(keys) + 3) + "|"]
    for split, r in results.items():
        q = r["metrics"]["qdm"]
        for v in variants:
            m = r["metrics"][v]
            cells, wins = [], 0
            for k, _, how in keys:
                if k not in m:
                    cells.append("")
                    continue
                ok = score(m[k], how) <= score(q[k], how) + 1e-9
                wins += ok
                cells.append("yes" if ok else "**no**")
            lines.append(f"| {split} | {v} | " + " | ".join(cells) + f" | {wins}/{len(keys)} |")
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="\n\n".join(__doc__.split("\n\n")[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=None,
                   help="the shared sample data folder (default: ATMOCORRECT_SAMPLE_DATA or "
                   "../shared/data), for the shipped daily tas pair")
    p.add_argument("--historical", type=Path,
                   help="historical simulation file (default: the shipped IPSL-CM6A-LR tas)")
    p.add_argument("--reference", type=Path,
                   help="reference file, e.g. ERA5 (default: the shipped ERA5 t2m)")
    p.add_argument("--future", type=Path,
                   help="scenario file for the climate-change signal rows (default with the "
                   "shipped pair: its SSP5-8.5 run; with --historical: none)")
    p.add_argument("--variable", default="tas", help="simulation variable (default tas)")
    p.add_argument("--outside", choices=("error", "drop"), default="error",
                   help="simulation cells outside the reference box: error or drop (keep "
                   "the cells inside), as for run_offline_demo.py")
    p.add_argument("--accumulation-period", type=float, default=None, metavar="SECONDS",
                   help="seconds an accumulated reference amount (ERA5 tp in m) refers to, "
                   "when its time axis does not say (daily files: 86400)")
    p.add_argument("--splits", default="all",
                   help="all, inner, outer or a comma-separated list of split names")
    p.add_argument("--variant", action="append", default=[],
                   help='NAME=JSON of ApplyConfig fields, e.g. rank=\'{"rank": "empirical"}\'')
    p.add_argument("--train-variant", action="append", default=[],
                   help='NAME=JSON of TrainConfig fields, trained per split, e.g. '
                   'detrend=\'{"detrend": true}\' or transformer=\'{"network": {"trunk": '
                   '"transformer"}, "seed": 1}\'')
    p.add_argument("--steps", type=int, default=TrainConfig.steps,
                   help=f"training steps per split (default {TrainConfig.steps})")
    p.add_argument("--retrain", action="store_true",
                   help="train again even where --out holds a checkpoint for the split")
    p.add_argument("--out", type=Path, default=REPO / "runs" / "offline" / "cv",
                   help="where the per-split checkpoints are kept (default runs/offline/cv)")
    p.add_argument("--json", type=Path, default=None,
                   help="also write every split's metrics to this JSON file")
    return p.parse_args(argv)


if __name__ == "__main__":
    run(parse_args())
