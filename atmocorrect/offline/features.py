"""Inputs of the quantile network: where in the season, where on the grid, what around.

A value is described by
* its season: ``sin/cos(2 pi k f)`` for ``k = 1..harmonics``, ``f`` the position in the year;
* its point: latitude and longitude, and the calibration-period climatology (mean, spread) of
  every corrected variable at the point and over its neighbourhood (the cells within
  ``neighbourhood`` grid steps), all standardised with the variable's global statistics;
* its variable: a one-hot code, so one network serves several variables.

Point features come from the calibration simulation only, so they are stored in the
checkpoint and reused for any simulation on the same grid.

Example
-------
>>> import numpy as np
>>> season_features(np.array([0.0, 0.25]), 1).round(3).tolist()
[[0.0, 1.0], [1.0, 0.0]]
>>> neighbours_on_grid((2, 2), radius=1)[0].tolist()
[0, 1, 2, 3]
"""

from __future__ import annotations

import numpy as np


def season_features(fraction: np.ndarray, harmonics: int) -> np.ndarray:
    """(n, 2 * harmonics): sin and cos of 2 pi k f."""
    f = np.asarray(fraction, dtype=np.float64)[:, None]
    k = np.arange(1, harmonics + 1, dtype=np.float64)[None, :]
    ang = 2.0 * np.pi * k * f
    return np.concatenate([np.sin(ang), np.cos(ang)], axis=1).astype(np.float32)


def neighbours_on_grid(shape: tuple[int, int], radius: int) -> list[np.ndarray]:
    """For each cell of a (nlat, nlon) grid, the flat indices of cells within ``radius``."""
    nlat, nlon = shape
    out = []
    for i in range(nlat):
        for j in range(nlon):
            ii = np.arange(max(0, i - radius), min(nlat, i + radius + 1))
            jj = np.arange(max(0, j - radius), min(nlon, j + radius + 1))
            out.append((ii[:, None] * nlon + jj[None, :]).ravel())
    return out


def point_features(
    lat: np.ndarray,
    lon: np.ndarray,
    climatology: np.ndarray,
    grid_shape: tuple[int, int],
    radius: int,
) -> np.ndarray:
    """(npoints, 3 + 4 * nvar) features, standardised over the points.

    ``lat``/``lon`` are per point (flattened grid); ``climatology`` is (nvar, 2, npoints):
    standardised mean and spread of each variable at each point.
    """
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.deg2rad(np.asarray(lon, dtype=np.float64))
    cols = [lat / 90.0, np.sin(lon), np.cos(lon)]
    neigh = neighbours_on_grid(grid_shape, radius)
    for v in range(climatology.shape[0]):
        mean, spread = climatology[v, 0], climatology[v, 1]
        cols += [
            mean,
            spread,
            np.array([np.nanmean(mean[n]) for n in neigh]),
            np.array([np.nanmean(spread[n]) for n in neigh]),
        ]
    feats = np.nan_to_num(np.stack(cols, axis=1))
    return standardise_columns(feats).astype(np.float32)


def standardise_columns(feats: np.ndarray) -> np.ndarray:
    """Each feature column to zero mean and unit spread over the points (constant -> 0), so
    that neighbouring points, whose raw features differ little, are told apart.

    >>> standardise_columns(np.array([[48.0, 1.0], [50.0, 1.0]])).tolist()
    [[-1.0, 0.0], [1.0, 0.0]]
    """
    mean = feats.mean(axis=0, keepdims=True)
    std = feats.std(axis=0, keepdims=True)
    scale = np.where(std > 1e-9 * np.maximum(np.abs(mean), 1.0), std, np.inf)
    return (feats - mean) / scale


def one_hot(index: int, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=np.float32)
    out[index] = 1.0
    return out
