"""Held-out marginal metrics of a corrected simulation against a reference, and the
climate-change signal.

All metrics are computed per grid point and averaged over points; biases are "simulation minus
reference". For a free-running simulation only distributions can be compared, never days.

Example
-------
>>> import numpy as np, cftime
>>> t = np.array([cftime.DatetimeNoLeap(2001, 1, 1) + np.timedelta64(i, "D").item()
...               for i in range(730)])
>>> rng = np.random.default_rng(1)
>>> ref = 280 + 10 * np.sin(2 * np.pi * np.arange(730) / 365)[:, None] + rng.normal(0, 2, (730, 1))
>>> m = marginal_metrics(ref + 1.0, ref, t, t, frequency="day", frost_threshold=273.15)
>>> round(m["mean_bias"], 3), round(m["q50_bias"], 3), round(m["std_ratio"], 3)
(1.0, 1.0, 1.0)
"""

from __future__ import annotations

import numpy as np

from ..data.timeaxis import months, season_position, years

#: (key, short label, "how to compare": "abs" = closer to 0, "one" = closer to 1)
METRICS: tuple[tuple[str, str, str], ...] = (
    ("mean_bias", "mean bias", "abs"),
    ("seasonal_cycle_mae", "seasonal MAE", "abs"),
    ("q05_bias", "q05 bias", "abs"),
    ("q50_bias", "q50 bias", "abs"),
    ("q95_bias", "q95 bias", "abs"),
    ("std_ratio", "std ratio", "one"),
    ("frost_days_bias_per_year", "frost d/yr", "abs"),
    ("lag1_autocorr_diff", "lag-1 AC diff", "abs"),
    ("lag1_anomaly_autocorr_diff", "lag-1 AC diff (anom.)", "abs"),
)
SIGNAL_METRICS: tuple[tuple[str, str, str], ...] = (
    ("climate_change_signal", "CC signal", "none"),
    ("climate_change_signal_change", "CC signal change", "abs"),
)


def _lag1(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    x = x - x.mean()
    den = float((x * x).sum())
    return float((x[1:] * x[:-1]).sum() / den) if den > 0 else float("nan")


def _deseasonalise(x: np.ndarray, season: np.ndarray, harmonics: int = 3) -> np.ndarray:
    cols = [np.ones_like(season)]
    for k in range(1, harmonics + 1):
        cols += [np.sin(2 * np.pi * k * season), np.cos(2 * np.pi * k * season)]
    design = np.stack(cols, 1)
    ok = np.isfinite(x)
    coef, *_ = np.linalg.lstsq(design[ok], x[ok], rcond=None)
    return x - design @ coef


def marginal_metrics(
    sim: np.ndarray,
    ref: np.ndarray,
    sim_times: np.ndarray,
    ref_times: np.ndarray,
    frequency: str = "day",
    frost_threshold: float | None = None,
) -> dict[str, float]:
    """The metrics of :data:`METRICS` for ``sim`` and ``ref`` arrays (time, points).

    ``frost_threshold`` (in the data's units, 273.15 for K) enables the frost-day count,
    for daily temperature only.
    """
    sim = np.asarray(sim, dtype=np.float64).reshape(sim.shape[0], -1)
    ref = np.asarray(ref, dtype=np.float64).reshape(ref.shape[0], -1)
    ms, mr = months(sim_times), months(ref_times)
    out: dict[str, float] = {}
    out["mean_bias"] = float(np.nanmean(np.nanmean(sim, 0) - np.nanmean(ref, 0)))
    cyc_s = np.array([np.nanmean(sim[ms == m], 0) for m in range(1, 13)])
    cyc_r = np.array([np.nanmean(ref[mr == m], 0) for m in range(1, 13)])
    out["seasonal_cycle_mae"] = float(np.nanmean(np.abs(cyc_s - cyc_r)))
    for q in (5, 50, 95):
        out[f"q{q:02d}_bias"] = float(np.nanmean(np.nanpercentile(sim, q, axis=0)
                                                 - np.nanpercentile(ref, q, axis=0)))
    out["std_ratio"] = float(np.nanmean(np.nanstd(sim, 0) / np.nanstd(ref, 0)))
    if frost_threshold is not None and frequency in ("day", "subdaily"):
        ys, yr = len(np.unique(years(sim_times))), len(np.unique(years(ref_times)))
        per_point = (np.sum(sim < frost_threshold, 0) / ys) - (np.sum(ref < frost_threshold, 0) / yr)
        out["frost_days_bias_per_year"] = float(np.mean(per_point))
    out["lag1_autocorr_diff"] = float(np.nanmean(
        [_lag1(sim[:, p]) - _lag1(ref[:, p]) for p in range(sim.shape[1])]))
    ss, sr = season_position(sim_times, frequency), season_position(ref_times, frequency)
    out["lag1_anomaly_autocorr_diff"] = float(np.nanmean(
        [_lag1(_deseasonalise(sim[:, p], ss)) - _lag1(_deseasonalise(ref[:, p], sr))
         for p in range(sim.shape[1])]))
    return out


def climate_signal(baseline: np.ndarray, future: np.ndarray) -> float:
    """Mean over points of (future mean - baseline mean)."""
    b = np.asarray(baseline, dtype=np.float64).reshape(baseline.shape[0], -1)
    f = np.asarray(future, dtype=np.float64).reshape(future.shape[0], -1)
    return float(np.nanmean(np.nanmean(f, 0) - np.nanmean(b, 0)))


def score(value: float | None, how: str) -> float:
    """Distance from perfect: |x| for biases, |x - 1| for ratios (NaN when missing)."""
    if value is None or not np.isfinite(value):
        return float("nan")
    return abs(value - 1.0) if how == "one" else abs(value)


def at_least_as_good(a: float | None, b: float | None, how: str, tol: float = 0.0) -> bool | None:
    """Whether metric value ``a`` is at least as good as ``b`` (None if either is missing)."""
    sa, sb = score(a, how), score(b, how)
    if not (np.isfinite(sa) and np.isfinite(sb)):
        return None
    return bool(sa <= sb + tol)
