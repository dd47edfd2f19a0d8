"""Sub-daily data corrected per time of day: every time-of-day slot is its own series.

A sub-daily simulation's diurnal cycle can be wrong (nights too warm, afternoons too cold, a
diurnal range too small); pooled over all hours, one correction per season and quantile
corrects that only as far as it shows in the pooled distribution. With ``TrainConfig.diurnal
= "slots"`` (the default for sub-daily data) each (variable, time of day) -- ``tas`` at
00:00, 03:00, ..., 21:00 UTC -- is a variable of its own for the network (``tas@03:00``:
its own one-hot code, climatology features and tokens), trained on the daily series of that
time of day; ``correct`` splits the input by time of day, corrects each slot's series as
that variable (own-era ranks among the slot's values, exactly as daily data) and puts the
values back in time order. The checkpoint records the slots (hyperparameter ``diurnal``),
and an input at other times of day is refused. At training, each slot is paired with the
reference's values over the same steps (:func:`calibration_slots`): a slot's label is the
simulation's stamp, which CF lets lie anywhere in the step (03:00 can be the mean over
00:00-03:00), so the pairing follows the steps, not the labels.

Example
-------
>>> import cftime
>>> t = np.array([cftime.DatetimeGregorian(2000, 1, d, h) for d in (1, 2) for h in (0, 12)])
>>> times_of_day(t).tolist(), slot_name("tas", 12 * 3600), describe_slots((0, 5400))
([0, 43200, 0, 43200], 'tas@12:00', '00:00, 01:30 UTC')
>>> [(s, rows.tolist()) for s, rows in input_slot_rows(t, (0, 43200), "in.nc", "ckpt")]
[(0, [0, 2]), (43200, [1, 3])]
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..data.timeaxis import whole_seconds
from ..errors import DataError

if TYPE_CHECKING:
    import xarray as xr

    from ..data.pairs import Pair

DAY = 86400


def times_of_day(times: np.ndarray) -> np.ndarray:
    """Seconds after 00:00 of each time stamp (cftime or datetime64), whole seconds."""
    return np.mod(whole_seconds(times), DAY)


def format_time_of_day(seconds: int) -> str:
    """``HH:MM`` (``HH:MM:SS`` when the seconds are not whole minutes).

    >>> format_time_of_day(10800), format_time_of_day(5430)
    ('03:00', '01:30:30')
    """
    h, rest = divmod(int(seconds), 3600)
    m, s = divmod(rest, 60)
    return f"{h:02d}:{m:02d}" + (f":{s:02d}" if s else "")


def slot_name(var: str, seconds: int) -> str:
    """The name the network knows variable ``var`` at a time of day by: ``tas@03:00``."""
    return f"{var}@{format_time_of_day(seconds)}"


def series_names(variables: Sequence[str], slots: Sequence[int]) -> tuple[str, ...]:
    """The network's variables, in its order: per variable every slot (variable-major), or
    the variables themselves without slots.

    >>> series_names(["tas", "pr"], [0, 43200])
    ('tas@00:00', 'tas@12:00', 'pr@00:00', 'pr@12:00')
    """
    if not slots:
        return tuple(variables)
    return tuple(slot_name(v, s) for v in variables for s in slots)


def describe_slots(slots: Sequence[int]) -> str:
    """``00:00, 03:00, ..., 21:00 UTC``."""
    return ", ".join(format_time_of_day(s) for s in slots) + " UTC"


def calibration_slots(sim_times: np.ndarray, ref_times: np.ndarray, step: int, sim_where: str,
                      ref_where: str, *, stamp_offset: int | None = None, ref_offset: int = 0
                      ) -> tuple[tuple[int, ...], list[np.ndarray], list[np.ndarray]]:
    """The simulation's times of day and, per slot, the time indices of the simulation and of
    the reference that belong to it: the reference's values over the same steps of ``step``
    seconds (or at the same instants).

    Each simulation value describes the step that starts ``stamp_offset`` seconds before its
    stamp (0: instants, or means stamped at the start of their steps; ``step // 2``: mid-step;
    ``step``: at the end, CF allows any of them), each reference value the step that starts
    ``ref_offset`` seconds before its label (0: the pair's means over the simulation's steps
    are labelled by their start, instants are sampled at the simulation's stamps; ``step``:
    a reference at the simulation's own step whose values end at their stamps, ERA5 ``tp``).
    The slot at time of day ``s`` is paired with the reference's label at ``s - stamp_offset
    + ref_offset``, which must exist. With ``stamp_offset=None`` (means without time bounds)
    it is told from the stamps when they lie inside the reference's steps (01:30 for the
    step 00:00-03:00); stamps on the steps' boundaries are ambiguous (the means over the 3
    hours after 03:00 or before?) and an error, as is any mismatch, naming both files.

    >>> import cftime
    >>> sim = np.array([cftime.DatetimeGregorian(2000, 1, 1, h) for h in (3, 6, 9)])
    >>> ref = np.array([cftime.DatetimeGregorian(2000, 1, 1, h) for h in (0, 3, 6)])
    >>> _, s, r = calibration_slots(sim, ref, 10800, "sim.nc", "ref.nc", stamp_offset=10800)
    >>> [(a.tolist(), b.tolist()) for a, b in zip(s, r, strict=True)]  # 03:00: 00:00-03:00
    [([0], [0]), ([1], [1]), ([2], [2])]
    """
    s_tod, r_tod = times_of_day(sim_times), times_of_day(ref_times)
    slots = tuple(int(s) for s in np.unique(s_tod))
    r_slots = tuple(int(s) for s in np.unique(r_tod))
    step = int(step)
    mismatch = (
        f"the reference {ref_where} has the times of day {describe_slots(r_slots)}, the "
        f"simulation {sim_where} {describe_slots(slots)}")
    pooled = "use one correction over all hours (diurnal='pooled', --diurnal pooled)"
    if stamp_offset is None:
        starts = np.mod(np.array(r_slots) - ref_offset, DAY)  # the reference's steps
        inside = np.unique(np.mod(np.array(slots) - starts[0], step))
        if inside.size == 1 and inside[0] == 0:
            hours, starts_at = f"{step / 3600:g} hours", describe_slots(sorted(starts.tolist()))
            raise DataError(
                f"the simulation {sim_where} holds values stamped on the boundaries of its "
                f"{step / 3600:g}-hour steps ({describe_slots(slots)}), without time bounds "
                "that say which step each describes: whether its value at "
                f"{format_time_of_day(slots[min(1, len(slots) - 1)])} describes the {hours} "
                "before it or after it cannot be told, and a "
                "correction per time of day (diurnal='slots') paired with the wrong step of "
                f"the reference {ref_where} (steps from {starts_at}) "
                "would shift the diurnal cycle by a step. Give the simulation CF time bounds "
                "(time_bnds), stamp its means mid-step, say cell_methods 'time: point' if "
                "they are instants, or " + pooled)
        stamp_offset = int(inside[0]) if inside.size == 1 else -1  # -1: matches nothing
    targets = [int((s - stamp_offset + ref_offset) % DAY) for s in slots]
    if stamp_offset < 0 or not set(targets) <= set(r_slots):
        raise DataError(
            f"{mismatch}: a correction per time of day (diurnal='slots') pairs each of the "
            "simulation's times of day with the reference's values over the same steps; "
            "give a reference at the simulation's times of day, or " + pooled)
    sim_rows = [np.flatnonzero(s_tod == s) for s in slots]
    ref_rows = [np.flatnonzero(r_tod == r) for r in targets]
    return slots, sim_rows, ref_rows


def input_slot_rows(times: np.ndarray, slots: Sequence[int], source: str,
                    model: object, *, historical: str | None = None,
                    method: str = "ml") -> list[tuple[int, np.ndarray]]:
    """Per calibrated slot present in the input, the input's time indices at that time of
    day; an input time of day that is not a calibrated slot is an error naming the file, the
    checkpoint (or, for a classical ``method``, the ``historical`` simulation it was
    calibrated on) and the slots.

    >>> import cftime
    >>> t = np.array([cftime.DatetimeGregorian(2000, 1, 1, h) for h in (1, 4)])
    >>> input_slot_rows(t, (0, 10800), "in.nc", None, historical="hist.nc", method="qdm")
    ... # doctest: +ELLIPSIS, +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    atmocorrect.errors.DataError: in.nc: 2 time step(s) of the input are at times of day
    (01:00, 04:00 UTC) that the historical simulation hist.nc does not hold: --method qdm ...
    """
    tod = times_of_day(times)
    extra = sorted(set(np.unique(tod).tolist()) - {int(s) for s in slots})
    if extra:
        n_bad = int(np.isin(tod, extra).sum())
        if historical is None:
            unknown = f"the checkpoint {model} was not calibrated at: it corrects"
            knows, other = "knows", "train a checkpoint on a simulation"
        else:
            unknown = (f"the historical simulation {historical} does not hold: --method "
                       f"{method} corrects")
            knows, other = ("is calibrated on the historical simulation's values at that time "
                            "of day, and it holds"), "a historical simulation"
        raise DataError(
            f"{source}: {n_bad} time step(s) of the input are at times of day "
            f"({describe_slots(extra[:8])}{' ...' if len(extra) > 8 else ''}) that {unknown} "
            f"each time of day on its own and {knows} {describe_slots(slots)}; give the input "
            f"at those times of day, or {other} at the input's times of day (or one correction "
            "over all hours: --diurnal pooled)")
    return [(int(s), rows) for s in slots if (rows := np.flatnonzero(tod == s)).size]


def step_seconds(times: np.ndarray) -> int:
    """The median time step in whole seconds (cftime or datetime64 times).

    >>> import cftime
    >>> step_seconds(np.array([cftime.DatetimeGregorian(2000, 1, 1, h) for h in (0, 3, 6)]))
    10800
    """
    return int(round(float(np.median(np.diff(whole_seconds(times))))))


def source_files(pair: Pair, role: str, var: str) -> str:
    """The files of ``role`` (simulation, reference) ``var`` was read from, for messages."""
    return ", ".join(map(str, pair.sources.get(f"{role}:{var}", ()))) or role


def stamp_offset(pair: Pair, var: str, step: int) -> int | None:
    """Seconds from the start of the step each simulation value of ``var`` describes to its
    time stamp: 0 for instants (CF ``time: point``), else from the CF time bounds of its first
    file (0: stamped at the start, ``step // 2`` mid-step, ``step`` at the end); None without
    bounds (or with bounds that are not steps of ``step`` seconds at one offset)."""
    from ..data.pairs import is_instantaneous
    from ..data.readers import open_dataset

    if is_instantaneous(pair.sim[var]):
        return 0
    files = pair.sources.get(f"simulation:{var}") or ()
    if not files:
        return None
    try:
        ds = open_dataset(files[0], check=False)
    except DataError:
        return None
    with ds:
        name = ds["time"].attrs.get("bounds") or ds["time"].encoding.get("bounds")
        if name not in ds.variables or ds[name].ndim != 2 or ds[name].shape[1] != 2:
            return None
        bounds = ds[name].values
        if bounds.dtype.kind not in "OM":  # not decoded as times
            return None
        stamps = whole_seconds(ds["time"].values)
        lower, upper = whole_seconds(bounds[:, 0]), whole_seconds(bounds[:, 1])
    offset = np.unique(stamps - lower)
    if offset.size != 1 or not 0 <= offset[0] <= step or np.any(upper - lower != step):
        return None
    return int(offset[0])


def pair_slots(pair: Pair, var: str, sim: xr.DataArray, ref: xr.DataArray, step: int
               ) -> tuple[tuple[int, ...], list[np.ndarray], list[np.ndarray]]:
    """:func:`calibration_slots` of ``var`` of a pair read by
    :func:`~atmocorrect.data.pairs.load_pair` (``sim``/``ref``: its values, possibly a
    period of them, with their attributes): the rules the learned correction and the
    classical methods share. The pair labels its means over the simulation's steps by their
    start and samples instants at the simulation's stamps; a reference at the simulation's
    own step is as read, and paired by the step ending at its stamp when its attributes say
    so (ERA5 ``tp``, ``GRIB_stepType`` accum)."""
    from ..data.pairs import ends_its_step, is_instantaneous

    as_read = "aggregation" not in ref.attrs and not is_instantaneous(sim)
    return calibration_slots(
        sim["time"].values, ref["time"].values, step, source_files(pair, "simulation", var),
        source_files(pair, "reference", var), stamp_offset=stamp_offset(pair, var, step),
        ref_offset=step if as_read and ends_its_step(ref) else 0)


def constant_columns(x: np.ndarray) -> np.ndarray:
    """Columns of ``x`` (time, points) with finite values that are all equal.

    >>> constant_columns(np.array([[0.0, 1.0, np.nan], [0.0, 2.0, np.nan]])).tolist()
    [True, False, False]
    """
    finite = np.isfinite(x).any(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        return finite & (np.nanmax(x, 0) == np.nanmin(x, 0))
