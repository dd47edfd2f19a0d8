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
and an input at other times of day is refused.

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

from collections.abc import Sequence

import numpy as np

from ..data.timeaxis import whole_seconds
from ..errors import DataError

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


def calibration_slots(sim_times: np.ndarray, ref_times: np.ndarray, sim_where: str,
                      ref_where: str) -> tuple[tuple[int, ...], list[np.ndarray], list[np.ndarray]]:
    """The simulation's times of day and, per slot, the time indices of the simulation and of
    the reference that belong to it.

    The reference (brought to the simulation's steps by the pair: instants sampled at the
    simulation's stamps, or means over its steps labelled by their start) must have the
    simulation's times of day, or the same ones shifted by less than a step (a model's 3-hour
    means stamped mid-step, 01:30, against the same steps labelled 00:00): they are then
    paired in order. Anything else is an error naming both files and their times of day.
    """
    s_tod, r_tod = times_of_day(sim_times), times_of_day(ref_times)
    slots = tuple(int(s) for s in np.unique(s_tod))
    r_slots = tuple(int(s) for s in np.unique(r_tod))
    if r_slots != slots:
        shift = np.array(slots) - np.array(r_slots) if len(r_slots) == len(slots) else None
        spacing = min(np.diff((*slots, slots[0] + DAY)))
        if shift is None or np.unique(shift).size != 1 or not 0 < shift[0] < spacing:
            raise DataError(
                f"the reference {ref_where} has the times of day {describe_slots(r_slots)}, "
                f"the simulation {sim_where} {describe_slots(slots)}: a correction per time "
                "of day (diurnal='slots') pairs each of the simulation's times of day with "
                "the reference's; give a reference at the simulation's times of day, or "
                "train one correction over all hours (diurnal='pooled', --diurnal pooled)")
    sim_rows = [np.flatnonzero(s_tod == s) for s in slots]
    ref_rows = [np.flatnonzero(r_tod == r) for r in r_slots]
    return slots, sim_rows, ref_rows


def input_slot_rows(times: np.ndarray, slots: Sequence[int], source: str,
                    model: object) -> list[tuple[int, np.ndarray]]:
    """Per calibrated slot present in the input, the input's time indices at that time of
    day; an input time of day that is not a calibrated slot is an error naming the file, the
    checkpoint and the slots."""
    tod = times_of_day(times)
    extra = sorted(set(np.unique(tod).tolist()) - {int(s) for s in slots})
    if extra:
        n_bad = int(np.isin(tod, extra).sum())
        raise DataError(
            f"{source}: {n_bad} time step(s) of the input are at times of day "
            f"({describe_slots(extra[:8])}{' ...' if len(extra) > 8 else ''}) that the "
            f"checkpoint {model} was not calibrated at: it corrects each time of day on its "
            f"own and knows {describe_slots(slots)}; give the input at those times of day, "
            "or train a checkpoint on a simulation at the input's times of day (or one "
            "correction over all hours: --diurnal pooled)")
    return [(int(s), rows) for s in slots if (rows := np.flatnonzero(tod == s)).size]
