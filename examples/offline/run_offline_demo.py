#!/usr/bin/env python
"""Offline correction of a real CMIP6 simulation against ERA5, side by side with ibicus.

What ``make offline-demo`` runs. With the shipped sample data (``../shared/data`` or
``$ATMOCORRECT_SAMPLE_DATA``) it:

1. trains the learned correction (``ml``) on 1979-2004: ERA5 daily t2m (interpolated
   bilinearly to the model's points) vs IPSL-CM6A-LR historical tas;
2. corrects the held-out 2005-2014 with ``ml`` and with ibicus linear scaling, quantile mapping
   and QDM, all through ``atmocorrect correct`` -> ``runs/offline/corrected_2005-2014.nc`` (ml)
   and ``corrected_2005-2014_<method>.nc``;
3. corrects 1979-2004 and SSP5-8.5 2050-2070 with each method, for the climate-change signal;
4. scores everything with ``atmocorrect evaluate offline`` -> ``runs/offline/report.json``,
   a Markdown table on stdout, ``seasonal_cycle.png``, ``qq.png`` and ``bias_map.png``.

Any other pair works the same way::

    python examples/offline/run_offline_demo.py --historical tas_hist.nc --reference era5.nc \\
        --future tas_ssp.nc --variable tas --calibration 1979-2004 --heldout 2005-2014

Real pairs differ from the shipped one in ways the readers handle (see docs/offline.md): grids
of any size, ``noleap``/``360_day`` calendars (the reference is converted to the simulation's),
ERA5 from the new CDS (``valid_time``, ``latitude``/``longitude``, north to south, 0..360),
regional boxes across the Greenwich meridian, other variables (``--variable pr`` with
``--accumulation-period 86400`` for a daily ERA5 ``tp`` in m; ``--reference-name tasmax=t2m``
when the reference names it differently; ``--outside drop`` to keep only the model cells inside
the reference box). Without ``--future`` (or when that file is absent) the climate-change
signal rows are skipped with a note.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from atmocorrect.cli import main as cli  # noqa: E402
from atmocorrect.data import samples  # noqa: E402
from atmocorrect.data.pairs import PairConfig  # noqa: E402
from atmocorrect.data.readers import open_many  # noqa: E402
from atmocorrect.data.timeaxis import format_period, parse_period, require_period  # noqa: E402
from atmocorrect.errors import AtmocorrectError, DataError  # noqa: E402
from atmocorrect.offline.config import TrainConfig, add_pair_arguments, parse_mapping  # noqa: E402
from atmocorrect.offline.evaluate import EvaluationSpec, evaluate, markdown_table  # noqa: E402
from atmocorrect.offline.train import train_offline  # noqa: E402

CLASSICAL = ("linear-scaling", "quantile-mapping", "qdm")


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    historical: tuple[Path, ...]
    reference: tuple[Path, ...]
    future: tuple[Path, ...] | None
    variable: str = "tas"
    calibration: tuple[int, int] = (1979, 2004)
    heldout: tuple[int, int] = (2005, 2014)
    out: Path = REPO / "runs" / "offline"
    steps: int = TrainConfig.steps
    threads: int = 1
    bootstrap: int = 200
    outside: str = "error"
    accumulation_period: float | None = None
    reference_names: tuple[tuple[str, str], ...] = ()
    convert_calendar: bool = True

    def pair_config(self) -> PairConfig:
        return PairConfig(variables=(self.variable,), reference_names=dict(self.reference_names),
                          outside=self.outside,  # type: ignore[arg-type]
                          convert_calendar=self.convert_calendar,
                          accumulation_period=self.accumulation_period)


def _correct(cfg: DemoConfig, method: str, inputs: list[Path], output: Path,
             period: tuple[int, int] | None) -> Path:
    argv = ["correct", "--method", method, "--model", str(cfg.out / "checkpoint"),
            "--input", *map(str, inputs), "--output", str(output), "--overwrite", "--quiet",
            "--threads", str(cfg.threads)]
    if period:
        argv += ["--period", format_period(period)]
    if method != "ml":
        argv += ["--reference", *map(str, cfg.reference), "--historical", *map(str, cfg.historical),
                 "--calibration", format_period(cfg.calibration)]
    status = cli(argv)
    if status != 0:
        raise SystemExit(f"atmocorrect {' '.join(argv)} failed with status {status}")
    return output


def check_inputs(cfg: DemoConfig) -> DemoConfig:
    """Fail early, naming the file and the period, when the inputs cannot give the table;
    a scenario file that is absent only drops the climate-change signal rows (with a note)."""
    for what, paths in (("historical simulation", cfg.historical), ("reference", cfg.reference)):
        for path in paths:
            if not Path(path).exists():
                raise DataError(f"the {what} file {path} does not exist")
    for what, paths in (("historical simulation", cfg.historical), ("reference", cfg.reference)):
        ds = open_many(list(paths))
        names = ", ".join(map(str, paths))
        require_period(ds, cfg.calibration, f"the {what} {names}", "--calibration")
        require_period(ds, cfg.heldout, f"the {what} {names}", "--heldout")
    absent = [str(p) for p in cfg.future or () if not Path(p).exists()]
    if absent:
        print(f"note: the scenario file {', '.join(absent)} does not exist; the climate-change "
              "signal rows are skipped", flush=True)
        cfg = dataclasses.replace(cfg, future=None)
    elif cfg.future is None:
        print("note: no scenario file (--future); the climate-change signal rows are skipped",
              flush=True)
    return cfg


def run(cfg: DemoConfig) -> dict:
    t0 = time.perf_counter()
    cfg = check_inputs(cfg)
    cfg.out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    print(f"[1/4] training the learned correction on {format_period(cfg.calibration)} ...",
          flush=True)
    train_offline(
        list(cfg.historical), list(cfg.reference), cfg.out / "checkpoint", cfg.pair_config(),
        TrainConfig(calibration=cfg.calibration, steps=cfg.steps, threads=cfg.threads),
    )
    timings["train_s"] = time.perf_counter() - t0
    print(f"      done in {timings['train_s']:.1f} s", flush=True)

    t = time.perf_counter()
    print(f"[2/4] correcting the held-out {format_period(cfg.heldout)} "
          "(ml, linear-scaling, quantile-mapping, qdm) ...", flush=True)
    held: dict[str, tuple[Path, ...]] = {"raw": cfg.historical}
    tag = format_period(cfg.heldout)
    for method in ("ml", *CLASSICAL):
        name = f"corrected_{tag}.nc" if method == "ml" else f"corrected_{tag}_{method}.nc"
        held[method] = (_correct(cfg, method, list(cfg.historical), cfg.out / name,
                                 cfg.heldout),)
    timings["correct_heldout_s"] = time.perf_counter() - t

    signals: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
    if cfg.future is not None:
        t = time.perf_counter()
        print("[3/4] correcting the calibration period and the scenario (climate-change "
              "signal) ...", flush=True)
        sig = cfg.out / "signal"
        sig.mkdir(exist_ok=True)
        signals["raw"] = (tuple(map(str, cfg.historical)), tuple(map(str, cfg.future)))
        for method in ("ml", *CLASSICAL):
            base = _correct(cfg, method, list(cfg.historical), sig / f"{method}_baseline.nc",
                            cfg.calibration)
            fut = _correct(cfg, method, list(cfg.future), sig / f"{method}_future.nc", None)
            signals[method] = ((str(base),), (str(fut),))
        timings["correct_signal_s"] = time.perf_counter() - t

    t = time.perf_counter()
    print("[4/4] evaluating ...", flush=True)
    order = ("raw", "linear-scaling", "quantile-mapping", "qdm", "ml")
    spec = EvaluationSpec(
        reference=tuple(map(str, cfg.reference)),
        variables=(cfg.variable,),
        period=cfg.heldout,
        methods={m: tuple(map(str, held[m])) for m in order},
        signals={m: signals[m] for m in order if m in signals},
        baseline_period=cfg.calibration,
        pair=cfg.pair_config(),
        plots=str(cfg.out),
        bootstrap=cfg.bootstrap,
    )
    report = evaluate(spec)
    if signals:
        # how closely each method reproduces the reference where it was calibrated
        fit = evaluate(dataclasses.replace(
            spec, period=cfg.calibration, signals={}, plots=None, bootstrap=0,
            methods={m: signals[m][0] for m in order if m in signals}))
        report["calibration_fit"] = {"period": format_period(cfg.calibration),
                                     "methods": fit["methods"],
                                     "ml_vs_qdm": fit["meta"].get("ml_vs_qdm")}
    if not signals:
        report["meta"]["climate_change_signal"] = (
            "skipped: no scenario file was given or it does not exist")
    timings["evaluate_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t0
    report["meta"]["timings"] = {k: round(v, 2) for k, v in timings.items()}
    (cfg.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print()
    print(f"Held-out {format_period(cfg.heldout)}, {cfg.variable} "
          f"[{report['meta']['units'].get(cfg.variable, '')}], simulation minus reference, "
          "mean over points:")
    print()
    print(markdown_table(report))
    if "calibration_fit" in report:
        print()
        print(f"Calibration fit ({report['calibration_fit']['period']}, the period each method "
              "was calibrated on):")
        print()
        print(markdown_table({"methods": report["calibration_fit"]["methods"],
                              "meta": {"ml_vs_qdm": report["calibration_fit"]["ml_vs_qdm"]}}))
    print()
    print(f"wrote {cfg.out / 'report.json'}, {held['ml'][0]}, plots in {cfg.out}")
    print(f"wall time {timings['total_s']:.1f} s "
          f"(train {timings['train_s']:.1f} s, held-out {timings['correct_heldout_s']:.1f} s, "
          f"signal {timings.get('correct_signal_s', 0.0):.1f} s, "
          f"evaluate {timings['evaluate_s']:.1f} s)")
    return report


def parse_args(argv: list[str] | None = None) -> DemoConfig:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=None,
                   help="sample-data folder (default: $ATMOCORRECT_SAMPLE_DATA or ../shared/data)")
    p.add_argument("--historical", type=Path, nargs="+", metavar="FILE",
                   help="historical simulation file(s) (several: a run split in time)")
    p.add_argument("--reference", type=Path, nargs="+", metavar="FILE",
                   help="reference file(s), e.g. ERA5 (several: e.g. one per year)")
    p.add_argument("--future", type=Path, nargs="+", metavar="FILE",
                   help="scenario file(s) for the climate-change signal (absent: skipped)")
    p.add_argument("--variable", default="tas", help="simulation variable (default tas)")
    p.add_argument("--calibration", default="1979-2004",
                   help="calibration years, FIRST-LAST (default: %(default)s)")
    p.add_argument("--heldout", default="2005-2014",
                   help="held-out years, never used for fitting (default: %(default)s)")
    p.add_argument("--out", type=Path, default=REPO / "runs" / "offline",
                   help="output folder: checkpoint, corrected files, report.json, plots "
                        "(default: runs/offline)")
    p.add_argument("--steps", type=int, default=TrainConfig.steps,
                   help="training steps of the learned correction (default: %(default)s)")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads for training and correction (default: %(default)s)")
    p.add_argument("--bootstrap", type=int, default=200,
                   help="year resamples for the robustness of ml vs qdm (0: off; default: "
                        "%(default)s)")
    add_pair_arguments(p)
    a = p.parse_args(argv)
    data = a.data or samples.sample_data_dir()
    if a.historical is None or a.reference is None:
        if data is None:
            p.error(samples.missing_reason())
        a.historical = a.historical or [data / samples.DAILY_HISTORICAL]
        a.reference = a.reference or [data / samples.DAILY_REFERENCE]
        a.future = a.future or [data / samples.DAILY_SCENARIO]
    return DemoConfig(
        historical=tuple(a.historical), reference=tuple(a.reference),
        future=tuple(a.future) if a.future else None, variable=a.variable,
        calibration=parse_period(a.calibration), heldout=parse_period(a.heldout), out=a.out,
        steps=a.steps, threads=a.threads, bootstrap=a.bootstrap, outside=a.outside,
        accumulation_period=a.accumulation_period,
        reference_names=tuple(parse_mapping(a.reference_name, "--reference-name").items()),
        convert_calendar=a.convert_calendar,
    )


if __name__ == "__main__":
    try:
        run(parse_args())
    except AtmocorrectError as exc:
        raise SystemExit(f"run_offline_demo: error: {exc}") from None
