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


#: The adjective of each frequency, for messages.
FREQUENCY_WORDS: dict[str, str] = {"subdaily": "sub-daily", "day": "daily", "month": "monthly",
                                   "year": "yearly"}


def frequency_word(frequency: str) -> str:
    """``daily`` for ``day``, ``sub-daily`` for ``subdaily``, ...

    >>> frequency_word("subdaily"), frequency_word("month")
    ('sub-daily', 'monthly')
    """
    return FREQUENCY_WORDS.get(frequency, frequency)


def infer_frequency(values: np.ndarray, source: str = "time axis") -> Frequency:
    """``subdaily``, ``day``, ``month`` or ``year`` from the median spacing of the time axis."""
    values = np.asarray(values).ravel()
    if values.size < 2:
        raise DataError(f"{source}: need at least two time steps, got {values.size}")
    diffs = _spacings_seconds(values).astype(np.float64)
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


# ----------------------------------------------------------------- sub-daily references
def whole_seconds(values: np.ndarray) -> np.ndarray:
    """Time stamps as seconds from their calendar's origin, rounded to the second (float noise
    of decoded times, 05:59:59.999999, removed); fast: no cftime arithmetic.

    >>> import cftime
    >>> t = np.array([cftime.DatetimeNoLeap(2001, 2, 28, 23), cftime.DatetimeNoLeap(2001, 3, 1)])
    >>> np.diff(whole_seconds(t)).tolist()
    [3600]
    """
    values = np.asarray(values).ravel()
    if np.issubdtype(values.dtype, np.datetime64):
        return values.astype("datetime64[s]").astype(np.int64)
    micro = np.fromiter(
        ((t.toordinal() * 86400 + t.hour * 3600 + t.minute * 60 + t.second) * 1_000_000
         + t.microsecond for t in values), dtype=np.int64, count=values.size)
    return (micro + 500_000) // 1_000_000


def _spacings_seconds(values: np.ndarray) -> np.ndarray:
    """Whole seconds between consecutive time stamps (cftime or datetime64)."""
    return np.diff(whole_seconds(values))


def _stamp(t: object) -> str:
    return t.strftime("%Y-%m-%d %H:%M") if hasattr(t, "strftime") else str(t)


def regular_step(values: np.ndarray, source: str = "time axis") -> int:
    """The time step in seconds of a sub-daily axis, checked: it divides a day and every spacing
    is a whole number of steps (a gap of missing steps is allowed: the days it touches become
    incomplete); raises a :class:`DataError` naming ``source`` and the first odd step otherwise.

    >>> import cftime
    >>> t = np.array([cftime.DatetimeGregorian(2000, 1, 1, h) for h in (0, 1, 2, 5, 6, 7)])
    >>> regular_step(t, "era5.nc")
    3600
    >>> t[3] = cftime.DatetimeGregorian(2000, 1, 1, 4, 30)
    >>> regular_step(t, "era5.nc")
    Traceback (most recent call last):
    atmocorrect.errors.DataError: era5.nc: irregular time steps: step 3 (2000-01-01 02:00 to 2000-01-01 04:30) is 9000 s, not a whole number of the axis's 3600 s step; a file of another time step among the others? Give files of one time step
    """
    values = np.asarray(values).ravel()
    if values.size < 2:
        raise DataError(f"{source}: need at least two time steps, got {values.size}")
    diffs = _spacings_seconds(values)
    if np.any(diffs <= 0):
        bad = int(np.argmax(diffs <= 0))
        raise DataError(f"{source}: time is not strictly increasing at step {bad + 1} "
                        f"({_stamp(values[bad])} then {_stamp(values[bad + 1])})")
    spacings, counts = np.unique(diffs, return_counts=True)
    step = int(spacings[np.argmax(counts)])  # the usual spacing; gaps are multiples of it
    if 86400 % step:
        raise DataError(f"{source}: the time step of {step} s does not divide a day; sub-daily "
                        "steps must be 1, 2, 3, 4, 6, 8 or 12 hours (or divide an hour)")
    odd = np.flatnonzero(diffs % step)
    if odd.size:
        i = int(odd[0])
        raise DataError(
            f"{source}: irregular time steps: step {i + 1} ({_stamp(values[i])} to "
            f"{_stamp(values[i + 1])}) is {int(diffs[i])} s, not a whole number of the axis's "
            f"{step} s step; a file of another time step among the others? Give files of one "
            "time step")
    return step


def seconds_of_day(t: object) -> int:
    """Seconds since 00:00 of the date of ``t`` (cftime or datetime)."""
    return int(t.hour) * 3600 + int(t.minute) * 60 + int(t.second)


def step_back(values: np.ndarray, step: int, ends_step: bool) -> int:
    """Seconds to move each stamp back to sort its value into its day: none, or, for values
    that describe the step ending at their stamps (ERA5 accumulations such as ``tp``,
    ``mx2t``, ``mn2t``: the hour before the stamp), half a step, so that ERA5's ``tp`` at 00:00
    belongs to the day before. Stamps already in the middle of their steps (01:30, 04:30, ...
    for 3-hourly means) are not moved.

    >>> import cftime
    >>> t = np.array([cftime.DatetimeGregorian(2000, 1, 2, h) for h in (0, 1)])
    >>> step_back(t, 3600, ends_step=True), step_back(t, 3600, ends_step=False)
    (1800, 0)
    >>> step_back(t + np.timedelta64(30, "m").item(), 3600, ends_step=True)
    0
    """
    values = np.asarray(values).ravel()
    if not ends_step or values.size == 0 or seconds_of_day(values[0]) % step:
        return 0
    return step // 2


def period_end(start: object, to: Frequency) -> object:
    """The start of the next day, month or year after the period starting at ``start``.

    >>> import cftime
    >>> period_end(cftime.DatetimeNoLeap(2001, 12, 1), "month")
    cftime.DatetimeNoLeap(2002, 1, 1, 0, 0, 0, 0, has_year_zero=True)
    """
    import datetime

    if to == "day":
        return start + datetime.timedelta(days=1)
    midnight = {"day": 1, "hour": 0, "minute": 0, "second": 0, "microsecond": 0}
    if to == "month":
        return start.replace(year=start.year + (start.month == 12), month=start.month % 12 + 1,
                             **midnight)
    if to == "year":
        return start.replace(year=start.year + 1, month=1, **midnight)
    raise DataError(f"cannot aggregate to {to!r} periods")


def expected_steps(starts: np.ndarray, to: Frequency | int, step: int | None) -> np.ndarray:
    """How many values a complete period holds: its length over ``step`` seconds (24 hours a
    day, 28-31 days a month in the data's calendar), or 12 for months in a year
    (``step=None``).

    >>> import cftime
    >>> t = np.array([cftime.DatetimeGregorian(2000, m, 1) for m in (1, 2)])
    >>> expected_steps(t, "month", 86400).tolist(), expected_steps(t[:1], "day", 3600).tolist()
    ([31, 29], [24])
    """
    starts = np.asarray(starts).ravel()
    if step is None:
        return np.full(starts.size, 12, dtype=np.int64)
    if isinstance(to, int):  # a sub-daily period of ``to`` seconds
        return np.full(starts.size, to // step, dtype=np.int64)
    return np.array([round((period_end(t, to) - t).total_seconds() / step) for t in starts],
                    dtype=np.int64)


def period_index(
    values: np.ndarray, to: Frequency | int, back: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """For increasing times (each moved ``back`` seconds first, see :func:`step_back`), the
    index of each one's day (00:00-24:00 of its date), month or year counted from the first,
    or, for an integer ``to``, of its sub-daily period of ``to`` seconds counted from 00:00
    (3-hourly: 00:00-03:00, 03:00-06:00, ...), and the starts of all those periods from the
    first to the last (empty ones included: a gap of whole periods).

    >>> import cftime
    >>> t = np.array([cftime.DatetimeNoLeap(2001, 2, 28, 18), cftime.DatetimeNoLeap(2001, 3, 2)])
    >>> idx, starts = period_index(t, "day")
    >>> idx.tolist(), [s.strftime("%m-%d %H:%M") for s in starts]
    ([0, 2], ['02-28 00:00', '03-01 00:00', '03-02 00:00'])
    >>> period_index(t, "day", back=1800)[0].tolist()  # 00:00 belongs to the day before
    [0, 1]
    >>> period_index(t, "month")[0].tolist()
    [0, 1]
    >>> h = np.array([cftime.DatetimeNoLeap(2001, 1, 1, k) for k in range(1, 8)])
    >>> idx, starts = period_index(h, 3 * 3600, back=1800)  # ERA5 tp: the hour before
    >>> idx.tolist(), [s.strftime("%H:%M") for s in starts]
    ([0, 0, 0, 1, 1, 1, 2], ['00:00', '03:00', '06:00'])
    >>> noisy = h - np.timedelta64(1, "us").item()  # 00:59:59.999999 decoded for 01:00
    >>> [s.strftime("%d %H:%M:%S.%f") for s in period_index(noisy, 3 * 3600, back=1800)[1]]
    ['01 00:00:00.000000', '01 03:00:00.000000', '01 06:00:00.000000']
    """
    import datetime

    values = np.asarray(values).ravel()
    if to == "day":  # a day is the period of 86400 s
        to = 86400
    if isinstance(to, int):  # periods of ``to`` seconds (``to`` divides a day)
        secs = whole_seconds(values) - back  # counted from a midnight
        origin = secs[0] - secs[0] % to  # the start of the first value's step
        idx = (secs - origin) // to
        # the first stamp moved to ``origin`` and rounded to the second (decoding noise)
        first = values[0] + datetime.timedelta(seconds=int(origin - (secs[0] + back)))
        first = first + datetime.timedelta(
            microseconds=(1_000_000 - first.microsecond) if first.microsecond >= 500_000
            else -first.microsecond)
        starts = [first + datetime.timedelta(seconds=int(k) * to)
                  for k in range(int(idx[-1]) + 1)]
        out = np.empty(len(starts), dtype=object)
        out[:] = starts
        return idx.astype(np.int64), out
    if back:
        values = values - datetime.timedelta(seconds=back)
    first = values[0].replace(hour=0, minute=0, second=0, microsecond=0)
    if to in ("month", "year"):
        per = 12 if to == "month" else 1
        idx = (years(values) - first.year) * per
        if to == "month":
            idx = idx + months(values) - first.month
        starts = []
        for k in range(int(idx[-1]) + 1):
            y, m = (first.year + (first.month - 1 + k) // 12, (first.month - 1 + k) % 12 + 1) \
                if to == "month" else (first.year + k, 1)
            starts.append(first.replace(year=y, month=m, day=1))
    else:
        raise DataError(f"cannot aggregate to {to!r} periods")
    out = np.empty(len(starts), dtype=object)
    out[:] = starts
    return idx, out


def sorted_unique_time(ds: xr.Dataset, source: str = "data") -> xr.Dataset:
    """``ds`` in time order with each time step once: a file whose steps are out of order (a
    hand-made merge) is sorted, a step stored twice with the same values (an overlap of two
    downloads merged) is kept once, with a warning naming ``source``; a step stored twice with
    different values is a :class:`DataError` naming it and the variable (which is right cannot
    be told). Only the repeated steps are read.

    >>> import cftime, warnings
    >>> t = [cftime.DatetimeGregorian(2000, 1, d) for d in (1, 3, 2, 2)]
    >>> ds = xr.Dataset({"t2m": ("time", [1.0, 3.0, 2.0, 2.0])}, coords={"time": t})
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     out = sorted_unique_time(ds, "era5.nc")
    >>> out.t2m.values.tolist(), str(w[0].message)
    ([1.0, 2.0, 3.0], 'era5.nc: the time steps are not in time order (first: 2000-01-03 00:00 before 2000-01-02 00:00): sorted; 1 step(s) stored twice with the same values (first: 2000-01-02 00:00) are kept once')
    >>> sorted_unique_time(ds.assign(t2m=("time", [1.0, 3.0, 2.0, 2.5])), "era5.nc")
    Traceback (most recent call last):
    atmocorrect.errors.DataError: era5.nc: time step 2000-01-02 00:00 is stored twice with different values of 't2m' (up to 0.5 apart); remove one of them (xarray .drop_duplicates('time'), cdo/ncks)
    """
    import warnings

    if "time" not in ds.dims or ds.sizes["time"] < 2:
        return ds
    secs = whole_seconds(ds["time"].values)
    steps = np.diff(secs)
    if np.all(steps > 0):
        return ds
    t = ds["time"].values
    order = np.argsort(secs, kind="stable")
    repeated = np.flatnonzero(np.diff(secs[order]) == 0)
    first, second = order[repeated], order[repeated + 1]
    for name in ds.data_vars:
        if "time" not in ds[name].dims or not repeated.size:
            continue
        a = np.asarray(ds[name].isel(time=first).values, dtype=np.float64)
        b = np.asarray(ds[name].isel(time=second).values, dtype=np.float64)
        differ = ~((a == b) | (np.isnan(a) & np.isnan(b)))
        if differ.any():
            k = int(np.flatnonzero(differ.reshape(differ.shape[0], -1).any(axis=1))[0])
            gap = float(np.nanmax(np.abs(a - b)))
            units = f" {ds[name].attrs['units']}" if ds[name].attrs.get("units") else ""
            raise DataError(
                f"{source}: time step {_stamp(t[first[k]])} is stored twice with different "
                f"values of {name!r} (up to {gap:.4g}{units} apart); remove one of them (xarray "
                ".drop_duplicates('time'), cdo/ncks)")
    keep = np.ones(order.size, dtype=bool)
    keep[repeated + 1] = False
    said = []
    if np.any(steps < 0):
        i = int(np.argmax(steps < 0))
        said.append(f"the time steps are not in time order (first: {_stamp(t[i])} before "
                    f"{_stamp(t[i + 1])}): sorted")
    if repeated.size:
        said.append(f"{repeated.size} step(s) stored twice with the same values (first: "
                    f"{_stamp(t[first[0]])}) are kept once")
    warnings.warn(f"{source}: {'; '.join(said)}", stacklevel=3)
    return ds.isel(time=order[keep])
