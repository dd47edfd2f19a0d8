"""Scores of the twin experiment.

>>> import numpy as np
>>> hellinger(np.zeros(100), np.zeros(100))
0.0
>>> float(skill_horizon(np.array([0.1, 0.5, 2.0, 3.0]), np.array([0.0, 0.1, 0.2, 0.3]), 1.0))
0.2
"""

from __future__ import annotations

import numpy as np

HELLINGER_BINS = 80
HELLINGER_RANGE = (-15.0, 25.0)


def histogram(values: np.ndarray, bins: int = HELLINGER_BINS, value_range: tuple[float, float] = HELLINGER_RANGE) -> np.ndarray:
    """Probabilities of ``values`` in ``bins`` equal bins over ``value_range``.

    Values outside the range count in the end bins (so a run that drifts away, or blows up to
    huge values, scores a large distance instead of vanishing from the histogram); NaN and Inf
    count in the last bin.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    lo, hi = value_range
    v = np.where(np.isfinite(v), v, hi)
    width = (hi - lo) / bins
    idx = np.clip(np.floor((v - lo) / width).astype(np.int64), 0, bins - 1)
    counts = np.bincount(idx, minlength=bins).astype(np.float64)
    return counts / max(1.0, counts.sum())


def hellinger(a: np.ndarray, b: np.ndarray, bins: int = HELLINGER_BINS, value_range: tuple[float, float] = HELLINGER_RANGE) -> float:
    """Hellinger distance sqrt(1 - sum sqrt(p q)) between the binned distributions of a and b."""
    p = histogram(a, bins, value_range)
    q = histogram(b, bins, value_range)
    return float(np.sqrt(max(0.0, 1.0 - np.sum(np.sqrt(p * q)))))


def rmse_by_lead(forecast: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """RMSE over forecasts and sites at each lead: arrays ``(lead, case, *space)`` -> ``(lead,)``.

    A forecast that blew up (NaN/Inf) counts as an infinite error from then on."""
    err = np.asarray(forecast, dtype=np.float64) - np.asarray(truth, dtype=np.float64)
    axes = tuple(range(1, err.ndim))
    with np.errstate(invalid="ignore", over="ignore"):
        out = np.sqrt(np.mean(err**2, axis=axes))
    return np.where(np.isfinite(out), out, np.inf)


def skill_horizon(rmse: np.ndarray, leads: np.ndarray, threshold: float) -> float:
    """The first lead at which the RMSE exceeds ``threshold`` (the last lead if it never does)."""
    above = np.nonzero(rmse > threshold)[0]
    return float(leads[above[0]]) if len(above) else float(leads[-1])


def rmse_at(rmse: np.ndarray, leads: np.ndarray, lead: float) -> float:
    """The RMSE at the lead nearest ``lead``."""
    return float(rmse[int(np.argmin(np.abs(leads - lead)))])
