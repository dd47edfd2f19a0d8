"""Build a training set from a reference (truth, ERA5) and a simulation, with xarray.

Targets (``kind``):

``residual``
    One-step residuals: the reference at t+dt minus one model step started from the reference
    at t, over dt (ERA5-minus-simulation in its simplest form). The model step comes from a
    simulation file of one-step forecasts (variable ``residual_tendency``, or the forecasts
    themselves), or, for Lorenz-96, from the built-in one-scale model (``dynamics``).
``nudging``
    The tendencies of a run nudged towards the reference (``nudging_tendency``), as a function
    of the nudged run's own state.

The input the corrector sees depends on where the correction enters the host's time step
(``placement``): ``after`` the dynamics step (the model's forecast M(x_t) is corrected towards
x_{t+dt}; input = the forecast) or ``before`` it (input = the state x_t).

The output file (CF-1.8) has ``x`` (inputs), ``target`` (field units per second), ``truth``
(the reference at the sample time, for rollout fine-tuning and evaluation), ``split``
(0 train, 1 validation, 2 test, -1 gap: time-ordered, no overlap, gaps between) and the
normalisation statistics of the training split as attributes (JSON) and variables.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..checkpoint import sha256_file
from ..errors import DataError, UsageError
from ..lorenz96 import SECONDS_PER_MTU, one_scale_step

SPLIT_FLAGS = {"train": 0, "validation": 1, "test": 2, "gap": -1}


@dataclasses.dataclass(frozen=True)
class PrepareConfig:
    """What :func:`prepare` builds."""

    truth: str
    out: str
    simulation: str | None = None
    kind: str = "residual"
    var: str = "X"
    placement: str = "after"
    dynamics: str = "lorenz96"
    forcing: float = 18.0
    fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)
    gap_samples: int = 200
    start_sample: int = 0


def _open(path: str):
    import xarray as xr

    if not Path(path).is_file():
        raise DataError(f"input file {path} does not exist")
    try:
        return xr.open_dataset(path, decode_times=xr.coders.CFDatetimeCoder(use_cftime=True))
    except Exception as exc:  # netCDF4/xarray raise many types
        raise DataError(f"cannot read {path} as netCDF: {exc}") from exc


def _pick_var(ds, name: str, path: str):
    for candidate in (name, name.lower(), name.upper()):
        if candidate in ds.data_vars:
            return ds[candidate]
    raise DataError(f"{path} has no variable {name!r} (it has {', '.join(ds.data_vars)})")


def _standard_dims(da, path: str):
    """Transpose to (member, time, space...) with a member dim of size 1 if absent."""
    if "time" not in da.dims:
        raise DataError(f"{path}: variable {da.name!r} has no 'time' dimension (dims {da.dims})")
    if "member" not in da.dims:
        da = da.expand_dims("member")
    rest = [d for d in da.dims if d not in ("member", "time")]
    return da.transpose("member", "time", *rest)


def _timestep_seconds(time) -> float:
    import cftime  # noqa: F401  (decoding needs it)

    values = time.values
    if len(values) < 2:
        raise DataError("the time axis needs at least two samples")
    diffs = np.array([(values[i + 1] - values[i]).total_seconds() for i in range(min(len(values) - 1, 1000))])
    dt = float(diffs[0])
    if dt <= 0 or not np.allclose(diffs, dt, rtol=1e-6, atol=1e-3):
        raise DataError(f"the time axis is not regular (steps {sorted(set(diffs.tolist()))[:5]} s)")
    return dt


def split_flags(n: int, fractions: Sequence[float], gap: int) -> np.ndarray:
    """Time-ordered split flags of ``n`` samples: train | gap | validation | gap | test."""
    f = np.asarray(fractions, dtype=float)
    if f.shape != (3,) or np.any(f < 0) or f.sum() <= 0:
        raise UsageError(f"split fractions must be three non-negative numbers, got {list(fractions)}")
    usable = n - 2 * gap
    if usable < 3:
        raise DataError(f"{n} samples are too few for a split with gaps of {gap}")
    sizes = np.floor(f / f.sum() * usable + 1e-9).astype(int)
    flags = np.full(n, SPLIT_FLAGS["gap"], dtype=np.int8)
    start = 0
    for i, size in enumerate(sizes):
        flags[start : start + size] = i
        start += size + gap
    return flags


def _stats(a: np.ndarray) -> dict[str, list[float]]:
    """Mean and std over everything but the last (level) axis... for 1-level fields: scalars."""
    return {"mean": [float(a.mean())], "std": [float(a.std())]}


def prepare(cfg: PrepareConfig) -> Path:
    """Build the training set ``cfg.out``; return its path."""
    import xarray as xr

    if cfg.kind not in ("residual", "nudging"):
        raise UsageError(f"target kind {cfg.kind!r} is not 'residual' or 'nudging'")
    if cfg.placement not in ("after", "before"):
        raise UsageError(f"placement {cfg.placement!r} is not 'after' or 'before'")
    truth_ds = _open(cfg.truth)
    truth = _standard_dims(_pick_var(truth_ds, cfg.var, cfg.truth), cfg.truth)
    if cfg.start_sample:
        truth = truth.isel(time=slice(cfg.start_sample, None))
    dt_s = _timestep_seconds(truth.time)
    sources: dict[str, Any] = {"truth": {"path": str(cfg.truth), "sha256": sha256_file(cfg.truth)}}

    if cfg.kind == "residual":
        if cfg.simulation:
            sim_ds = _open(cfg.simulation)
            sources["simulation"] = {"path": str(cfg.simulation), "sha256": sha256_file(cfg.simulation)}
            if "residual_tendency" in sim_ds:
                r = _standard_dims(sim_ds["residual_tendency"], cfg.simulation)
                truth_a, r = xr.align(truth, r, join="inner")
                # residual_tendency at t belongs to the step t -> t+dt
                target = r.values / _per_second(sim_ds["residual_tendency"])
                xt = truth_a.values
                times = truth_a.time
                if cfg.placement == "after" and "X_forecast" in sim_ds:
                    fc = _standard_dims(sim_ds["X_forecast"], cfg.simulation)
                    _, fc = xr.align(truth_a, fc, join="inner")
                    xin = fc.values
                elif cfg.placement == "after":  # M(x_t) = x_{t+dt} - dt * r_t
                    xin = xt[:, 1:] - target[:, :-1] * dt_s
                    xt, target, times = xt[:, :-1], target[:, :-1], times[:-1]
                else:
                    xin = xt
            else:
                raise DataError(
                    f"{cfg.simulation} has no 'residual_tendency'; give one-step residuals, or omit "
                    "--simulation to compute them with the built-in Lorenz-96 model"
                )
        else:
            if cfg.dynamics != "lorenz96":
                raise UsageError(f"built-in dynamics {cfg.dynamics!r} unknown (only 'lorenz96')")
            xt = truth.values
            dt_mtu = dt_s / SECONDS_PER_MTU
            forecast = one_scale_step(xt[:, :-1], cfg.forcing, dt_mtu)
            target = (xt[:, 1:] - forecast) / dt_s
            xin = forecast if cfg.placement == "after" else xt[:, :-1]
            xt = xt[:, :-1]
            times = truth.time[:-1]
    else:
        if not cfg.simulation:
            raise UsageError("nudging targets need --simulation: the nudged run's file")
        sim_ds = _open(cfg.simulation)
        sources["simulation"] = {"path": str(cfg.simulation), "sha256": sha256_file(cfg.simulation)}
        if "nudging_tendency" not in sim_ds:
            raise DataError(f"{cfg.simulation} has no variable 'nudging_tendency'")
        sim = _standard_dims(_pick_var(sim_ds, cfg.var, cfg.simulation), cfg.simulation)
        nud = _standard_dims(sim_ds["nudging_tendency"], cfg.simulation)
        truth_a, sim_a, nud_a = xr.align(truth, sim, nud, join="inner")
        if truth_a.sizes["time"] < 2:
            raise DataError(f"{cfg.truth} and {cfg.simulation} share fewer than 2 time steps")
        xt = truth_a.values
        xin = sim_a.values
        target = nud_a.values / _per_second(sim_ds["nudging_tendency"])
        times = truth_a.time

    if not (np.isfinite(xin).all() and np.isfinite(target).all()):
        raise DataError("the inputs or targets hold NaN/Inf values")
    flags = split_flags(xin.shape[1], cfg.fractions, cfg.gap_samples)
    train = flags == SPLIT_FLAGS["train"]
    norm = {
        "inputs": {"x": _stats(xin[:, train])},
        "targets": {"x": _stats(target[:, train])},
    }
    space_dims = list(truth.dims[2:])
    dims = ("member", "time", *space_dims)
    out = xr.Dataset(
        {
            "x": (dims, xin.astype(np.float64), {
                "long_name": "corrector input state",
                "units": truth.attrs.get("units", "1"),
                "comment": f"placement={cfg.placement}: "
                + ("the model's one-step forecast from the reference" if cfg.placement == "after" and cfg.kind == "residual"
                   else "the state at the start of the step"),
            }),
            "target": (dims, target.astype(np.float64), {
                "long_name": f"{cfg.kind} correction tendency",
                "units": f"{truth.attrs.get('units', '1')} s-1",
            }),
            "truth": (dims, xt.astype(np.float64), {
                "long_name": "reference state at the sample time", "units": truth.attrs.get("units", "1"),
            }),
            "split": (("time",), flags, {
                "long_name": "train/validation/test split",
                "flag_values": np.array([-1, 0, 1, 2], dtype=np.int8),
                "flag_meanings": "gap train validation test",
            }),
        },
        coords={"time": times.values, **{d: truth[d].values for d in space_dims if d in truth.coords}},
        attrs={
            "Conventions": "CF-1.8",
            "title": "atmocorrect training set",
            "target_kind": cfg.kind,
            "placement": cfg.placement,
            "dynamics": cfg.dynamics,
            "forcing": cfg.forcing,
            "timestep_seconds": dt_s,
            "field": "x",
            "source_variable": cfg.var,
            "normalization": json.dumps(norm),
            "sources": json.dumps(sources),
            "history": f"atmocorrect prepare --kind {cfg.kind} --placement {cfg.placement}",
        },
    )
    if "time" in out.coords:
        out.time.encoding.update({"units": "days since 2000-01-01 00:00:00", "calendar": "proleptic_gregorian"})
    out_path = Path(cfg.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    out.to_netcdf(tmp)
    tmp.replace(out_path)
    return out_path


def _per_second(da) -> float:
    """Divisor turning a tendency variable's units into per second (MTU-1 or s-1)."""
    units = str(da.attrs.get("units", "MTU-1")).replace(" ", "").lower()
    if "mtu" in units:
        return SECONDS_PER_MTU
    if units.endswith("s-1") or units.endswith("/s"):
        return 1.0
    if units.endswith("day-1") or units.endswith("/day") or units.endswith("d-1"):
        return 86400.0
    raise DataError(f"tendency units {da.attrs.get('units')!r} not understood (MTU-1, s-1 or day-1)")
