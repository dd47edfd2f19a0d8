"""Units of real files checked and converted: temperature (K, degC), pressure (Pa, hPa),
precipitation as a flux (kg m-2 s-1, mm/day) or as an accumulated depth (ERA5 ``tp`` in m),
radiation as a flux (W m-2) or as accumulated energy (ERA5 ``ssrd``, ``strd`` in J m-2).

Units are taken from the ``units`` attribute, then checked against the values: a field
labelled ``K`` whose values lie between -20 and 30 is refused with a message that says they
look like degC, rather than corrected silently or by a wrong offset.

Example
-------
>>> import numpy as np, xarray as xr
>>> t = xr.DataArray(np.array([10.0, 20.0]), dims="x", attrs={"units": "degC"}, name="t2m")
>>> conform_units(t, "K").values.tolist(), conform_units(t, "K").attrs["units"]
([283.15, 293.15], 'K')
>>> bad = xr.DataArray(np.array([10.0, 20.0]), dims="x", attrs={"units": "K"}, name="tas")
>>> conform_units(bad, "K")
Traceback (most recent call last):
atmocorrect.errors.DataError: data: variable 'tas' has units 'K' but its values lie in 10 .. 20, outside the plausible range 150 .. 350 for K (wrong units attribute? degC?)
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from .. import units as U
from ..errors import DataError, FieldError
from .timeaxis import infer_frequency, regular_step, whole_seconds

PRECIP_NAMES = {"pr", "tp", "mtpr", "avg_tprate", "prc", "prl", "precip", "precipitation", "cp", "lsp", "rr", "tot_prec"}


def is_precipitation(da: xr.DataArray) -> bool:
    std = str(da.attrs.get("standard_name", "")).lower()
    name = str(da.name or "").lower()
    return "precipitation" in std or name in PRECIP_NAMES


def is_accumulated_amount(da: xr.DataArray, units: str | None = None) -> bool:
    """Whether ``da`` holds amounts accumulated over a period, which become a mean flux over
    it: precipitation in m, mm or kg m-2 (not snow depth in m), or energy in J m-2 (ERA5
    radiation ``ssrd``, ``strd``; a state in J m-2 cannot be compared with a flux anyway).

    >>> ssrd = xr.DataArray([0.0], name="ssrd", attrs={"units": "J m**-2"})
    >>> is_accumulated_amount(ssrd), is_accumulated_amount(ssrd.rename("sd").assign_attrs(units="m"))
    (True, False)
    """
    units = units if units is not None else da.attrs.get("units")
    return (is_precipitation(da) and U.is_accumulation(units)) or U.is_energy_accumulation(units)


#: Names of temperature differences (the diurnal range ``tasrange``): their K (or degC) are
#: checked against :data:`DIFFERENCE_RANGE`, not against the range of absolute temperatures.
TEMPERATURE_DIFFERENCES = frozenset({"tasrange", "dtr"})
DIFFERENCE_RANGE = (-1.0, 80.0)


def is_temperature_difference(da: xr.DataArray) -> bool:
    """Whether ``da`` holds temperature differences (:data:`TEMPERATURE_DIFFERENCES`), which
    are converted between K and degC without the offset.

    >>> is_temperature_difference(xr.DataArray([8.0], name="tasrange"))
    True
    """
    return str(da.name or "").lower() in TEMPERATURE_DIFFERENCES


def plausible_range_of(da: xr.DataArray, units: str | None) -> tuple[float, float] | None:
    """The range ``da``'s values in ``units`` should lie in (:func:`~atmocorrect.units.
    plausible_range`), or :data:`DIFFERENCE_RANGE` for a temperature difference in K or degC.

    >>> plausible_range_of(xr.DataArray([8.0], name="tasrange"), "K")
    (-1.0, 80.0)
    >>> plausible_range_of(xr.DataArray([280.0], name="tas"), "K")
    (150.0, 350.0)
    """
    if is_temperature_difference(da) and U.canonical(units) in ("K", "degC"):
        return DIFFERENCE_RANGE
    return U.plausible_range(units)


def source_of(da: xr.DataArray) -> str:
    return str(da.encoding.get("source", "data"))


def accumulation_period_seconds(da: xr.DataArray, given: float | None = None) -> float:
    """The period an accumulated amount refers to: ``given``, else from the time step.

    Hourly (or finer) data: the time step (ERA5 hourly ``tp``: the hour ending at the stamp).
    Monthly means of ERA5 accumulations are daily accumulations (ECMWF convention): one day.
    Daily files are ambiguous (a daily sum, or the daily mean of hourly accumulations) and
    need ``given``; so are sub-daily steps longer than an hour: ERA5 hourly data downloaded
    every 3 or 6 hours still hold 1-hour amounts, other products the amount of the whole step.

    >>> import cftime, numpy as np
    >>> t = [cftime.DatetimeGregorian(2000, 1, 1, h) for h in range(0, 24, 6)]
    >>> tp = xr.DataArray(np.zeros(4), dims="time", coords={"time": t}, name="tp",
    ...                   attrs={"units": "m"})
    >>> accumulation_period_seconds(tp, 3600)  # ERA5 hourly, every 6th hour downloaded
    3600.0
    >>> accumulation_period_seconds(tp)
    Traceback (most recent call last):
    atmocorrect.errors.DataError: data: variable 'tp' is an accumulation in 'm' on a 6-hourly time axis: ERA5 hourly data downloaded every 6 hours still hold 1-hour amounts (--accumulation-period 3600), other products the amount of the whole step (--accumulation-period 21600); say which
    """
    if given is not None:
        if given <= 0:
            raise DataError(f"accumulation period must be positive, got {given} s")
        _warn_if_longer_than_step(da, float(given))
        return float(given)
    t = da["time"].values
    freq = infer_frequency(t, source=source_of(da))
    if freq == "subdaily":
        step = regular_step(t, source=source_of(da))
        if step <= 3600:
            return float(step)
        raise DataError(
            f"{source_of(da)}: variable {da.name!r} is an accumulation in "
            f"{da.attrs.get('units')!r} on a {step / 3600:g}-hourly time axis: ERA5 hourly data "
            f"downloaded every {step / 3600:g} hours still hold 1-hour amounts "
            f"(--accumulation-period 3600), other products the amount of the whole step "
            f"(--accumulation-period {step}); say which"
        )
    if freq in ("month", "year"):
        return 86400.0
    raise DataError(
        f"{source_of(da)}: variable {da.name!r} is an accumulation in {da.attrs.get('units')!r} "
        "on a daily time axis, which may be a daily total or the daily mean of hourly "
        "accumulations; give the accumulation period (accumulation_period=86400 or 3600, "
        "--accumulation-period)"
    )


def _hours_and_gaps(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """UTC hour of each stamp, and whether the stamp before it is one hour earlier."""
    secs = whole_seconds(t)
    hours = ((secs // 3600) % 24).astype(int)
    follows = np.concatenate([[False], np.diff(secs) == 3600])
    return hours, follows


def is_running_daily_total(da: xr.DataArray, sample_steps: int = 24 * 120,
                           min_wet_pairs: int = 48) -> bool:
    """Whether an hourly accumulated amount holds running totals since 00 UTC (ERA5-Land's
    convention: the value at 01 UTC is the first hour, at 00 UTC the whole previous day) rather
    than the amount of each hour (ERA5's), for water (``tp``) and energy (``ssrd``, ``strd``).
    Judged on the first ``sample_steps``: within a day a running total never decreases, while
    hourly amounts fall whenever rain stops (the sun sinks, the air cools).

    >>> import cftime
    >>> t = [cftime.DatetimeGregorian(2000, 1, 1 + (h + 1) // 24, (h + 1) % 24) for h in range(96)]
    >>> hourly = np.tile([0.0, 2e-4, 5e-4, 0.0, 0.0, 1e-4] * 4, 4)
    >>> tp = xr.DataArray(hourly, dims="time", coords={"time": t}, name="tp", attrs={"units": "m"})
    >>> is_running_daily_total(tp, min_wet_pairs=10)
    False
    >>> total = np.concatenate([np.cumsum(d) for d in hourly.reshape(4, 24)])
    >>> is_running_daily_total(tp.copy(data=total), min_wet_pairs=10)
    True
    """
    units = da.attrs.get("units")
    water = U.is_accumulation(units)
    if not (water or U.is_energy_accumulation(units)) or "time" not in da.dims:
        return False
    part = da.isel(time=slice(0, sample_steps))
    hours, follows = _hours_and_gaps(part["time"].values)
    values = np.asarray(part.transpose("time", ...).values, dtype=np.float64)
    values = values.reshape(values.shape[0], -1)
    same_total = (follows & (hours != 1))[1:]  # pairs (t-1, t) inside one running total
    before, after = values[:-1][same_total], values[1:][same_total]
    # rain (> 1e-5 of a water depth) or daylight (energy: any); dry or dark pairs tell nothing
    floor = 1e-5 if water else 0.0
    wet = np.isfinite(before) & np.isfinite(after) & (np.maximum(before, after) > floor)
    if wet.sum() < min_wet_pairs:
        return False
    tolerance = 1e-6 * np.nanmax(np.abs(values))  # packing noise of GRIB/netCDF shorts
    return bool(np.mean(after[wet] >= before[wet] - tolerance) > 0.98)


def deaccumulate_daily_running_totals(da: xr.DataArray) -> xr.DataArray:
    """Hourly amounts from running totals since 00 UTC (ERA5-Land): the 01 UTC value as it is,
    every other hour minus the hour before; an hour whose predecessor is missing (the first
    step, a gap) becomes NaN; tiny negative differences (packing noise) become 0.

    >>> import cftime
    >>> t = [cftime.DatetimeGregorian(2000, 1, 1, h) for h in (0, 1, 2, 3)]
    >>> tp = xr.DataArray([9.0, 1.0, 3.0, 3.0], dims="time", coords={"time": t}, name="tp",
    ...                   attrs={"units": "m"})
    >>> deaccumulate_daily_running_totals(tp).values.tolist()
    [nan, 1.0, 2.0, 0.0]
    """
    hours, follows = _hours_and_gaps(da["time"].values)
    previous = da.shift(time=1)
    first_hour = xr.DataArray(hours == 1, dims="time")
    has_previous = xr.DataArray(follows, dims="time")
    amount = xr.where(first_hour, da, xr.where(has_previous, da - previous, np.nan))
    amount = amount.clip(min=0.0).transpose(*da.dims).astype(da.dtype)
    amount.attrs, amount.encoding, amount.name = dict(da.attrs), dict(da.encoding), da.name
    return amount


def _warn_if_longer_than_step(da: xr.DataArray, given: float) -> None:
    """A period longer than a sub-daily step (``--accumulation-period 86400`` kept from daily
    files for hourly ERA5) makes each amount that many times too small: warn."""
    if "time" not in da.dims or da.sizes["time"] < 2:
        return
    t = da["time"].values
    if infer_frequency(t, source=source_of(da)) != "subdaily":
        return
    step = regular_step(t, source=source_of(da))
    if given > step:
        warnings.warn(
            f"{source_of(da)}: variable {da.name!r}: each amount is taken as accumulated over "
            f"{given:g} s (the accumulation period given) but the values are {step} s apart; "
            f"ERA5 hourly {da.name} holds the amount of one hour (--accumulation-period 3600, "
            "or leave it out for hourly data)", stacklevel=4)


def check_plausible(da: xr.DataArray, units: str | None = None, sample_steps: int = 400) -> None:
    """Raise when values do not look like their units (checked on the first time steps)."""
    units = units if units is not None else da.attrs.get("units")
    rng = plausible_range_of(da, units)
    if rng is None:
        return
    part = da.isel(time=slice(0, sample_steps)) if "time" in da.dims else da
    values = np.asarray(part.values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        raise DataError(f"{source_of(da)}: variable {da.name!r} holds no finite value")
    lo, hi = float(finite.min()), float(finite.max())
    if lo < rng[0] or hi > rng[1]:
        hint = ""
        if U.canonical(units) == "K" and -120 <= lo and hi <= 75:
            hint = " (wrong units attribute? degC?)"
        elif U.canonical(units) == "degC" and lo >= 150 and hi <= 350:
            hint = " (wrong units attribute? K?)"
        elif U.canonical(units) == "Pa" and hi < 1200:
            hint = " (wrong units attribute? hPa?)"
        raise DataError(
            f"{source_of(da)}: variable {da.name!r} has units {units!r} but its values lie in "
            f"{lo:.4g} .. {hi:.4g}, outside the plausible range {rng[0]:.4g} .. {rng[1]:.4g} "
            f"for {U.canonical(units)}{hint}"
        )


def check_flux(flux: xr.DataArray, flux_units: str, units: str, period: float, *, given: bool,
               source: str = "data", sample_steps: int = 400) -> None:
    """Raise when amounts in ``units`` taken as accumulated over ``period`` seconds give mean
    fluxes (``flux``, in ``flux_units``) outside their plausible range: a daily total of ERA5
    ``ssrd`` (up to 3.5e7 J m-2) over 3600 s would be 9700 W m-2. The error names the file, the
    variable (``source``, ``flux.name``), the period and the option that sets it. (An hourly amount taken as a daily one is
    24 times too small but plausible: that cannot be caught here.)

    >>> import numpy as np
    >>> day = xr.DataArray(np.array([3.0e7]), dims="time", name="ssrd")
    >>> check_flux(day / 86400.0, "W m-2", "J m-2", 86400.0, given=True)
    >>> check_flux(day / 3600.0, "W m-2", "J m-2", 3600.0, given=True)
    Traceback (most recent call last):
    atmocorrect.errors.DataError: data: variable 'ssrd' in 'J m-2' accumulated over 3600 s (the accumulation period given) is a mean flux of 8333 .. 8333 W m-2, outside the plausible range -1000 .. 1500 W m-2: is the accumulation period right? Give --accumulation-period (accumulation_period=): 3600 for ERA5 hourly amounts and for ERA5 daily statistics (daily means of hourly amounts), 86400 for daily totals
    """
    rng = U.plausible_range(flux_units)
    if rng is None:
        return
    part = flux
    if "time" in flux.dims and flux.sizes["time"] > sample_steps:  # over the whole period:
        # a winter's first steps alone can look plausible with the wrong period
        part = flux.isel(time=np.unique(np.linspace(0, flux.sizes["time"] - 1,
                                                    sample_steps).astype(int)))
    values = np.asarray(part.values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return  # check_plausible says so for the raw values
    lo, hi = float(finite.min()), float(finite.max())
    if rng[0] <= lo and hi <= rng[1]:
        return
    how = "the accumulation period given" if given else "the time step"
    raise DataError(
        f"{source}: variable {flux.name!r} in {units!r} accumulated over {period:g} s "
        f"({how}) is a mean flux of {lo:.4g} .. {hi:.4g} {flux_units}, outside the plausible "
        f"range {rng[0]:.4g} .. {rng[1]:.4g} {flux_units}: is the accumulation period right? "
        "Give --accumulation-period (accumulation_period=): 3600 for ERA5 hourly amounts and "
        "for ERA5 daily statistics (daily means of hourly amounts), 86400 for daily totals")


def conform_units(
    da: xr.DataArray,
    target: str,
    *,
    accumulation_period: float | None = None,
    check: bool = True,
) -> xr.DataArray:
    """``da`` converted to ``target`` units, its ``units`` attribute set to ``target``."""
    source = source_of(da)
    have = da.attrs.get("units")
    if have is None:
        raise DataError(
            f"{source}: variable {da.name!r} has no 'units' attribute; expected {target!r}"
        )
    if check:
        check_plausible(da, have)
    out = da
    try:
        if U.same(have, target):
            out = da
        elif is_accumulated_amount(da, have):
            period = accumulation_period_seconds(da, accumulation_period)
            flux_units = U.accumulation_flux_units(have)
            assert flux_units is not None
            flux = U.accumulation_to_flux(da, have, period, what=f"{source}: {da.name}")
            if check:
                check_flux(flux, flux_units, have, period, given=accumulation_period is not None,
                           source=source)
            out = U.convert(flux, flux_units, target, what=f"{source}: {da.name}")
        else:
            out = U.convert(da, have, target, what=f"{source}: {da.name}",
                            difference=is_temperature_difference(da))
    except FieldError as exc:
        raise DataError(
            f"{source}: variable {da.name!r} is in {have!r}, which cannot be converted to "
            f"{target!r} ({exc})"
        ) from exc
    out = out.copy() if out is da else out
    out.attrs = {**da.attrs, "units": target}
    out.encoding = dict(da.encoding)
    out.name = da.name
    return out
