"""`atmocorrect demo`: the Lorenz-96 twin experiment end to end (what `make demo` runs)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

DESCRIPTION = """\
Run the Lorenz-96 twin experiment end to end into --out (default runs/demo/):

  1. truth runs of the two-scale system (K=8, J=32, F=18): training period, and two
     independent climate runs (free-run reference and its floor)
  2. atmocorrect prepare: one-step residuals of the one-scale model, time-ordered split
  3. atmocorrect train: zero, quartic, mlp baselines and the transformer (runs/demo/corrector/)
  4. atmocorrect evaluate twin: forecasts from >= 300 held-out states, 1000-MTU free runs,
     stability runs; runs/demo/report.json, report.md and plots
  5. if the Fortran example and the bridge are built: the Fortran l96_model coupled to the
     transformer checkpoint under `mpirun -np 2`, compared with the Python forecast

and print the table. Sized for a 2-core machine in under 20 minutes."""

EPILOG = """\
examples:
  atmocorrect demo                       # everything, into runs/demo/
  atmocorrect demo --quick               # a smoke run in a minute or two (not the real figures)
  atmocorrect demo --skip-data           # reuse runs/demo/data/*.nc

The configs are training/lorenz96_*.toml; the protocol is in docs/lorenz96.md."""

ROWS = ("zero", "quartic", "mlp", "transformer")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/demo", help="output directory (default: runs/demo)")
    parser.add_argument("--configs", default="training", help="directory of lorenz96_*.toml (default: training)")
    parser.add_argument("--cores", type=int, default=0, help="cores to use (default: all available)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test, not the figures")
    parser.add_argument("--skip-data", action="store_true", help="reuse existing truth files")
    parser.add_argument("--skip-train", action="store_true", help="reuse existing checkpoints")
    parser.add_argument("--truth", choices=("auto", "fortran", "numpy"), default="auto",
                        help="truth runs from the Fortran l96_truth (auto: when built) or numpy")
    parser.add_argument("--train-members", type=int, default=20,
                        help="training truth: numpy members (default: 20; Fortran: one run as long)")
    parser.add_argument("--train-mtu", type=float, default=50.0, help="training truth: MTU per member (default: 50)")
    parser.add_argument("--stability", type=float, default=10000.0,
                        help="stability run of the transformer, MTU in total over 100 members (default: 10000)")
    parser.add_argument("--fortran", choices=("auto", "on", "off"), default="auto",
                        help="the coupled Fortran check: auto runs it if built (default: auto)")


def _cores(requested: int) -> int:
    if requested > 0:
        return requested
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover
        return os.cpu_count() or 1


def _truth_job(args: tuple) -> str:
    from ..evaluation.data import numpy_truth

    path, members, mtu, seed = args
    return str(numpy_truth(path, members, mtu, seed))


def _say(t0: float, text: str) -> None:
    print(f"[demo {time.time() - t0:6.0f}s] {text}", flush=True)


def _train(config: Path, data: Path, out: Path, ranks: int, overrides: list[str], env: dict) -> None:
    cmd = [sys.executable, "-m", "atmocorrect.cli", "train", "--config", str(config), "--data", str(data),
           "--out", str(out), "--no-progress"]
    for o in overrides:
        cmd += ["--set", o]
    if ranks > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}",
               "-m", "atmocorrect.cli", *cmd[3:]]
    subprocess.run(cmd, check=True, env=env)


def run(args: argparse.Namespace) -> int:
    from ..errors import UsageError

    t0 = time.time()
    out = Path(args.out)
    data_dir = out / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    cores = _cores(args.cores)
    quick = args.quick
    timings: dict[str, float] = {}
    env = dict(os.environ)
    # the subprocesses (training ranks) import the same atmocorrect as this process
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join([package_root, *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("OMP_NUM_THREADS", "1")

    # 1. truth runs ------------------------------------------------------------------
    train_truth = data_dir / "truth_train.nc"
    climate = data_dir / "truth_climate.nc"
    floor = data_dir / "truth_floor.nc"
    from ..evaluation import online

    source = "numpy"
    if not (args.skip_data and train_truth.exists() and climate.exists() and floor.exists()):
        if args.truth in ("auto", "fortran") and online.find_executable("l96_truth") is not None:
            length = 100.0 if quick else args.train_members * args.train_mtu
            clim_len = 100.0 if quick else 1000.0
            _say(t0, f"truth runs (Fortran l96_truth, two-scale Lorenz-96): training {length:g} MTU, "
                     f"climate and floor {clim_len:g} MTU each")
            online.fortran_truth(train_truth, length, 1, env)
            online.fortran_truth(climate, clim_len, 2, env)
            online.fortran_truth(floor, clim_len, 3, env)
            source = "fortran l96_truth"
        elif args.truth == "fortran":
            raise UsageError("--truth fortran: examples/lorenz96/build/l96_truth is not built")
        else:
            members, mtu = (8, 20.0) if quick else (args.train_members, args.train_mtu)
            clim_members, clim_mtu = (20, 5.0) if quick else (100, 10.0)
            _say(t0, f"truth runs (numpy two-scale Lorenz-96): training {members} x {mtu:g} MTU, "
                     f"climate and floor {clim_members} x {clim_mtu:g} MTU each, on {cores} core(s)")
            jobs = [(str(train_truth), members, mtu, 1), (str(climate), clim_members, clim_mtu, 2),
                    (str(floor), clim_members, clim_mtu, 3)]
            if cores > 1:
                from concurrent.futures import ProcessPoolExecutor

                with ProcessPoolExecutor(max_workers=min(cores, len(jobs))) as pool:
                    list(pool.map(_truth_job, jobs))
            else:
                for j in jobs:
                    _truth_job(j)
    timings["truth"] = time.time() - t0

    # 2. prepare ---------------------------------------------------------------------------
    t = time.time()
    from ..training.prepare import PrepareConfig, prepare

    train_set = prepare(PrepareConfig(truth=str(train_truth), out=str(out / "train.nc"), kind="residual",
                                      placement="after", gap_samples=200 if not quick else 20))
    _say(t0, f"prepared {train_set} (one-step residuals)")
    timings["prepare"] = time.time() - t

    # 3. train -----------------------------------------------------------------------------
    t = time.time()
    configs = Path(args.configs)
    checkpoints = {name: out / (name if name != "transformer" else "corrector") for name in ROWS}
    if not args.skip_train:
        for name in ROWS:
            config = configs / f"lorenz96_{name}.toml"
            if not config.is_file():
                raise UsageError(f"config {config} not found (run the demo from the source tree or pass --configs)")
            overrides: list[str] = []
            if quick and name in ("mlp", "transformer"):
                overrides = ["train.epochs=1", "train.max_samples=2000", "finetune.epochs=0"]
            ranks = cores if name == "transformer" and not quick else 1
            shutil.rmtree(checkpoints[name].with_name(checkpoints[name].name + ".work"), ignore_errors=True)
            ts = time.time()
            _say(t0, f"training {name} ({config}, {ranks} rank(s))")
            _train(config, train_set, checkpoints[name], ranks, overrides, env)
            timings[f"train_{name}"] = time.time() - ts
    timings["train"] = time.time() - t

    # 4. evaluate ------------------------------------------------------------------------
    t = time.time()
    _say(t0, "evaluating (forecasts, free runs, stability)")
    import torch

    from ..evaluation import twin

    torch.set_num_threads(1)  # processes, not threads: see twin.evaluate(workers=...)
    test, dt = twin.load_truth(train_set, split="test")
    clim, _ = twin.load_truth(climate)
    flo, _ = twin.load_truth(floor)
    cfg = twin.TwinConfig(
        n_forecasts=300,
        free_run_mtu=100.0 if quick else 1000.0,
        members=20 if quick else 100,
        spinup_mtu=5.0,
        stability_mtu=0.0 if quick else args.stability,
        stability_members=100,
        stability_rows=("transformer",),
        dt_mtu=dt,
        threads=1,
    )
    rows = twin.builtin_rows() + [
        twin.checkpoint_row(name, checkpoints[name], threads=1) for name in ROWS
    ]
    online_checks: dict[str, object] = {
        "python_corrector_vs_batched_max_abs": twin.online_check(checkpoints["transformer"], test[0, 0], 200, cfg)
    }
    fortran = _fortran_check(args.fortran, checkpoints["transformer"], train_set, out, env)
    if fortran is not None:
        online_checks["fortran_mpirun_np2"] = fortran
    report = twin.evaluate(rows, test, clim, flo, cfg, out, log=lambda s: _say(t0, s),
                           extra={"online_check": online_checks, "truth_source": source}, workers=cores)
    timings["evaluate"] = time.time() - t
    timings["total"] = time.time() - t0
    with open(out / "demo.json", "w") as fh:
        json.dump({"timings_seconds": {k: round(v, 1) for k, v in timings.items()}, "cores": cores,
                   "quick": quick, "truth_source": source, "online_check": online_checks}, fh, indent=2)
    print()
    print(twin.markdown_table(report), end="")
    tf = report["models"]["transformer"]
    print(f"\ntransformer: horizon {tf['horizon_mtu']:.3f} MTU (target >= 1.5), Hellinger "
          f"{tf['hellinger']:.4f} (target <= 0.015; truth floor {report['hellinger_floor']:.4f})")
    if "stability" in tf:
        s = tf["stability"]
        print(f"stability: {s['mtu']:g} MTU ({s['members']} members): "
              f"{'finite' if s['finite'] else 'BLEW UP'}, max |X| {s['max_abs']:.1f}")
    print(f"online check (Corrector.apply vs batched): max |diff| {online_checks['python_corrector_vs_batched_max_abs']:.2e}")
    if fortran is not None:
        print(f"Fortran coupled check: {fortran}")
    print(f"report: {out / 'report.json'}; checkpoint: {checkpoints['transformer']}; "
          f"wall time {timings['total'] / 60:.1f} min")
    return 0


def _fortran_check(mode: str, checkpoint: Path, train_set: Path, out: Path, env: dict):
    """Run the Fortran model coupled to the checkpoint under mpirun -np 2, if built."""
    if mode == "off":
        return None
    import numpy as np
    import xarray as xr

    from ..evaluation import online

    truth_file = out / "data" / "truth_train.nc"
    try:
        with xr.open_dataset(train_set, decode_times=False) as ds:
            flags = ds["split"].values
            members = ds.sizes.get("member", 1)
        if members != 1 or not truth_file.exists():
            raise online.NotAvailable("needs a single-run truth file (the Fortran l96_truth's)")
        index = int(np.nonzero(flags == 2)[0][0])  # the first held-out state
        return online.fortran_check(checkpoint, truth_file, index, 200, out / "fortran", env)
    except online.NotAvailable as exc:
        if mode == "on":
            from ..errors import UsageError

            raise UsageError(f"--fortran on: {exc}") from exc
        return {"skipped": str(exc)}
