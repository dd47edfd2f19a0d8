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
* sub-daily references are averaged to the simulation's daily or monthly steps;
* the reference is interpolated to the simulation's grid or points.

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
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ..errors import DataError
from .conform import check_plausible, conform_units
from .readers import find_variable, open_dataset
from .regrid import Method, Outside, interpolate_to, subset_inside
from .timeaxis import (
    Frequency,
    calendar_of,
    canonical_calendar,
    check_overlap,
    describe_span,
    infer_frequency,
    same_calendar,
)

#: Reference (ERA5) names of the CMIP variables, tried in order.
#: (ERA5 short names first, then CMIP, then E-OBS: tg, tx, tn, rr, pp.) A reference file that
#: holds a single variable is used for a single requested variable whatever its name (with a
#: warning): ERA5 daily statistics from the new CDS call the daily maximum ``t2m`` too.
REFERENCE_NAMES: dict[str, tuple[str, ...]] = {
    "tas": ("t2m", "2t", "tas", "tg"),
    "tasmax": ("mx2t", "tasmax", "tx", "mx2t24"),
    "tasmin": ("mn2t", "tasmin", "tn", "mn2t24"),
    "pr": ("tp", "pr", "rr"),
    "psl": ("msl", "psl", "pp"),
    "ps": ("sp", "ps"),
    "uas": ("u10", "10u", "uas"),
    "vas": ("v10", "10v", "vas"),
    "sfcWind": ("si10", "sfcWind"),
    "ta": ("t", "ta"),
    "ua": ("u", "ua"),
    "va": ("v", "va"),
    "hus": ("q", "hus"),
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
        Convert the reference to the simulation's calendar when they differ (daily data;
        ``noleap``: 29 February dropped; ``360_day``: the 31st days dropped, 29-30 February
        absent) instead of refusing. On by default: the correction and its evaluation compare
        distributions per season, never individual days.
    accumulation_period:
        Seconds an accumulated reference amount (ERA5 ``tp``) refers to, when the time axis
        does not say (daily files).
    chunks:
        Dask chunks for the simulation (``{"lat": 32}``), to read large files lazily.
    """

    variables: tuple[str, ...]
    reference_names: Mapping[str, str] = dataclasses.field(default_factory=dict)
    method: Method = "linear"
    outside: Outside = "error"
    convert_calendar: bool = True
    accumulation_period: float | None = None
    chunks: Mapping[str, int] | None = None

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
    chunks: Mapping[str, int] | None = None,
) -> tuple[xr.Dataset, dict[str, list[str]]]:
    """Variables collected over several files (one file a variable, or a split period).

    ``names`` maps the output name to the names to look for. Returns the dataset and, per
    output name, the files it came from.
    """
    files = _as_list(paths)
    if not files:
        raise DataError(f"no {role} file given")
    opened = [open_dataset(p, chunks=dict(chunks) if chunks else None) for p in files]
    out: dict[str, xr.DataArray] = {}
    sources: dict[str, list[str]] = {}
    for var, candidates in names.items():
        parts, where = [], []
        for path, ds in zip(files, opened, strict=True):
            try:
                stored = find_variable(ds, candidates[0], candidates[1:], source=str(path))
            except DataError:
                continue
            da = ds[stored]
            da.encoding["source"] = str(path)
            parts.append(da)
            where.append(str(path))
        if not parts and role == "reference" and len(names) == 1:
            only = [(p, d, str(v)) for p, d in zip(files, opened, strict=True)
                    for v in d.data_vars if "time" in d[v].dims and not _is_bounds(str(v))]
            if len({v for _, _, v in only}) == 1:
                path, ds_, stored = only[0]
                warnings.warn(
                    f"reference {path}: no variable {' or '.join(map(repr, candidates))}; using "
                    f"its only variable {stored!r} for {var!r} (say so with --reference-name "
                    f"{var}={stored} to silence this)", stacklevel=2)
                for path, ds_, stored in only:
                    da = ds_[stored]
                    da.encoding["source"] = str(path)
                    parts.append(da)
                    where.append(str(path))
        if not parts:
            listed = "; ".join(f"{p}: {', '.join(map(str, d.data_vars))}"
                               for p, d in zip(files, opened, strict=True))
            hint = (f"; if the reference holds it under another name, pass --reference-name "
                    f"{var}=NAME" if role == "reference" else "")
            raise DataError(
                f"{role}: no variable {' or '.join(map(repr, candidates))} in the given "
                f"file(s) ({listed}){hint}"
            )
        if len(parts) > 1:
            parts.sort(key=lambda a: a["time"].values[0])
            da = xr.concat(parts, dim="time", coords="minimal", compat="override", join="override")
            t = da["time"].values
            if (t[1:] <= t[:-1]).any():
                raise DataError(f"{role} files {', '.join(where)} overlap in time for {var!r}")
            da.encoding["source"] = ", ".join(where)
        else:
            da = parts[0]
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


def _is_bounds(name: str) -> bool:
    return name.endswith(("_bnds", "_bounds", "_bnd")) or name in ("bnds", "bounds")


def _aggregate(ref: xr.DataArray, to: Frequency) -> xr.DataArray:
    rule = {"day": "1D", "month": "MS", "year": "YS"}[to]
    out = ref.resample(time=rule).mean()
    out.attrs, out.encoding, out.name = ref.attrs, dict(ref.encoding), ref.name
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


def load_pair(
    sim_paths: PathLike | Sequence[PathLike],
    ref_paths: PathLike | Sequence[PathLike],
    config: PairConfig,
) -> Pair:
    """Read a simulation and its reference and bring the reference to the simulation's form."""
    sim, sim_sources = gather_variables(
        sim_paths, {v: (v,) for v in config.variables}, "simulation", config.chunks
    )
    ref_raw, ref_sources = gather_variables(
        ref_paths, {v: config.reference_candidates(v) for v in config.variables}, "reference"
    )
    for var in config.variables:
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
            f"the reference is {r_freq}ly-or-coarser ({describe_span(ref_raw)}) but the "
            f"simulation is {s_freq} ({describe_span(sim)}); a coarser reference cannot "
            "calibrate a finer simulation"
        )
    if s_freq in ("subdaily", "day") and not same_calendar(s_cal, r_cal):
        if not config.convert_calendar:
            raise DataError(
                f"calendars differ: simulation {sim_sources[config.variables[0]][0]} uses "
                f"{s_cal!r}, reference {ref_sources[config.variables[0]][0]} uses {r_cal!r}; "
                f"{s_freq} values cannot be matched by date. Leave convert_calendar=True "
                "(the default; drop --no-convert-calendar) to convert the reference to the "
                "simulation's calendar"
            )
        ref_raw = ref_raw.convert_calendar(canonical_calendar(s_cal), align_on="date", use_cftime=True)
    check_overlap(sim, ref_raw, "the simulation", "the reference")
    if config.outside == "drop":
        first = ref_raw[config.variables[0]]
        sim = subset_inside(sim, first)
    ref_vars: dict[str, Any] = {}
    for var in config.variables:
        r = ref_raw[var]
        r.encoding["source"] = ", ".join(ref_sources[var])
        stored = str(r.encoding.get("stored_name", var))  # error messages name it as stored
        r = conform_units(
            r.rename(stored), sim[var].attrs["units"],
            accumulation_period=config.accumulation_period,
        ).rename(var)
        if r_freq != s_freq:
            r = _aggregate(r, s_freq)
        r = interpolate_to(r, sim[var], method=config.method, outside="error")
        check_reference_coverage(r, config.outside, ", ".join(ref_sources[var]))
        ref_vars[var] = r
    ref = xr.Dataset(ref_vars)
    for var in config.variables:
        ref[var].encoding["source"] = ", ".join(ref_sources[var])
    return Pair(
        sim=sim,
        ref=ref,
        frequency=s_freq,
        sim_calendar=s_cal,
        ref_calendar=r_cal,
        sources={
            **{f"simulation:{k}": v for k, v in sim_sources.items()},
            **{f"reference:{k}": v for k, v in ref_sources.items()},
        },
    )
