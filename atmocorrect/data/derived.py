"""Reference variables derived from what ERA5 provides: ``hurs`` from ``d2m`` and ``t2m``,
``sfcWind`` from ``u10`` and ``v10``.

ERA5 single-level data on the CDS hold no 2 m relative humidity, and the hourly product
usually no 10 m wind speed; users download the 2 m dewpoint and temperature and the 10 m wind
components. When a reference holds none of the names of a simulation variable
(:data:`~atmocorrect.data.pairs.REFERENCE_NAMES`, no ``--reference-name`` given) but the inputs
of a derivation in :data:`DERIVATIONS`, the pair reading derives it (:func:`derive_reference`),
lazily, *before* any aggregation in time: hourly relative humidity (speed) first, then the
daily mean of it, which is what "daily mean relative humidity" means; the mean speed of a
day is not the speed of the day's mean wind (``|mean(u, v)| <= mean(|(u, v)|)``). Deriving from
daily (or coarser) means is allowed, with a warning saying how it differs.

Not derived: ``tasrange`` from ``mx2t`` and ``mn2t``. Hourly ``mx2t - mn2t`` is the range
within each hour, whose daily mean is not the daily range (the daily maximum of ``mx2t``
minus the daily minimum of ``mn2t``); it needs a derivation *after* the aggregation, which
this hook, placed before it, cannot give.

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


def _alternatives(names: Sequence[str]) -> str:
    return names[0] + (f" (or {', '.join(names[1:])})" if len(names) > 1 else "")


def is_input_of(var: str, name: str) -> bool:
    """Whether a reference variable stored as ``name`` is an input of ``var``'s derivation
    (a file holding only ``t2m`` is no ``hurs``).

    >>> is_input_of("hurs", "T2M"), is_input_of("hurs", "rh")
    (True, False)
    """
    recipe = DERIVATIONS.get(var)
    return recipe is not None and any(
        name.lower() in (n.lower() for n in names) for names in recipe.inputs)


def why_not_derived(var: str, files: Sequence[Path], opened: Sequence[xr.Dataset]) -> str:
    """The end of the message for a reference variable found under no name: what its
    derivation needs and which inputs no file holds ("" when there is no derivation)."""
    recipe = DERIVATIONS.get(var)
    if recipe is None:
        return ""
    needs = " and ".join(_alternatives(n) for n in recipe.inputs)
    missing = [names[0] for names in recipe.inputs
               if not any(_has(ds, names) for ds in opened)]
    return (f"; nor can {var!r} be derived: it needs {needs}, and no reference file holds "
            f"{' or '.join(missing)}")


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
