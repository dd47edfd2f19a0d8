"""Time axes of climate files: cftime calendars, frequencies, periods and seasons.

Climate models use ``noleap``, ``360_day`` or ``gregorian`` calendars and ERA5
``proleptic_gregorian``; files are read with cftime objects throughout so that no date is
silently shifted. The ``standard``-like calendars (``standard``, ``gregorian``,
``proleptic_gregorian``) agree on every date after 1582 and are treated as one.

Example
-------
>>> import cftime, numpy as np
>>> t = np.array([cftime.DatetimeNoLeap(2000, 1, 1), cftime.DatetimeNoLeap(2000, 7, 2)])
>>> calendar_of_values(t), [round(float(f), 3) for f in year_fraction(t)]
('noleap', [0.0, 0.499])
>>> parse_period("1979-2004")
(1979, 2004)
"""

from __future__ import annotations

from typing import Literal

import cftime
import numpy as np
import xarray as xr

from ..errors import DataError

Frequency = Literal["subdaily", "day", "month", "year"]
STANDARD_LIKE = {"standard", "gregorian", "proleptic_gregorian"}
_CAL_ALIASES = {"365_day": "noleap", "366_day": "all_leap", "gregorian": "standard"}


def parse_period(text: str | tuple[int, int]) -> tuple[int, int]:
    """``"1979-2004"`` or ``"2005"`` -> inclusive (first year, last year)."""
    if isinstance(text, tuple):
        start, end = text
    else:
        parts = str(text).strip().split("-") if "-" in str(text) else [str(text), str(text)]
        if len(parts) != 2:
            raise DataError(f"period {text!r} is not of the form YYYY-YYYY")
        try:
            start, end = int(parts[0]), int(parts[1])
        except ValueError:
            raise DataError(f"period {text!r} is not of the form YYYY-YYYY") from None
    if end < start:
        raise DataError(f"period {text!r} ends before it starts")
    return int(start), int(end)


def format_period(period: tuple[int, int]) -> str:
    return f"{period[0]}-{period[1]}"


def calendar_of_values(values: np.ndarray) -> str:
    """The calendar of an array of cftime (or numpy datetime64) values."""
    if np.issubdtype(np.asarray(values).dtype, np.datetime64):
        return "proleptic_gregorian"
    first = np.asarray(values).ravel()[0]
    cal = getattr(first, "calendar", None)
    if not cal:
        raise DataError(f"time values of type {type(first).__name__} carry no calendar")
    return str(cal)


def calendar_of(da: xr.DataArray | xr.Dataset) -> str:
    """The calendar of ``da.time`` (from its encoding, else from the cftime values)."""
    enc = da["time"].encoding.get("calendar")
    return str(enc) if enc else calendar_of_values(da["time"].values)


def canonical_calendar(cal: str) -> str:
    cal = cal.lower()
    if cal in STANDARD_LIKE:
        return "standard"
    return _CAL_ALIASES.get(cal, cal)


def same_calendar(a: str, b: str) -> bool:
    """True when dates mean the same days in both calendars (after 1582)."""
    return canonical_calendar(a) == canonical_calendar(b)


def to_cftime(values: np.ndarray, calendar: str = "proleptic_gregorian") -> np.ndarray:
    """numpy datetime64 values (from cfgrib) as cftime objects of ``calendar``."""
    values = np.asarray(values)
    if not np.issubdtype(values.dtype, np.datetime64):
        return values
    out = np.empty(values.shape, dtype=object)
    for i, v in enumerate(values.astype("datetime64[s]").astype(object).ravel()):
        out.flat[i] = cftime.datetime(
            v.year, v.month, v.day, v.hour, v.minute, v.second, calendar=calendar
        )
    return out


def years(values: np.ndarray) -> np.ndarray:
    return np.array([t.year for t in np.asarray(values).ravel()], dtype=np.int64)


def months(values: np.ndarray) -> np.ndarray:
    return np.array([t.month for t in np.asarray(values).ravel()], dtype=np.int64)


def days_in_year(values: np.ndarray) -> np.ndarray:
    out = []
    for t in np.asarray(values).ravel():
        start = cftime.datetime(t.year, 1, 1, calendar=t.calendar)
        end = cftime.datetime(t.year + 1, 1, 1, calendar=t.calendar)
        out.append((end - start).days)
    return np.array(out, dtype=np.float64)


def year_fraction(values: np.ndarray) -> np.ndarray:
    """Position in the year in [0, 1), calendar-aware: ``(dayofyr - 1 + hour/24) / len``.

    The same season gets the same value in ``noleap``, ``360_day`` and ``standard`` calendars.
    """
    values = np.asarray(values).ravel()
    if values.size == 0:
        return np.zeros(0)
    doy = np.array([t.dayofyr - 1 + (t.hour + t.minute / 60.0) / 24.0 for t in values])
    # days_in_year is slow per value; compute per distinct year
    yrs = years(values)
    lengths = {}
    for y in np.unique(yrs):
        t = values[np.argmax(yrs == y)]
        lengths[y] = (
            cftime.datetime(y + 1, 1, 1, calendar=t.calendar)
            - cftime.datetime(y, 1, 1, calendar=t.calendar)
        ).days
    n = np.array([lengths[y] for y in yrs], dtype=np.float64)
    return np.clip(doy / n, 0.0, np.nextafter(1.0, 0.0))


def season_position(values: np.ndarray, frequency: Frequency) -> np.ndarray:
    """Position in the seasonal cycle in [0, 1): mid-month for monthly data (time stamps of
    monthly means differ between files: the 1st in ERA5, mid-month in CMIP6), else
    :func:`year_fraction`.

    >>> import cftime
    >>> t = [cftime.DatetimeGregorian(2000, 1, 1), cftime.DatetimeNoLeap(2000, 1, 16, 12)]
    >>> season_position(np.array(t), "month").tolist()
    [0.041666666666666664, 0.041666666666666664]
    """
    if frequency in ("month", "year"):
        return (months(values) - 0.5) / 12.0
    return year_fraction(values)


def infer_frequency(values: np.ndarray, source: str = "time axis") -> Frequency:
    """``subdaily``, ``day``, ``month`` or ``year`` from the median spacing of the time axis."""
    values = np.asarray(values).ravel()
    if values.size < 2:
        raise DataError(f"{source}: need at least two time steps, got {values.size}")
    diffs = np.array([(b - a).total_seconds() for a, b in zip(values[:-1], values[1:], strict=True)])
    if np.any(diffs <= 0):
        bad = int(np.argmax(diffs <= 0))
        raise DataError(
            f"{source}: time is not strictly increasing at step {bad + 1} "
            f"({values[bad]} then {values[bad + 1]})"
        )
    days = float(np.median(diffs)) / 86400.0
    if days < 0.99:
        return "subdaily"
    if days < 1.5:
        return "day"
    if days < 40:
        return "month"
    return "year"


def select_years(
    obj: xr.DataArray | xr.Dataset, period: tuple[int, int], source: str = "data"
) -> xr.DataArray | xr.Dataset:
    """The time steps of the inclusive year range ``period``; raises if there are none."""
    yrs = years(obj["time"].values)
    keep = (yrs >= period[0]) & (yrs <= period[1])
    if not keep.any():
        raise DataError(
            f"{source} covers {describe_span(obj)}, which does not overlap the requested "
            f"period {format_period(period)}"
        )
    return obj.isel(time=np.flatnonzero(keep))


def require_period(
    obj: xr.DataArray | xr.Dataset,
    period: tuple[int, int],
    what: str,
    option: str = "--calibration",
) -> None:
    """Raise unless ``obj`` covers the whole of the year range ``period`` (its first time
    step in January of the first year or before, its last in December of the last year or
    after): a calibration or evaluation silently cut short would not be what was asked for.

    >>> import cftime
    >>> t = [cftime.DatetimeNoLeap(y, m, 15) for y in (1985, 1986) for m in range(1, 13)]
    >>> da = xr.DataArray(np.zeros(24), dims="time", coords={"time": t})
    >>> require_period(da, (1985, 1986), "the simulation x.nc")
    >>> require_period(da, (1979, 1986), "the simulation x.nc")
    Traceback (most recent call last):
    atmocorrect.errors.DataError: the simulation x.nc covers 1985-01-15 .. 1986-12-15 (24 steps), not the whole period 1979-1986; pass a period inside it (e.g. --calibration 1985-1986) or a file that covers it
    """
    t = obj["time"].values
    if t.size == 0:
        raise DataError(f"{what} has no time steps")
    first, last = t[0], t[-1]
    starts_in_time = (first.year, first.month) <= (period[0], 1)
    ends_in_time = (last.year, last.month) >= (period[1], 12)
    if starts_in_time and ends_in_time:
        return
    lo = max(period[0], first.year if first.month == 1 else first.year + 1)
    hi = min(period[1], last.year if last.month == 12 else last.year - 1)
    hint = f"e.g. {option} {lo}-{hi}" if lo <= hi else f"{option} YYYY-YYYY"
    raise DataError(
        f"{what} covers {describe_span(obj)}, not the whole period {format_period(period)}; "
        f"pass a period inside it ({hint}) or a file that covers it"
    )


def describe_span(obj: xr.DataArray | xr.Dataset) -> str:
    t = obj["time"].values
    if t.size == 0:
        return "no time steps"
    return f"{t[0].strftime('%Y-%m-%d')} .. {t[-1].strftime('%Y-%m-%d')} ({t.size} steps)"


def covered_years(obj: xr.DataArray | xr.Dataset) -> tuple[int, int]:
    yrs = years(obj["time"].values)
    return int(yrs.min()), int(yrs.max())


def check_overlap(
    a: xr.DataArray | xr.Dataset,
    b: xr.DataArray | xr.Dataset,
    name_a: str,
    name_b: str,
    period: tuple[int, int] | None = None,
) -> tuple[int, int]:
    """The years both cover (within ``period`` if given); raises naming both spans if none."""
    ya, yb = covered_years(a), covered_years(b)
    start, end = max(ya[0], yb[0]), min(ya[1], yb[1])
    if period is not None:
        start, end = max(start, period[0]), min(end, period[1])
    if start > end:
        want = f" within {format_period(period)}" if period else ""
        raise DataError(
            f"periods do not overlap{want}: {name_a} covers {describe_span(a)}, "
            f"{name_b} covers {describe_span(b)}"
        )
    return start, end
