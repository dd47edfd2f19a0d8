"""Train the learned distribution correction on a calibration period and save a checkpoint.

A free-running simulation's weather is not ERA5's weather, so day-by-day differences are
noise. What the network learns instead are the two *distributions*: the conditional quantile
functions of the reference and of the calibration simulation, given season, point,
neighbourhood climatology and variable, fitted with the pinball (quantile) loss on randomly
drawn quantile levels. Their difference is the correction (see
:mod:`atmocorrect.models.offline_quantile`); at correction time it is read at each value's
quantile level relative to its own era's seasonal climate (:mod:`atmocorrect.offline.apply`,
:mod:`atmocorrect.offline.climatology`), which keeps the simulation's climate-change signal.

Example
-------
>>> from atmocorrect.data.samples import sample_data_dir, DAILY_HISTORICAL, DAILY_REFERENCE
>>> d = sample_data_dir()
>>> if d is not None:  # doctest: +SKIP
...     train_offline([d / DAILY_HISTORICAL], [d / DAILY_REFERENCE], "runs/ckpt",
...                   PairConfig(("tas",)), TrainConfig(steps=300))
PosixPath('runs/ckpt')
"""

from __future__ import annotations

import argparse
import dataclasses
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..checkpoint import FieldSpec, Manifest, sha256_file, write_checkpoint
from ..data.coords import cell_latlon, member_dims
from ..data.pairs import Pair, PairConfig, load_pair
from ..data.timeaxis import (
    format_period,
    parse_period,
    require_period,
    season_position,
    select_years,
)
from ..errors import DataError, UsageError
from .climatology import fit_moments
from .config import (
    DIURNAL,
    TRUNKS,
    ApplyConfig,
    NetworkConfig,
    TrainConfig,
    add_pair_arguments,
    parse_mapping,
    physical_bounds,
)
from .diurnal import (
    constant_columns,
    describe_slots,
    pair_slots,
    slot_name,
    source_files,
    step_seconds,
)
from .features import PATCH_MONTHS, climatology_patches, join_slot_patches, point_features
from .wetdays import jitter_dry, wet_threshold

if TYPE_CHECKING:
    import xarray as xr

MIN_VALUES_PER_POINT = 24
MOMENT_HARMONICS = 3


@dataclasses.dataclass
class VariableData:
    """Calibration values of one variable, transformed (identity, log or logit), not
    standardised."""

    name: str
    units: str
    transform: str
    offset: float
    dry: float
    mean: float
    std: float
    sim: np.ndarray  # (time, points)
    ref: np.ndarray
    sim_season: np.ndarray
    ref_season: np.ndarray
    moments: np.ndarray  # (points, 2, 2 * MOMENT_HARMONICS + 1), see offline.climatology
    wet_threshold: float = 0.0  # dry days below it are jittered (offline.wetdays), 0: none
    dry_fraction: float = 0.0  # share of calibration values below it (sim or ref, the larger)
    lower: float | None = None  # physical bounds (config.physical_bounds), None: unbounded
    upper: float | None = None


@dataclasses.dataclass
class TrainingData:
    variables: list[VariableData]
    lat: np.ndarray  # per point (flattened grid)
    lon: np.ndarray
    grid_shape: tuple[int, ...]  # (rows, columns) along the horizontal dims, or (points,)
    point_feats: np.ndarray
    frequency: str
    timestep_seconds: float | None
    #: points with reference values of every variable (False: masked in the reference,
    #: calibrated on nothing and written as missing values by ``correct``)
    has_reference: np.ndarray | None = None
    #: sub-daily data corrected per time of day: the slots (seconds after 00:00), each
    #: variable's series at each slot a variable of its own (``tas@03:00``); empty: none
    slots: tuple[int, ...] = ()


def _flatten(da) -> np.ndarray:
    """(time, lat, lon) or (time, point...) -> (time, points) float64."""
    return np.asarray(da.values, dtype=np.float64).reshape(da.shape[0], -1)


def _pooled(da, members: tuple[str, ...]) -> np.ndarray:
    """(members x time, points): the members' series one after the other (each a sample of
    the model's climate at the same points), or :func:`_flatten` without members."""
    if not members:
        return _flatten(da)
    stacked = da.stack(_member=members).transpose("_member", "time", ...)
    return np.concatenate([_flatten(stacked.isel(_member=k))
                           for k in range(stacked.sizes["_member"])])


def _grid_points(da) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """Latitude and longitude per point, in the order of :func:`_flatten`, and the grid's
    shape: (nlat, nlon) of a regular grid, (rows, columns) along the two dims of a curvilinear
    grid (``rlat``, ``rlon``: whatever dims the 2-D ``lat``/``lon`` span), (points,) for
    points along one dim (stations), whose neighbourhood is then the nearest points."""
    lat, lon = da["lat"], da["lon"]
    if lat.ndim == 1 and lon.ndim == 1 and lat.dims == ("lat",) and lon.dims == ("lon",):
        la, lo = np.meshgrid(lat.values, lon.values, indexing="ij")
        return la.ravel().astype(float), lo.ravel().astype(float), (lat.size, lon.size)
    la, lo = cell_latlon(da)
    shape = tuple(da.shape[1:])
    grid: tuple[int, ...]
    if len(shape) == 1:
        grid = (shape[0],)
    else:
        grid = (shape[0], int(np.prod(shape[1:])))
    return la.values.ravel().astype(float), lo.values.ravel().astype(float), grid


def remove_trend(x: np.ndarray, times: np.ndarray, season: np.ndarray,
                 harmonics: int = MOMENT_HARMONICS) -> np.ndarray:
    """``x`` (time, points) without its linear trend, fitted per point beside the seasonal
    harmonics and centred on the middle of the period (the mean is kept)."""
    from .climatology import design, fit_columns

    yrs = np.array([t.year + (t.dayofyr - 1) / 366.0 for t in np.asarray(times).ravel()])
    trend = yrs - yrs.mean()
    d = np.concatenate([design(season, harmonics), trend[:, None]], axis=1)
    coef = fit_columns(d, x)
    return x - trend[:, None] * np.nan_to_num(coef[-1])[None, :]


def _bounds(var: str, units: str, transform: str, where: str
            ) -> tuple[float | None, float | None]:
    """Physical bounds of ``var`` (:func:`~atmocorrect.offline.config.physical_bounds`);
    a ``logit`` transform needs both."""
    try:
        lower, upper = physical_bounds(var, units)
    except DataError as exc:
        raise DataError(f"simulation {where}: {exc}") from None
    if transform == "logit" and (lower is None or upper is None):
        raise DataError(
            f"simulation {where}: variable {var!r} has the logit transform but no known "
            f"bounds on both sides (it has {lower}, {upper}); logit is for fractions such as "
            "hurs, clt, siconc, tasskew, prsnratio")
    return lower, upper


def _warn_outside(x: np.ndarray, lower: float, upper: float, units: str, var: str, role: str,
                  where: str) -> None:
    """One warning when calibration values lie beyond the bounds (CMIP6 hurs above 100 %:
    supersaturation): they are clipped for the transform, not refused. ``var``: the name of
    the series (``hurs``, or ``hurs@12:00`` for one time of day)."""
    from ..models.offline_quantile import count_outside, outside_message

    if count_outside(x, lower, upper):
        warnings.warn(f"{role} {where}: variable {var!r}: "
                      f"{outside_message(x, lower, upper, units)} in the calibration period; "
                      "clipped to the bounds for the logit transform", stacklevel=3)


def _series(pair: Pair, sim: xr.Dataset, ref: xr.Dataset, cfg: TrainConfig, step: int
            ) -> tuple[tuple[int, ...], list[tuple[str, str, xr.Dataset, xr.Dataset, int]]]:
    """The calibration series the network learns: ``(variable, name, simulation,
    reference, time of day in seconds after 00:00 or 0)`` per variable, or for sub-daily data
    with ``cfg.diurnal == "slots"`` per variable and time of day (``tas@03:00``: the time
    steps at that time of day, variable-major, and the reference's values over the same steps,
    see
    :func:`~atmocorrect.offline.diurnal.calibration_slots`) and the slots (seconds after
    00:00; empty without slots). ``step``: the simulation's time step in seconds."""
    if pair.frequency != "subdaily" or cfg.diurnal == "pooled":
        return (), [(v, v, sim, ref, 0) for v in pair.variables]
    slots: tuple[int, ...] = ()
    series = []
    for v in pair.variables:
        s, s_rows, r_rows = pair_slots(pair, v, sim[v], ref[v], step)
        if slots and s != slots:  # one time axis: cannot happen
            raise DataError(f"the simulation's variables have different times of day: {v!r} "
                            f"{describe_slots(s)}, {pair.variables[0]!r} {describe_slots(slots)}")
        slots = s
        series += [(v, slot_name(v, t), sim.isel(time=si), ref.isel(time=ri), t)
                   for t, si, ri in zip(s, s_rows, r_rows, strict=True)]
    return slots, series


def _refuse_constant_slot(x: np.ndarray, name: str, units: str, role: str, where: str,
                          cfg: TrainConfig) -> None:
    """Refuse a time of day (``name``: ``rsds@00:30``) whose values are constant at every
    point (night-time radiation: 0): it has no distribution to learn a quantile function of
    (its log transform would be of 0 everywhere). A single constant point (ice-free sea, a
    desert's dry days) is left to the transforms, as for daily data."""
    finite = np.isfinite(x).any(0)
    if "@" not in name or not finite.any():
        return
    if constant_columns(x).sum() < finite.sum():
        return
    raise DataError(
        f"{role} {where}: variable {name!r} is constant ({float(np.nanmax(x)):g} {units} at "
        f"every point) over {format_period(cfg.calibration)}: a time of day without a "
        "distribution (night-time radiation) cannot be corrected on its own; use one "
        "correction over all hours (--diurnal pooled)")


def _variable_data(pair: Pair, var: str, name: str, sim: xr.Dataset, ref: xr.Dataset,
                   cfg: TrainConfig, members: tuple[str, ...], step: float,
                   slot: int = 0) -> VariableData:
    """The calibration values of ``var`` in ``sim``/``ref`` (its whole calibration period, or
    one time of day's steps), transformed, detrended, checked, named ``name``; ``step`` is
    the simulation's time step in seconds, ``slot`` the series' time of day (seconds after
    00:00; 0 without slots), which seeds the dry-day draws with the point."""
    from ..models.offline_quantile import logit_forward

    n_members = int(np.prod([sim.sizes[d] for d in members], dtype=np.int64))
    s_times = np.tile(sim["time"].values, n_members)  # the members, one after the other
    s_season = season_position(s_times, pair.frequency)
    r_season = season_position(ref["time"].values, pair.frequency)
    xs, xr_ = _pooled(sim[var], members), _flatten(ref[var])
    transform = cfg.transform(var)
    units = str(sim[var].attrs.get("units", "1"))
    for role, x in (("simulation", xs), ("reference", xr_)):
        _refuse_constant_slot(x, name, units, role, source_files(pair, role, var), cfg)
    lower, upper = _bounds(var, units, transform, source_files(pair, "simulation", var))
    offset = dry = wet = dry_fraction = 0.0
    if transform == "logit":
        assert lower is not None and upper is not None
        for role, x in (("simulation", xs), ("reference", xr_)):
            _warn_outside(x, lower, upper, units, name, role, source_files(pair, role, var))
        xs, xr_ = logit_forward(xs, lower, upper), logit_forward(xr_, lower, upper)
    if transform == "log":
        for role, x in (("simulation", xs), ("reference", xr_)):
            low = float(np.nanmin(x)) if np.isfinite(x).any() else 0.0
            if low < 0:
                raise DataError(
                    f"{role} {source_files(pair, role, var)}: variable {name!r} has negative "
                    f"values (minimum {low:.4g} {units}) in {format_period(cfg.calibration)}; "
                    "its log transform needs values >= 0 (another transform: "
                    "TrainConfig.transforms)")
        offset = 0.01 * float(np.nanmean(xs))
        dry = 0.5 * offset
        wet = wet_threshold(var, sim[var].attrs.get("units"), step)
        with np.errstate(invalid="ignore"):
            dry_fraction = max(float(np.mean(a < wet)) for a in (xs, xr_))
        if wet > 0:  # jittered dry values are > 0: the offset only guards log(0)
            offset = dry = 1e-3 * wet
        cols = np.arange(xs.shape[1])
        xs = jitter_dry(xs, wet, cols, seed=cfg.seed, slot=slot)
        xr_ = jitter_dry(xr_, wet, cols, seed=cfg.seed + 1, slot=slot)
        xs, xr_ = np.log(xs + offset), np.log(xr_ + offset)
    if cfg.detrend and transform == "identity":  # each member its own trend
        n_t = sim.sizes["time"]
        xs = np.concatenate([
            remove_trend(xs[k * n_t:(k + 1) * n_t], sim["time"].values,
                         s_season[k * n_t:(k + 1) * n_t]) for k in range(n_members)])
        xr_ = remove_trend(xr_, ref["time"].values, r_season)
    counts = np.isfinite(xs).sum(axis=0)
    if counts.min() < MIN_VALUES_PER_POINT:
        raise DataError(
            f"variable {name!r}: some points have only {int(counts.min())} calibration values "
            f"in {format_period(cfg.calibration)} (need {MIN_VALUES_PER_POINT})"
        )
    mean, std = float(np.nanmean(xs)), float(np.nanstd(xs))
    if not np.isfinite(std) or std <= 0:
        raise DataError(f"variable {name!r} is constant over the calibration period")
    return VariableData(name, units, transform, offset, dry, mean, std, xs, xr_, s_season,
                        r_season, fit_moments(xs, s_season, MOMENT_HARMONICS), wet,
                        dry_fraction, lower, upper)


def prepare(pair: Pair, cfg: TrainConfig) -> TrainingData:
    """Calibration arrays, transforms, normalisation and point features from a pair: one
    series per variable, or per variable and time of day for sub-daily data with
    ``cfg.diurnal == "slots"`` (see :mod:`atmocorrect.offline.diurnal`)."""
    for role, ds in (("simulation", pair.sim), ("reference", pair.ref)):
        files = sorted({f for k, fs in pair.sources.items() if k.startswith(role) for f in fs})
        require_period(ds, cfg.calibration, f"the {role} {', '.join(files)}")
    sim = select_years(pair.sim, cfg.calibration, "the simulation")
    ref = select_years(pair.ref, cfg.calibration, "the reference")
    members = member_dims(sim[pair.variables[0]])
    one_member = sim.isel({d: 0 for d in members}, drop=True)
    step = float(step_seconds(sim["time"].values))
    slots, series = _series(pair, sim, ref, cfg, int(round(step)))
    out = [_variable_data(pair, var, name, s, r, cfg, members, step, slot)
           for var, name, s, r, slot in series]
    lat, lon, grid_shape = _grid_points(one_member[pair.variables[0]])
    clim = np.stack(
        [
            np.stack([(np.nanmean(v.sim, 0) - v.mean) / v.std, np.nanstd(v.sim, 0) / v.std - 1.0])
            for v in out
        ]
    )
    feats = point_features(lat, lon, clim, grid_shape, cfg.network.neighbourhood)
    has_reference = np.logical_and.reduce([np.isfinite(v.ref).any(axis=0) for v in out])
    return TrainingData(out, lat, lon, grid_shape, feats, pair.frequency, step, has_reference,
                        slots)


def has_dry_days(data: TrainingData) -> bool:
    """Whether a variable is dry (below its wet-day threshold) on more than 1 % of the
    calibration steps of the simulation or the reference (daily, not monthly, precipitation)."""
    return any(v.dry_fraction > 0.01 for v in data.variables)


def n_inputs(data: TrainingData, network: NetworkConfig) -> int:
    if network.trunk == "transformer":
        return token_layout(data, network).n_inputs
    return 2 * network.harmonics + data.point_feats.shape[1] + len(data.variables)


def token_layout(data: TrainingData, network: NetworkConfig):
    """The transformer trunk's input layout for these data (one token per variable and
    neighbourhood cell, a climatology patch each)."""
    from ..models.offline_quantile import TokenLayout

    slots = max(1, len(data.slots))
    return TokenLayout(harmonics=network.harmonics, n_vars=len(data.variables),
                       tokens_per_var=(2 * network.neighbourhood + 1) ** 2,
                       patch_dim=4 * PATCH_MONTHS * slots, slots=slots)


def patches_of(data: TrainingData, network: NetworkConfig) -> tuple[np.ndarray, np.ndarray]:
    """Climatology patches and padding mask of every point (see
    :func:`~atmocorrect.offline.features.climatology_patches`), from the calibration
    simulation standardised with each variable's statistics; with time-of-day slots one
    token per variable and cell, its patch the slots' patches one after the other
    (:func:`~atmocorrect.offline.features.join_slot_patches`)."""
    patches, mask = climatology_patches([(v.sim - v.mean) / v.std for v in data.variables],
                                        [v.sim_season for v in data.variables],
                                        data.grid_shape, network.neighbourhood, data.lat,
                                        data.lon)
    if data.slots:
        return join_slot_patches(patches, mask, len(data.slots),
                                 (2 * network.neighbourhood + 1) ** 2)
    return patches, mask


def season_bins(frequency: str) -> int:
    """Seasonal resolution of the training contexts: 5-day bins (73) for daily and finer data,
    months for monthly data."""
    return 12 if frequency in ("month", "year") else 73


@dataclasses.dataclass
class _Group:
    """The values of one (variable, source), standardised, with the time steps of each bin."""

    var_index: int
    source: int
    values: np.ndarray  # (time, points), standardised, NaN where missing
    bin_times: np.ndarray  # (bins, max_len) time indices, -1 = padding
    #: the wet-day threshold, standardised, of a variable whose dry-day fraction is learned
    #: explicitly (NetworkConfig.hurdle); None: one quantile function over all values
    threshold: float | None = None


def uses_hurdle(v: VariableData, network: NetworkConfig) -> bool:
    """Whether the dry-day fraction of ``v`` is learned explicitly (``network.hurdle``, and
    ``v`` has a wet-day threshold)."""
    return network.hurdle and v.wet_threshold > 0


def standardised_threshold(v: VariableData) -> float:
    """The wet-day threshold in the standardised transformed space the network works in."""
    return (float(np.log(v.wet_threshold + v.offset)) - v.mean) / v.std


def _groups(data: TrainingData, n_bins: int, network: NetworkConfig) -> list[_Group]:
    out = []
    for vi, v in enumerate(data.variables):
        threshold = standardised_threshold(v) if uses_hurdle(v, network) else None
        for source, values, season in ((0, v.ref, v.ref_season), (1, v.sim, v.sim_season)):
            b = np.minimum((season * n_bins).astype(int), n_bins - 1)
            members = [np.flatnonzero(b == k) for k in range(n_bins)]
            width = max(len(m) for m in members)
            bin_times = np.full((n_bins, width), -1, dtype=np.int64)
            for k, m in enumerate(members):
                bin_times[k, : len(m)] = m
            std = ((values - v.mean) / v.std).astype(np.float32)
            out.append(_Group(vi, source, std, bin_times, threshold))
    return out


def _contexts(group: _Group, points: np.ndarray):
    """Sorted values per (bin, point) context: (bins * points, max_len), +inf padded, their
    counts, prefix sums and counts of dry values. With a learned dry-day fraction the sorted
    values and their counts are the wet values' only (the dry ones are counted)."""
    idx = group.bin_times  # (bins, L)
    vals = group.values[np.maximum(idx, 0)][:, :, points]  # (bins, L, P)
    vals = np.where((idx >= 0)[:, :, None] & np.isfinite(vals), vals, np.inf)
    vals = np.sort(vals, axis=1).transpose(0, 2, 1).reshape(-1, idx.shape[1])
    n_dry = np.zeros(vals.shape[0])
    if group.threshold is not None:
        dry = vals < np.float32(group.threshold)
        n_dry = dry.sum(axis=1).astype(np.float64)
        vals = np.sort(np.where(dry, np.inf, vals), axis=1)
    n = np.isfinite(vals).sum(axis=1)
    prefix = np.concatenate(
        [np.zeros((vals.shape[0], 1)), np.cumsum(np.where(np.isfinite(vals), vals, 0.0), 1)], 1
    )
    return vals.astype(np.float32), n.astype(np.float32), prefix.astype(np.float64), \
        n_dry.astype(np.float32)


def fit(data: TrainingData, cfg: TrainConfig, progress: bool = False):
    """Fit the quantile network by minimising the exact pinball loss over all calibration
    values, on a grid of quantile levels; returns (network, history of losses).

    Values are grouped in contexts (variable, source, point, seasonal bin); for each context
    the loss of a candidate quantile is computed exactly from sorted values and prefix sums,
    so each step sees every value at once (deterministic, no sampling noise). Grids with more
    than ``points_per_step`` points are visited in random subsets of points.
    """
    import torch
    from scipy.special import ndtri

    from ..models.offline_quantile import (
        QuantileNet,
        input_features,
        quantile_from_coeffs,
        token_inputs,
    )

    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    prev_threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    n_bins = season_bins(data.frequency)
    n_points = data.point_feats.shape[0]
    n_vars = len(data.variables)
    netcfg = cfg.network.resolved(has_dry_days(data))
    transformer = netcfg.trunk == "transformer"
    layout = token_layout(data, netcfg) if transformer else None
    patches, patch_mask = patches_of(data, netcfg) if transformer else (None, None)
    net = QuantileNet(n_inputs(data, netcfg), netcfg.hidden, netcfg.layers, netcfg.ramps,
                      trunk=netcfg.trunk, layout=layout, d_model=netcfg.d_model,
                      heads=netcfg.heads, transformer_layers=netcfg.transformer_layers,
                      hurdle=netcfg.hurdle)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps, eta_min=cfg.lr * 0.02)
    groups = _groups(data, n_bins, netcfg)
    taus_np = (np.arange(cfg.quantile_levels) + 0.5) / cfg.quantile_levels
    taus = torch.from_numpy(taus_np.astype(np.float32))[None, :]
    z_grid = torch.from_numpy(ndtri(taus_np).astype(np.float32))[None, :]
    centres = (np.arange(n_bins) + 0.5) / n_bins
    full = n_points <= cfg.points_per_step
    cache: dict[Any, Any] = {}

    def batch(points: np.ndarray):
        """Network inputs, the row of them each context reads, and the contexts' sorted
        values, counts, prefix sums and sources. The MLP gets one input row per context; the
        transformer one per (variable, bin, point), shared by its two sources (half the
        attention work)."""
        feats, sorted_, counts, prefixes, sources, drys, flags = [], [], [], [], [], [], []
        season = np.repeat(centres, points.size)
        pts = np.tile(points, n_bins)
        per_var = n_bins * points.size
        for gi, g in enumerate(groups):
            if full and gi in cache:
                ctx = cache[gi]
            else:
                vals, n, prefix, n_dry = _contexts(g, points)
                keep = (n + n_dry) > 0
                if transformer:
                    x = torch.from_numpy(g.var_index * per_var + np.flatnonzero(keep))
                else:
                    x = torch.from_numpy(input_features(
                        season, data.point_feats[pts], g.var_index, n_vars,
                        cfg.network.harmonics)[keep])
                ctx = (x, torch.from_numpy(vals[keep]),
                       torch.from_numpy(n[keep]), torch.from_numpy(prefix[keep]),
                       torch.full((int(keep.sum()),), g.source, dtype=torch.long),
                       torch.from_numpy(n_dry[keep]),
                       torch.full((int(keep.sum()),), float(g.threshold is not None)))
                if full:
                    cache[gi] = ctx
            for lst, item in zip((feats, sorted_, counts, prefixes, sources, drys, flags), ctx,
                                 strict=True):
                lst.append(item)
        width = max(s.shape[1] for s in sorted_)
        pad = [torch.nn.functional.pad(s, (0, width - s.shape[1]), value=float("inf"))
               for s in sorted_]
        ppad = [torch.nn.functional.pad(p, (0, width + 1 - p.shape[1]), mode="replicate")
                for p in prefixes]
        if transformer:
            if full and "table" in cache:
                inputs = cache["table"]
            else:
                inputs = torch.from_numpy(np.concatenate([
                    token_inputs(season, data.point_feats[pts], patches[pts], patch_mask[pts],
                                 vi, layout) for vi in range(n_vars)]))
                if full:
                    cache["table"] = inputs
            rows = torch.cat(feats)
        else:
            inputs = torch.cat(feats)
            rows = torch.arange(inputs.shape[0])
        return (inputs, rows, torch.cat(pad), torch.cat(counts), torch.cat(ppad),
                torch.cat(sources), torch.cat(drys), torch.cat(flags))

    history: list[float] = []
    iterator: Any = range(cfg.steps)
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc="train offline", unit="step")
    all_points = np.arange(n_points)
    try:
        for _step in iterator:
            points = all_points if full else np.sort(
                rng.choice(n_points, cfg.points_per_step, replace=False))
            x, rows, vals, n, prefix, src, n_dry, hurdle_rows = batch(points)
            coeffs = net.coeffs(x)[rows, src]
            q = quantile_from_coeffs(coeffs, z_grid.expand(rows.shape[0], -1), net.ramps)
            k = torch.searchsorted(vals, q.detach().contiguous(), right=True)
            s_k = torch.gather(prefix, 1, k).float()
            s_n = torch.gather(prefix, 1, n.long()[:, None]).float()
            kf = k.float()
            nn_ = n[:, None]
            loss_ctx = taus * ((s_n - s_k) - (nn_ - kf) * q) + (1 - taus) * (kf * q - s_k)
            if net.hurdle:  # wet values: the pinball loss above; dry fraction: cross-entropy
                logit = coeffs[:, -1]
                dry_loss = (n_dry * torch.nn.functional.softplus(-logit)
                            + n * torch.nn.functional.softplus(logit)) * hurdle_rows
                loss = (loss_ctx.sum() + taus.shape[1] * dry_loss.sum()) / (
                    (n + n_dry).sum() * taus.shape[1])
            else:
                loss = loss_ctx.sum() / (n.sum() * taus.shape[1])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            history.append(loss.item())
    finally:
        torch.set_num_threads(prev_threads)
    return net, history


def simulation_quantile_table(v: VariableData, apply_cfg: ApplyConfig, frequency: str
                              ) -> np.ndarray:
    """The calibration simulation's own quantiles, as the apply step ranks values: the
    standardised anomalies from the seasonal mean and spread (``v.moments``), their empirical
    quantile function within ``rank_window_days`` of each season node, at the apply step's
    standard-normal scores; (points, nodes, z_levels), float32.

    For a variable whose dry-day fraction is learned, the apply step takes the simulation's
    side of the correction from this table rather than from the network (see
    :func:`~atmocorrect.offline.apply.ml_correct_points`): a value's change from the
    calibration climate at its quantile level is then measured against the same estimator that
    gave it that level, as QDM does, and is exactly zero in the calibration period.
    """
    from scipy.special import ndtr

    from .apply import moments_at

    n_nodes = apply_cfg.nodes(frequency)
    centres = (np.arange(n_nodes) + 0.5) / n_nodes
    half = apply_cfg.rank_half_width(frequency)
    tau = ndtr(apply_cfg.z_grid())
    mean, spread = moments_at(v.moments, v.sim_season)
    anom = (v.sim - mean) / spread
    out = np.empty((anom.shape[1], n_nodes, tau.size), dtype=np.float32)
    for k, centre in enumerate(centres):
        window = anom[np.abs((v.sim_season - centre + 0.5) % 1.0 - 0.5) <= half]
        with warnings.catch_warnings():  # a point without values: NaN, never used
            warnings.simplefilter("ignore", RuntimeWarning)
            out[:, k] = np.nanquantile(window, tau, axis=0, method="hazen").T
    return out


def checkpoint_tensors(net, data: TrainingData, cfg: TrainConfig,
                       apply_cfg: ApplyConfig | None = None) -> tuple[dict, dict]:
    """The tensors of a checkpoint (weights ``net.*``, grid, point features, climatology
    moments, and for the transformer the climatology patches ``grid.patches`` and their
    padding mask ``grid.patch_mask``) and the hyperparameters they add (the token layout;
    the time-of-day slots of sub-daily data corrected per time of day, ``diurnal``)."""
    import torch

    tensors = {f"net.{k}": v for k, v in net.state_dict().items()}
    tensors["grid.lat"] = torch.from_numpy(data.lat)
    tensors["grid.lon"] = torch.from_numpy(data.lon)
    tensors["grid.features"] = torch.from_numpy(data.point_feats)
    for v in data.variables:
        tensors[f"clim.{v.name}"] = torch.from_numpy(v.moments)
    if data.has_reference is not None and not data.has_reference.all():
        tensors["grid.has_reference"] = torch.from_numpy(data.has_reference.astype(np.uint8))
    extra_hyper: dict[str, Any] = {}
    if cfg.network.trunk == "transformer":
        patches, patch_mask = patches_of(data, cfg.network)
        tensors["grid.patches"] = torch.from_numpy(patches)
        tensors["grid.patch_mask"] = torch.from_numpy(patch_mask.astype(np.uint8))
        extra_hyper["tokens"] = token_layout(data, cfg.network).to_dict()
    hurdles = [v for v in data.variables if uses_hurdle(v, cfg.network)]
    if hurdles:  # the simulation's side of their correction (simulation_quantile_table)
        apply_cfg = apply_cfg or ApplyConfig()
        for v in hurdles:
            tensors[f"simq.{v.name}"] = torch.from_numpy(
                simulation_quantile_table(v, apply_cfg, data.frequency))
        z = apply_cfg.z_grid()
        extra_hyper["simulation_quantiles"] = {
            "nodes": apply_cfg.nodes(data.frequency), "z_min": float(z[0]),
            "z_max": float(z[-1]),
            "z_levels": apply_cfg.z_levels, "window_days": apply_cfg.rank_window_days}
    if data.slots:  # one correction per time of day: the network's variables are the slots'
        extra_hyper["diurnal"] = {"slots": list(data.slots),
                                  "times_of_day": describe_slots(data.slots)}
    return tensors, extra_hyper


def _file_entries(paths: Sequence[str]) -> list[dict[str, str]]:
    out = []
    for p in paths:
        path = Path(p)
        out.append({"path": str(path.resolve()), "sha256": sha256_file(path)})
    return out


def _members_entry(da) -> dict[str, Any]:
    """The ensemble members pooled in the calibration (``{}`` for a single run)."""
    dims = member_dims(da)
    if not dims:
        return {}
    return {"dims": list(dims), "count": int(np.prod([da.sizes[d] for d in dims])),
            "labels": {d: [str(v) for v in da[d].values] if d in da.coords else []
                       for d in dims}}


def train_offline(
    sim_paths: Sequence[str | Path],
    ref_paths: Sequence[str | Path],
    out_dir: str | Path,
    pair_config: PairConfig,
    config: TrainConfig | None = None,
    apply_config: ApplyConfig | None = None,
    overwrite: bool = True,
    progress: bool = False,
) -> Path:
    """Read the pair, fit the network on the calibration period, write the checkpoint."""
    cfg = config or TrainConfig()
    apply_cfg = apply_config or ApplyConfig()
    started = time.perf_counter()
    pair = load_pair(sim_paths, ref_paths, dataclasses.replace(pair_config, pool_members=True))
    data = prepare(pair, cfg)
    network = cfg.network.resolved(has_dry_days(data))
    cfg = dataclasses.replace(cfg, network=network)  # the manifest records what was used
    net, history = fit(data, cfg, progress=progress)
    tensors, extra_hyper = checkpoint_tensors(net, data, cfg, apply_cfg)
    tail = history[-max(1, len(history) // 10):]
    manifest = Manifest(
        fields=tuple(
            FieldSpec(name=v, units=str(pair.sim[v].attrs.get("units", "1")), corrected=True,
                      dims=tuple(reversed([d for d in pair.sim[v].dims
                                           if d not in member_dims(pair.sim[v])])))
            for v in pair.variables
        ),
        model_class="offline-quantile-delta",
        hyperparameters={
            "network": dataclasses.asdict(cfg.network),
            "n_inputs": n_inputs(data, cfg.network),
            "frequency": data.frequency,
            "grid_shape": list(data.grid_shape),
            "apply": dataclasses.asdict(apply_cfg),
            **extra_hyper,
        },
        timestep_seconds=data.timestep_seconds,
        normalization={
            v.name: {"transform": v.transform, "offset": v.offset, "dry": v.dry,
                     "wet_threshold": v.wet_threshold, "mean": v.mean, "std": v.std,
                     "lower": v.lower, "upper": v.upper,
                     **({"hurdle": True} if uses_hurdle(v, cfg.network) else {})}
            for v in data.variables
        },
        provenance={
            "kind": "offline distribution correction",
            "simulation": _file_entries(sorted({f for k, fs in pair.sources.items()
                                                if k.startswith("simulation:") for f in fs})),
            "reference": _file_entries(sorted({f for k, fs in pair.sources.items()
                                               if k.startswith("reference:") for f in fs})),
            "reference_names": {v: pair.sources[f"reference:{v}"] for v in pair.variables},
            "calibration": format_period(cfg.calibration),
            "pair": {
                "variables": list(pair_config.variables),
                "reference_names": dict(pair_config.reference_names),
                "method": pair_config.method,
                "outside": pair_config.outside,
                "convert_calendar": pair_config.convert_calendar,
                "accumulation_period": pair_config.accumulation_period,
            },
            "calendars": {"simulation": pair.sim_calendar, "reference": pair.ref_calendar},
            "members": _members_entry(pair.sim[pair.variables[0]]),
            "config": {"train": cfg.to_dict()},
        },
        metrics={
            "final_pinball_loss": float(np.mean(tail)),
            "train_seconds": round(time.perf_counter() - started, 2),
            "points": int(data.lat.size),
        },
    )
    return write_checkpoint(out_dir, manifest, tensors, overwrite=overwrite)


# ---------------------------------------------------------------- command line (for delegation)
DESCRIPTION = """\
Train the learned offline correction of finished simulation output against a reference
(e.g. ERA5), and write a checkpoint for `atmocorrect correct --method ml --model DIR`.

A free-running simulation does not have the reference's weather, so no day is paired with a
day: the network learns the two distributions, the reference's and the simulation's
conditional quantile functions given season, grid point (and its neighbourhood) and variable,
with the pinball loss over every value of the calibration period. `atmocorrect correct` then
moves each value by the difference of the two at the value's quantile level within its own
31-year era, which keeps the simulation's climate-change signal (as quantile delta mapping
does).

What the readers handle: netCDF, GRIB and zarr; lat/latitude, north-to-south latitudes, 0..360
or -180..180 longitudes (also a regional reference box across the Greenwich meridian); ERA5's
expver and the new CDS's valid_time; noleap/360_day/gregorian calendars (a daily reference is
converted to the simulation's calendar); units checked against the values and converted (K,
degC, Pa, hPa, precipitation flux or accumulated depth). A finer reference (hourly ERA5 for a
daily model) is aggregated with the statistic the simulation variable asks for (its
cell_methods, else tasmax: daily maximum, tasmin: minimum, others: mean), complete days only;
ERA5-Land's running totals of tp are de-accumulated. The reference is interpolated bilinearly
to the simulation's grid, curvilinear grid (CORDEX rlat/rlon) or points (stations).
Calibration years must be covered by both.
Sub-daily data (3-hourly, hourly) get one correction per time of day (--diurnal slots: each
time of day a variable of its own for the network), so that a wrong diurnal cycle is
corrected; `correct` then takes inputs at those times of day only.
Training takes 10-30 s on one CPU thread for a few points and 26 years of daily data."""

EPILOG = """\
examples:
  # daily temperature, ERA5 interpolated to the model's grid, calibration 1979-2004
  atmocorrect train offline --simulation tas_day_IPSL-CM6A-LR_historical.nc \\
      --reference era5_daily_t2m.nc --variables tas --calibration 1979-2004 --out ckpt/
  atmocorrect correct --model ckpt/ --input tas_day_ssp585.nc --output tas_ssp585_ml.nc

  # daily maximum temperature with a reference that calls it t2m (new-CDS daily statistics)
  atmocorrect train offline --simulation tasmax_day_hist.nc --reference era5_t2m_dailymax.nc \\
      --variables tasmax --reference-name tasmax=t2m --out ckpt_tasmax/

  # daily maximum temperature from hourly ERA5 t2m: the daily maximum of the hours
  atmocorrect train offline --simulation tasmax_day_hist.nc --reference era5_t2m_hourly_*.nc \
      --variables tasmax --reference-name tasmax=t2m --out ckpt_tasmax_hourly/

  # a CORDEX regional model (rotated pole) against E-OBS, cells outside E-OBS's land mask or
  # box dropped
  atmocorrect train offline --simulation tas_EUR-11_*_day_*.nc --reference tg_ens_mean_0.1deg.nc \
      --variables tas --outside drop --out ckpt_cordex/

  # daily precipitation (kg m-2 s-1) against ERA5 tp in m per day; model cells outside the
  # ERA5 box are dropped
  atmocorrect train offline --simulation pr_day_hist.nc --reference era5_tp_daily.nc \\
      --variables pr --accumulation-period 86400 --outside drop --out ckpt_pr/

  # monthly, several variables at once (one network serves them all)
  atmocorrect train offline --simulation tas_Amon.nc pr_Amon.nc psl_Amon.nc \\
      --reference era5_monthly.nc --variables tas pr psl --outside drop --out ckpt_mon/
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``atmocorrect train offline``."""
    parser.add_argument("--simulation", nargs="+", required=True, metavar="FILE",
                        help="historical simulation file(s) covering the calibration years "
                        "(netCDF/GRIB/zarr; several: split in time or one per variable)")
    parser.add_argument("--reference", nargs="+", required=True, metavar="FILE",
                        help="reference file(s), e.g. ERA5, covering the calibration years")
    parser.add_argument("--variables", nargs="+", required=True, metavar="VAR",
                        help="simulation variable names (CMIP: tas tasmax tasmin pr psl ...); "
                        "the reference is searched for the ERA5 names (t2m, mx2t, tp, msl ...)")
    add_pair_arguments(parser)
    parser.add_argument("--calibration", default="1979-2004", metavar="YYYY-YYYY",
                        help="calibration years (default 1979-2004)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="checkpoint directory to write")
    parser.add_argument("--steps", type=int, default=TrainConfig.steps,
                        help=f"Adam steps (default {TrainConfig.steps})")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--trunk", choices=TRUNKS, default=NetworkConfig.trunk,
                        help="trunk of the quantile network: an MLP on flat point and "
                        "neighbourhood features, or a transformer over climatology-patch "
                        f"tokens of the neighbourhood (default {NetworkConfig.trunk}; "
                        "docs/offline.md compares them)")
    parser.add_argument("--diurnal", choices=DIURNAL, default=TrainConfig.diurnal,
                        help="sub-daily data (3-hourly, hourly): one correction per time of "
                        "day, each time of day a variable of its own for the network, so a "
                        "wrong diurnal cycle is corrected (slots), or one over all hours "
                        f"(pooled); daily and monthly data are not affected (default "
                        f"{TrainConfig.diurnal})")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing checkpoint directory")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise UsageError(f"{out} exists; pass --overwrite to replace it")
    pair_cfg = PairConfig(
        variables=tuple(args.variables),
        reference_names=parse_mapping(args.reference_name, "--reference-name"),
        outside=args.outside,
        convert_calendar=args.convert_calendar,
        accumulation_period=args.accumulation_period,
    )
    cfg = TrainConfig(calibration=parse_period(args.calibration), steps=args.steps,
                      threads=args.threads, seed=args.seed,
                      network=NetworkConfig(trunk=getattr(args, "trunk", NetworkConfig.trunk)),
                      diurnal=getattr(args, "diurnal", TrainConfig.diurnal))
    path = train_offline(args.simulation, args.reference, out, pair_cfg, cfg, overwrite=True,
                         progress=not getattr(args, "quiet", False))
    print(f"wrote offline checkpoint {path}")
    return 0
