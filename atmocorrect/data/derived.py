"""Reference variables derived from what ERA5 provides: ``hurs`` from ``d2m`` and ``t2m``,
``sfcWind`` from ``u10`` and ``v10`` (before the aggregation in time), ``tasrange`` and
``tasskew`` from daily maxima and minima (after it).

ERA5 single-level data on the CDS hold no 2 m relative humidity, and the hourly product
usually no 10 m wind speed; users download the 2 m dewpoint and temperature and the 10 m wind
components. When a reference holds none of the names of a simulation variable
(:data:`~atmocorrect.data.pairs.REFERENCE_NAMES`, no ``--reference-name`` given) but the inputs
of a derivation in :data:`DERIVATIONS`, the pair reading derives it (:func:`derive_reference`),
lazily, *before* any aggregation in time: hourly relative humidity (speed) first, then the
daily mean of it, which is what "daily mean relative humidity" means; the mean speed of a
day is not the speed of the day's mean wind (``|mean(u, v)| <= mean(|(u, v)|)``). Deriving from
daily (or coarser) means is allowed, with a warning saying how it differs.

``tasrange`` (daily maximum minus daily minimum) and ``tasskew`` (``(tas - tasmin) / (tasmax -
tasmin)``) cannot be derived that way: hourly ``mx2t - mn2t`` is the range within each hour,
whose daily mean is not the daily range. They are derived *after* the aggregation
(:data:`AFTER_AGGREGATION`): the pair reading takes each input's daily statistic
(:data:`COMPONENTS`: the daily maximum of ``mx2t``, or of hourly ``t2m`` when the reference
does not hold both ``mx2t`` and ``mn2t``; the daily minimum likewise; the daily mean of
``t2m``) or a daily reference's own ``tasmax``/``tasmin`` (E-OBS ``tx``/``tn``), and combines
them per day (:func:`reference_components`, then :func:`diurnal_range`,
:func:`diurnal_skewness`); days to months come after that.

Example
-------
>>> t = xr.DataArray([293.15], dims="time", name="t2m", attrs={"units": "K"})
>>> td = xr.DataArray([10.0], dims="time", name="d2m", attrs={"units": "degC"})
>>> rh = relative_humidity(td, t)
>>> round(float(rh[0]), 2), rh.attrs["units"], rh.attrs["standard_name"]
(52.52, '%', 'relative_humidity')
>>> u = xr.DataArray([3.0], dims="time", name="u10", attrs={"units": "m s-1"})
>>> float(wind_speed(u, u.copy(data=[4.0]).rename("v10"))[0])
5.0
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import xarray as xr

from .. import units as U
from ..errors import DataError, FieldError
from .conform import check_plausible
from .readers import collect_variable
from .timeaxis import frequency_word, infer_frequency

#: IFS constants of the Tetens/Magnus saturation vapour pressure (IFS documentation, Part IV,
#: section 7.2.1, eq. 7.5): ``e = A1 * exp(A3 * (T - T0) / (T - A4))``, over water and over ice.
A1 = 611.21  # Pa
T0 = 273.16  # K
A3_WATER, A4_WATER = 17.502, 32.19  # -, K
A3_ICE, A4_ICE = 22.587, -0.7  # -, K
#: Below this temperature the IFS mixed phase is ice only (between it and T0: a quadratic blend).
T_ICE = 250.16  # K

#: Time steps of each input checked against the plausible range of its units (a dewpoint in
#: degC labelled K, say); few, as the inputs are read lazily over the reference's whole domain.
PLAUSIBILITY_STEPS = 4


def saturation_vapour_pressure(
    t: xr.DataArray, phase: Literal["water", "mixed"] = "water"
) -> xr.DataArray:
    """Saturation vapour pressure (Pa) at temperature ``t`` (K), by the Tetens/Magnus formula
    with the IFS constants: over liquid water (``phase="water"``, used here), or the IFS mixed
    phase (over water above 0 degC, over ice below -23 degC, a quadratic blend between).

    At -20 degC the two differ by 21 %: 125.3 Pa over water, 103.4 Pa mixed (103.0 over ice).

    >>> t = xr.DataArray([273.16, 253.15], dims="x")
    >>> saturation_vapour_pressure(t).round(1).values.tolist()
    [611.2, 125.3]
    >>> saturation_vapour_pressure(t, phase="mixed").round(1).values.tolist()
    [611.2, 103.4]
    """
    water = A1 * np.exp(A3_WATER * (t - T0) / (t - A4_WATER))
    if phase == "water":
        return water
    if phase != "mixed":
        raise DataError(f"saturation vapour pressure: phase {phase!r} is not 'water' or 'mixed'")
    ice = A1 * np.exp(A3_ICE * (t - T0) / (t - A4_ICE))
    alpha = ((t - T_ICE) / (T0 - T_ICE)).clip(0.0, 1.0) ** 2
    return alpha * water + (1.0 - alpha) * ice


def _source(da: xr.DataArray) -> str:
    return str(da.encoding.get("source", "data"))


def _in_units(da: xr.DataArray, target: str, accepted: str, var: str) -> xr.DataArray:
    """``da`` in ``target`` units (from its ``units`` attribute, checked against its first
    values); errors name the file, the variable and its units."""
    have = da.attrs.get("units")
    what = f"{_source(da)}: variable {da.name!r}"
    if have is None:
        raise DataError(f"{what} has no 'units' attribute; expected {accepted} to derive {var!r}")
    try:
        out = U.convert(da, have, target, what=what)  # lazy; only the units are checked here
    except FieldError as exc:
        raise DataError(f"{what} is in {have!r}; expected {accepted} to derive {var!r}") from exc
    check_plausible(da, have, sample_steps=PLAUSIBILITY_STEPS)
    return out


def _finish(out: xr.DataArray, like: xr.DataArray, name: str, attrs: dict[str, str],
            inputs: Sequence[xr.DataArray], how: str) -> xr.DataArray:
    out = out.transpose(*like.dims)
    out.name = name
    names = " and ".join(str(a.name) for a in inputs)
    out.attrs = {**attrs, "history": f"derived by atmocorrect from {names}: {how}"}
    out.encoding = {"source": _source(like)}
    return out


def relative_humidity(td: xr.DataArray, t: xr.DataArray) -> xr.DataArray:
    """2 m relative humidity (%) from the dewpoint ``td`` and temperature ``t`` (K or degC):
    ``100 e_w(Td) / e_w(T)``, clipped to [0, 100] %.

    Saturation over liquid water at every temperature (:func:`saturation_vapour_pressure`),
    for two reasons: it is the WMO definition of relative humidity, and ERA5's dewpoint is
    itself computed over water (ECMWF's advice for it), so ``e_w(Td)`` is the vapour pressure
    in the air. The IFS mixed phase would make RH higher below 0 degC: by a factor 1.21 at
    -20 degC (80 % over water is 97 % mixed). A model's ``hurs`` may be relative to ice below
    0 degC (as the CMIP6 tables allow): then cold-season values differ by definition, which the
    correction learns as a bias. Dewpoints above the temperature (interpolation noise) give
    100 %.

    >>> t = xr.DataArray([293.15, 273.15, 253.15], dims="time", name="t2m",
    ...                  attrs={"units": "K"})
    >>> td = t.copy(data=[283.15, 273.15, 250.0]).rename("d2m")
    >>> relative_humidity(td, t).round(2).values.tolist()
    [52.52, 100.0, 75.88]
    >>> above = td.copy(data=[294.15, 274.15, 250.0])  # dewpoint above T: clipped
    >>> relative_humidity(above, t).round(2).values.tolist()
    [100.0, 100.0, 75.88]
    """
    td_k = _in_units(td, "K", "K or degC", "hurs")
    t_k = _in_units(t, "K", "K or degC", "hurs")
    rh = 100.0 * np.exp(A3_WATER * ((td_k - T0) / (td_k - A4_WATER)
                                    - (t_k - T0) / (t_k - A4_WATER)))
    return _finish(
        rh.clip(0.0, 100.0), t, "hurs",
        {"units": "%", "standard_name": "relative_humidity",
         "long_name": "2 metre relative humidity (over water), derived"},
        (td, t), f"100 e_w({td.name}) / e_w({t.name}), e_w = {A1} Pa exp({A3_WATER} (T - {T0} K) "
        f"/ (T - {A4_WATER} K)) (Tetens, IFS constants, over water), clipped to [0, 100] %")


def wind_speed(u: xr.DataArray, v: xr.DataArray) -> xr.DataArray:
    """Wind speed (m s-1) from its components ``u`` and ``v`` (m s-1): ``sqrt(u^2 + v^2)``.

    >>> u = xr.DataArray([3.0, -6.0, 0.0], dims="time", name="u10", attrs={"units": "m/s"})
    >>> v = u.copy(data=[4.0, 8.0, 0.0]).rename("v10")
    >>> out = wind_speed(u, v)
    >>> out.values.tolist(), out.attrs["units"], out.attrs["standard_name"]
    ([5.0, 10.0, 0.0], 'm s-1', 'wind_speed')
    """
    u_ms = _in_units(u, "m s-1", "m s-1", "sfcWind")
    v_ms = _in_units(v, "m s-1", "m s-1", "sfcWind")
    return _finish(
        np.hypot(u_ms, v_ms), u, "sfcWind",
        {"units": "m s-1", "standard_name": "wind_speed",
         "long_name": "10 metre wind speed, derived"},
        (u, v), f"sqrt({u.name}^2 + {v.name}^2)")


@dataclasses.dataclass(frozen=True)
class Derivation:
    """A reference variable computed from others: ``inputs`` holds, per argument of
    ``compute``, the names it may be stored under (ERA5 netCDF, ecCodes/GRIB, CMIP), tried in
    order; ``from_means`` says what deriving from daily (or coarser) means does."""

    target: str
    inputs: tuple[tuple[str, ...], ...]
    compute: Callable[..., xr.DataArray]
    from_means: str


#: The derivations, by the CMIP name of the simulation variable.
DERIVATIONS: dict[str, Derivation] = {
    "hurs": Derivation(
        "hurs", (("d2m", "2d", "tdps"), ("t2m", "2t", "tas")), relative_humidity,
        "relative humidity from daily mean dewpoint and temperature is not the daily mean of "
        "the hourly relative humidity (e_w is not linear in T: it differs most where the "
        "diurnal cycle is large)"),
    "sfcWind": Derivation(
        "sfcWind", (("u10", "10u", "uas"), ("v10", "10v", "vas")), wind_speed,
        "wind speed from daily mean u and v underestimates the daily mean speed (the speed of "
        "the mean wind is at most the mean speed; much less when the wind turns within the "
        "day)"),
}


#: Names of the daily mean, maximum and minimum 2 m temperature in a reference (ERA5 netCDF,
#: ecCodes/GRIB, CMIP, E-OBS), tried in order; :data:`~atmocorrect.data.pairs.REFERENCE_NAMES`
#: takes them for ``tas``, ``tasmax`` and ``tasmin``.
TAS_NAMES = ("t2m", "2t", "tas", "tg")
TASMAX_NAMES = ("mx2t", "tasmax", "tx", "mx2t24")
TASMIN_NAMES = ("mn2t", "tasmin", "tn", "mn2t24")


@dataclasses.dataclass(frozen=True)
class Component:
    """A daily statistic that a derivation after the aggregation combines: ``statistic``
    within each day of the reference variable stored under one of ``names``; the extremes
    fall back to sub-daily ``t2m`` (:func:`reference_components`)."""

    statistic: Literal["mean", "max", "min"]
    names: tuple[str, ...]


#: The inputs of the derivations after the aggregation, by name.
COMPONENTS: dict[str, Component] = {
    "tas": Component("mean", TAS_NAMES),
    "tasmax": Component("max", TASMAX_NAMES),
    "tasmin": Component("min", TASMIN_NAMES),
}


def _guarded(out: xr.DataArray, bad: xr.DataArray, what: str, where: str) -> xr.DataArray:
    """``out`` with the values where ``bad`` holds set to missing, and a warning counting them
    (a day whose maximum is not above its minimum has no range to divide by)."""
    count = int(bad.sum())
    if count:
        warnings.warn(f"reference {where}: {count} value(s) of {what}; set to missing (NaN)",
                      stacklevel=5)
    return out.where(~bad)


def diurnal_range(tasmax: xr.DataArray, tasmin: xr.DataArray) -> xr.DataArray:
    """The daily temperature range (K): the day's maximum minus its minimum, both in K.
    A negative range (separately gridded maxima and minima, as E-OBS ``tx``/``tn``, can
    cross) is set to missing, with a warning.

    >>> import warnings
    >>> tx = xr.DataArray([290.0, 280.0, 275.0], dims="time", name="tasmax")
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     out = diurnal_range(tx, tx.copy(data=[281.5, 280.0, 276.0]).rename("tasmin"))
    >>> out.values.tolist(), out.attrs["units"], len(w)
    ([8.5, 0.0, nan], 'K', 1)
    """
    diff = tasmax - tasmin
    out = _guarded(diff, diff < 0, "tasrange with the daily maximum below the daily minimum",
                   _source(tasmax))
    return _finish(
        out, tasmax, "tasrange",
        {"units": "K", "long_name": "daily range of near-surface air temperature, derived"},
        (tasmax, tasmin), "daily maximum minus daily minimum (after the aggregation in time)")


def diurnal_skewness(tas: xr.DataArray, tasmax: xr.DataArray,
                     tasmin: xr.DataArray) -> xr.DataArray:
    """The position of the daily mean in the daily range (1): ``(tas - tasmin) / (tasmax -
    tasmin)`` (ISIMIP3BASD's ``tasskew``), clipped to [0, 1] (a gridded daily mean can lie
    just outside its separately gridded extremes). A day without a range (maximum not above
    the minimum) has none: missing, with a warning, never a division by zero.

    >>> tx = xr.DataArray([290.0, 280.0], dims="time", name="tasmax")
    >>> tn, tg = tx.copy(data=[280.0, 280.0]), tx.copy(data=[283.0, 280.0])
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     out = diurnal_skewness(tg.rename("tas"), tx, tn.rename("tasmin"))
    >>> out.values.tolist(), out.attrs["units"], str(w[0].message).split(":")[1]
    ([0.3, nan], '1', ' 1 value(s) of tasskew without a daily range (maximum not above minimum); set to missing (NaN)')
    """
    span = tasmax - tasmin
    skew = ((tas - tasmin) / span.where(span > 0)).clip(0.0, 1.0)
    out = _guarded(skew, ~(span > 0) & span.notnull(),
                   "tasskew without a daily range (maximum not above minimum)", _source(tas))
    return _finish(
        out, tas, "tasskew",
        {"units": "1", "long_name": "daily skewness of near-surface air temperature "
         "((tas - tasmin) / (tasmax - tasmin)), derived"},
        (tas, tasmax, tasmin),
        "(daily mean - daily minimum) / (daily maximum - daily minimum), clipped to [0, 1] "
        "(after the aggregation in time)")


@dataclasses.dataclass(frozen=True)
class AfterAggregation:
    """A reference variable computed per day from the daily statistics of ``components``
    (:data:`COMPONENTS`, the arguments of ``compute`` in order), after the aggregation of
    sub-daily steps to days and before days are aggregated to months."""

    components: tuple[str, ...]
    compute: Callable[..., xr.DataArray]


#: The derivations after the aggregation, by the CMIP (ISIMIP) name of the simulation variable.
AFTER_AGGREGATION: dict[str, AfterAggregation] = {
    "tasrange": AfterAggregation(("tasmax", "tasmin"), diurnal_range),
    "tasskew": AfterAggregation(("tas", "tasmax", "tasmin"), diurnal_skewness),
}


def component_key(var: str, component: str) -> str:
    """The name a component of ``var`` is carried under in the gathered reference.

    >>> component_key("tasrange", "tasmax")
    'tasrange[tasmax]'
    """
    return f"{var}[{component}]"


def _is_sub_daily(da: xr.DataArray) -> bool:
    try:
        return infer_frequency(da["time"].values, "reference") == "subdaily"
    except (DataError, KeyError):
        return False  # a bad time axis: the pair reading says why


def reference_components(
    var: str, files: Sequence[Path], opened: Sequence[xr.Dataset]
) -> dict[str, tuple[xr.DataArray, list[str]]] | None:
    """The inputs of ``var``'s derivation after the aggregation (:data:`AFTER_AGGREGATION`), by
    component name, each (the variable as stored, lazily; the files it came from); None when
    ``var`` has none or the files do not hold them.

    The extremes are the reference's maxima and minima (ERA5 ``mx2t``/``mn2t``, their daily
    statistics, E-OBS ``tx``/``tn``) when it holds both, else sub-daily ``t2m`` (the daily
    maximum and minimum of the hours: an instant's, slightly inside the extremes between the
    hours); daily means of ``t2m`` have no range and are not taken.

    >>> import cftime
    >>> t = [cftime.DatetimeGregorian(2000, 1, 1, h) for h in range(3)]
    >>> ds = xr.Dataset({"t2m": ("time", [280.0, 283.0, 281.0], {"units": "K"})},
    ...                 coords={"time": t})
    >>> parts = reference_components("tasrange", [Path("era5.nc")], [ds])
    >>> {k: (str(v[0].name), v[1]) for k, v in parts.items()}
    {'tasmax': ('t2m', ['era5.nc']), 'tasmin': ('t2m', ['era5.nc'])}
    >>> reference_components("tasrange", [Path("era5.nc")], [ds.isel(time=[0])]) is None
    True
    """
    recipe = AFTER_AGGREGATION.get(var)
    if recipe is None:
        return None
    found = {name: collect_variable(files, opened, c.names, "reference")
             for name, c in COMPONENTS.items()}
    if found["tasmax"] is None or found["tasmin"] is None:
        tas = found["tas"]
        both = tas if tas is not None and _is_sub_daily(tas[0]) else None
        found["tasmax"] = found["tasmin"] = both
    out = {}
    for name in recipe.components:
        f = found[name]
        if f is None:
            return None
        da = f[0].copy(deep=False)  # lazily: nothing is read here
        da.encoding = {**da.encoding, "source": ", ".join(f[1]), "stored_name": str(da.name)}
        out[name] = (da, list(f[1]))
    return out


def _alternatives(names: Sequence[str]) -> str:
    return names[0] + (f" (or {', '.join(names[1:])})" if len(names) > 1 else "")


def is_input_of(var: str, name: str) -> bool:
    """Whether a reference variable stored as ``name`` is an input of ``var``'s derivation
    (a file holding only ``t2m`` is no ``hurs``).

    >>> is_input_of("hurs", "T2M"), is_input_of("hurs", "rh"), is_input_of("tasrange", "tx")
    (True, False, True)
    """
    if var in AFTER_AGGREGATION:
        inputs: tuple[tuple[str, ...], ...] = tuple(
            COMPONENTS[c].names for c in ("tas", *AFTER_AGGREGATION[var].components))
    else:
        recipe = DERIVATIONS.get(var)
        inputs = recipe.inputs if recipe is not None else ()
    return any(name.lower() in (n.lower() for n in names) for names in inputs)


def why_not_derived(var: str, files: Sequence[Path], opened: Sequence[xr.Dataset]) -> str:
    """The end of the message for a reference variable found under no name: what its
    derivation needs and which inputs no file holds ("" when there is no derivation)."""
    if var in AFTER_AGGREGATION:
        return _why_not_after_aggregation(var, files, opened)
    recipe = DERIVATIONS.get(var)
    if recipe is None:
        return ""
    needs = " and ".join(_alternatives(n) for n in recipe.inputs)
    missing = [names[0] for names in recipe.inputs
               if not any(_has(ds, names) for ds in opened)]
    return (f"; nor can {var!r} be derived: it needs {needs}, and no reference file holds "
            f"{' or '.join(missing)}")


def _why_not_after_aggregation(var: str, files: Sequence[Path],
                               opened: Sequence[xr.Dataset]) -> str:
    """What ``var`` (tasrange, tasskew) needs, and what the reference holds instead."""
    parts = AFTER_AGGREGATION[var].components
    extremes = (f"the daily maximum and minimum temperature: {_alternatives(TASMAX_NAMES)} "
                f"and {_alternatives(TASMIN_NAMES)}, or sub-daily {_alternatives(TAS_NAMES)} "
                "(its daily maximum and minimum are taken; daily means have no range)")
    needs = (f"the daily mean {_alternatives(TAS_NAMES)} and " if "tas" in parts else "") + extremes
    held = [f"{p}: {'sub-daily' if _is_sub_daily(d[v]) else 'daily or coarser'} "
            f"{v}" for p, d in zip(files, opened, strict=True) for v in map(str, d.data_vars)
            if is_input_of(var, v) and "time" in d[v].dims]
    return (f"; nor can {var!r} be derived (after the aggregation to days): it needs {needs}; "
            f"the reference holds {', '.join(held) if held else 'none of them'}")


def _has(ds: xr.Dataset, names: Sequence[str]) -> bool:
    held = {str(v).lower() for v in ds.data_vars}
    return any(n.lower() in held for n in names)


def _warn_from_means(recipe: Derivation, like: xr.DataArray, where: str) -> None:
    try:
        freq = infer_frequency(like["time"].values, f"reference {where}")
    except (DataError, KeyError):
        return  # a bad time axis: the pair reading says why
    if freq != "subdaily":
        word = frequency_word(freq)
        warnings.warn(
            f"reference {where}: {recipe.target!r} derived from {word} "
            f"{' and '.join(str(n[0]) for n in recipe.inputs)}: {recipe.from_means}; derive it "
            f"from hourly data (ERA5 hourly single levels) for the {word} mean of hourly "
            f"values", stacklevel=4)


def derive_reference(
    var: str, files: Sequence[Path], opened: Sequence[xr.Dataset]
) -> tuple[xr.DataArray, list[str]] | None:
    """``var`` derived from the reference files (``opened``, lazily) that hold the inputs of
    its derivation, and the files used; None when ``var`` has no derivation or some input is
    in no file. Computed at the reference's own time step, before any aggregation; a warning
    when that step is a day or longer (:attr:`Derivation.from_means`).

    >>> import cftime
    >>> t = [cftime.DatetimeGregorian(2000, 1, 1, h) for h in range(3)]
    >>> ds = xr.Dataset({n: ("time", [3.0, 0.0, -1.0], {"units": "m s-1"})
    ...                  for n in ("u10", "v10")}, coords={"time": t})
    >>> da, where = derive_reference("sfcWind", [Path("era5.nc")], [ds])
    >>> da.name, da.values.round(3).tolist(), where
    ('sfcWind', [4.243, 0.0, 1.414], ['era5.nc'])
    >>> derive_reference("sfcWind", [Path("era5.nc")], [ds.drop_vars("v10")]) is None
    True
    """
    recipe = DERIVATIONS.get(var)
    if recipe is None:
        return None
    found = [collect_variable(files, opened, names, "reference") for names in recipe.inputs]
    if any(f is None for f in found):
        return None
    where = list(dict.fromkeys(p for f in found if f is not None for p in f[1]))
    arrays = []
    for f in found:
        assert f is not None
        da = f[0].copy(deep=False)  # lazily: nothing is read here
        da.encoding = {**da.encoding, "source": ", ".join(f[1])}
        arrays.append(da)
    try:
        aligned = xr.align(*arrays, join="exact")
    except ValueError as exc:
        raise DataError(
            f"reference {', '.join(where)}: cannot derive {var!r}: "
            f"{' and '.join(str(a.name) for a in arrays)} do not share one grid and time axis "
            f"({exc})") from exc
    for a, b in zip(aligned, arrays, strict=True):
        a.encoding = dict(b.encoding)
    _warn_from_means(recipe, aligned[0], ", ".join(where))
    out = recipe.compute(*aligned)
    out.encoding["source"] = ", ".join(where)
    return out, where
