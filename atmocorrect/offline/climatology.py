"""Smooth seasonal climatologies (mean and spread) and the eras of a long simulation.

The learned correction reads each value's quantile level within its own era (a running window
of ``window_years``): by default as the rank of its standardised anomaly ``(x - m_era) /
s_era`` among the era's anomalies of the same season (``m``/``s``: harmonic fits of the
seasonal mean and spread per point), or, with ``rank="parametric"``, from the learned
simulation quantile function at ``u = m_cal + (x - m_era) s_cal / s_era`` (``cal`` stored in
the checkpoint). Either way a value in a warmer era keeps its position relative to its own
era's climate, which is what preserves the simulation's climate-change signal (as QDM does).

Example
-------
>>> import numpy as np
>>> f = np.linspace(0, 1, 365, endpoint=False)
>>> x = (280 + 10 * np.cos(2 * np.pi * f))[:, None]
>>> coef = fit_moments(x, f, harmonics=1)
>>> m, s = eval_moments(coef, f[:2], np.array([0, 0]))
>>> m.round(2).tolist()
[290.0, 290.0]
>>> [len(t) for t, _ in eras(np.arange(1950, 2101), 31)][:3]
[16, 1, 1]
"""

from __future__ import annotations

import numpy as np

N_BLOCKS = 12
SPREAD_FLOOR = 1e-6


def design(season: np.ndarray, harmonics: int) -> np.ndarray:
    """(n, 2 * harmonics + 1): 1, sin(2 pi k f), cos(2 pi k f)."""
    season = np.asarray(season, dtype=np.float64)
    cols = [np.ones_like(season)]
    for k in range(1, harmonics + 1):
        cols += [np.sin(2 * np.pi * k * season), np.cos(2 * np.pi * k * season)]
    return np.stack(cols, axis=1)


def fit_columns(d: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least squares per column of ``y`` (rows with NaN left out), (ncoef, ncols)."""
    out = np.full((d.shape[1], y.shape[1]), np.nan)
    full = np.isfinite(y).all(axis=0)
    if full.any():
        out[:, full] = np.linalg.solve(d.T @ d, d.T @ y[:, full])
    for c in np.flatnonzero(~full):
        ok = np.isfinite(y[:, c])
        if ok.sum() > d.shape[1]:
            dd = d[ok]
            out[:, c] = np.linalg.solve(dd.T @ dd, dd.T @ y[ok, c])
    return out


def fit_moments(x: np.ndarray, season: np.ndarray, harmonics: int = 3) -> np.ndarray:
    """Harmonic fits of the seasonal mean and spread of ``x`` (time, points).

    Returns (points, 2, 2 * harmonics + 1): coefficients of the mean, and of the standard
    deviation (fitted to absolute anomalies, scaled by sqrt(pi / 2)).
    """
    x = np.asarray(x, dtype=np.float64)
    d = design(season, harmonics)
    cm = fit_columns(d, x)
    anom = np.abs(x - d @ np.nan_to_num(cm)) * np.sqrt(np.pi / 2.0)
    anom[~np.isfinite(x)] = np.nan
    cs = fit_columns(d, anom)
    return np.stack([cm.T, cs.T], axis=1)


def eval_moments(
    coef: np.ndarray, season: np.ndarray, points: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and spread at (season, point) pairs from :func:`fit_moments` coefficients."""
    harmonics = (coef.shape[-1] - 1) // 2
    d = design(season, harmonics)
    c = coef[points]  # (n, 2, ncoef)
    mean = np.einsum("nk,nk->n", d, c[:, 0])
    spread = np.einsum("nk,nk->n", d, c[:, 1])
    return mean, np.maximum(spread, SPREAD_FLOOR * np.maximum(np.abs(mean), 1.0))


def eras(years: np.ndarray, window_years: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(target years, window [first, last] year) pairs: each year's era is the
    ``window_years``-long window centred on it (shifted to stay inside the data); one era when
    the data are shorter than the window."""
    uy = np.unique(years)
    if uy.size <= window_years:
        return [(uy, np.array([uy.min(), uy.max()]))]
    groups: dict[tuple[int, int], list[int]] = {}
    half = window_years // 2
    for y in uy:
        lo = min(max(int(y) - half, int(uy.min())), int(uy.max()) - window_years + 1)
        groups.setdefault((lo, lo + window_years - 1), []).append(int(y))
    return [(np.array(v), np.array(k)) for k, v in groups.items()]


def block_groups(season: np.ndarray, years: np.ndarray, window_years: int) -> np.ndarray:
    """The (era, seasonal block of 1/12 year) group of each time step.

    >>> block_groups(np.array([0.0, 0.5, 0.99]), np.array([2000, 2000, 2001]), 31).tolist()
    [0, 6, 11]
    """
    season = np.asarray(season, dtype=np.float64)
    years = np.asarray(years)
    block = np.minimum((season * N_BLOCKS).astype(int), N_BLOCKS - 1)
    group = np.zeros(season.shape, dtype=np.int64)
    for e, (targets, _) in enumerate(eras(years, window_years)):
        rows = np.isin(years, targets)
        group[rows] = e * N_BLOCKS + block[rows]
    return group
