"""Quantile levels of a simulation's values within their own season and era.

This is what makes a distribution correction keep the simulation's climate-change signal,
as quantile delta mapping (QDM, Cannon et al. 2015) does: a value is corrected according to its
rank among the values of the *simulation being corrected*, in the same season and the same
era (a running window of ``window_years``), not according to where it would fall in the
calibration period. A simulation that warms by 3 K keeps those 3 K: its median stays at the
median and receives the median's correction.

Within each seasonal window the values are first standardised by a smooth seasonal mean and
spread (harmonic fits per point and era), so that a January value is ranked among January-like
anomalies rather than below the warmer March values of the same 91-day window.

Example
-------
>>> import numpy as np
>>> x = np.arange(10.0)[:, None]
>>> tau = seasonal_ranks(x, np.linspace(0, 0.9, 10), np.zeros(10, int), 0.6, 31, harmonics=0)
>>> tau[:, 0].round(2).tolist()
[0.05, 0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 0.95]
"""

from __future__ import annotations

import numpy as np

N_BLOCKS = 12


def _harmonic_design(season: np.ndarray, harmonics: int) -> np.ndarray:
    cols = [np.ones_like(season)]
    for k in range(1, harmonics + 1):
        cols += [np.sin(2 * np.pi * k * season), np.cos(2 * np.pi * k * season)]
    return np.stack(cols, axis=1)


def standardise_seasonal(x: np.ndarray, season: np.ndarray, harmonics: int = 3) -> np.ndarray:
    """(x - m(f)) / s(f), ``m`` and ``s`` harmonic fits over the rows of ``x`` (time, points)."""
    if harmonics <= 0:
        return x
    design = _harmonic_design(season, harmonics)
    out = np.full_like(x, np.nan, dtype=np.float64)
    finite_cols = np.isfinite(x).all(axis=0)
    cols = np.flatnonzero(finite_cols)
    if cols.size:
        xs = x[:, cols]
        coef, *_ = np.linalg.lstsq(design, xs, rcond=None)
        anom = xs - design @ coef
        coef2, *_ = np.linalg.lstsq(design, anom**2, rcond=None)
        var = design @ coef2
        floor = 1e-6 * np.maximum(np.mean(anom**2, axis=0), 1e-30)
        out[:, cols] = anom / np.sqrt(np.maximum(var, floor))
    for c in np.flatnonzero(~finite_cols):  # columns with gaps: fit on their finite rows
        ok = np.isfinite(x[:, c])
        if ok.sum() > 2 * harmonics + 2:
            out[ok, c] = standardise_seasonal(x[ok, c : c + 1], season[ok], harmonics)[:, 0]
    return out


def _eras(years: np.ndarray, window_years: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(target year list, window year range) pairs; one era when the data are short."""
    uy = np.unique(years)
    if uy.size <= window_years:
        return [(uy, np.array([uy.min(), uy.max()]))]
    groups: dict[tuple[int, int], list[int]] = {}
    half = window_years // 2
    for y in uy:
        lo = min(max(y - half, uy.min()), uy.max() - window_years + 1)
        groups.setdefault((int(lo), int(lo + window_years - 1)), []).append(int(y))
    return [(np.array(v), np.array(k)) for k, v in groups.items()]


def _circular_distance(a: np.ndarray, b: float) -> np.ndarray:
    d = np.abs(a - b) % 1.0
    return np.minimum(d, 1.0 - d)


def seasonal_ranks(
    x: np.ndarray,
    season: np.ndarray,
    years: np.ndarray,
    half_window: float,
    window_years: int,
    harmonics: int = 3,
) -> np.ndarray:
    """Quantile level in (0, 1) of each value of ``x`` (time, points) within its window.

    ``season`` in [0, 1) and ``years`` are per time step. Values are grouped in 12 seasonal
    blocks; a block's values are ranked among the values within ``half_window`` (fraction of a
    year) of the block centre, in the same era. Ties get mid-ranks; NaNs stay NaN.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    tau = np.full(x.shape, np.nan)
    season = np.asarray(season, dtype=np.float64)
    block = np.minimum((season * N_BLOCKS).astype(int), N_BLOCKS - 1)
    for targets, (y0, y1) in _eras(np.asarray(years), window_years):
        in_era = (years >= y0) & (years <= y1)
        era_idx = np.flatnonzero(in_era)
        u_era = standardise_seasonal(x[era_idx], season[era_idx], harmonics)
        target_rows = np.isin(years[era_idx], targets)
        for b in range(N_BLOCKS):
            centre = (b + 0.5) / N_BLOCKS
            comp = _circular_distance(season[era_idx], centre) <= half_window + 1e-9
            tgt = target_rows & (block[era_idx] == b)
            if not tgt.any():
                continue
            comp_vals = u_era[comp]
            tgt_vals = u_era[tgt]
            out = np.full(tgt_vals.shape, np.nan)
            for p in range(x.shape[1]):
                c = comp_vals[:, p]
                c = np.sort(c[np.isfinite(c)])
                if c.size == 0:
                    continue
                v = tgt_vals[:, p]
                lo = np.searchsorted(c, v, side="left")
                hi = np.searchsorted(c, v, side="right")
                r = (lo + 0.5 * (hi - lo) + 0.5 * (hi == lo)) / (c.size + (hi == lo))
                r[~np.isfinite(v)] = np.nan
                out[:, p] = r
            tau[era_idx[tgt]] = out
    return tau


def rank_groups(season: np.ndarray, years: np.ndarray, window_years: int) -> np.ndarray:
    """The (era, seasonal block) group of each time step, as used by :func:`seasonal_ranks`.

    >>> rank_groups(np.array([0.0, 0.5, 0.99]), np.array([2000, 2000, 2001]), 31).tolist()
    [0, 6, 11]
    """
    season = np.asarray(season, dtype=np.float64)
    years = np.asarray(years)
    block = np.minimum((season * N_BLOCKS).astype(int), N_BLOCKS - 1)
    group = np.zeros(season.shape, dtype=np.int64)
    for e, (targets, _) in enumerate(_eras(years, window_years)):
        rows = np.isin(years, targets)
        group[rows] = e * N_BLOCKS + block[rows]
    return group
