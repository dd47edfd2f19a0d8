"""Inputs of the quantile network: where in the season, where on the grid, what around.

A value is described by
* its season: ``sin/cos(2 pi k f)`` for ``k = 1..harmonics``, ``f`` the position in the year;
* its point: latitude and longitude, and the calibration-period climatology (mean, spread) of
  every corrected variable at the point and over its neighbourhood (the cells within
  ``neighbourhood`` grid steps), all standardised with the variable's global statistics;
  the grid is ``grid_shape`` = (rows, columns) along the two horizontal dims (``lat, lon``
  of a regular grid, ``rlat, rlon`` of a curvilinear one); points without a grid (stations,
  ``grid_shape`` = (points,)) take as neighbourhood the ``(2 r + 1)**2 - 1`` nearest other
  points (great-circle distance), see :func:`neighbourhood_table`;
* its variable: a one-hot code, so one network serves several variables.

The transformer trunk reads, instead of the neighbourhood averages, one token per (variable,
neighbourhood cell): a space-time patch of the calibration climatology of that variable at that
cell (its 12 monthly means and standard deviations, in the variable's standardised units and
standardised again across the grid), see :func:`climatology_patches`.

Point features and patches come from the calibration simulation only, so they are stored in
the checkpoint and reused for any simulation on the same grid.

Example
-------
>>> import numpy as np
>>> season_features(np.array([0.0, 0.25]), 1).round(3).tolist()
[[0.0, 1.0], [1.0, 0.0]]
>>> neighbours_on_grid((2, 2), radius=1)[0].tolist()
[0, 1, 2, 3]
>>> neighbourhood_offsets((2, 1), radius=1)[0].tolist()  # 3 x 3 around cell 0; -1: outside
[-1, -1, -1, -1, 0, -1, -1, 1, -1]
>>> point_neighbours(np.array([50.0, 50.0, 51.0]), np.array([10.0, 12.0, 10.0]), 1)[0].tolist()
[2, 1, -1, -1, 0, -1, -1, -1, -1]
"""

from __future__ import annotations

import warnings

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


def neighbourhood_offsets(shape: tuple[int, int], radius: int) -> np.ndarray:
    """(cells, (2 radius + 1)**2): flat index of the cell at each offset (row-major in
    (dlat, dlon), the centre in the middle) from every cell of a (nlat, nlon) grid; -1 where
    the offset falls outside the grid."""
    nlat, nlon = shape
    d = np.arange(-radius, radius + 1)
    di, dj = np.meshgrid(d, d, indexing="ij")
    i = np.repeat(np.arange(nlat), nlon)[:, None] + di.ravel()[None, :]
    j = np.tile(np.arange(nlon), nlat)[:, None] + dj.ravel()[None, :]
    inside = (i >= 0) & (i < nlat) & (j >= 0) & (j < nlon)
    return np.where(inside, i * nlon + j, -1)


def point_neighbours(lat: np.ndarray, lon: np.ndarray, radius: int) -> np.ndarray:
    """(points, (2 radius + 1)**2) neighbourhood table of points without a grid (stations):
    the point itself in the middle slot, the other slots the nearest other points in order
    of great-circle distance (-1 where there are fewer points), as
    :func:`neighbourhood_offsets` is for a grid."""
    from scipy.spatial import cKDTree

    la, lo = np.deg2rad(np.asarray(lat, float)), np.deg2rad(np.asarray(lon, float))
    xyz = np.column_stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)])
    k = (2 * radius + 1) ** 2
    centre = k // 2
    n = xyz.shape[0]
    table = np.full((n, k), -1, dtype=np.int64)
    table[:, centre] = np.arange(n)
    if n < 2 or k < 2:
        return table
    _, idx = cKDTree(xyz).query(xyz, k=min(k, n))  # chord distance: same order
    slots = [s for s in range(k) if s != centre]
    for p in range(n):
        others = [int(i) for i in np.atleast_1d(idx[p]) if i != p][: len(slots)]
        table[p, slots[: len(others)]] = others
    return table


def neighbourhood_table(grid_shape: tuple[int, ...], radius: int,
                        lat: np.ndarray | None = None,
                        lon: np.ndarray | None = None) -> np.ndarray:
    """(points, (2 radius + 1)**2) flat indices of each point's neighbourhood, -1 where
    empty: :func:`neighbourhood_offsets` on a (rows, columns) grid, :func:`point_neighbours`
    for points without a grid (``grid_shape`` = (points,), needs ``lat``/``lon``)."""
    if len(grid_shape) == 2:
        return neighbourhood_offsets((int(grid_shape[0]), int(grid_shape[1])), radius)
    if len(grid_shape) == 1 and lat is not None and lon is not None:
        return point_neighbours(lat, lon, radius)
    raise ValueError(f"grid_shape {tuple(grid_shape)} is neither (rows, columns) nor (points,) "
                     "with lat/lon")


#: Monthly means and standard deviations: the length of a climatology patch (before the
#: grid-standardised copy is appended).
PATCH_MONTHS = 12


def climatology_patches(
    values: list[np.ndarray],
    seasons: list[np.ndarray],
    grid_shape: tuple[int, ...],
    radius: int,
    lat: np.ndarray | None = None,
    lon: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Tokens of the transformer trunk: one per (variable, neighbourhood cell) of every point.

    ``values[v]`` is (time, points), standardised with the variable's global statistics;
    ``seasons[v]`` the position in the year of each time step. A cell's patch is its 12
    monthly means and 12 monthly standard deviations (a space-time patch of the calibration
    climatology), followed by the same 24 numbers standardised across the grid (each column to
    zero mean and unit spread over the points, as the point features are, so that neighbouring
    cells are told apart): 48 numbers. Returns ``patches`` (points, nvar * K, 48) float32 and
    ``mask`` (points, nvar * K) bool, True where the token is padding (the offset falls outside
    the grid, or the cell has no finite climatology), K = (2 radius + 1)**2, tokens ordered
    variable-major. Padding tokens hold zeros and are masked out of attention, never read.
    Points without a grid (``grid_shape`` = (points,)) need ``lat``/``lon``: their tokens are
    the nearest points (:func:`point_neighbours`).
    """
    offs = neighbourhood_table(grid_shape, radius, lat, lon)  # (P, K)
    per_var = []
    for x, season in zip(values, seasons, strict=True):
        month = np.minimum((np.asarray(season) * PATCH_MONTHS).astype(int), PATCH_MONTHS - 1)
        cols = []
        for stat in (np.nanmean, np.nanstd):
            for m in range(PATCH_MONTHS):
                sel = x[month == m]
                if sel.shape[0] == 0:
                    cols.append(np.full(x.shape[1], np.nan))
                    continue
                with warnings.catch_warnings():  # all-NaN cells: masked below
                    warnings.simplefilter("ignore", RuntimeWarning)
                    cols.append(stat(sel, axis=0))
        cell = np.stack(cols, axis=1)  # (P, 24)
        ok = np.isfinite(cell).all(axis=1)
        filled = np.where(ok[:, None], cell, 0.0)
        gstd = np.zeros_like(filled)
        if ok.any():
            gstd[ok] = standardise_columns(filled[ok])
        per_var.append((np.concatenate([filled, gstd], axis=1), ok))
    n_points = offs.shape[0]
    k = offs.shape[1]
    dim = 2 * 2 * PATCH_MONTHS
    patches = np.zeros((n_points, len(values) * k, dim), dtype=np.float32)
    mask = np.ones((n_points, len(values) * k), dtype=bool)
    for v, (cell, ok) in enumerate(per_var):
        inside = offs >= 0
        src = np.maximum(offs, 0)
        valid = inside & ok[src]
        block = np.where(valid[:, :, None], cell[src], 0.0)
        patches[:, v * k:(v + 1) * k] = block
        mask[:, v * k:(v + 1) * k] = ~valid
    return patches, mask


def join_slot_patches(patches: np.ndarray, mask: np.ndarray, slots: int,
                      tokens_per_var: int) -> tuple[np.ndarray, np.ndarray]:
    """Patches of the series of every (variable, time-of-day slot) (points, variables x
    slots x K, dim), variable-major as :func:`climatology_patches` gives them, joined into
    one token per (variable, cell) whose patch is the slots' patches one after the other:
    (points, variables x K, slots x dim); a token is padding where any slot's is.

    >>> p = np.arange(4, dtype=np.float32).reshape(1, 4, 1)  # 2 variables x 2 slots, K = 1
    >>> joined, m = join_slot_patches(p, np.array([[False, False, False, True]]), 2, 1)
    >>> joined.tolist(), m.tolist()
    ([[[0.0, 1.0], [2.0, 3.0]]], [[False, True]])
    """
    n_points, n_tokens, dim = patches.shape
    n_vars = n_tokens // (slots * tokens_per_var)
    shape = (n_points, n_vars, slots, tokens_per_var)
    joined = patches.reshape(*shape, dim).transpose(0, 1, 3, 2, 4)
    padded = mask.reshape(shape).any(axis=2)
    return (np.ascontiguousarray(joined.reshape(n_points, n_vars * tokens_per_var, slots * dim)),
            padded.reshape(n_points, n_vars * tokens_per_var))


def point_features(
    lat: np.ndarray,
    lon: np.ndarray,
    climatology: np.ndarray,
    grid_shape: tuple[int, ...],
    radius: int,
) -> np.ndarray:
    """(npoints, 3 + 4 * nvar) features, standardised over the points.

    ``lat``/``lon`` are per point (flattened grid); ``climatology`` is (nvar, 2, npoints):
    standardised mean and spread of each variable at each point. ``grid_shape`` is (rows,
    columns) of a grid, or (points,) for points without one (stations: the neighbourhood is
    the nearest points).
    """
    if len(grid_shape) == 2:
        neigh = neighbours_on_grid((int(grid_shape[0]), int(grid_shape[1])), radius)
    else:
        neigh = [row[row >= 0] for row in neighbourhood_table(grid_shape, radius, lat, lon)]
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.deg2rad(np.asarray(lon, dtype=np.float64))
    cols = [lat / 90.0, np.sin(lon), np.cos(lon)]
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
