"""Correct simulation files: chunk by chunk with dask, CF metadata, atomic write.

The input is opened lazily with dask, in chunks of grid points that each hold the whole time
axis (eras and calibration are per point, over time), so memory is bounded by
``chunk_points x time steps``, not by the file. The output keeps the input's variable names,
dimensions (and their order and latitude direction), coordinates, time encoding, attributes,
plus a ``history`` line and ``bias_adjustment`` attributes; it is written to a temporary
sibling and renamed into place, so a reader never sees half a file.

Example
-------
>>> req = CorrectionRequest(method="ml", inputs=("sim.nc",), output="sim.nc",
...                         model="ckpt/")
>>> correct_file(req)
Traceback (most recent call last):
atmocorrect.errors.UsageError: the output sim.nc is the input file; write to another path
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .. import __version__
from .. import units as U
from ..atomic import atomic_directory, atomic_file
from ..checkpoint import Manifest, read_manifest, read_weights
from ..data.conform import is_temperature_difference
from ..data.coords import (
    cell_latlon,
    check_time_and_grid_only,
    horizontal_dims,
    is_regular_grid,
    match_members,
    restore_layout,
)
from ..data.pairs import PairConfig, load_pair
from ..data.readers import open_dataset
from ..data.timeaxis import (
    format_period,
    frequency_word,
    infer_frequency,
    parse_period,
    require_period,
    season_position,
    select_years,
    years,
)
from ..errors import CheckpointError, DataError, FieldError, UsageError
from .classical import classical_slots, make_debiaser
from .climatology import (
    SPREAD_FLOOR,
    block_groups,
    design,
    eras,
    eval_moments,
    fit_columns,
    fit_moments,
)
from .config import (
    DIURNAL,
    METHODS,
    ApplyConfig,
    checkpoint_apply_config,
    physical_bounds,
)
from .diurnal import describe_slots, input_slot_rows, slot_name
from .wetdays import jitter_dry, restore_dry


@dataclasses.dataclass(frozen=True)
class CorrectionRequest:
    """One ``atmocorrect correct`` run.

    method:
        ``ml`` (needs ``model``) or a classical method (needs ``reference`` and ``historical``,
        or a ``model`` checkpoint whose provenance names them).
    inputs:
        The simulation file(s) to correct (several: split in time, or one per variable).
    period:
        Only these years of the input are corrected and written.
    calibration:
        Calibration years for the classical methods (default: the checkpoint's, else
        1979-2004).
    diurnal:
        Sub-daily data and a classical method: ``slots`` adjusts each time of day on its own
        (:func:`~atmocorrect.offline.classical.classical_slots`), ``pooled`` all hours at once.
        Daily and monthly data, and ``ml`` (whose checkpoint decides), are not affected.
    apply, apply_overrides:
        ``apply``: every setting of the apply step; None: the settings the checkpoint was
        written with (:func:`~atmocorrect.offline.config.checkpoint_apply_config`), with
        ``apply_overrides`` (``chunk_points``, ``threads``: how, not what) replacing theirs.
    """

    method: str
    inputs: tuple[str | os.PathLike, ...]
    output: str | os.PathLike
    model: str | os.PathLike | None = None
    reference: tuple[str | os.PathLike, ...] = ()
    historical: tuple[str | os.PathLike, ...] = ()
    variables: tuple[str, ...] = ()
    period: tuple[int, int] | None = None
    calibration: tuple[int, int] | None = None
    apply: ApplyConfig | None = None
    apply_overrides: Mapping[str, Any] | None = None
    overwrite: bool = False
    progress: bool = False
    command: str | None = None
    pair: PairConfig | None = None
    pair_overrides: Mapping[str, Any] | None = None
    diurnal: str = "slots"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise UsageError(f"method {self.method!r} is not one of {', '.join(METHODS)}")
        if self.diurnal not in DIURNAL:
            raise UsageError(f"diurnal must be one of {', '.join(DIURNAL)}, got "
                             f"{self.diurnal!r}")
        if not self.inputs:
            raise UsageError("no input file given")


# ------------------------------------------------------------------------------ checks
def check_paths(inputs: Sequence[str | os.PathLike], output: str | os.PathLike,
                overwrite: bool) -> Path:
    """Refuse writing over an input, or over an existing file without ``overwrite``."""
    out = Path(output)
    for p in inputs:
        p = Path(p)
        same = out.resolve() == p.resolve() or (
            out.exists() and p.exists() and os.path.samefile(out, p)
        )
        if same:
            raise UsageError(f"the output {out} is the input file; write to another path")
    if out.exists() and not overwrite:
        raise UsageError(f"the output {out} exists; pass --overwrite to replace it")
    if out.exists() and out.is_dir():
        raise UsageError(f"the output {out} is a directory")
    if not out.parent.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
    return out


def open_inputs(paths: Sequence[str | os.PathLike], chunks: dict[str, int] | None) -> xr.Dataset:
    """Open the inputs: files with the same variables continue each other in time, files with
    different variables are merged."""
    opened = [open_dataset(p, chunks=chunks) for p in paths]
    layout = opened[0].encoding.get("atmocorrect_layout")
    by_vars: dict[tuple[str, ...], list[xr.Dataset]] = {}
    for ds in opened:
        by_vars.setdefault(tuple(sorted(map(str, ds.data_vars))), []).append(ds)
    parts = []
    for group in by_vars.values():
        if len(group) == 1:
            parts.append(group[0])
        else:
            group.sort(key=lambda d: d["time"].values[0])
            parts.append(xr.concat(group, dim="time", data_vars="minimal", coords="minimal",
                                   compat="override", join="override"))
    try:
        ds = parts[0] if len(parts) == 1 else xr.merge(parts, compat="override", join="exact",
                                                       combine_attrs="override")
    except ValueError as exc:
        raise DataError(
            f"input files {', '.join(map(str, paths))} do not share a grid and time axis: {exc}"
        ) from exc
    ds.encoding["atmocorrect_layout"] = layout
    ds.encoding["source"] = ", ".join(map(str, paths))
    ds.encoding["time_encoding"] = dict(opened[0]["time"].encoding)
    return ds


def _chunks_for(da: xr.DataArray, chunk_points: int) -> dict[str, int]:
    spatial = [d for d in da.dims if d != "time"]
    out: dict[str, int] = {"time": -1}
    remaining = max(1, chunk_points)
    for d in reversed(spatial):  # fastest-varying dims stay whole first
        n = da.sizes[d]
        out[d] = min(n, remaining) if remaining < n else n
        remaining = max(1, remaining // n)
    return out


# ------------------------------------------------------------------------------ ml
def load_offline_model(directory: str | os.PathLike, threads: int = 1):
    from ..models import build_predictor

    manifest = read_manifest(directory)
    tensors = read_weights(directory, manifest)
    try:
        model = build_predictor(manifest, tensors, {"offline": True, "num_threads": threads})
    except CheckpointError as exc:  # the model's own checks know no path: name the checkpoint
        if str(directory) in str(exc):
            raise
        raise CheckpointError(f"checkpoint {directory}: {exc}") from exc
    return manifest, model


def ml_correct_points(
    model: Any, var: str, x: np.ndarray, points: np.ndarray, season: np.ndarray,
    yrs: np.ndarray, cfg: ApplyConfig, frequency: str, slot: int = 0,
) -> np.ndarray:
    """Correct ``x`` (time, n) at checkpoint point indices ``points`` (n,); ``slot`` is the
    time of day of a sub-daily series corrected on its own (seconds after 00:00; 0 otherwise),
    which seeds the dry-day draws with the point (:func:`~atmocorrect.offline.wetdays.
    draw_seed`).

    1. Each value gets a quantile level ``tau`` *within its own era* (``cfg.rank``):
       ``empirical`` (default, as QDM): the rank of its standardised anomaly
       ``(x - m_era) / s_era`` among the era's anomalies within ``cfg.rank_window_days`` of
       the season; ``parametric``: ``tau = F_sim(m_cal + (x - m_era) s_cal / s_era)`` from the
       learned simulation quantile function.
    2. It receives ``Delta(tau) = Q_ref(tau) - Q_sim(tau)`` of the learned quantile functions
       at its season: additive in the transformed space, so the simulation's change of every
       quantile between eras is kept (QDM's principle), with transfer functions that are
       smooth in season and pooled over points, quantiles and variables.
    3. ``cfg.mean_adjust``: the mean correction of each era is set to the model's mean
       correction over uniform quantile levels (``harmonic``: through a smooth seasonal fit,
       so no steps in time; ``blocks``: per 1/12-year block; ``none``: left as it is), which
       keeps the change of the mean between eras exactly the simulation's.

    A variable whose dry-day fraction is learned (daily precipitation; ``NetworkConfig.
    hurdle``) takes ``Q_sim`` from the calibration simulation's own quantiles stored in the
    checkpoint (``model.empirical_simulation``): its change term is then exact and step 3 is
    skipped.

    Quantile functions are tabulated on (season node, z) grids and interpolated linearly.
    """
    from scipy.special import ndtri

    norm = model.norm[var]
    wet = float(norm.get("wet_threshold", 0.0))  # absent: checkpoints before SSR
    y = model.forward_transform(var, jitter_dry(x, wet, points, slot=slot))
    T, n = y.shape
    n_nodes = cfg.nodes(frequency)
    nodes = (np.arange(n_nodes) + 0.5) / n_nodes
    z = cfg.z_grid()
    # once per distinct point: ensemble members bring the same point several times
    distinct, per_column = np.unique(points, return_inverse=True)
    q_ref, q_sim = model.tables(var, distinct, nodes, z)
    empirical = getattr(model, "empirical_simulation", lambda v: False)(var)
    mean_adjust = cfg.mean_adjust
    if empirical:
        # the simulation's side is the calibration's own quantiles, as the ranks are read:
        # only the learned reference side is smoothed over the season, so a value's change
        # from the calibration climate at its level is exact (zero in the calibration), as
        # in QDM. The mean needs no pinning then; pinned in the log space of a variable with
        # dry days (whose dry draws are random) it changed the climate-change signal.
        delta_tab = (_smooth_quantiles(model, var, q_ref, cfg) - q_sim)[per_column]
        dbar_nodes = np.zeros((n, n_nodes))
        mean_adjust = "none"
    else:
        if _smooths_in_physical_space(model, var, cfg):
            delta_tab = (_smooth_quantiles(model, var, q_ref, cfg)
                         - _smooth_quantiles(model, var, q_sim, cfg))[per_column]
        else:  # a linear average: the same as averaging each side
            delta_tab = smooth_season(q_ref - q_sim, cfg.season_smoothing_days,
                                      axis=1)[per_column]
        dbar_nodes = smooth_season(model.mean_delta(var, distinct, nodes),
                                   cfg.season_smoothing_days, axis=1)[per_column]
    pos = season * n_nodes - 0.5
    j0 = np.floor(pos).astype(int) % n_nodes
    j1 = (j0 + 1) % n_nodes
    w = pos - np.floor(pos)
    coef_cal = model.moments[var][points]
    harmonics = (coef_cal.shape[-1] - 1) // 2
    zq = np.full(y.shape, np.nan)
    u = np.full(y.shape, np.nan)
    era_list = eras(yrs, cfg.window_years)
    for targets, (first, last) in era_list:
        in_era = (yrs >= first) & (yrs <= last)
        coef_app = fit_moments(y[in_era], season[in_era], harmonics)
        rows = np.flatnonzero(np.isin(yrs, targets))
        if cfg.rank == "empirical":
            era_rows = np.flatnonzero(in_era)
            m_app, s_app = moments_at(coef_app, season[era_rows])
            anom = (y[era_rows] - m_app) / s_app
            pos_t = np.searchsorted(era_rows, rows)
            zq[rows] = ndtri(seasonal_ranks(anom, season[era_rows], pos_t, n_nodes,
                                            cfg.rank_half_width(frequency)))
        else:
            for j in range(n):
                idx = np.full(rows.size, j)
                m_app, s_app = eval_moments(coef_app, season[rows], idx)
                m_cal, s_cal = eval_moments(coef_cal, season[rows], idx)
                u[rows, j] = m_cal + (y[rows, j] - m_app) * (s_cal / s_app)
    delta = np.zeros(y.shape)
    dbar = np.zeros(y.shape)
    if cfg.rank == "parametric":  # tau from the learned simulation quantiles, node by node
        for j in range(n):
            for nodes_of_row, weight in ((j0, 1.0 - w), (j1, w)):
                for k in np.unique(nodes_of_row):
                    rows = nodes_of_row == k
                    zq[rows, j] = np.interp(u[rows, j], q_sim[per_column[j], k], z)
                    d = np.interp(zq[rows, j], z, delta_tab[j, k])  # clamps beyond +-5
                    delta[rows, j] += weight[rows] * d
                    dbar[rows, j] += weight[rows] * dbar_nodes[j, k]
    else:  # all points at once: the z grid is uniform, so interpolation is a gather
        cols = np.arange(n)[None, :]
        for nodes_of_row, weight in ((j0, 1.0 - w), (j1, w)):
            for k in np.unique(nodes_of_row):
                rows = np.flatnonzero(nodes_of_row == k)
                delta[rows] += weight[rows, None] * interp_uniform(zq[rows], z, delta_tab[:, k],
                                                                   cols)
                dbar[rows] += weight[rows, None] * dbar_nodes[None, :, k]
    finite = np.isfinite(y)
    if mean_adjust == "blocks":
        groups = block_groups(season, yrs, cfg.window_years)
        for g in np.unique(groups):
            rows = groups == g
            diff = np.where(finite[rows], dbar[rows] - delta[rows], np.nan)
            with np.errstate(invalid="ignore"):
                shift = np.nanmean(diff, axis=0) if finite[rows].any() else np.zeros(n)
            delta[rows] += np.where(np.isfinite(shift), shift, 0.0)
    elif mean_adjust == "harmonic":
        for targets, _ in era_list:
            rows = np.flatnonzero(np.isin(yrs, targets))
            h = cfg.mean_adjust_harmonics if rows.size > 4 * (2 * cfg.mean_adjust_harmonics + 1) else 0
            diff = np.where(finite[rows], dbar[rows] - delta[rows], np.nan)
            d = design(season[rows], h)
            coef = np.nan_to_num(fit_columns(d, diff))
            delta[rows] += d @ coef
    out = model.inverse_transform(var, y + np.where(np.isfinite(delta), delta, 0.0))
    if wet > 0:
        out = restore_dry(out, wet)
    elif norm["transform"] == "log":  # no wet-day threshold: dry values stay dry
        out = np.where(x <= norm.get("dry", 0.0), x, out)
    # points without reference data were calibrated on nothing: missing, not guessed
    valid = getattr(model, "has_reference", None)
    keep = np.isfinite(x) & (valid[points][None, :] if valid is not None else True)
    return np.where(keep, out, np.nan)


def moments_at(coef: np.ndarray, season: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and spread (time, points) of :func:`fit_moments` coefficients (points, 2, k) at
    every season of ``season`` for every point (as :func:`eval_moments`, vectorised)."""
    d = design(season, (coef.shape[-1] - 1) // 2)
    mean = d @ coef[:, 0, :].T
    spread = d @ coef[:, 1, :].T
    return mean, np.maximum(spread, SPREAD_FLOOR * np.maximum(np.abs(mean), 1.0))


def interp_uniform(x: np.ndarray, grid: np.ndarray, table: np.ndarray,
                   cols: np.ndarray) -> np.ndarray:
    """``np.interp(x[:, j], grid, table[j])`` for every column ``j`` at once, for a uniform
    ``grid`` (clamped beyond its ends, NaN where ``x`` is NaN).

    >>> g = np.linspace(-1.0, 1.0, 5)
    >>> t = np.stack([g, 2 * g])
    >>> x = np.array([[-2.0, 0.25], [0.5, np.nan]])
    >>> interp_uniform(x, g, t, np.arange(2)[None, :]).tolist()
    [[-1.0, 0.5], [0.5, nan]]
    """
    step = (grid[-1] - grid[0]) / (grid.size - 1)
    finite = np.isfinite(x)
    pos = np.clip((np.where(finite, x, grid[0]) - grid[0]) / step, 0.0, grid.size - 1.0)
    i0 = np.minimum(np.floor(pos).astype(np.int64), grid.size - 2)
    frac = pos - i0
    out = table[cols, i0] * (1.0 - frac) + table[cols, i0 + 1] * frac
    return np.where(finite, out, np.nan)


def _smooths_in_physical_space(model: Any, var: str, cfg: ApplyConfig) -> bool:
    """Whether ``var``'s quantile tables are averaged over the season in its units: for a
    transformed variable (log, logit) with ``cfg.smoothing_space == "physical"``; in the
    learned space otherwise (where, untransformed, it is the same average)."""
    transform = model.norm[var].get("transform", "identity")
    return cfg.smoothing_space == "physical" and transform != "identity"


def _smooth_quantiles(model: Any, var: str, table: np.ndarray, cfg: ApplyConfig
                      ) -> np.ndarray:
    """A quantile table (points, season nodes, z) in the learned space, averaged over
    ``cfg.season_smoothing_days`` of season (in the variable's units when
    :func:`_smooths_in_physical_space`: the average of quantile functions there is the
    distribution whose mean is the average of the means; in log space it would be a
    geometric average, which lowers the upper tail and the mean)."""
    days = cfg.season_smoothing_days
    if not _smooths_in_physical_space(model, var, cfg):
        return smooth_season(table, days, axis=1)
    physical = model.inverse_transform(var, table)
    return model.forward_transform(var, smooth_season(physical, days, axis=1))


def smooth_season(table: np.ndarray, days: float, axis: int) -> np.ndarray:
    """Circular moving average of ``table`` over its season-node ``axis``, ``days`` wide
    (0: unchanged).

    >>> smooth_season(np.array([0.0, 0.0, 3.0, 0.0]), 3 * 365.25 / 4, axis=0).tolist()
    [0.0, 1.0, 1.0, 1.0]
    """
    n = table.shape[axis]
    width = days / 365.25 * n
    if width <= 1.0:
        return table
    half = width / 2.0
    offsets = np.arange(-int(np.ceil(half)), int(np.ceil(half)) + 1)
    # full weight inside the window, fractional weight for the partly covered end nodes
    weights = np.clip(half + 0.5 - np.abs(offsets), 0.0, 1.0)
    weights /= weights.sum()
    out = np.zeros_like(table)
    for o, wgt in zip(offsets, weights, strict=True):
        out += wgt * np.roll(table, o, axis=axis)
    return out


def seasonal_ranks(anom: np.ndarray, season: np.ndarray, rows: np.ndarray, n_nodes: int,
                   half_width: float) -> np.ndarray:
    """Quantile levels of ``anom[rows]`` (rows, n) among the values of ``anom`` (t, n) whose
    season lies within ``half_width`` (fraction of a year, circular) of the row's seasonal
    node: Hazen plotting positions ``(rank - 0.5) / count`` (mid-ranks for ties), so they are
    uniform within every window and never 0 or 1.

    >>> a = np.arange(8.0)[:, None]
    >>> s = np.linspace(0, 1, 8, endpoint=False)
    >>> seasonal_ranks(a, s, np.arange(8), 1, 0.5)[:, 0].tolist()
    [0.0625, 0.1875, 0.3125, 0.4375, 0.5625, 0.6875, 0.8125, 0.9375]
    """
    out = np.full((rows.size, anom.shape[1]), np.nan)
    node_of = np.minimum((season[rows] * n_nodes).astype(int), n_nodes - 1)
    for k in np.unique(node_of):
        centre = (k + 0.5) / n_nodes
        dist = np.abs((season - centre + 0.5) % 1.0 - 0.5)
        window = anom[dist <= half_width]  # (values in the window, points)
        count = np.isfinite(window).sum(axis=0)
        ordered = np.sort(np.where(np.isfinite(window), window, np.inf), axis=0)
        here = node_of == k
        xv = anom[rows[here]]
        res = np.full(xv.shape, np.nan)
        for j in np.flatnonzero(count > 0):
            vals = ordered[: count[j], j]
            lo = np.searchsorted(vals, xv[:, j], side="left")
            hi = np.searchsorted(vals, xv[:, j], side="right")
            res[:, j] = 0.5 * (lo + hi) / count[j]
        out[here] = np.where(np.isfinite(xv), res, np.nan)
    return np.clip(out, 0.5 / max(1, anom.shape[0]), 1.0 - 0.5 / max(1, anom.shape[0]))


def ml_correct_slots(
    model: Any, var: str, x: np.ndarray, points: np.ndarray, season: np.ndarray,
    yrs: np.ndarray, cfg: ApplyConfig, frequency: str,
    slots: Sequence[tuple[int, np.ndarray]],
) -> np.ndarray:
    """:func:`ml_correct_points` per time of day: the rows of each slot (``(seconds after
    00:00, time indices)``, :func:`~atmocorrect.offline.diurnal.input_slot_rows`) are
    corrected as their own series, as the variable ``var@HH:MM`` of the checkpoint (own-era
    ranks among that slot's values, as daily data), and put back in time order."""
    out = np.full(x.shape, np.nan)
    for seconds, rows in slots:
        out[rows] = ml_correct_points(model, slot_name(var, seconds), x[rows], points,
                                      season[rows], yrs[rows], cfg, frequency, slot=seconds)
    return out


def _ml_block(x, lat, lon, *, model, var, season, yrs, cfg, frequency, slots=None):
    shape = x.shape
    flat = np.asarray(x, dtype=np.float64).reshape(-1, shape[-1]).T
    points = model.point_index(np.asarray(lat).ravel(), np.asarray(lon).ravel())
    if slots:
        out = ml_correct_slots(model, var, flat, points, season, yrs, cfg, frequency, slots)
    else:
        out = ml_correct_points(model, var, flat, points, season, yrs, cfg, frequency)
    return out.T.reshape(shape).astype(x.dtype)


# ------------------------------------------------------------------------------ classical
def _classical_block(fut, obs, hist, *, method, var, frequency, t_obs, t_hist, t_fut,
                     bounds=(None, None), slots=None):
    """One dask block: every series of ``fut`` (..., time) is adjusted on its own, against the
    series of ``obs``/``hist`` at the same cell and member; ``obs`` (the reference) has size-1
    axes for the member dims (xarray's broadcasting) and serves every member of its cell."""
    from .classical import correct_block

    shape = fut.shape
    f = np.asarray(fut, dtype=np.float64).reshape(-1, shape[-1]).T
    o, h = (np.broadcast_to(np.asarray(a, dtype=np.float64), (*shape[:-1], a.shape[-1]))
            .reshape(-1, a.shape[-1]).T for a in (obs, hist))
    out = correct_block(method, var, frequency, o, h, f, t_obs, t_hist, t_fut, bounds, slots)
    return out.T.reshape(shape).astype(fut.dtype)


def _calibration_members(x: xr.DataArray, hist: xr.DataArray, source: str, hist_files: str,
                         method: str) -> xr.DataArray:
    """The historical simulation ``hist`` of the calibration, member by member as the input
    ``x``: each input member is calibrated on its own member of ``hist`` (the scenario run
    continues its own historical run), paired as by ``evaluate offline``
    (:func:`~atmocorrect.data.coords.match_members`: by label, ``hist`` holding every input
    member and possibly more, as CMIP6 extends only some historical members into each
    scenario; by position where neither file labels its members); they are taken in the
    input's order. Without members on either side, ``hist`` as it is; members on one side only
    are an error naming both files."""
    pick = match_members(
        x, hist, f"input {source}", f"the historical simulation {hist_files}",
        f"--method {method} calibrates each ensemble member on the same member of the "
        "historical simulation (a scenario run continues its own historical run)")
    return hist.isel(pick) if pick else hist


def crop_to_cells(ds: xr.Dataset, lat: np.ndarray, lon: np.ndarray, tol: float,
                  source: str) -> xr.Dataset:
    """The input's cells that are the calibrated cells (``lat``/``lon`` per cell, matched
    within ``tol`` degrees): what ``--outside drop`` kept at training time is what is
    corrected and written. On a regular grid (1-D ``lat``/``lon``) the rows and columns that
    hold them; on a curvilinear grid the block of whole rows and columns along its two dims;
    of points along one dim, the matching points."""
    if "lat" not in ds.coords or "lon" not in ds.coords:
        return ds
    if not is_regular_grid(ds):
        return _crop_aux(ds, lat, lon, tol, source)
    glat, glon = np.asarray(lat, float), np.mod(np.asarray(lon, float), 360.0)
    ilat = np.asarray(ds["lat"].values, float)
    ilon = np.mod(np.asarray(ds["lon"].values, float), 360.0)
    keep_lat = np.abs(ilat[:, None] - glat[None, :]).min(axis=1) <= tol
    dlon = np.abs((ilon[:, None] - glon[None, :] + 180.0) % 360.0 - 180.0)
    keep_lon = dlon.min(axis=1) <= tol
    if not keep_lat.any() or not keep_lon.any():
        raise DataError(
            f"{source}: none of the input's cells is one of the {glat.size} calibrated cells "
            f"(lat {glat.min():.2f}..{glat.max():.2f}, lon {glon.min():.2f}..{glon.max():.2f})")
    if keep_lat.all() and keep_lon.all():
        return ds
    out = ds.isel(lat=np.flatnonzero(keep_lat), lon=np.flatnonzero(keep_lon))
    out.encoding = dict(ds.encoding)
    return out


def matches_cells(lat: np.ndarray, lon: np.ndarray, glat: np.ndarray, glon: np.ndarray,
                  tol: float) -> np.ndarray:
    """Whether each point (``lat``, ``lon``, any shape) lies within ``tol`` degrees
    (``max(|dlat|, |dlon|)``, across the 0/360 seam) of one of the points ``glat``/``glon``.

    >>> matches_cells(np.array([50.0, 50.0]), np.array([359.9, 5.0]), np.array([50.0]),
    ...               np.array([-0.1]), 0.01).tolist()
    [True, False]
    """
    from scipy.spatial import cKDTree

    g = np.column_stack([np.asarray(glat, float).ravel(),
                         np.mod(np.asarray(glon, float).ravel(), 360.0)])
    g = np.concatenate([g, g + [0.0, 360.0], g - [0.0, 360.0]])  # the seam
    q = np.column_stack([np.asarray(lat, float).ravel(),
                         np.mod(np.asarray(lon, float).ravel(), 360.0)])
    dist, _ = cKDTree(g).query(q, k=1, p=np.inf)
    return (dist <= tol).reshape(np.shape(lat))


def _crop_aux(ds: xr.Dataset, lat: np.ndarray, lon: np.ndarray, tol: float,
              source: str) -> xr.Dataset:
    """:func:`crop_to_cells` for ``lat``/``lon`` that are auxiliary coordinates (a curvilinear
    grid, or points along one dim)."""
    dims = horizontal_dims(ds)
    lat_b, lon_b = (c.transpose(*dims) for c in xr.broadcast(ds["lat"], ds["lon"]))
    ok = matches_cells(lat_b.values, lon_b.values, lat, lon, tol)
    glat, glon = np.asarray(lat, float), np.asarray(lon, float)
    if not ok.any():
        raise DataError(
            f"{source}: none of the input's cells is one of the {glat.size} calibrated cells "
            f"(lat {glat.min():.2f}..{glat.max():.2f}, lon {glon.min():.2f}..{glon.max():.2f})")
    if ok.all():
        return ds
    if len(dims) == 1:
        out = ds.isel({dims[0]: np.flatnonzero(ok)})
    elif len(dims) == 2:
        rows, cols = np.flatnonzero(ok.any(axis=1)), np.flatnonzero(ok.any(axis=0))
        if not ok[np.ix_(rows, cols)].all():
            raise DataError(
                f"{source}: the {int(ok.sum())} input cells that match the {glat.size} "
                f"calibrated cells do not form a block of whole rows and columns along "
                f"{dims}; give the input on the calibration grid (or the whole grid it was "
                "cut from)")
        out = ds.isel({dims[0]: rows, dims[1]: cols})
    else:
        raise DataError(f"{source}: lat/lon span {len(dims)} dims {dims}; a correction "
                        "calibrated with outside='drop' crops regular or curvilinear grids "
                        "and points only")
    out.encoding = dict(ds.encoding)
    return out


def cells_of(sim: xr.Dataset) -> tuple[np.ndarray, np.ndarray, float]:
    """Latitude and longitude of every cell of ``sim`` and the tolerance within which an
    input cell is one of them (half the distance between neighbouring cells: half the
    smaller grid step of a regular grid)."""
    from ..data.regrid import cell_tolerance

    lat_b, lon_b = xr.broadcast(sim["lat"], sim["lon"])
    lat, lon = lat_b.values.ravel(), lon_b.values.ravel()
    return lat, lon, cell_tolerance(lat, lon)


def _same_grid(a: xr.DataArray, b: xr.DataArray, what: str) -> None:
    for c in ("lat", "lon"):
        va, vb = np.asarray(a[c].values, float), np.asarray(b[c].values, float)
        if va.shape != vb.shape or not np.allclose(va, vb, atol=1e-4):
            raise DataError(f"{what}: the {c} coordinates of the input and the calibration "
                            f"simulation differ ({va[:4]}... vs {vb[:4]}...)")


# ------------------------------------------------------------------------------ output
TIME_BOUNDS = ("time_bounds", "time_bnds")


def _history_line(req: CorrectionRequest, detail: str) -> str:
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    cmd = req.command or f"atmocorrect correct --method {req.method}"
    return f"{now}: {cmd} ({detail}; atmocorrect {__version__})"


def _encoding(ds: xr.Dataset, source: xr.Dataset, time_encoding: dict) -> dict[str, dict]:
    enc: dict[str, dict] = {}
    keep = ("dtype", "_FillValue", "missing_value", "scale_factor", "add_offset")
    for name in ds.variables:
        src = source[name].encoding if name in source.variables else {}
        e = {k: v for k, v in src.items() if k in keep}
        if (name in ds.data_vars and "time" in ds[name].dims and name not in TIME_BOUNDS
                and np.issubdtype(ds[name].dtype, np.floating)):
            e.setdefault("_FillValue", np.float32(1e20) if ds[name].dtype == np.float32 else 1e20)
            e["zlib"], e["complevel"] = True, 1
            e["chunksizes"] = _file_chunks(ds[name])
        else:  # coordinates, bounds, grid mappings: no fill value (CF)
            e.setdefault("_FillValue", None)
        enc[str(name)] = e
    for name in ("time", *TIME_BOUNDS):
        if name in ds.variables:
            te = {k: v for k, v in time_encoding.items() if k in ("units", "calendar", "dtype")}
            enc[name] = {**enc.get(name, {}), **te, "_FillValue": None}
    return enc


def _file_chunks(da: xr.DataArray, target_bytes: int = 4 << 20) -> tuple[int, ...]:
    """netCDF chunk shape: whole grid per time step, as many steps as fit ~4 MB."""
    spatial = int(np.prod([da.sizes[d] for d in da.dims if d != "time"], dtype=np.int64))
    per_step = max(1, spatial * da.dtype.itemsize)
    steps = int(min(da.sizes.get("time", 1), max(1, target_bytes // per_step)))
    return tuple(steps if d == "time" else da.sizes[d] for d in da.dims)


def zarr_encoding(encoding: Mapping[str, Mapping[str, Any]]) -> dict[str, dict]:
    """The netCDF encoding of :func:`_encoding` in the keys a zarr store takes: values, fill
    value, packing and the time units/calendar are kept; netCDF compression and chunk shapes
    are left to zarr (its chunks follow the dask chunks)."""
    keep = ("dtype", "_FillValue", "scale_factor", "add_offset", "units", "calendar")
    return {name: {k: v for k, v in enc.items() if k in keep} for name, enc in encoding.items()}


def write_atomic(ds: xr.Dataset, output: Path, encoding: dict, progress: bool = False,
                 threads: int = 1) -> Path:
    """Write ``ds`` to a temporary sibling of ``output`` (computing dask chunk by chunk),
    then rename it into place: a zarr store when ``output`` ends in ``.zarr``, else
    netCDF-4."""
    import dask

    scheduler = {"scheduler": "synchronous"} if threads <= 1 else {
        "scheduler": "threads", "num_workers": threads}
    as_zarr = output.suffix.lower() == ".zarr"
    target = atomic_directory(output) if as_zarr else atomic_file(output)
    with target as tmp, dask.config.set(**scheduler):
        if as_zarr:
            def write() -> None:
                ds.to_zarr(tmp, mode="w", encoding=zarr_encoding(encoding),
                           zarr_format=2, consolidated=True)
        else:
            def write() -> None:
                ds.to_netcdf(tmp, encoding=encoding, format="NETCDF4")
        if progress:
            from dask.diagnostics import ProgressBar

            with ProgressBar():
                write()
        else:
            write()
    return output


# ------------------------------------------------------------------------------ main entry
def _pair_config_from(manifest: Manifest | None, variables: Sequence[str],
                      given: PairConfig | None,
                      overrides: Mapping[str, Any] | None = None) -> PairConfig:
    """How the calibration pair is read: ``given``, else the checkpoint's provenance (the
    settings it was trained with) updated by ``overrides`` (options given on the command
    line)."""
    if given is not None:
        return dataclasses.replace(given, variables=tuple(variables))
    pair = (manifest.provenance.get("pair") if manifest else None) or {}
    settings: dict[str, Any] = {
        "reference_names": dict(pair.get("reference_names") or {}),
        "method": pair.get("method", "linear"),
        "outside": pair.get("outside", "error"),
        "convert_calendar": bool(pair.get("convert_calendar", True)),
        "accumulation_period": pair.get("accumulation_period"),
    }
    for key, value in (overrides or {}).items():
        if key == "reference_names":
            settings[key] = {**settings[key], **dict(value)}
        elif value is not None:
            settings[key] = value
    return PairConfig(variables=tuple(variables), **settings)


def correct_file(req: CorrectionRequest) -> Path:
    """Run one correction; returns the output path."""
    output = check_paths(req.inputs, req.output, req.overwrite)
    if req.model is None and req.method == "ml":
        raise UsageError("--method ml needs --model DIR (a checkpoint from training)")
    manifest = read_manifest(req.model) if req.model is not None else None
    apply_cfg = req.apply or dataclasses.replace(
        checkpoint_apply_config(manifest.hyperparameters.get("apply")) if manifest
        else ApplyConfig(), **(req.apply_overrides or {}))
    model = None
    if req.method == "ml":
        manifest, model = load_offline_model(req.model, threads=apply_cfg.threads)
    ds = open_inputs(req.inputs, chunks=None)
    layout = ds.encoding.get("atmocorrect_layout")
    time_encoding = ds.encoding.get("time_encoding", {})
    source = ds.encoding.get("source", "input")
    if req.variables:
        variables = tuple(req.variables)
    elif manifest is not None:
        variables = tuple(f.name for f in manifest.fields if f.name in ds.data_vars)
    else:
        variables = tuple(str(v) for v in ds.data_vars if "time" in ds[v].dims
                          and not str(v).startswith("time_b"))
    if not variables:
        wanted = ", ".join(manifest.field_names) if manifest else "any"
        raise DataError(f"{source}: none of the variables to correct ({wanted}) is in the input "
                        f"(it holds {', '.join(map(str, ds.data_vars))})")
    for v in variables:
        if v not in ds.data_vars:
            raise DataError(f"{source}: no variable {v!r} (the file holds "
                            f"{', '.join(map(str, ds.data_vars))})")
    for v in variables:
        # ensemble members: every member is corrected on its own series (ml: with the one
        # checkpoint; classical: calibrated on the same member of the historical simulation)
        check_time_and_grid_only(ds[v], source, "input", allow_members=True)
    if req.period is not None:
        ds = select_years(ds, req.period, f"input {source}")
    pair_cfg = _pair_config_from(manifest, variables or ("tas",), req.pair, req.pair_overrides)
    if pair_cfg.outside == "drop" and model is not None:
        # trained on the cells inside the reference box: correct (and write) those
        ds = crop_to_cells(ds, model.lat, model.lon, model.cell_tolerance(), source)
    frequency = infer_frequency(ds["time"].values, f"input {source}")
    times = ds["time"].values
    season = season_position(times, frequency)
    yrs = years(times)
    corrected: dict[str, xr.DataArray] = {}
    detail = ""
    if req.method == "ml":
        assert manifest is not None and model is not None
        trained_freq = manifest.hyperparameters.get("frequency")
        if trained_freq and trained_freq != frequency:
            raise DataError(f"{source}: the input is {frequency_word(frequency)} data but the "
                            f"checkpoint {req.model} was trained on "
                            f"{frequency_word(trained_freq)} data")
        # sub-daily data corrected per time of day: the input's times of day must be slots
        slots = input_slot_rows(times, model.slots, source, req.model) if model.slots else None
        for v in variables:
            if v not in manifest.field_names:
                raise FieldError(f"{source}: variable {v!r} is not corrected by checkpoint "
                                 f"{req.model} (it knows {', '.join(manifest.field_names)})")
            da = ds[v]
            have, want = da.attrs.get("units"), manifest.field(v).units
            if have is None:
                raise DataError(f"{source}: variable {v!r} has no 'units' attribute; the "
                                f"checkpoint expects {want!r}")
            x = da if U.same(have, want) else _convert(da, have, want, source)
            x = x.chunk(_chunks_for(x, apply_cfg.chunk_points))
            # over ensemble members too (checked above: the only other dims): every member's
            # series is corrected on its own, within its own era, at its cell's point
            lat_b, lon_b = cell_latlon(x, source)
            out = xr.apply_ufunc(
                _ml_block, x, lat_b.chunk({d: x.chunksizes[d] for d in lat_b.dims}),
                lon_b.chunk({d: x.chunksizes[d] for d in lon_b.dims}),
                input_core_dims=[["time"], [], []], output_core_dims=[["time"]],
                dask="parallelized", output_dtypes=[x.dtype],
                kwargs={"model": model, "var": v, "season": season, "yrs": yrs,
                        "cfg": apply_cfg, "frequency": frequency, "slots": slots},
            ).transpose(*x.dims)
            if not U.same(have, want):
                out = _convert(out, want, have, source)
            corrected[v] = out
        calib = manifest.provenance.get("calibration", "?")
        detail = (f"method ml: learned quantile-delta correction, checkpoint {req.model}, "
                  f"calibration {calib}")
        if model.slots:
            detail += f", one correction per time of day ({describe_slots(model.slots)})"
    else:
        reference = req.reference or tuple(
            e["path"] for e in (manifest.provenance.get("reference", []) if manifest else []))
        historical = req.historical or tuple(
            e["path"] for e in (manifest.provenance.get("simulation", []) if manifest else []))
        if not reference or not historical:
            raise UsageError(f"--method {req.method} needs --reference and --historical (or a "
                             "--model checkpoint whose provenance names them)")
        calibration = req.calibration or (
            parse_period(manifest.provenance["calibration"]) if manifest and
            manifest.provenance.get("calibration") else (1979, 2004))
        pair = load_pair(historical, reference, dataclasses.replace(
            _pair_config_from(manifest, variables, req.pair, req.pair_overrides),
            pool_members=True))
        dims = horizontal_dims(pair.sim)
        if any(pair.sim.sizes[d] != ds.sizes.get(d) for d in dims) and \
                pair_cfg.outside == "drop":
            ds = crop_to_cells(ds, *cells_of(pair.sim), source)
        require_period(pair.sim, calibration, f"the historical simulation {', '.join(map(str, historical))}")
        require_period(pair.ref, calibration, f"the reference {', '.join(map(str, reference))}")
        obs_all = select_years(pair.ref, calibration, "the reference")
        hist_all = select_years(pair.sim, calibration, "the historical simulation")
        if pair.frequency != frequency:
            raise DataError(f"{source}: the input is {frequency_word(frequency)}, the "
                            f"historical simulation is {frequency_word(pair.frequency)}")
        plans: list[str] = []
        for v in variables:
            make_debiaser(req.method, v, frequency)  # before any work: ibicus has defaults
            da = ds[v]
            _same_grid(da, hist_all[v], source)
            # sub-daily data: each time of day adjusted on its own (None: daily, or pooled)
            plan = classical_slots(pair, v, obs_all[v], hist_all[v], times, source,
                                   req.method, req.diurnal)
            if plan is not None:
                plans.append(plan.describe())
            have, want = da.attrs.get("units"), hist_all[v].attrs.get("units")
            x = da if U.same(have, want) else _convert(da, have, want, source)
            try:
                bounds = physical_bounds(v, want)
            except DataError as exc:
                raise DataError(f"{source}: {exc}") from None
            chunks = _chunks_for(x, apply_cfg.chunk_points)
            x = x.chunk(chunks)
            # the input's coordinates only (not the reference's scalar ones, e.g. ERA5's
            # realization, which would end up in the output)
            obs = obs_all[v].reset_coords(drop=True).assign_coords(
                lat=x["lat"], lon=x["lon"]).rename(time="time_obs")
            hist = _calibration_members(
                x, hist_all[v].reset_coords(drop=True), source, ", ".join(map(str, historical)),
                req.method).assign_coords(lat=x["lat"], lon=x["lon"]).rename(time="time_hist")
            # member dims chunked like the input's; the reference has none (broadcast per block)
            spatial = {d: c for d, c in chunks.items() if d != "time"}
            out = xr.apply_ufunc(
                _classical_block, x,
                obs.chunk({**{d: c for d, c in spatial.items() if d in obs.dims},
                           "time_obs": -1}),
                hist.chunk({**spatial, "time_hist": -1}),
                input_core_dims=[["time"], ["time_obs"], ["time_hist"]],
                output_core_dims=[["time"]], dask="parallelized", output_dtypes=[x.dtype],
                kwargs={"method": req.method, "var": v, "frequency": frequency,
                        "t_obs": obs["time_obs"].values, "t_hist": hist["time_hist"].values,
                        "t_fut": times, "bounds": bounds, "slots": plan},
            ).transpose(*x.dims)
            if not U.same(have, want):
                out = _convert(out, want, have, source)
            corrected[v] = out
        detail = (f"method {req.method} from ibicus, reference {', '.join(map(str, reference))}, "
                  f"calibration {format_period(calibration)}")
        if plans:
            detail += ", " + ", ".join(dict.fromkeys(plans))
    out_ds = _assemble(ds, corrected, req, detail)
    out_ds = restore_layout(out_ds, layout)
    src_for_enc = restore_layout(ds, layout)
    encoding = _encoding(out_ds, src_for_enc, time_encoding)
    return write_atomic(out_ds, output, encoding, progress=req.progress,
                        threads=apply_cfg.threads)


def _convert(da: xr.DataArray, have: str, want: str, source: str) -> xr.DataArray:
    try:
        out = U.convert(da, have, want, what=f"{source}: {da.name}",
                        difference=is_temperature_difference(da))
    except FieldError as exc:
        raise DataError(f"{source}: variable {da.name!r} is in {have!r}, the correction works "
                        f"in {want!r}, and these do not convert ({exc})") from exc
    out.attrs = {**da.attrs, "units": want}
    return out


def _assemble(ds: xr.Dataset, corrected: dict[str, xr.DataArray], req: CorrectionRequest,
              detail: str) -> xr.Dataset:
    keep = list(corrected)
    for b in map(str, ds.data_vars):
        # time bounds, and what has no time axis: lat_bnds/lon_bnds, a grid mapping, areas
        if b not in keep and (b in ("time_bounds", "time_bnds") or "time" not in ds[b].dims):
            keep.append(b)
    out = ds[keep].copy()
    for v, da in corrected.items():
        attrs = dict(ds[v].attrs)
        attrs["bias_adjustment"] = detail
        out[v] = da.assign_attrs(attrs)
    attrs = dict(ds.attrs)
    attrs.pop("source_file", None)
    if "tracking_id" in attrs:
        attrs["input_tracking_id"] = attrs.pop("tracking_id")
    old = str(attrs.get("history", "")).strip()
    line = _history_line(req, detail)
    attrs["history"] = f"{line}\n{old}" if old else line
    conv = str(attrs.get("Conventions", ""))
    if "CF-" not in conv:
        attrs["Conventions"] = (conv + " CF-1.8").strip()
    attrs["bias_adjustment"] = detail
    attrs["input_files"] = ", ".join(map(str, req.inputs))
    out.attrs = attrs
    return out
