"""Dry days of precipitation-like variables: stochastic singularity removal (SSR).

Daily precipitation has a point mass at zero, and its wet-day frequency is one of the things a
model gets wrong (the interpolated reference may be wet on 90 % of days, the model on 45 %). A
quantile mapping cannot move values out of a point mass: every dry day has the same value, so
it cannot be given a quantile level of its own. SSR (Vrac, Noel and Vautard 2016, used by
ISIMIP3BASD) removes the point mass: values below a small wet-day threshold are replaced by
random values below the threshold (log-uniform over two decades) before the distributions are fitted and before a
simulation is corrected, and corrected values below the threshold are set back to zero. A dry
day of the model then has a quantile level like any other value and becomes wet when the
reference is wet at that level (and a drizzle day dry when the reference is dry there).

The random values are drawn per grid point from a generator seeded by the point's index in
the checkpoint, so a file corrected chunk by chunk gives the same values as in one piece. Sub-
daily data corrected per time of day seed it with the time of day too (``slot``, seconds
after 00:00): the slots of one point are series of the same length, and with the point's seed
alone every slot would get the same draws on the same days, dry 03:00 and dry 15:00 values
moved in lockstep. Slot 0 (00:00, and daily or monthly data) keeps the point's seed, so their
draws are those of before.

Example
-------
>>> import numpy as np
>>> x = np.array([[0.0, 5.0], [2e-6, 0.0], [3e-5, 1e-7]])
>>> y = jitter_dry(x, threshold=1e-6, points=np.array([0, 1]))
>>> bool(((y[x < 1e-6] > 0) & (y[x < 1e-6] < 1e-6)).all()), bool((y[x >= 1e-6] == x[x >= 1e-6]).all())
(True, True)
>>> restore_dry(np.array([5e-7, 2e-6]), threshold=1e-6).tolist()
[0.0, 2e-06]
"""

from __future__ import annotations

import warnings

import numpy as np

from .. import units as units_mod
from ..errors import FieldError

#: Variables with dry days (a point mass at zero) handled by SSR.
PRECIPITATION_VARIABLES = frozenset({"pr", "prc", "prsn", "tp", "rr"})
#: The usual wet-day threshold of bias adjustment (ISIMIP3BASD, ibicus): 0.1 mm per day.
WET_DAY_MM_PER_DAY = 0.1
_SEED = 20161
#: Dry values are drawn log-uniformly over this many decades below the threshold: in the log
#: space the correction works in, the dry part of the distribution is then a smooth ramp that
#: joins the wet values, rather than a near-step the quantile functions cannot follow.
JITTER_DECADES = 2.0


def wet_threshold(variable: str, units: str | None, step_seconds: float | None = None) -> float:
    """The wet-day threshold of ``variable`` in its ``units`` (0.0: no dry days to handle).

    Fluxes and daily depths are converted directly; an amount accumulated over each time step
    (``m``, ``mm``, ``kg m-2``) needs the step length. Units that cannot express it give a
    warning and 0.0: dry values are then kept dry, as before this handling existed.

    >>> round(wet_threshold("pr", "kg m-2 s-1") * 86400, 6)
    0.1
    >>> round(wet_threshold("tp", "m", step_seconds=86400), 9)
    0.0001
    >>> wet_threshold("tas", "K")
    0.0
    """
    if variable not in PRECIPITATION_VARIABLES:
        return 0.0
    flux = WET_DAY_MM_PER_DAY / 86400.0  # kg m-2 s-1
    try:
        if units_mod.is_accumulation(units) and step_seconds:
            per_unit = float(units_mod.accumulation_to_flux(1.0, units, step_seconds))
            return flux / per_unit
        return float(units_mod.convert(flux, "kg m-2 s-1", units or "1",
                                       f"the wet-day threshold of {variable!r}"))
    except FieldError as err:
        warnings.warn(
            f"{err}: the 0.1 mm/day wet-day threshold cannot be expressed in {units!r}, so dry "
            f"values of {variable!r} are kept dry and the wet-day frequency is not corrected; "
            "give precipitation as a flux (kg m-2 s-1) or a daily depth (mm day-1) for that",
            stacklevel=2)
        return 0.0


def draw_seed(seed: int, point: int, slot: int = 0) -> list[int]:
    """The entropy of a point's generator: ``[seed, point]``, with the time of day ``slot``
    (seconds after 00:00) appended for the slots of sub-daily data after the first, so that
    daily data and 00:00 keep the draws they had before slots were seeded.

    >>> draw_seed(20161, 3), draw_seed(20161, 3, 10800)
    ([20161, 3], [20161, 3, 10800])
    """
    return [int(seed), int(point)] + ([int(slot)] if slot else [])


def dry_draws(u: np.ndarray, threshold: float) -> np.ndarray:
    """The dry-day values at uniform levels ``u`` in [0, 1]: log-uniform in
    ``(threshold / 100, threshold)`` (:data:`JITTER_DECADES` decades below it).

    >>> dry_draws(np.array([0.0, 0.5, 1.0]), 1.0).round(3).tolist()
    [0.01, 0.1, 1.0]
    """
    return threshold * np.exp(JITTER_DECADES * np.log(10.0) * (np.asarray(u) - 1.0))


def jitter_dry(x: np.ndarray, threshold: float, points: np.ndarray, seed: int = _SEED,
               slot: int = 0) -> np.ndarray:
    """``x`` (time, points) with values below ``threshold`` replaced by log-uniform values in
    ``(threshold / 100, threshold)``; ``points`` are the columns' point indices and ``slot``
    the series' time of day (seconds after 00:00; 0 for daily and monthly data): they seed the
    draws (:func:`draw_seed`), so two times of day of one point get independent draws.

    >>> x = np.zeros((4, 1))
    >>> bool((jitter_dry(x, 1.0, [0]) == jitter_dry(x, 1.0, [0], slot=0)).all())
    True
    >>> bool((jitter_dry(x, 1.0, [0]) != jitter_dry(x, 1.0, [0], slot=10800)).all())
    True
    """
    if threshold <= 0:  # no dry days to handle: no copy
        return np.asarray(x, dtype=np.float64)
    out = np.array(x, dtype=np.float64, copy=True)
    for j, p in enumerate(np.asarray(points).ravel()):
        col = out[:, j]
        dry = np.isfinite(col) & (col < threshold)
        u = np.random.default_rng(draw_seed(seed, int(p), slot)).uniform(0.0, 1.0, col.shape[0])
        col[dry] = dry_draws(u[dry], threshold)
    return out


def restore_dry(x: np.ndarray, threshold: float) -> np.ndarray:
    """Corrected values below the wet-day threshold set to zero (NaN kept)."""
    if threshold <= 0:
        return x
    return np.where(np.isfinite(x) & (x < threshold), 0.0, x)
