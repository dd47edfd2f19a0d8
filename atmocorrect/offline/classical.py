"""Classical bias adjustment from ibicus (ECMWF): linear scaling, quantile mapping, QDM.

Not re-implemented here: these call ibicus's debiasers with their published per-variable
defaults (``from_variable``), so a comparison with them is a comparison with the library users
already know. ibicus is written for daily data; for monthly data each calendar month is adjusted
separately with ibicus's within-year running window switched off.

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

import logging
import warnings
from typing import Any

import numpy as np

from ..errors import UsageError
from .config import clip_to_bounds

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


def make_debiaser(method: str, variable: str, frequency: str, **overrides: Any):
    """The ibicus debiaser for ``method`` with ibicus's defaults for ``variable``."""
    try:
        from ibicus.debias import LinearScaling, QuantileDeltaMapping, QuantileMapping
    except ImportError as exc:
        raise UsageError(
            "the classical methods need ibicus: pip install 'ibicus>=1.1' (or the project's "
            "[offline] extra)"
        ) from exc
    cls = {"linear-scaling": LinearScaling, "quantile-mapping": QuantileMapping,
           "qdm": QuantileDeltaMapping}.get(method)
    if cls is None:
        raise UsageError(f"method {method!r} is not one of {', '.join(CLASSICAL)}")
    kwargs = dict(overrides)
    if frequency in ("month", "year"):
        kwargs.setdefault("running_window_mode", False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cls.from_variable(ibicus_variable(variable), **kwargs)


def _apply(debiaser, obs, hist, fut, t_obs, t_hist, t_fut) -> np.ndarray:
    logger = logging.getLogger("ibicus")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kwargs = {"time_obs": t_obs, "time_cm_hist": t_hist, "time_cm_future": t_fut}
            out = debiaser.apply(obs[:, :, None], hist[:, :, None], fut[:, :, None],
                                 progressbar=False, failsafe=True, **kwargs)
    finally:
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
) -> np.ndarray:
    """Adjust ``fut`` (time, points) with ``obs`` and ``hist`` (time, points) of the
    calibration period.

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
    return clip_to_bounds(_correct_with_gaps(method, variable, frequency, obs, hist, fut, t_obs,
                                             t_hist, t_fut), *bounds)


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
