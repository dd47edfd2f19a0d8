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

import dataclasses
import warnings
from collections.abc import Mapping, Sequence

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
    ("wet_days_bias_per_year", "wet d/yr", "abs"),
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
    """Anomalies of ``x`` (time, points) from a harmonic seasonal cycle, per point."""
    cols = [np.ones_like(season)]
    for k in range(1, harmonics + 1):
        cols += [np.sin(2 * np.pi * k * season), np.cos(2 * np.pi * k * season)]
    design = np.stack(cols, 1)
    out = np.full(x.shape, np.nan)
    full = np.isfinite(x).all(axis=0)
    if full.any():
        coef = np.linalg.solve(design.T @ design, design.T @ x[:, full])
        out[:, full] = x[:, full] - design @ coef
    for p in np.flatnonzero(~full):
        ok = np.isfinite(x[:, p])
        if ok.sum() > design.shape[1]:
            d = design[ok]
            coef = np.linalg.solve(d.T @ d, d.T @ x[ok, p])
            out[ok, p] = x[ok, p] - d @ coef
    return out


def _days_per_year(event: np.ndarray, x: np.ndarray, times: TimeInfo) -> np.ndarray:
    """Days a year with ``event`` per point: its share of the present values times the steps
    a year (with no value missing: the count divided by the years)."""
    steps_per_year = x.shape[0] / len(np.unique(times.years))
    present = np.isfinite(x).sum(0)
    return np.sum(event, 0) / np.maximum(present, 1) * steps_per_year


def _percentile(x: np.ndarray, q: float) -> np.ndarray:
    return np.percentile(x, q, axis=0) if np.isfinite(x).all() else np.nanpercentile(x, q, axis=0)


@dataclasses.dataclass(frozen=True)
class TimeInfo:
    """Month, year and season position of each time step (cftime is slow: compute once)."""

    months: np.ndarray
    years: np.ndarray
    season: np.ndarray

    @classmethod
    def of(cls, times: np.ndarray, frequency: str) -> TimeInfo:
        return cls(months(times), years(times), season_position(times, frequency))

    def take(self, rows: np.ndarray) -> TimeInfo:
        return TimeInfo(self.months[rows], self.years[rows], self.season[rows])


def marginal_metrics(
    sim: np.ndarray,
    ref: np.ndarray,
    sim_times: np.ndarray | TimeInfo,
    ref_times: np.ndarray | TimeInfo,
    frequency: str = "day",
    frost_threshold: float | None = None,
    wet_threshold: float | None = None,
) -> dict[str, float]:
    """The metrics of :data:`METRICS` for ``sim`` and ``ref`` arrays (time, points).

    ``frost_threshold`` (in the data's units, 273.15 for K) enables the frost-day count,
    for daily temperature only; ``wet_threshold`` (1.0 for mm day-1: ETCCDI's R1mm) the
    wet-day count, for daily precipitation only. Times are cftime arrays or :class:`TimeInfo`.
    """
    sim = np.asarray(sim, dtype=np.float64).reshape(sim.shape[0], -1)
    ref = np.asarray(ref, dtype=np.float64).reshape(ref.shape[0], -1)
    scored = np.isfinite(sim).any(0) & np.isfinite(ref).any(0)
    if not scored.all():  # points masked in the reference (or left uncorrected): not scored
        sim, ref = sim[:, scored], ref[:, scored]
    si = sim_times if isinstance(sim_times, TimeInfo) else TimeInfo.of(sim_times, frequency)
    ri = ref_times if isinstance(ref_times, TimeInfo) else TimeInfo.of(ref_times, frequency)
    ms, mr = si.months, ri.months
    out: dict[str, float] = {}
    out["mean_bias"] = float(np.nanmean(np.nanmean(sim, 0) - np.nanmean(ref, 0)))
    cyc_s = np.array([np.nanmean(sim[ms == m], 0) for m in range(1, 13)])
    cyc_r = np.array([np.nanmean(ref[mr == m], 0) for m in range(1, 13)])
    out["seasonal_cycle_mae"] = float(np.nanmean(np.abs(cyc_s - cyc_r)))
    for q in (5, 50, 95):
        out[f"q{q:02d}_bias"] = float(np.nanmean(_percentile(sim, q) - _percentile(ref, q)))
    out["std_ratio"] = float(np.nanmean(np.nanstd(sim, 0) / np.nanstd(ref, 0)))
    if frost_threshold is not None and frequency == "day":  # counts of days, not of steps
        out["frost_days_bias_per_year"] = float(np.mean(
            _days_per_year(sim < frost_threshold, sim, si) - _days_per_year(ref < frost_threshold, ref, ri)))
    if wet_threshold is not None and frequency == "day":
        out["wet_days_bias_per_year"] = float(np.mean(
            _days_per_year(sim >= wet_threshold, sim, si) - _days_per_year(ref >= wet_threshold, ref, ri)))
    out["lag1_autocorr_diff"] = float(np.nanmean(
        [_lag1(sim[:, p]) - _lag1(ref[:, p]) for p in range(sim.shape[1])]))
    ss, sr = si.season, ri.season
    anom_s, anom_r = _deseasonalise(sim, ss), _deseasonalise(ref, sr)
    out["lag1_anomaly_autocorr_diff"] = float(np.nanmean(
        [_lag1(anom_s[:, p]) - _lag1(anom_r[:, p]) for p in range(sim.shape[1])]))
    return out


def mean_over_members(per_member: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Metrics of several ensemble members averaged, metric by metric (as the metrics of one
    member average over points; NaN where no member has a value).

    >>> mean_over_members([{"mean_bias": 0.5}, {"mean_bias": 1.0}])
    {'mean_bias': 0.75}
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a metric NaN for every member
        return {k: float(np.nanmean([m.get(k, np.nan) for m in per_member]))
                for k in per_member[0]}


def member_metrics(
    sim: np.ndarray,
    ref: np.ndarray,
    sim_times: np.ndarray | TimeInfo,
    ref_times: np.ndarray | TimeInfo,
    frequency: str = "day",
    frost_threshold: float | None = None,
    wet_threshold: float | None = None,
) -> list[dict[str, float]]:
    """:func:`marginal_metrics` of every ensemble member of ``sim`` (time, members, points)
    against the one ``ref`` (time, points); a 2-D ``sim`` is one member."""
    sim = np.asarray(sim, dtype=np.float64)
    if sim.ndim == 2:
        sim = sim[:, None, :]
    si = sim_times if isinstance(sim_times, TimeInfo) else TimeInfo.of(sim_times, frequency)
    ri = ref_times if isinstance(ref_times, TimeInfo) else TimeInfo.of(ref_times, frequency)
    return [marginal_metrics(np.ascontiguousarray(sim[:, k]), ref, si, ri, frequency,
                             frost_threshold, wet_threshold) for k in range(sim.shape[1])]


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


def _metrics_of(x: np.ndarray, ref: np.ndarray, ts: TimeInfo, tr: TimeInfo, frequency: str,
                frost_threshold: float | None, wet_threshold: float | None) -> dict[str, float]:
    """The metrics of ``x``: of its one series, or (3-D) the mean over its members."""
    if np.ndim(x) == 2:
        return marginal_metrics(x, ref, ts, tr, frequency, frost_threshold, wet_threshold)
    return mean_over_members(member_metrics(x, ref, ts, tr, frequency, frost_threshold,
                                            wet_threshold))


def bootstrap_comparison(
    a: np.ndarray,
    b: np.ndarray,
    ref: np.ndarray,
    sim_times: np.ndarray,
    ref_times: np.ndarray,
    frequency: str = "day",
    frost_threshold: float | None = None,
    n: int = 200,
    seed: int = 0,
    wet_threshold: float | None = None,
) -> dict[str, dict[str, float]]:
    """How robust is "``a`` at least as good as ``b``" to the weather of the held-out years?

    Whole years are resampled with replacement (the same years for ``a`` and ``b``, which are
    corrections of one simulation; independently for the reference, whose weather is not the
    simulation's). Returns per metric the share of resamples in which ``a`` is at least as
    good as ``b``, and the 5-95 % range of the score difference ``|a| - |b|`` (negative: ``a``
    better).

    ``a``/``b`` are (time, points), or (time, members, points) for ensemble members: the same
    years are drawn for every member (the members share the time axis), and in each resample
    a method's metric is the mean over its members of the per-member metric, as in the table.
    """
    rng = np.random.default_rng(seed)
    si, ri = TimeInfo.of(sim_times, frequency), TimeInfo.of(ref_times, frequency)
    ys, yr = si.years, ri.years
    us, ur = np.unique(ys), np.unique(yr)
    rows_s = {y: np.flatnonzero(ys == y) for y in us}
    rows_r = {y: np.flatnonzero(yr == y) for y in ur}
    hows = {k: how for k, _, how in METRICS}
    diffs: dict[str, list[float]] = {}
    for _ in range(n):
        pick_s = np.concatenate([rows_s[y] for y in np.sort(rng.choice(us, us.size))])
        pick_r = np.concatenate([rows_r[y] for y in np.sort(rng.choice(ur, ur.size))])
        ts, tr = si.take(pick_s), ri.take(pick_r)
        ma, mb = (_metrics_of(x[pick_s], ref[pick_r], ts, tr, frequency, frost_threshold,
                              wet_threshold) for x in (a, b))
        for k in ma:
            diffs.setdefault(k, []).append(score(ma[k], hows[k]) - score(mb[k], hows[k]))
    out = {}
    for k, d in diffs.items():
        arr = np.asarray(d)
        out[k] = {
            "share_at_least_as_good": float(np.mean(arr <= 0)),
            "score_diff_p05": float(np.percentile(arr, 5)),
            "score_diff_p95": float(np.percentile(arr, 95)),
        }
    return out
