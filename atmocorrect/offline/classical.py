"""Classical bias adjustment from ibicus (ECMWF): linear scaling, quantile mapping, QDM.

Not re-implemented here: these call ibicus's debiasers with their published per-variable
defaults (``from_variable``), so a comparison with them is a comparison with the library users
already know. ibicus is written for daily data; for monthly data each calendar month is adjusted
separately with ibicus's within-year running window switched off. Sub-daily data (3-hourly,
hourly) are adjusted per time of day (:func:`classical_slots`, as the learned correction does):
each time of day of the input is a daily series, calibrated on the historical simulation's
series at that time of day and on the reference's values over the same steps (the pairing of
:mod:`~atmocorrect.offline.diurnal`), then put back in time order; pooling all hours (``diurnal
= "pooled"``) would calibrate 03:00 and 15:00 on one distribution and leave a wrong diurnal
cycle as it is.

Example
-------
>>> import numpy as np, cftime
>>> t = np.array([cftime.DatetimeGregorian(2000, 1, 1) + np.timedelta64(i, "D").item()
...               for i in range(730)])
>>> rng = np.random.default_rng(0)
>>> obs, hist = rng.normal(280, 5, (730, 1)), rng.normal(278, 5, (730, 1))
>>> out = correct_block("linear-scaling", "tas", "day", obs, hist, hist, t, t, t)
>>> bool(abs(out.mean() - obs.mean()) < 0.01)
True
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import warnings
import zlib
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import UsageError
from .config import DIURNAL, clip_to_bounds
from .diurnal import (
    constant_columns,
    describe_slots,
    input_slot_rows,
    pair_slots,
    source_files,
    step_seconds,
)

if TYPE_CHECKING:
    import xarray as xr

    from ..data.pairs import Pair

CLASSICAL = ("linear-scaling", "quantile-mapping", "qdm")
#: ibicus's names of variables (its per-variable defaults are used).
IBICUS_NAMES = {
    "tas": "tas", "t2m": "tas", "tasmax": "tasmax", "tasmin": "tasmin", "mx2t": "tasmax",
    "mn2t": "tasmin", "pr": "pr", "tp": "pr", "psl": "psl", "msl": "psl", "ps": "ps",
    "sp": "ps", "hurs": "hurs", "rsds": "rsds", "rlds": "rlds", "sfcWind": "sfcwind",
    "sfcwind": "sfcwind", "si10": "sfcwind",
}


def ibicus_variable(variable: str) -> str:
    try:
        return IBICUS_NAMES[variable]
    except KeyError:
        raise UsageError(
            f"ibicus has no default settings for variable {variable!r}; the classical methods "
            f"support {', '.join(sorted(set(IBICUS_NAMES.values())))}"
        ) from None


def debiaser_classes() -> dict[str, type]:
    """ibicus's debiaser class of each classical method."""
    try:
        from ibicus.debias import LinearScaling, QuantileDeltaMapping, QuantileMapping
    except ImportError as exc:
        raise UsageError(
            "the classical methods need ibicus: pip install 'ibicus>=1.1' (or the project's "
            "[offline] extra)"
        ) from exc
    return dict(zip(CLASSICAL, (LinearScaling, QuantileMapping, QuantileDeltaMapping),
                    strict=True))


def make_debiaser(method: str, variable: str, frequency: str, **overrides: Any):
    """The ibicus debiaser for ``method`` with ibicus's defaults for ``variable``."""
    cls = debiaser_classes().get(method)
    if cls is None:
        raise UsageError(f"method {method!r} is not one of {', '.join(CLASSICAL)}")
    kwargs = dict(overrides)
    if frequency in ("month", "year"):
        kwargs.setdefault("running_window_mode", False)
    name = ibicus_variable(variable)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return cls.from_variable(name, **kwargs)
        except ValueError as exc:  # ibicus: "no default settings exist for the variable ..."
            raise UsageError(
                f"--method {method}: ibicus has no default settings of {cls.__name__} for "
                f"{variable!r} ({exc}); methods with defaults for it: "
                f"{', '.join(supported_methods(variable)) or 'none'} (or --method ml)"
            ) from None


def supported_methods(variable: str) -> list[str]:
    """The classical methods for which ibicus has default settings for ``variable``.

    >>> supported_methods("tas"), supported_methods("rsds")
    (['linear-scaling', 'quantile-mapping', 'qdm'], ['linear-scaling'])
    """
    name = IBICUS_NAMES.get(variable)
    found = []
    for method, cls in debiaser_classes().items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                cls.from_variable(name)
            except (ValueError, TypeError):
                continue
        found.append(method)
    return found if name is not None else []


@dataclasses.dataclass(frozen=True)
class SlotRows:
    """One time of day of sub-daily data: its time indices in the reference (``obs``), the
    historical simulation (``hist``) and the input (``fut``) of :func:`correct_block`."""

    seconds: int  # after 00:00 UTC, the simulation's stamp
    obs: np.ndarray
    hist: np.ndarray
    fut: np.ndarray


@dataclasses.dataclass(frozen=True)
class SlotPlan:
    """Sub-daily data adjusted per time of day: every slot present in the input, with the
    rows of the three arrays that belong to it (:func:`classical_slots`)."""

    slots: tuple[int, ...]  # the historical simulation's times of day
    parts: tuple[SlotRows, ...]  # those present in the input

    def describe(self) -> str:
        """``one correction per time of day (00:00, 03:00, ... UTC)``, for the output's
        ``bias_adjustment`` attribute."""
        return f"one correction per time of day ({describe_slots(self.slots)})"


def classical_slots(pair: Pair, var: str, obs: xr.DataArray, hist: xr.DataArray,
                    t_fut: np.ndarray, source: str, method: str, diurnal: str = "slots"
                    ) -> SlotPlan | None:
    """How :func:`correct_block` splits sub-daily data by time of day, or None (daily and
    monthly data, or ``diurnal="pooled"``: one adjustment over all hours, as before).

    ``pair`` is the calibration pair (:func:`~atmocorrect.data.pairs.load_pair`), ``obs``
    and ``hist`` its reference and historical simulation of ``var`` over the calibration
    period, ``t_fut`` the input's times. Each of the historical simulation's times of day is
    paired with the reference's values over the same steps by the rules the learned
    correction uses (:func:`~atmocorrect.offline.diurnal.pair_slots`: 3-hour means stamped
    mid-step or, with time bounds, at the end of their steps pair with the reference's step
    they cover; a mismatch is an error naming both files). An input at a time of day the
    historical simulation does not hold is an error naming ``source``, the historical files
    and the slots: its calibration would have to be borrowed from another time of day.
    """
    if diurnal not in DIURNAL:
        raise UsageError(f"diurnal must be one of {', '.join(DIURNAL)}, got {diurnal!r}")
    if pair.frequency != "subdaily" or diurnal == "pooled":
        return None
    step = step_seconds(hist["time"].values)
    slots, hist_rows, obs_rows = pair_slots(pair, var, hist, obs, step)
    fut = dict(input_slot_rows(t_fut, slots, source, None, method=method,
                               historical=source_files(pair, "simulation", var)))
    parts = tuple(SlotRows(s, o, h, fut[s])
                  for s, h, o in zip(slots, hist_rows, obs_rows, strict=True) if s in fut)
    return SlotPlan(slots, parts)


#: ibicus draws random values (precipitation's dry days: QDM's censoring, quantile mapping's
#: hurdle model) from numpy's global generator, unseeded: the same command gave other wet-day
#: counts from run to run. It is seeded per block from the block's data, under one lock so
#: that dask's threads do not interleave their draws, and given back as it was.
_GLOBAL_GENERATOR = threading.Lock()


def block_seed(*arrays: np.ndarray) -> int:
    """A seed for ibicus's draws from the values of the arrays: the same data draws the same
    values in every run, whatever ran before; different blocks draw different ones.

    >>> a = np.arange(6.0).reshape(3, 2)
    >>> same = block_seed(a, a) == block_seed(a.copy(), a.copy())
    >>> same, block_seed(a, a) == block_seed(a, a + 1)
    (True, False)
    """
    seed = 0
    for a in arrays:
        seed = zlib.crc32(np.ascontiguousarray(a, dtype=np.float64).tobytes(), seed)
    return seed


def _apply(debiaser, obs, hist, fut, t_obs, t_hist, t_fut) -> np.ndarray:
    logger = logging.getLogger("ibicus")
    seed = block_seed(obs, hist, fut)
    with _GLOBAL_GENERATOR, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        level, state = logger.level, np.random.get_state()
        logger.setLevel(logging.ERROR)
        np.random.seed(seed)
        try:
            out = debiaser.apply(obs[:, :, None], hist[:, :, None], fut[:, :, None],
                                 progressbar=False, failsafe=True, time_obs=t_obs,
                                 time_cm_hist=t_hist, time_cm_future=t_fut)
        finally:
            np.random.set_state(state)
            logger.setLevel(level)
    return np.asarray(out)[:, :, 0]


def correct_block(
    method: str,
    variable: str,
    frequency: str,
    obs: np.ndarray,
    hist: np.ndarray,
    fut: np.ndarray,
    t_obs: np.ndarray,
    t_hist: np.ndarray,
    t_fut: np.ndarray,
    bounds: tuple[float | None, float | None] = (None, None),
    slots: SlotPlan | None = None,
) -> np.ndarray:
    """Adjust ``fut`` (time, points) with ``obs`` and ``hist`` (time, points) of the
    calibration period.

    ``slots`` (sub-daily data, :func:`classical_slots`): each time of day is adjusted on its
    own, as a daily series (ibicus's daily settings and windows), its rows of ``obs``,
    ``hist`` and ``fut`` taken from the plan, and put back in time order. None: all time
    steps at once (daily and monthly data, or sub-daily data pooled over all hours).

    Missing values (NaN: gaps in a station-based reference, a land-sea mask) are left out:
    points are grouped by where their values are missing, and each group is calibrated on the
    time steps where all three arrays are present for it (ibicus takes no NaN). A point with
    no value in one of the arrays comes back as NaN, as do the missing steps of ``fut``.

    ``bounds`` (lower, upper; None: open) are the variable's physical bounds
    (:func:`~atmocorrect.offline.config.physical_bounds`): ibicus does not clip to them (its
    beta fit for radiation can go below 0, linear scaling takes humidity past 100 %), so the
    output is clipped, as the learned correction's is.
    """
    obs, hist, fut = (np.asarray(a, dtype=np.float64) for a in (obs, hist, fut))
    if slots is None:
        out = _correct_with_gaps(method, variable, frequency, obs, hist, fut, t_obs, t_hist,
                                 t_fut)
        _warn_lost(out, fut, obs, hist, method, variable, "over all time steps")
        return clip_to_bounds(out, *bounds)
    out = np.full(fut.shape, np.nan)
    for part in slots.parts:
        o, h, f = part.obs, part.hist, part.fut
        block = np.full((f.size, fut.shape[1]), np.nan)
        # a time of day at which both are constant (night-time radiation: 0) has no
        # distribution to map (ibicus's ratios would be 0 / 0): shifted by the difference
        # of the constants, i.e. left as it is where they agree
        const = constant_columns(obs[o]) & constant_columns(hist[h])
        if const.any():
            shift = np.nanmax(obs[o][:, const], 0) - np.nanmax(hist[h][:, const], 0)
            block[:, const] = fut[np.ix_(f, np.flatnonzero(const))] + shift
        rest = np.flatnonzero(~const)
        if rest.size:
            # one time of day is a daily series: ibicus's daily settings apply as they are
            block[:, rest] = _correct_with_gaps(
                method, variable, "day", obs[np.ix_(o, rest)], hist[np.ix_(h, rest)],
                fut[np.ix_(f, rest)], t_obs[o], t_hist[h], t_fut[f])
        _warn_lost(block, fut[f], obs[o], hist[h], method, variable,
                   f"at {describe_slots([part.seconds])}")
        out[f] = block
    return clip_to_bounds(out, *bounds)


def _warn_lost(out: np.ndarray, fut: np.ndarray, obs: np.ndarray, hist: np.ndarray,
               method: str, variable: str, where: str) -> None:
    """Warn when ibicus turned finite input values into NaN at points that have calibration
    values (points without any are missing on purpose)."""
    calibrated = np.isfinite(obs).any(0) & np.isfinite(hist).any(0)
    lost = np.isfinite(fut) & ~np.isfinite(out) & calibrated[None, :]
    if lost.any():
        warnings.warn(
            f"--method {method}: ibicus returned no value for {int(lost.sum())} of "
            f"{int((np.isfinite(fut) & calibrated[None, :]).sum())} finite values of "
            f"{variable!r} {where} (written as missing)", stacklevel=3)


def _correct_with_gaps(method, variable, frequency, obs, hist, fut, t_obs, t_hist,
                       t_fut) -> np.ndarray:
    out = np.full(fut.shape, np.nan)
    masks = [np.isfinite(a) for a in (obs, hist, fut)]
    if all(m.all() for m in masks):
        return _correct_complete(method, variable, frequency, obs, hist, fut, t_obs, t_hist,
                                 t_fut, out)
    usable = masks[0].any(0) & masks[1].any(0) & masks[2].any(0)
    patterns: dict[bytes, list[int]] = {}
    for j in np.flatnonzero(usable):
        key = b"".join(np.packbits(m[:, j]).tobytes() for m in masks)
        patterns.setdefault(key, []).append(int(j))
    for cols in patterns.values():
        j = cols[0]
        ro, rh, rf = (np.flatnonzero(m[:, j]) for m in masks)
        block = _correct_complete(method, variable, frequency, obs[np.ix_(ro, cols)],
                                  hist[np.ix_(rh, cols)], fut[np.ix_(rf, cols)], t_obs[ro],
                                  t_hist[rh], t_fut[rf], np.full((rf.size, len(cols)), np.nan))
        out[np.ix_(rf, cols)] = block
    return out


def _correct_complete(method, variable, frequency, obs, hist, fut, t_obs, t_hist, t_fut,
                      out: np.ndarray) -> np.ndarray:
    """:func:`correct_block` for arrays without missing values, written into ``out``."""
    if frequency in ("month", "year"):
        from ..data.timeaxis import months

        mo, mh, mf = months(t_obs), months(t_hist), months(t_fut)
        for m in np.unique(mf):
            so, sh, sf = mo == m, mh == m, mf == m
            if not so.any() or not sh.any():
                continue
            deb = make_debiaser(method, variable, frequency)
            out[sf] = _apply(deb, obs[so], hist[sh], fut[sf], t_obs[so], t_hist[sh], t_fut[sf])
        return out
    deb = make_debiaser(method, variable, frequency)
    out[:] = _apply(deb, obs, hist, fut, t_obs, t_hist, t_fut)
    return out
