"""The Lorenz-96 twin experiment: how close does each corrected model come to the truth?

For every row (``uncorrected``, ``wilks2005`` and each checkpoint):

- **forecasts** from ``n_forecasts`` (>= 300) initial states of a held-out truth period,
  evenly spaced, to ``max_lead_mtu``; RMSE against the truth at every lead (over cases and
  sites), reported at 0.2, 0.5 and 1.0 MTU; the skill horizon is the first lead at which the
  RMSE exceeds ``0.5 x`` the truth's climatological standard deviation;
- a **free run** of ``free_run_mtu`` (1000) MTU: mean, standard deviation, and the Hellinger
  distance of the X distribution (80 bins over [-15, 25]) against a separate truth run of the
  same length; ``hellinger_floor`` is the distance between two independent truth runs, the
  sampling noise any model meets;
- optionally a **stability** run of ``stability_mtu`` (10000) MTU for the checkpoints.

Long runs are ensembles: ``members`` runs started from truth states, each integrated for
``spinup_mtu`` (discarded, the model settles on its own attractor) and then
``free_run_mtu / members`` MTU that count. The truth runs they are compared with are whatever
files are given: single long runs of the Fortran ``l96_truth`` in the demo, or ensembles
built the same way (:mod:`atmocorrect.evaluation.data`) when only numpy is available.

Checkpoints are loaded with :func:`atmocorrect.load` (manifest, sha256, safetensors) and run
through their predictor's batched path (:meth:`WindowPredictor.batch_tendency`) with the run
configuration's taper and limiter; :func:`online_check` verifies that path step by step against
``Corrector.apply``, the call the Fortran bridge makes.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError, UsageError
from ..lorenz96 import SECONDS_PER_MTU, forecast, one_scale_step, wilks2005_tendency
from . import metrics

LEADS_REPORTED = (0.2, 0.5, 1.0)


@dataclasses.dataclass(frozen=True)
class TwinConfig:
    """What the twin evaluation runs (defaults: the issue's protocol)."""

    n_forecasts: int = 300
    max_lead_mtu: float = 2.5
    free_run_mtu: float = 1000.0
    members: int = 100
    spinup_mtu: float = 5.0
    stability_mtu: float = 10000.0
    stability_members: int = 100
    stability_rows: tuple[str, ...] = ()  # empty: every checkpoint row
    forcing: float = 18.0
    dt_mtu: float = 0.005
    threads: int = 1
    seed: int = 1234


@dataclasses.dataclass
class Row:
    """A model variant: parametrised forcing (inside RK4) and/or a learned correction."""

    name: str
    forcing: Callable[[torch.Tensor], torch.Tensor] | None = None
    correction: Callable[[torch.Tensor], torch.Tensor] | None = None
    placement: str = "after"
    checkpoint: str | None = None

    @property
    def spec(self) -> tuple[str, str | None]:
        """What rebuilds this row in a worker process: (name, checkpoint or None)."""
        return (self.name, self.checkpoint)


def row_from_spec(spec: tuple[str, str | None], threads: int = 1) -> Row:
    """Rebuild a row from :attr:`Row.spec` (a checkpoint, or a built-in row by name)."""
    name, checkpoint = spec
    if checkpoint:
        return checkpoint_row(name, checkpoint, threads=threads)
    for row in builtin_rows():
        if row.name == name:
            return row
    raise UsageError(f"unknown built-in row {name!r}")


# ------------------------------------------------------------------ data
def load_truth(path: str | Path, split: str | None = None) -> tuple[np.ndarray, float]:
    """Truth states ``(member, time, K)`` and their sampling interval (MTU) from a netCDF file.

    A training set from ``atmocorrect prepare`` is read through its ``split`` flags (``split``
    names one: ``test`` for held-out initial states); any other file needs ``X`` (or ``x``).
    Times are read in seconds and converted with 1 MTU = 432000 s.
    """
    import xarray as xr

    path = Path(path)
    if not path.is_file():
        raise DataError(f"truth file {path} does not exist")
    ds = xr.open_dataset(path, decode_times=False)
    try:
        if "split" in ds and "truth" in ds:
            from ..training.prepare import SPLIT_FLAGS

            da = ds["truth"]
            if split is not None:
                keep = np.nonzero(ds["split"].values == SPLIT_FLAGS[split])[0]
                if len(keep) == 0:
                    raise DataError(f"{path} has no {split!r} samples")
                da = da.isel(time=keep)
            dt_s = float(ds.attrs["timestep_seconds"])
        else:
            name = next((n for n in ("X", "x") if n in ds), None)
            if name is None:
                raise DataError(f"{path} has neither a variable 'X' nor a training set's 'truth'")
            da = ds[name]
            t = ds["time"]
            units = str(t.attrs.get("units", "days since"))
            factor = {"days": 86400.0, "hours": 3600.0, "seconds": 1.0, "minutes": 60.0}.get(units.split()[0], 86400.0)
            dt_s = float(t.values[1] - t.values[0]) * factor
        if "member" not in da.dims:
            da = da.expand_dims("member")
        a = np.asarray(da.transpose("member", "time", ...).values, dtype=np.float64)
    finally:
        ds.close()
    if not np.isfinite(a).all():
        raise DataError(f"{path}: truth holds NaN/Inf")
    return a, dt_s / SECONDS_PER_MTU


def initial_states(truth: np.ndarray, n: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` evenly spaced initial states with ``horizon`` samples of truth after each.

    Returns ``x0 (n, K)`` and ``verifying truth (horizon + 1, n, K)``.
    """
    m, t, _ = truth.shape
    if t <= horizon:
        raise DataError(f"the test period ({t} samples) is shorter than the forecast lead ({horizon} samples)")
    starts = [(i, j) for i in range(m) for j in range(t - horizon)]
    if len(starts) < n:
        raise DataError(f"the test period offers {len(starts)} initial states, fewer than {n}")
    pick = np.linspace(0, len(starts) - 1, n).round().astype(int)
    chosen = [starts[p] for p in pick]
    x0 = np.stack([truth[i, j] for i, j in chosen])
    ver = np.stack([truth[i, j : j + horizon + 1] for i, j in chosen], axis=1)
    return x0, ver


# ------------------------------------------------------------------ rows
def checkpoint_row(name: str, path: str | Path, threads: int = 0) -> Row:
    """A row for a checkpoint, loaded the way a host loads it."""
    import atmocorrect

    from ..models.neural import WindowPredictor

    corrector = atmocorrect.load(path, run={"num_threads": threads} if threads else None)
    if threads:
        torch.set_num_threads(threads)
    pred = corrector.predictor
    run = corrector.run
    placement = str(corrector.manifest.hyperparameters.get("placement", "after"))
    if run.mode != "apply":
        return Row(name, placement=placement, checkpoint=str(path))
    if isinstance(pred, WindowPredictor):

        def raw(x: torch.Tensor) -> torch.Tensor:
            return pred.batch_tendency(x.float()[:, None, None, :])[:, 0, 0, :].double()

    else:  # any predictor: through the generic per-state call (slow, but the same contract)

        def raw(x: torch.Tensor) -> torch.Tensor:
            out = [corrector.tendency({"x": xi.numpy()})["x"] for xi in x]
            return torch.from_numpy(np.stack(out))

    def correction(x: torch.Tensor, dt_mtu: float = 0.005) -> torch.Tensor:
        c = raw(x) * (SECONDS_PER_MTU * run.taper)
        if run.max_increment is not None:
            lim = run.max_increment / dt_mtu
            c = c.clamp(-lim, lim)
        return c

    return Row(name, correction=correction, placement=placement, checkpoint=str(path))


def builtin_rows() -> list[Row]:
    return [Row("uncorrected"), Row("wilks2005", forcing=wilks2005_tendency)]


def _run(row: Row, x0: np.ndarray, n_steps: int, cfg: TwinConfig, keep: int = 1) -> np.ndarray:
    with torch.inference_mode():
        out = forecast(
            torch.from_numpy(x0), n_steps, cfg.forcing, cfg.dt_mtu,
            forcing=row.forcing, correction=row.correction, placement=row.placement, keep=keep,
        )
    return out.numpy()


def free_run(row: Row, starts: np.ndarray, total_mtu: float, cfg: TwinConfig, keep: int = 1) -> np.ndarray:
    """An ensemble free run: ``starts (members, K)`` -> values after spin-up ``(time, members, K)``."""
    members = starts.shape[0]
    spin = int(round(cfg.spinup_mtu / cfg.dt_mtu))
    length = int(round(total_mtu / members / cfg.dt_mtu))
    x = _run(row, starts, spin, cfg, keep=spin)[-1] if spin else starts
    return _run(row, x, length, cfg, keep=keep)[1:]


def online_check(checkpoint: str | Path, x0: np.ndarray, steps: int, cfg: TwinConfig) -> float:
    """Max |difference| between the batched forecast and ``Corrector.apply`` stepping the state
    in place, as the Fortran host does (same arithmetic, different code path)."""
    import atmocorrect

    corrector = atmocorrect.load(checkpoint)
    placement = str(corrector.manifest.hyperparameters.get("placement", "after"))
    row = checkpoint_row("check", checkpoint)
    batched = _run(row, x0[None, :], steps, cfg)[:, 0]
    x = x0.copy()
    dt_s = cfg.dt_mtu * SECONDS_PER_MTU
    err = 0.0
    for n in range(1, steps + 1):
        if placement == "before":
            corrector.apply({"x": x}, time=n * dt_s, dt=dt_s)
        x[:] = one_scale_step(x, cfg.forcing, cfg.dt_mtu)
        if placement == "after":
            corrector.apply({"x": x}, time=n * dt_s, dt=dt_s)
        err = max(err, float(np.max(np.abs(x - batched[n]))))
    return err


# ------------------------------------------------------------------ the experiment
def evaluate(
    rows: list[Row],
    test_truth: np.ndarray,
    climate_truth: np.ndarray,
    floor_truth: np.ndarray,
    cfg: TwinConfig,
    out_dir: str | Path,
    log: Callable[[str], None] = print,
    extra: Mapping[str, Any] | None = None,
    workers: int = 1,
) -> dict[str, Any]:
    """Run every row, write ``report.json``, ``report.md`` and the plots into ``out_dir``.

    ``workers > 1`` runs the rows and the chunks of the stability runs in that many spawned
    processes (one torch thread each: on small CPUs processes scale better than threads for
    these small batches); the rows are rebuilt there from their specs, so the results are the
    same as with ``workers = 1``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.n_forecasts < 1:
        raise UsageError("n_forecasts must be positive")
    horizon = int(round(cfg.max_lead_mtu / cfg.dt_mtu))
    x0, ver = initial_states(test_truth, cfg.n_forecasts, horizon)
    leads = np.arange(horizon + 1) * cfg.dt_mtu
    clim_values = climate_truth.reshape(-1)
    clim_std = float(clim_values.std())
    threshold = 0.5 * clim_std
    floor = metrics.hellinger(climate_truth, floor_truth)
    rng = np.random.default_rng(cfg.seed)
    states = climate_truth.reshape(-1, climate_truth.shape[-1])
    starts = states[rng.choice(len(states), size=cfg.members, replace=False)]
    stability_starts = states[rng.choice(len(states), size=cfg.stability_members, replace=False)]
    report: dict[str, Any] = {
        "hellinger_floor": floor,
        "truth": {
            "mean": float(clim_values.mean()),
            "std": clim_std,
            "horizon_threshold": threshold,
            "floor_mean": float(floor_truth.mean()),
            "floor_std": float(floor_truth.std()),
        },
        "models": {},
        "protocol": {
            **dataclasses.asdict(cfg),
            "n_initial_states": int(len(x0)),
            "test_samples": int(test_truth.shape[0] * test_truth.shape[1]),
            "free_run": (
                f"{cfg.members} members x {cfg.free_run_mtu / cfg.members:g} MTU after a discarded "
                f"{cfg.spinup_mtu:g}-MTU spin-up (= {cfg.free_run_mtu:g} MTU), every {cfg.dt_mtu} MTU"
            ),
            "hellinger": f"{metrics.HELLINGER_BINS} bins over {list(metrics.HELLINGER_RANGE)}, out-of-range values in the end bins",
            "horizon": "first lead at which the RMSE over cases and sites exceeds 0.5 x the truth's climatological std",
        },
        **(dict(extra) if extra else {}),
    }
    curves: dict[str, np.ndarray] = {}
    samples: dict[str, np.ndarray] = {"truth": clim_values}
    hovmoeller: dict[str, np.ndarray] = {"truth": ver[:, 0, :]}
    # tasks: per row the forecasts + free run, per checkpoint the stability run in chunks of
    # members (the longest work: started first so the workers finish together)
    tasks: list[tuple] = []
    for row in rows:
        wanted = not cfg.stability_rows or row.name in cfg.stability_rows
        if row.checkpoint and cfg.stability_mtu > 0 and row.correction is not None and wanted:
            members = stability_starts
            chunks = np.array_split(np.arange(len(members)), max(1, min(len(members), 2 * workers)))
            for c in chunks:
                share = cfg.stability_mtu * len(c) / len(members)
                tasks.append(("stability", row.spec, members[c], share))
    for row in rows:
        tasks.append(("row", row.spec, None, 0.0))
    results: dict[int, Any] = {}
    if workers > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as executor:
            futures = {
                executor.submit(_task, t[0], t[1], x0, horizon, starts, cfg, t[2], t[3]): i
                for i, t in enumerate(tasks)
            }
            for fut in as_completed(futures):
                i = futures[fut]
                results[i] = fut.result()
                if tasks[i][0] == "row":
                    _log_row(log, tasks[i][1][0], results[i], ver, leads, threshold, climate_truth)
    else:
        by_name = {row.name: row for row in rows}
        for i, t in enumerate(tasks):
            results[i] = _task(t[0], t[1], x0, horizon, starts, cfg, t[2], t[3], row=by_name[t[1][0]])
            if t[0] == "row":
                _log_row(log, t[1][0], results[i], ver, leads, threshold, climate_truth)
    for row in rows:
        i = next(i for i, t in enumerate(tasks) if t[0] == "row" and t[1][0] == row.name)
        fc, fr, seconds = results[i]
        rmse = metrics.rmse_by_lead(fc, ver)
        finite = bool(np.isfinite(fr).all())
        entry: dict[str, Any] = {
            "horizon_mtu": metrics.skill_horizon(rmse, leads, threshold),
            # True when the RMSE never exceeded the threshold: the horizon is >= max_lead_mtu
            "horizon_censored": bool(np.all(rmse <= threshold)),
            "hellinger": metrics.hellinger(fr, climate_truth),
            "mean": float(np.mean(fr)) if finite else float("nan"),
            "std": float(np.std(fr)) if finite else float("nan"),
            "rmse": {str(lead): metrics.rmse_at(rmse, leads, lead) for lead in LEADS_REPORTED},
            "seconds": seconds,
        }
        if row.checkpoint:
            entry["checkpoint"] = row.checkpoint
        parts = [results[i] for i, t in enumerate(tasks) if t[0] == "stability" and t[1][0] == row.name]
        if parts:
            n = sum(p["count"] for p in parts)
            ok = all(p["finite"] for p in parts)
            mean = sum(p["sum"] for p in parts) / n
            entry["stability"] = {
                "mtu": cfg.stability_mtu,
                "members": cfg.stability_members,
                "finite": ok,
                "max_abs": max(p["max_abs"] for p in parts) if ok else float("inf"),
                "mean": mean if ok else float("nan"),
                "std": float(np.sqrt(max(0.0, sum(p["sumsq"] for p in parts) / n - mean**2))) if ok else float("nan"),
                "seconds": round(sum(p["seconds"] for p in parts), 1),
                "sampled_every_mtu": 1.0,
            }
        report["models"][row.name] = entry
        curves[row.name] = rmse
        samples[row.name] = fr
        hovmoeller[row.name] = fc[:, 0, :]
    with open(out_dir / "report.json", "w") as fh:
        json.dump(_finite(report), fh, indent=2)
        fh.write("\n")
    table = markdown_table(report)
    (out_dir / "report.md").write_text(table)
    from . import plots

    plots.rmse_vs_lead(leads, curves, threshold, out_dir / "rmse_vs_lead.png")
    plots.pdfs(samples, out_dir / "pdfs.png")
    plots.hovmoeller(leads, hovmoeller, out_dir / "hovmoeller.png")
    return report


def _task(
    kind: str,
    spec: tuple[str, str | None],
    x0: np.ndarray,
    horizon: int,
    starts: np.ndarray,
    cfg: TwinConfig,
    members: np.ndarray | None,
    mtu: float,
    row: Row | None = None,
) -> Any:
    """One unit of evaluation work (runs in a worker process when ``row`` is None)."""
    if row is None:
        torch.set_num_threads(1)
        row = row_from_spec(spec, threads=1)
    t0 = time.time()
    if kind == "row":
        fc = _run(row, x0, horizon, cfg)
        t1 = time.time()
        fr = free_run(row, starts, cfg.free_run_mtu, cfg)
        return fc, fr, {"forecasts": round(t1 - t0, 1), "free_run": round(time.time() - t1, 1)}
    st = free_run(row, members, mtu, cfg, keep=int(round(1.0 / cfg.dt_mtu)))
    finite = bool(np.isfinite(st).all())
    return {
        "finite": finite,
        "max_abs": float(np.max(np.abs(st))) if finite else float("inf"),
        "sum": float(st.sum()) if finite else 0.0,
        "sumsq": float((st**2).sum()) if finite else 0.0,
        "count": int(st.size),
        "seconds": time.time() - t0,
    }


def _log_row(log, name, result, ver, leads, threshold, climate_truth) -> None:
    fc, fr, seconds = result
    rmse = metrics.rmse_by_lead(fc, ver)
    log(
        f"{name:>12}: horizon {metrics.skill_horizon(rmse, leads, threshold):.3f} MTU, Hellinger "
        f"{metrics.hellinger(fr, climate_truth):.4f}, mean {np.mean(fr):.3f}, std {np.std(fr):.3f} "
        f"({seconds['forecasts'] + seconds['free_run']:.0f}s)"
    )


def _finite(obj: Any) -> Any:
    """JSON has no Inf/NaN: write them as null... except where a float is required, as big."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def markdown_table(report: Mapping[str, Any]) -> str:
    """The report's rows as a Markdown table."""
    truth = report.get("truth", {})
    lines = [
        "| model | horizon (MTU) | Hellinger | mean | std | RMSE 0.2 | RMSE 0.5 | RMSE 1.0 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def f(v: Any, fmt: str) -> str:
        return "n/a" if v is None or (isinstance(v, float) and not np.isfinite(v)) else format(v, fmt)

    for name, m in report["models"].items():
        r = m["rmse"]
        lines.append(
            f"| {name} | {'>= ' if m.get('horizon_censored') else ''}{f(m['horizon_mtu'], '.3f')} | {f(m['hellinger'], '.4f')} | {f(m['mean'], '.3f')} | "
            f"{f(m['std'], '.3f')} | {f(r['0.2'], '.3f')} | {f(r['0.5'], '.3f')} | {f(r['1.0'], '.3f')} |"
        )
    lines.append(
        f"| truth | | floor {f(report['hellinger_floor'], '.4f')} | {f(truth.get('mean'), '.3f')} | "
        f"{f(truth.get('std'), '.3f')} | | | |"
    )
    return "\n".join(lines) + "\n"
