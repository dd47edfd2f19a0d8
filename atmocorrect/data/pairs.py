"""A simulation and its reference, read, checked and put on the simulation's grid and units.

This is where the readers, unit conversion, calendar checks and interpolation meet:

* variables are looked up by the simulation's CMIP name (``tas``, ``pr``, ``psl``) and, in
  the reference, by the usual ERA5 names (``t2m``, ``tp``, ``msl``) unless told otherwise;
* the reference is converted to the simulation's units (ERA5 ``tp`` accumulated in m to
  ``kg m-2 s-1``; degC to K) after both are checked for plausibility;
* daily and sub-daily references in another calendar than the simulation's are converted to
  it (``convert_calendar=True``, the default: ERA5 loses 29 February for a ``noleap`` model,
  the 31st days for a ``360_day`` one); only distributions are compared, never days, so
  nothing is lost; ``convert_calendar=False`` refuses instead; monthly data are matched by
  (year, month);
* a finer reference (hourly ERA5 for a daily model, daily for a monthly one) is aggregated to
  the simulation's steps with the statistic the simulation variable asks for (its CF
  ``cell_methods`` along time, else its name: ``tasmax`` the daily maximum, ``tasmin`` the
  minimum, everything else, precipitation fluxes included, the mean), on the dates' 00:00-24:00
  UTC days of the reference's own calendar (then converted), each value of an ERA5
  accumulation/maximum/minimum in the day of the step ending at its stamp (``tp`` at 00:00
  belongs to the day before); incomplete days (months) become missing values, with a warning,
  and irregular time steps are an error (:func:`aggregate_reference`);
* the reference is interpolated to the simulation's grid or points.

The reference is opened lazily (dask) and only its cells around the simulation's points are
read (:func:`~atmocorrect.data.regrid.reference_window`, :func:`read_reference`), before the
unit conversion, aggregation and interpolation: a global or continental reference, in one file
or split into many, takes the memory the simulation's domain needs, not the file's size.

Example
-------
>>> from atmocorrect.data.samples import sample_data_dir, DAILY_HISTORICAL, DAILY_REFERENCE
>>> d = sample_data_dir()
>>> if d is not None:  # doctest: +SKIP
...     pair = load_pair([d / DAILY_HISTORICAL], [d / DAILY_REFERENCE], PairConfig(("tas",)))
...     pair.ref["tas"].dims, pair.frequency
(('time', 'lat', 'lon'), 'day')
"""

from __future__ import annotations

import dataclasses
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import xarray as xr

from .. import units as U
from ..errors import DataError
from .conform import (
    check_plausible,
    conform_units,
    deaccumulate_daily_running_totals,
    is_accumulated_amount,
    is_precipitation,
    is_running_daily_total,
)
from .coords import check_time_and_grid_only, regular_axes
from .derived import (
    AFTER_AGGREGATION,
    COMPONENTS,
    TAS_NAMES,
    TASMAX_NAMES,
    TASMIN_NAMES,
    component_key,
    derive_reference,
    is_input_of,
    reference_components,
    why_not_derived,
)
from .readers import collect_variable, open_dataset
from .regrid import Frame, Method, Outside, interpolate_to, reference_window, subset_inside
from .timeaxis import (
    Frequency,
    calendar_of,
    canonical_calendar,
    check_overlap,
    describe_span,
    expected_steps,
    format_period,
    frequency_word,
    infer_frequency,
    period_index,
    regular_step,
    same_calendar,
    sorted_unique_time,
    step_back,
    whole_seconds,
)

#: Reference (ERA5) names of the CMIP variables, tried in order.
#: (ERA5 short names first, then CMIP, then E-OBS: tg, tx, tn, rr, pp, hu, qq, fg.) A reference
#: file that holds a single variable is used for a single requested variable whatever its name
#: (with a warning): ERA5 daily statistics from the new CDS call the daily maximum ``t2m`` too.
REFERENCE_NAMES: dict[str, tuple[str, ...]] = {
    "tas": TAS_NAMES,
    "tasmax": TASMAX_NAMES,
    "tasmin": TASMIN_NAMES,
    "pr": ("tp", "pr", "rr", "mtpr", "avg_tprate"),
    "psl": ("msl", "psl", "pp"),
    "ps": ("sp", "ps"),
    "uas": ("u10", "10u", "uas"),
    "vas": ("v10", "10v", "vas"),
    "sfcWind": ("si10", "sfcWind", "fg"),
    # relative humidity: ERA5 GRIB's 2 m relative humidity (cfgrib r2, ecCodes 2r), E-OBS hu
    "hurs": ("r2", "2r", "hurs", "hu"),
    # cloud and sea-ice cover: ERA5 in "(0 - 1)", converted to the simulation's %
    "clt": ("tcc", "clt"),
    "siconc": ("siconc", "ci"),
    # downward radiation: ERA5 ssrd/strd accumulate J m-2 over the hour ending at the stamp
    # (converted to W m-2 over it, as tp to a flux); ERA5's mean rates in W m-2 (old and new
    # CDS names); E-OBS qq (W m-2). Not ERA5's ssr/str: net radiation (NOT_REFERENCES)
    "rsds": ("ssrd", "rsds", "avg_sdswrf", "msdwswrf", "qq"),
    "rlds": ("strd", "rlds", "avg_sdlwrf", "msdwlwrf"),
    "ta": ("t", "ta"),
    "ua": ("u", "ua"),
    "va": ("v", "va"),
    "hus": ("q", "hus"),
}

#: Reference variables that look like a simulation variable but are not it, refused when a
#: reference file holding only one of them would be taken for it (its only variable): ERA5's
#: net radiation is the downward minus the reflected (emitted) flux, not the downward one.
NOT_REFERENCES: dict[str, dict[str, str]] = {
    "rsds": {
        **{n: "net surface solar radiation (downward minus reflected), not the downward "
           "flux: give ssrd" for n in ("ssr", "avg_snswrf", "msnswrf", "ssrc")},
        **{n: "downward thermal (longwave) radiation, the reference of rlds, not of rsds: "
           "give ssrd" for n in ("strd", "avg_sdlwrf", "msdwlwrf", "rlds")},
    },
    "rlds": {
        **{n: "net surface thermal radiation (downward minus emitted), not the downward "
           "flux: give strd" for n in ("str", "avg_snlwrf", "msnlwrf", "strc")},
        **{n: "downward solar (shortwave) radiation, the reference of rsds, not of rlds: "
           "give strd" for n in ("ssrd", "avg_sdswrf", "msdwswrf", "rsds", "qq")},
    },
}

PathLike = str | os.PathLike


@dataclasses.dataclass(frozen=True)
class PairConfig:
    """How to read and align a simulation/reference pair.

    variables:
        Simulation variable names (CMIP names such as ``tas``).
    reference_names:
        Overrides of the reference name per simulation variable (``{"tas": "t2m"}``).
    method:
        Interpolation of the reference to the simulation's points: ``linear`` (bilinear) or
        ``nearest``.
    outside:
        Simulation cells outside the reference domain: ``error`` or ``drop``.
    convert_calendar:
        Convert the reference to the simulation's calendar when they differ (daily data,
        and sub-daily data after their aggregation to days;
        ``noleap``: 29 February dropped; ``360_day``: the 31st days dropped, 29-30 February
        absent) instead of refusing. On by default: the correction and its evaluation compare
        distributions per season, never individual days.
    accumulation_period:
        Seconds an accumulated reference amount (ERA5 ``tp``) refers to, when the time axis
        does not say: daily files, and sub-daily steps longer than an hour (ERA5 hourly data
        downloaded every 3 or 6 hours still hold 1-hour amounts: 3600). Hourly data: the step.
    chunks:
        Dask chunks for the simulation (``{"lat": 32}``), to read large files lazily.
    pool_members:
        Accept an ensemble-member dim in the simulation (``member_id``, ``realization``):
        the training pools the members' values (more samples of the model's climate); off,
        such a dim is an error naming it.
    """

    variables: tuple[str, ...]
    reference_names: Mapping[str, str] = dataclasses.field(default_factory=dict)
    method: Method = "linear"
    outside: Outside = "error"
    convert_calendar: bool = True
    accumulation_period: float | None = None
    chunks: Mapping[str, int] | None = None
    pool_members: bool = False

    def __post_init__(self) -> None:
        if not self.variables:
            raise DataError("no variable to correct was given")
        if self.method not in ("linear", "nearest"):
            raise DataError(f"interpolation method {self.method!r} is not linear or nearest")
        if self.outside not in ("error", "drop"):
            raise DataError(f"outside={self.outside!r} is not 'error' or 'drop'")

    def reference_candidates(self, var: str) -> tuple[str, ...]:
        if var in self.reference_names:
            return (self.reference_names[var],)
        return REFERENCE_NAMES.get(var, (var,))


@dataclasses.dataclass
class Pair:
    """``sim`` and ``ref`` hold the same variable names (the simulation's), units and grid."""

    sim: xr.Dataset
    ref: xr.Dataset
    frequency: Frequency
    sim_calendar: str
    ref_calendar: str
    sources: dict[str, list[str]]

    @property
    def variables(self) -> tuple[str, ...]:
        return tuple(str(v) for v in self.sim.data_vars)


def _as_list(paths: PathLike | Sequence[PathLike]) -> list[Path]:
    if isinstance(paths, str | os.PathLike):
        return [Path(paths)]
    return [Path(p) for p in paths]


def gather_variables(
    paths: PathLike | Sequence[PathLike],
    names: Mapping[str, Sequence[str]],
    role: str,
    chunks: Mapping[str, int] | str | None = None,
) -> tuple[xr.Dataset, dict[str, list[str]]]:
    """Variables collected over several files (one file a variable, or a split period).

    ``names`` maps the output name to the names to look for. Returns the dataset and, per
    output name, the files it came from. ``chunks`` (dask, e.g. ``{"lat": 32}`` or
    ``"auto"``) opens the files lazily.
    """
    files = _as_list(paths)
    if not files:
        raise DataError(f"no {role} file given")
    chunks = chunks if isinstance(chunks, str) else (dict(chunks) if chunks else None)
    opened = [open_dataset(p, chunks=chunks) for p in files]
    if role == "reference":  # a regular grid, each step once and in order, file by file
        opened = [sorted_unique_time(regular_axes(d, str(p)), f"reference {p}")
                  for p, d in zip(files, opened, strict=True)]
    out: dict[str, xr.DataArray] = {}
    sources: dict[str, list[str]] = {}
    for var, candidates in names.items():
        found = collect_variable(files, opened, candidates, role)
        # no name of it, no --reference-name: derived from ERA5's inputs (hurs <- d2m, t2m)
        derivable = role == "reference" and tuple(candidates) == REFERENCE_NAMES.get(var, (var,))
        if found is None and derivable:
            found = derive_reference(var, files, opened)
        parts = reference_components(var, files, opened) if found is None and derivable else None
        if parts is not None:  # tasrange, tasskew: derived after the aggregation (load_pair)
            for comp, (da, where) in parts.items():
                key = component_key(var, comp)
                out[key], sources[key] = da, where
            sources[var] = list(dict.fromkeys(p for _, w in parts.values() for p in w))
            continue
        if found is None and role == "reference" and len(names) == 1:
            only = [(p, d, str(v)) for p, d in zip(files, opened, strict=True)
                    for v in d.data_vars if "time" in d[v].dims and not _is_bounds(str(v))]
            if len({v for _, _, v in only}) == 1 and not is_input_of(var, only[0][2]):
                path, _, stored = only[0]
                _refuse_lookalike(var, stored, path)
                warnings.warn(
                    f"reference {path}: no variable {' or '.join(map(repr, candidates))}; using "
                    f"its only variable {stored!r} for {var!r} (say so with --reference-name "
                    f"{var}={stored} to silence this)", stacklevel=2)
                found = collect_variable([p for p, _, _ in only], [d for _, d, _ in only],
                                         (stored,), role)
        if found is None:
            listed = "; ".join(f"{p}: {', '.join(map(str, d.data_vars))}"
                               for p, d in zip(files, opened, strict=True))
            hint = (f"; if the reference holds it under another name, pass --reference-name "
                    f"{var}=NAME" if role == "reference" else "")
            hint += why_not_derived(var, files, opened) if derivable else ""
            raise DataError(
                f"{role}: no variable {' or '.join(map(repr, candidates))} in the given "
                f"file(s) ({listed}){hint}"
            )
        da, where = found
        stored = str(da.name)
        da = da.rename(var)
        da.encoding["source"] = ", ".join(where)
        da.encoding["stored_name"] = stored
        out[var] = da
        sources[var] = where
    try:
        ds = xr.Dataset(out)
    except ValueError as exc:
        raise DataError(f"{role}: the variables do not share one grid and time axis: {exc}") from exc
    for var, da in out.items():
        ds[var].encoding = dict(da.encoding)
    return ds, sources


def _refuse_lookalike(var: str, stored: str, path: Path) -> None:
    """Refuse to take a reference file's only variable ``stored`` for ``var`` when it is known
    to be something else (:data:`NOT_REFERENCES`: ERA5 ``ssr`` for ``rsds``).

    >>> _refuse_lookalike("rsds", "ssr", Path("era5_ssr.nc"))
    Traceback (most recent call last):
    atmocorrect.errors.DataError: reference era5_ssr.nc: its only variable 'ssr' is net surface solar radiation (downward minus reflected), not the downward flux: give ssrd; it is not taken for 'rsds' (if it is what you mean, say so with --reference-name rsds=ssr)
    """
    why = NOT_REFERENCES.get(var, {}).get(stored.lower())
    if why is not None:
        raise DataError(
            f"reference {path}: its only variable {stored!r} is {why}; it is not taken for "
            f"{var!r} (if it is what you mean, say so with --reference-name {var}={stored})")


def _is_bounds(name: str) -> bool:
    return name.endswith(("_bnds", "_bounds", "_bnd")) or name in ("bnds", "bounds")


Statistic = Literal["mean", "max", "min", "sum", "median"]

#: CF ``cell_methods`` methods and the statistic that aggregates finer steps to them.
CF_STATISTICS: dict[str, Statistic] = {
    "mean": "mean", "maximum": "max", "minimum": "min", "sum": "sum", "median": "median",
}
_CF_WORDS = {v: k for k, v in CF_STATISTICS.items()}

#: Statistics (within a day, over the days of a month or year) of CMIP variables whose
#: ``cell_methods`` do not say: daily maximum/minimum temperature and wind; everything else,
#: precipitation fluxes included (the mean flux of a day is its total / 86400 s), the mean.
NAME_STATISTICS: dict[str, tuple[Statistic, Statistic]] = {
    "tasmax": ("max", "mean"), "tasmin": ("min", "mean"), "sfcWindmax": ("max", "mean"),
}

#: ERA5 names of values that describe the step ending at their time stamp (the hour before
#: it in hourly data): accumulations, maxima/minima since the previous post-processing, and
#: mean rates; cfgrib and the new CDS also say so with ``GRIB_stepType``.
INTERVAL_NAMES = frozenset({"tp", "cp", "lsp", "mx2t", "mn2t", "mtpr", "avg_tprate", "i10fg",
                            "fg10", "ssrd", "strd", "ssr", "str", "e", "avg_sdswrf", "msdwswrf",
                            "avg_sdlwrf", "msdwlwrf"})


def time_cell_methods(cell_methods: str) -> list[tuple[str, str]]:
    """The (method, qualifier) pairs applied along time in a CF ``cell_methods`` string.

    >>> time_cell_methods("area: mean time: maximum")
    [('maximum', '')]
    >>> time_cell_methods("area: time: mean")
    [('mean', '')]
    >>> time_cell_methods("area: mean time: maximum within days time: mean over days")
    [('maximum', 'within days'), ('mean', 'over days')]
    >>> time_cell_methods("area: mean where land (comment: mask)")
    []
    """
    tokens = re.sub(r"\([^)]*\)", " ", str(cell_methods)).split()
    out: list[tuple[str, str]] = []
    names: list[str] = []
    i = 0
    while i < len(tokens):
        if tokens[i].endswith(":"):
            names.append(tokens[i][:-1])
            i += 1
            continue
        method, qualifier = tokens[i], []
        i += 1
        while i < len(tokens) and not tokens[i].endswith(":"):
            qualifier.append(tokens[i])
            i += 1
        if "time" in names:
            out.append((method, " ".join(qualifier)))
        names = []
    return out


@dataclasses.dataclass(frozen=True)
class Aggregation:
    """How a finer reference is brought to the simulation's steps: ``within_days`` takes
    sub-daily steps to a day, ``over_days`` days to a month or year (and months to a year);
    ``why`` says where they come from, for messages."""

    within_days: Statistic
    over_days: Statistic
    why: str


def aggregation_of(sim: xr.DataArray, source: str) -> Aggregation:
    """The statistics a simulation variable asks for: from its CF ``cell_methods`` along time,
    else from its CMIP name (:data:`NAME_STATISTICS`), else the mean. A name that says
    otherwise than the ``cell_methods`` (``tasmax`` labelled ``time: mean``, copied from
    ``tas``?) is warned about; the ``cell_methods`` are followed.

    >>> da = xr.DataArray([300.0], dims="time", name="tasmax",
    ...                   attrs={"cell_methods": "area: mean time: maximum"})
    >>> aggregation_of(da, "tasmax_day.nc")
    Aggregation(within_days='max', over_days='max', why="cell_methods 'area: mean time: maximum'")
    >>> aggregation_of(da.assign_attrs(cell_methods=""), "tasmax_day.nc").within_days
    'max'
    """
    name = str(sim.name)
    text = str(sim.attrs.get("cell_methods", ""))
    methods = time_cell_methods(text)
    if not methods:
        within, over = NAME_STATISTICS.get(name, ("mean", "mean"))
        why = f"the name {name!r}" if name in NAME_STATISTICS else "the default (mean)"
        return Aggregation(within, over, why)
    for method, _ in methods:
        if method not in CF_STATISTICS:
            raise DataError(
                f"{source}: variable {name!r} has cell_methods {text!r}: time method "
                f"{method!r} is not one a finer reference can be aggregated to (mean, maximum, "
                "minimum, sum, median); give a reference at the simulation's time step")
    quals = [q for _, q in methods]
    first = next((m for m, q in methods if q.startswith("within")), methods[0][0])
    over = next((m for m, q in methods if q.startswith("over")),
                "mean" if any(q.startswith("within") for q in quals) else first)
    agg = Aggregation(CF_STATISTICS[first], CF_STATISTICS[over], f"cell_methods {text!r}")
    if name in NAME_STATISTICS and NAME_STATISTICS[name][0] != agg.within_days:
        warnings.warn(
            f"{source}: variable {name!r} has cell_methods {text!r} (time: {first}), not the "
            f"time: {_CF_WORDS[NAME_STATISTICS[name][0]]} its name suggests; the reference is "
            f"aggregated with the {first} as the cell_methods say (correct the attribute if "
            "they are wrong)", stacklevel=4)
    return agg


def ends_its_step(ref: xr.DataArray) -> bool:
    """Whether each value of a sub-daily reference describes the step that ends at its time
    stamp (ERA5's convention for accumulations, maxima, minima and mean rates: ``tp`` at 00:00
    is the precipitation of the last hour of the day before) rather than the instant.

    >>> ends_its_step(xr.DataArray([0.0], name="tp", attrs={"units": "m"}))
    True
    >>> ends_its_step(xr.DataArray([280.0], name="t2m", attrs={"GRIB_stepType": "instant"}))
    False

    A reference read by :func:`load_pair` carries the answer for its values as they are in
    the pair (``encoding["ends_step"]``): hourly ``tp`` converted to a flux and renamed ``pr``
    still ends its steps when it is used at its own step, and daily sums of it no longer do.

    >>> pr = xr.DataArray([1e-5], name="pr", attrs={"units": "kg m-2 s-1"})
    >>> pr.encoding["ends_step"] = True
    >>> ends_its_step(pr)
    True
    """
    decided = ref.encoding.get("ends_step")
    if decided is not None:
        return bool(decided)
    step_type = str(ref.attrs.get("GRIB_stepType", "")).lower()
    if step_type:
        return step_type in ("accum", "max", "min", "avg")
    methods = time_cell_methods(str(ref.attrs.get("cell_methods", "")))
    if methods:
        return methods[0][0] in CF_STATISTICS
    if is_precipitation(ref) and U.is_accumulation(ref.attrs.get("units")):
        return True
    return str(ref.encoding.get("stored_name", ref.name)).lower() in INTERVAL_NAMES


def _period_word(t: Any, to: Frequency | int) -> str:
    if isinstance(to, int):
        return t.strftime("%Y-%m-%d %H:%M")
    return t.strftime({"day": "%Y-%m-%d", "month": "%Y-%m", "year": "%Y"}[to])


def _period_name(to: Frequency | int) -> str:
    """``day``, ``month``, ``year``, or ``3-hour step`` for a sub-daily period in seconds."""
    return f"{to / 3600:g}-hour step" if isinstance(to, int) else str(to)


def aggregate_complete(
    ref: xr.DataArray,
    to: Frequency | int,
    statistic: Statistic,
    step: int | None,
    source: str,
    years: tuple[int, int] | None = None,
    back: int = 0,
) -> xr.DataArray:
    """``ref`` aggregated to days, months or years (labelled by their start, 00:00 of the
    date, as ERA5's daily files) with ``statistic``; periods with fewer values than a complete
    one (``step`` seconds apart; ``None``: months in a year) are missing (NaN), never computed
    from the values present, and a warning names ``source``, how many periods of the
    ``years`` (all when None) were incomplete and the first of them. Points without any value
    (a land-sea mask) are not counted. Each stamp is moved ``back`` seconds first (see
:func:`~atmocorrect.data.timeaxis.step_back`). Computed in float64, returned in ``ref``'s
dtype.

    >>> import cftime
    >>> t = [cftime.DatetimeGregorian(2000, 1, d, h) for d in (1, 2) for h in range(0, 24, 6)]
    >>> da = xr.DataArray(np.arange(8.0), dims="time", coords={"time": t}, name="t2m")
    >>> aggregate_complete(da, "day", "max", 21600, "era5.nc").values.tolist()
    [3.0, 7.0]
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     out = aggregate_complete(da.isel(time=slice(1, None)), "day", "mean", 21600, "era5.nc")
    >>> out.values.tolist(), str(w[0].message).split(";")[0]
    ([nan, 5.5], 'reference era5.nc: 1 of 2 days of t2m hold fewer values than a complete day (first: 2000-01-01, 3 of 4 values)')
    """
    dims = ref.dims
    ref = ref.transpose("time", ...)
    x = np.asarray(ref.values, dtype=np.float64)
    idx, starts = period_index(ref["time"].values, to, back)
    out, count = reduce_bins(x, idx, starts.size, statistic)
    expected = expected_steps(starts, to, step)
    complete = count >= expected.reshape(-1, *([1] * (x.ndim - 1)))
    out[~complete] = np.nan
    live = np.isfinite(x).any(axis=0)  # points with no value at all (masked): not counted
    short = (~complete & live).reshape(starts.size, -1).any(axis=1)
    in_scope = np.ones(starts.size, dtype=bool)
    if years is not None:
        yrs = np.array([t.year for t in starts])
        in_scope = (yrs >= years[0]) & (yrs <= years[1])
    bad = np.flatnonzero(short & in_scope)
    if bad.size:
        i = int(bad[0])
        have = int(count[i][live].min())
        scope = f" in {format_period(years)}" if years is not None else ""
        warnings.warn(
            f"reference {source}: {bad.size} of {int(in_scope.sum())} {_period_name(to)}s "
            f"of {ref.name} hold fewer values than a complete {_period_name(to)} (first: "
            f"{_period_word(starts[i], to)}, {have} of {int(expected[i])} values)"
            f"{scope}; they are set to missing (NaN), not computed from the values present",
            stacklevel=5)
    coords = {k: v for k, v in ref.coords.items() if "time" not in v.dims}
    result = xr.DataArray(out.astype(ref.dtype) if ref.dtype.kind == "f" else out,
                          dims=ref.dims, coords={**coords, "time": starts},
                          attrs=dict(ref.attrs), name=ref.name)
    result["time"].attrs = dict(ref["time"].attrs)
    result.encoding = dict(ref.encoding)
    return result.transpose(*dims)


def reduce_bins(
    x: np.ndarray, idx: np.ndarray, n: int, statistic: Statistic
) -> tuple[np.ndarray, np.ndarray]:
    """``statistic`` of the finite values of ``x`` (time, ...) in each of ``n`` bins, given the
    non-decreasing bin ``idx`` of each time, and how many finite values each bin holds (empty
    bins: NaN and 0). Vectorised (``ufunc.reduceat``): ~0.1 s for 36 years of hourly data.

    >>> x = np.array([1.0, np.nan, 3.0, 4.0])
    >>> out, count = reduce_bins(x, np.array([0, 0, 2, 2]), 3, "max")
    >>> out.tolist(), count.tolist()
    ([1.0, nan, 4.0], [1, 0, 2])
    >>> reduce_bins(x, np.array([0, 0, 2, 2]), 3, "mean")[0].tolist()
    [1.0, nan, 3.5]
    """
    first = np.flatnonzero(np.r_[True, idx[1:] != idx[:-1]])
    present = idx[first]
    finite = np.isfinite(x)
    count = np.zeros((n, *x.shape[1:]), dtype=np.int64)
    count[present] = np.add.reduceat(finite.astype(np.int64), first, axis=0)
    out = np.full((n, *x.shape[1:]), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN bins
        if statistic in ("mean", "sum"):
            total = np.add.reduceat(np.where(finite, x, 0.0), first, axis=0)
            out[present] = total / count[present] if statistic == "mean" else total
        elif statistic in ("max", "min"):
            out[present] = (np.fmax if statistic == "max" else np.fmin).reduceat(x, first, axis=0)
        elif statistic == "median":
            ends = np.r_[first[1:], idx.size]
            for b, lo, hi in zip(present, first, ends, strict=True):
                out[b] = np.nanmedian(x[lo:hi], axis=0)
        else:
            raise DataError(f"unknown statistic {statistic!r}")
    out[count == 0] = np.nan
    return out, count


def aggregate_reference(
    ref: xr.DataArray,
    r_freq: Frequency,
    to: Frequency | int,
    how: Aggregation,
    *,
    ends_step: bool,
    source: str,
    years: tuple[int, int] | None = None,
    step: int | None = None,
) -> xr.DataArray:
    """A finer reference brought to the simulation's days, months, years or, for an integer
    ``to``, sub-daily steps of ``to`` seconds (hourly ERA5 for a 3-hourly model): sub-daily
    steps to days (or to the longer sub-daily steps) with ``how.within_days`` (each value in the day of the step it describes,
    :func:`~atmocorrect.data.timeaxis.step_back`),
    then days to months or years (or months to years) with ``how.over_days``, complete
    periods only (:func:`aggregate_complete`). ``step``: the sub-daily step in seconds, when
    already checked (:func:`~atmocorrect.data.timeaxis.regular_step`). The aggregation is
    recorded in the ``aggregation`` attribute."""
    done = []
    if isinstance(to, int):  # a sub-daily simulation step, ``to`` seconds
        if step is None:
            step = regular_step(ref["time"].values, source=f"reference {source}")
        back = step_back(ref["time"].values, step, ends_step)
        ref = aggregate_complete(ref, to, how.within_days, step, source, years, back)
        ref.attrs["aggregation"] = (
            f"{_CF_WORDS[how.within_days]} over {to / 3600:g}-hour steps of {step} s values"
            + (" (each the step ending at its stamp)" if back else "")
            + f"; complete steps only ({how.why})")
        return ref
    if r_freq == "subdaily":
        if step is None:
            step = regular_step(ref["time"].values, source=f"reference {source}")
        back = step_back(ref["time"].values, step, ends_step)
        ref = aggregate_complete(ref, "day", how.within_days, step, source, years, back)
        done.append(f"daily {_CF_WORDS[how.within_days]} of {step} s steps"
                    + (" (each the step ending at its stamp)" if back else ""))
        r_freq = "day"
    if to != r_freq:
        ref = aggregate_complete(ref, to, how.over_days, 86400 if r_freq == "day" else None,
                                 source, years)
        done.append(f"{frequency_word(to)} {_CF_WORDS[how.over_days]}")
    ref.attrs["aggregation"] = f"{', then '.join(done)}; complete periods only ({how.why})"
    return ref


def is_instantaneous(sim: xr.DataArray) -> bool:
    """Whether the simulation variable holds instants (CF ``time: point``, CMIP6 ``3hrPt``/
    ``6hrPlevPt`` tables) rather than statistics over its steps.

    >>> is_instantaneous(xr.DataArray([0.0], name="tas",
    ...                               attrs={"cell_methods": "area: mean time: point"}))
    True
    """
    return any(m == "point" for m, _ in time_cell_methods(str(sim.attrs.get("cell_methods", ""))))


def sample_instants(ref: xr.DataArray, step: int, offset: int) -> xr.DataArray:
    """The values of a finer sub-daily reference at the instants of a simulation that holds
    instants every ``step`` seconds from ``offset`` seconds after 00:00 (3hrPt: 00:00, 03:00,
    ...): an instant is compared with an instant, never with a mean.

    >>> import cftime
    >>> t = [cftime.DatetimeGregorian(2000, 1, 1, h) for h in range(7)]
    >>> da = xr.DataArray(np.arange(7.0), dims="time", coords={"time": t}, name="t2m")
    >>> sample_instants(da, 3 * 3600, 0).values.tolist()
    [0.0, 3.0, 6.0]
    """
    keep = whole_seconds(ref["time"].values) % 86400 % step == offset
    out = ref.isel(time=np.flatnonzero(keep))
    out.attrs = {**ref.attrs, "aggregation": f"instants every {step / 3600:g} h of the "
                 "reference (the simulation holds instants: time: point)"}
    return out


def check_reference_coverage(ref: xr.DataArray, outside: Outside, source: str) -> None:
    """Simulation points where the interpolated reference has no value at all (a land-sea
    mask, as in E-OBS or ERA5-Land, or a station gap) cannot be calibrated: an error naming
    them, or with ``outside="drop"`` a warning (they are left out of the calibration and
    written as missing values)."""
    spatial = [d for d in ref.dims if d != "time"]
    present = ref.notnull().any("time").values.reshape(-1)
    if present.all():
        return
    lat, lon = (c.transpose(*[d for d in spatial if d in c.dims]).values.reshape(-1)
                for c in xr.broadcast(ref["lat"], ref["lon"]))
    missing = np.flatnonzero(~present)
    where = ", ".join(f"({float(lat[i]):.2f}N, {float(lon[i]):.2f}E)"
                      for i in missing[:5]) + (" ..." if missing.size > 5 else "")
    what = (f"{missing.size} of {present.size} simulation point(s) have no value of "
            f"{ref.name!r} in {source} at any time (masked or missing there): {where}")
    if missing.size == present.size:
        raise DataError(f"{what}; the reference has no data at the simulation's points")
    if outside != "drop":
        raise DataError(f"{what}; pass outside='drop' (--outside drop) to leave them out of "
                        "the calibration and write them as missing values")
    warnings.warn(f"{what}; they are left out of the calibration and written as missing "
                  "values", stacklevel=3)


#: Dask chunks a reference is opened in (``array.chunk-size``; the file's own chunks are kept
#: whole): while the window is read, one such chunk of the whole grid is in memory at a time.
REFERENCE_CHUNK_SIZE = "32MiB"

#: Reference files kept open at once while a window is read (xarray's file cache): each open
#: netCDF-4 file keeps a chunk cache (64 MiB by default) once read, which, over a reference
#: split into hundreds of files, would add up to gigabytes.
WINDOW_OPEN_FILES = 1


def gather_reference(
    paths: PathLike | Sequence[PathLike], names: Mapping[str, Sequence[str]],
) -> tuple[xr.Dataset, dict[str, list[str]]]:
    """:func:`gather_variables` of the reference, opened lazily: in dask chunks of about
    :data:`REFERENCE_CHUNK_SIZE` when dask is installed (the ``offline`` extra), so that
    several files are joined without being read; without dask, xarray's lazy indexing (a
    window of one file is still read alone, but files joined in time are read whole)."""
    try:
        import dask
    except ImportError:  # pragma: no cover - the offline extra installs it
        return gather_variables(paths, names, "reference")
    with dask.config.set({"array.chunk-size": REFERENCE_CHUNK_SIZE}):
        return gather_variables(paths, names, "reference", chunks="auto")


def read_reference(ref: xr.Dataset) -> xr.Dataset:
    """A lazily opened reference (:func:`gather_reference`), usually its window around the
    simulation (:func:`~atmocorrect.data.regrid.reference_window`), read into memory: one dask
    chunk at a time (the synchronous scheduler: netCDF and HDF5 reads are serialised anyway),
    through at most :data:`WINDOW_OPEN_FILES` open files."""
    with xr.set_options(file_cache_maxsize=WINDOW_OPEN_FILES):
        return ref.load(scheduler="synchronous")


def _reference_keys(var: str, ref: xr.Dataset) -> list[str]:
    """The variables of the gathered reference that ``var`` is made of: itself, or the
    components of its derivation after the aggregation (``tasrange[tasmax]``, ...)."""
    if var in ref.data_vars or var not in AFTER_AGGREGATION:
        return [var]
    return [component_key(var, c) for c in AFTER_AGGREGATION[var].components]


@dataclasses.dataclass(frozen=True)
class _Steps:
    """How :func:`load_pair` brings the reference's time steps to the simulation's: the two
    frequencies, the simulation's steps to aggregate to (a frequency, or seconds), whether to,
    the reference's sub-daily step (seconds), the years both cover, and the calendar to convert
    the aggregated reference to (None: none, or converted before the aggregation)."""

    r_freq: Frequency
    s_freq: Frequency
    target: Frequency | int
    aggregate: bool
    step: int | None
    years: tuple[int, int]
    calendar: str | None


def _to_simulation_steps(r: xr.DataArray, where: str, sim: xr.Dataset, var: str, steps: _Steps,
                         config: PairConfig) -> xr.DataArray:
    """The reference variable ``r`` (read) in the simulation's units and at its time steps:
    de-accumulated when it holds running totals, converted, aggregated (or sampled) with the
    statistic the simulation variable asks for, in the simulation's calendar. Its
    ``encoding["ends_step"]`` says whether each value, as returned, describes the step ending
    at its stamp (:func:`ends_its_step`): only a sub-daily reference used as read can."""
    r.encoding["source"] = where
    stored = str(r.encoding.get("stored_name", var))  # error messages name it as stored
    r = r.rename(stored)
    # one decision for the daily aggregation and for the pairing by time of day: the name
    # (ERA5 tp, ssrd, mx2t ...), GRIB_stepType or cell_methods, and stamps on the steps' ends
    ends = (steps.r_freq == "subdaily" and steps.step is not None and ends_its_step(r)
            and step_back(r["time"].values, steps.step, True) > 0)
    if steps.r_freq == "subdaily" and is_accumulated_amount(r) and is_running_daily_total(r):
        warnings.warn(
            f"reference {where}: {stored!r} holds running totals since 00 UTC (never "
            "decreasing within a day: ERA5-Land's convention), not hourly amounts; "
            "de-accumulated hour by hour before use", stacklevel=3)
        r = deaccumulate_daily_running_totals(r)
    r = conform_units(
        r, sim[var].attrs["units"], accumulation_period=config.accumulation_period,
    ).rename(var)
    if steps.aggregate:
        # in the reference's own calendar, whose days are real days; then converted
        if isinstance(steps.target, int) and is_instantaneous(sim[var]):
            offset = int(whole_seconds(sim["time"].values[:1])[0] % 86400 % steps.target)
            r = sample_instants(r, steps.target, offset)
        else:
            how = aggregation_of(sim[var], sim[var].encoding.get("source", "simulation"))
            r = aggregate_reference(r, steps.r_freq, steps.target, how, ends_step=ends,
                                    source=where, years=steps.years, step=steps.step)
        if steps.calendar is not None:
            r = r.convert_calendar(steps.calendar, align_on="date", use_cftime=True)
    r.encoding["ends_step"] = ends and not steps.aggregate
    return r


def _derived_after_aggregation(var: str, ref: xr.Dataset, sources: Mapping[str, list[str]],
                               sim: xr.DataArray, steps: _Steps) -> xr.DataArray:
    """``var`` (tasrange, tasskew: :data:`~atmocorrect.data.derived.AFTER_AGGREGATION`) from
    the daily statistics of its components in ``ref`` (each in K: the daily maximum of
    ``mx2t`` or of hourly ``t2m``, ..., or a daily reference's values as read), combined per
    day, then aggregated to the simulation's months or years, converted to its calendar and
    units."""
    recipe = AFTER_AGGREGATION[var]
    where = ", ".join(sources[var])
    if steps.s_freq == "subdaily" or steps.r_freq not in ("subdaily", "day"):
        raise DataError(
            f"reference {where}: {var!r} is derived per day (from daily maxima and minima), "
            f"so it needs a daily or finer reference and a daily or coarser simulation; the "
            f"reference is {frequency_word(steps.r_freq)}, the simulation "
            f"{frequency_word(steps.s_freq)}")
    daily, done = [], []
    for comp in recipe.components:
        key = component_key(var, comp)
        r = ref[key]
        r.encoding["source"] = comp_where = ", ".join(sources[key])
        stored = str(r.encoding.get("stored_name", comp))
        r = conform_units(r.rename(stored), "K")
        statistic = COMPONENTS[comp].statistic
        if steps.r_freq == "subdaily":
            how = Aggregation(statistic, statistic, f"the daily {statistic} of {stored} for "
                              f"{var!r}")
            r = aggregate_reference(r, "subdaily", "day", how, ends_step=ends_its_step(r),
                                    source=comp_where, years=steps.years, step=steps.step)
            done.append(f"{stored}: {r.attrs['aggregation'].split(';')[0]}")
        daily.append(r.rename(f"daily {statistic} of {stored}"))
    out = recipe.compute(*daily)
    out.encoding["source"] = where
    if steps.s_freq in ("month", "year"):
        how = aggregation_of(sim, sim.encoding.get("source", "simulation"))
        out = aggregate_reference(out, "day", steps.s_freq, how, ends_step=False, source=where,
                                  years=steps.years)
        done.append(out.attrs["aggregation"])
    if done:
        out.attrs["aggregation"] = f"derived per day after {', '.join(done)}"
    if steps.calendar is not None:
        out = out.convert_calendar(steps.calendar, align_on="date", use_cftime=True)
    # in the simulation's units (tasskew: 1 or %; tasrange: K or degC, as a difference)
    out.encoding = {"source": where}
    out = conform_units(out, str(sim.attrs.get("units")), check=False)
    out.encoding = {"source": where, "ends_step": False}
    return out


def load_pair(
    sim_paths: PathLike | Sequence[PathLike],
    ref_paths: PathLike | Sequence[PathLike],
    config: PairConfig,
    *,
    window: bool = True,
) -> Pair:
    """Read a simulation and its reference and bring the reference to the simulation's form.

    The reference is read only around the simulation's points
    (:func:`~atmocorrect.data.regrid.reference_window`, then :func:`read_reference`);
    ``window=False`` reads all of it into memory first, to compare on small references: the
    values are the same."""
    sim, sim_sources = gather_variables(
        sim_paths, {v: (v,) for v in config.variables}, "simulation", config.chunks
    )
    ref_raw, ref_sources = gather_reference(  # lazily: read below, around the simulation
        ref_paths, {v: config.reference_candidates(v) for v in config.variables}
    )
    keys = {var: _reference_keys(var, ref_raw) for var in config.variables}
    for var in config.variables:
        check_time_and_grid_only(sim[var], ", ".join(sim_sources[var]), "simulation",
                                 allow_members=config.pool_members)
        for key in keys[var]:
            check_time_and_grid_only(ref_raw[key], ", ".join(ref_sources[key]), "reference")
        units = sim[var].attrs.get("units")
        if units is None:
            raise DataError(f"{sim[var].encoding['source']}: variable {var!r} has no 'units' attribute")
        check_plausible(sim[var], units)
    s_cal, r_cal = calendar_of(sim), calendar_of(ref_raw)
    s_freq = infer_frequency(sim["time"].values, f"simulation {sim_sources[config.variables[0]][0]}")
    r_freq = infer_frequency(ref_raw["time"].values, f"reference {ref_sources[config.variables[0]][0]}")
    order = ["subdaily", "day", "month", "year"]
    if order.index(r_freq) > order.index(s_freq):
        raise DataError(
            f"the reference is {frequency_word(r_freq)} ({describe_span(ref_raw)}) but the "
            f"simulation is {frequency_word(s_freq)} ({describe_span(sim)}); a coarser "
            "reference cannot calibrate a finer simulation"
        )
    ref_file = ref_sources[config.variables[0]][0]
    sim_file = sim_sources[config.variables[0]][0]
    aggregate = r_freq != s_freq
    target: Frequency | int = s_freq
    step = None
    if r_freq == "subdaily":  # before anything slow: a clear error
        step = regular_step(ref_raw["time"].values, source=f"reference {ref_file}")
    if r_freq == s_freq == "subdaily":
        s_step = regular_step(sim["time"].values, source=f"simulation {sim_file}")
        assert step is not None
        if s_step % step:
            raise DataError(
                f"the reference {ref_file} has {step} s steps, the simulation {sim_file} "
                f"{s_step} s steps: the simulation's step must be a whole number of the "
                "reference's to aggregate it (give a reference at a step that divides it)")
        if step < s_step:  # hourly ERA5 for a 3-hourly model
            aggregate, target = True, s_step
    convert = s_freq in ("subdaily", "day") and not same_calendar(s_cal, r_cal)
    if convert and not config.convert_calendar:
        raise DataError(
            f"calendars differ: simulation {sim_sources[config.variables[0]][0]} uses "
            f"{s_cal!r}, reference {ref_file} uses {r_cal!r}; "
            f"{s_freq} values cannot be matched by date. Leave convert_calendar=True "
            "(the default; drop --no-convert-calendar) to convert the reference to the "
            "simulation's calendar"
        )
    if config.outside == "drop":
        first = ref_raw[keys[config.variables[0]][0]]
        sim = subset_inside(sim, first)
    frame: Frame | None = None
    if window:  # lazily: the cells around the simulation's points, read below
        ref_raw, frame = reference_window(ref_raw, sim)
    if convert and not aggregate:
        ref_raw = ref_raw.convert_calendar(canonical_calendar(s_cal), align_on="date", use_cftime=True)
    years = check_overlap(sim, ref_raw, "the simulation", "the reference")
    if frame is not None or not window:  # (not a regular grid: interpolate_to says so)
        ref_raw = read_reference(ref_raw)
    steps = _Steps(r_freq=r_freq, s_freq=s_freq, target=target, aggregate=aggregate,
                   step=step, years=years,
                   calendar=canonical_calendar(s_cal) if convert and aggregate else None)
    ref_vars: dict[str, Any] = {}
    for var in config.variables:
        if var in AFTER_AGGREGATION and keys[var] != [var]:
            r = _derived_after_aggregation(var, ref_raw, ref_sources, sim[var], steps)
        else:
            r = _to_simulation_steps(ref_raw[var], ", ".join(ref_sources[var]), sim, var,
                                     steps, config)
        ends = r.encoding.get("ends_step", False)
        r = interpolate_to(r, sim[var], method=config.method, outside="error", frame=frame)
        # in the simulation's dims order: the training flattens both to (time, points) alike
        # (curvilinear lat/lon stored (x, y) beside data in (time, y, x) come out (time, x, y))
        r = r.transpose(*[d for d in sim[var].dims if d in r.dims], ...)
        # 2-D lat/lon read lazily and transposed: in memory (xarray cannot index them lazily)
        r = r.assign_coords({c: r[c].load() for c in ("lat", "lon") if c in r.coords
                             and r[c].ndim > 1})
        check_reference_coverage(r, config.outside, ", ".join(ref_sources[var]))
        r.encoding["ends_step"] = ends
        ref_vars[var] = r
    ref = xr.Dataset(ref_vars)
    for var in config.variables:
        ref[var].encoding["source"] = ", ".join(ref_sources[var])
        # as the values are in the pair (converted, renamed, aggregated): ends_its_step
        ref[var].encoding["ends_step"] = bool(ref_vars[var].encoding["ends_step"])
    return Pair(
        sim=sim,
        ref=ref,
        frequency=s_freq,
        sim_calendar=s_cal,
        ref_calendar=r_cal,
        sources={
            **{f"simulation:{k}": v for k, v in sim_sources.items()},
            **{f"reference:{k}": v for k, v in ref_sources.items() if k in config.variables},
        },
    )
