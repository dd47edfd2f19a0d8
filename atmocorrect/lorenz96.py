"""Reference Lorenz-96 systems in numpy and torch: the twin experiment's truth and model.

Two-scale system (Lorenz 1996; Wilks 2005, QJRMS 131:389), K slow variables X_k and J fast
variables Y_{j,k} per slow one, the fast ones on one ring of length K*J::

    dX_k/dt     = -X_{k-1} (X_{k-2} - X_{k+1}) - X_k + F - (h c / b) sum_j Y_{j,k}
    dY_{j,k}/dt = -c b Y_{j+1,k} (Y_{j+2,k} - Y_{j-1,k}) - c Y_{j,k} + (h c / b) X_k

The one-scale model drops the coupling term. Time is in model time units (MTU); the Fortran
side and the checkpoints use seconds with 1 MTU = 5 days = 432000 s (:data:`SECONDS_PER_MTU`).

Every function works on arrays whose last axis is the ring (``(..., K)``), so a batch of states
integrates in one call: the evaluation's hundreds of forecasts and ensemble free runs are a few
thousand vectorised RK4 steps. The same functions accept numpy arrays and torch tensors.

>>> import numpy as np
>>> x = np.full((2, 8), 18.0)            # the one-scale fixed point X = F
>>> float(np.abs(one_scale_tendency(x, 18.0)).max())
0.0
>>> round(float(wilks2005_tendency(np.array([0.0]))[0]), 3)
-0.275
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

SECONDS_PER_MTU = 432000.0
"""1 model time unit = 5 days, the convention of the Fortran programs and the checkpoints."""

WILKS2005_COEFFS = (0.275, 1.59, -0.0190, -0.0130, 0.000707)
"""Wilks (2005) deterministic quartic for F=18, c=10: U(X) = sum_i a_i X^i (a_0 first)."""

Array = Any  # numpy.ndarray or torch.Tensor


@dataclasses.dataclass(frozen=True)
class L96Params:
    """Parameters of the two-scale system (the defaults are the issue's setup, Wilks 2005)."""

    K: int = 8
    J: int = 32
    F: float = 18.0
    h: float = 1.0
    b: float = 10.0
    c: float = 10.0

    @property
    def coupling(self) -> float:
        """h c / b, the factor of the fast variables' sum in dX/dt and of X in dY/dt."""
        return self.h * self.c / self.b


def _roll(a: Array, shift: int) -> Array:
    """``a[..., i - shift]`` along the last axis (np.roll semantics), for numpy or torch."""
    if isinstance(a, np.ndarray):
        return np.roll(a, shift, axis=-1)
    return a.roll(shift, dims=-1)


def one_scale_tendency(x: Array, F: float) -> Array:
    """dX/dt of the one-scale system (per MTU)."""
    return (_roll(x, -1) - _roll(x, 2)) * _roll(x, 1) - x + F


def fast_sum(y: Array, K: int) -> Array:
    """sum_j Y_{j,k} for fast variables ``(..., K*J)`` -> ``(..., K)``."""
    return y.reshape(*y.shape[:-1], K, -1).sum(-1)


def two_scale_tendency(x: Array, y: Array, p: L96Params) -> tuple[Array, Array]:
    """(dX/dt, dY/dt) of the two-scale system; ``y`` has the fast ring ``(..., K*J)``."""
    dx = one_scale_tendency(x, p.F) - p.coupling * fast_sum(y, p.K)
    xk = x.repeat_interleave(p.J, dim=-1) if not isinstance(x, np.ndarray) else np.repeat(x, p.J, axis=-1)
    dy = p.c * p.b * (_roll(y, 1) - _roll(y, -2)) * _roll(y, -1) - p.c * y + p.coupling * xk
    return dx, dy


def wilks2005_tendency(x: Array) -> Array:
    """-U(X), Wilks's (2005) quartic for the missing coupling term (per MTU)."""
    a0, a1, a2, a3, a4 = WILKS2005_COEFFS
    return -((((a4 * x + a3) * x + a2) * x + a1) * x + a0)


def rk4(f: Callable[[Array], Array], x: Array, dt: float) -> Array:
    """One classical Runge-Kutta step of dx/dt = f(x)."""
    k1 = f(x)
    k2 = f(x + 0.5 * dt * k1)
    k3 = f(x + 0.5 * dt * k2)
    k4 = f(x + dt * k3)
    return x + (dt / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


def one_scale_step(
    x: Array, F: float, dt: float, forcing: Callable[[Array], Array] | None = None
) -> Array:
    """One RK4 step of the one-scale model; ``forcing(x)`` (per MTU) is added inside each stage
    (how Wilks's quartic enters: a parametrised tendency)."""
    if forcing is None:
        return rk4(lambda s: one_scale_tendency(s, F), x, dt)
    return rk4(lambda s: one_scale_tendency(s, F) + forcing(s), x, dt)


def two_scale_step(x: Array, y: Array, p: L96Params, dt: float) -> tuple[Array, Array]:
    """One RK4 step of the two-scale system."""
    k = x.shape[-1]

    def f(s: Array) -> Array:
        dx, dy = two_scale_tendency(s[..., :k], s[..., k:], p)
        if isinstance(s, np.ndarray):
            return np.concatenate([dx, dy], axis=-1)
        import torch

        return torch.cat([dx, dy], dim=-1)

    s = rk4(f, np.concatenate([x, y], axis=-1) if isinstance(x, np.ndarray) else _cat(x, y), dt)
    return s[..., :k], s[..., k:]


def _cat(x: Array, y: Array) -> Array:
    import torch

    return torch.cat([x, y], dim=-1)


def initial_two_scale(
    p: L96Params, members: int = 1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Random initial states ``(members, K)``, ``(members, K*J)`` near the attractor's scale."""
    rng = np.random.default_rng(seed)
    x = p.F * 0.25 * rng.standard_normal((members, p.K)) + 2.0
    y = 0.1 * rng.standard_normal((members, p.K * p.J))
    return x, y


def run_two_scale(
    p: L96Params,
    n_samples: int,
    dt: float = 0.001,
    sample_every: int = 5,
    spinup_mtu: float = 5.0,
    members: int = 1,
    seed: int = 0,
    progress: bool = False,
) -> np.ndarray:
    """Integrate the two-scale truth; return X sampled every ``sample_every * dt`` MTU.

    Returns ``(members, n_samples, K)``; the first sample is the state after the spin-up.
    Members start from independent random states, so they are independent runs.
    """
    x, y = initial_two_scale(p, members, seed)
    for _ in range(int(round(spinup_mtu / dt))):
        x, y = two_scale_step(x, y, p, dt)
    out = np.empty((members, n_samples, p.K))
    iterator: Any = range(n_samples)
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc="two-scale truth", unit="sample", mininterval=1.0)
    for i in iterator:
        out[:, i] = x
        for _ in range(sample_every):
            x, y = two_scale_step(x, y, p, dt)
    return out


def forecast(
    x0: Array,
    n_steps: int,
    F: float,
    dt: float,
    forcing: Callable[[Array], Array] | None = None,
    correction: Callable[[Array], Array] | None = None,
    placement: str = "after",
    keep: int = 1,
) -> Array:
    """Batched one-scale forecasts; returns ``(n_steps // keep + 1, *x0.shape)`` (lead 0 first).

    ``forcing`` (per MTU) enters every RK4 stage (Wilks's quartic). ``correction(x)`` (per MTU)
    is what a learned corrector returns; it enters by operator splitting the way the coupled
    Fortran model applies ``atmocorrect_step``: ``after`` the dynamics step,
    ``x <- M(x); x <- x + dt * c(x)``, or ``before`` it, ``x <- M(x + dt * c(x))``.
    """
    if placement not in ("after", "before"):
        raise ValueError(f"placement must be 'after' or 'before', got {placement!r}")
    is_np = isinstance(x0, np.ndarray)
    frames = [x0.copy() if is_np else x0.clone()]
    x = frames[0]
    for n in range(1, n_steps + 1):
        if correction is not None and placement == "before":
            x = x + dt * correction(x)
        x = one_scale_step(x, F, dt, forcing)
        if correction is not None and placement == "after":
            x = x + dt * correction(x)
        if n % keep == 0:
            frames.append(x)
    if is_np:
        return np.stack(frames)
    import torch

    return torch.stack(frames)


def one_step_residual(
    x_t: np.ndarray, x_next: np.ndarray, F: float, dt: float
) -> tuple[np.ndarray, np.ndarray]:
    """The one-step residual (x_next - M(x_t)) / dt (per MTU) and the model forecast M(x_t)."""
    m = one_scale_step(x_t, F, dt)
    return (x_next - m) / dt, m


TIME_UNITS = "days since 2000-01-01 00:00:00"
CALENDAR = "proleptic_gregorian"


def to_dataset(
    x: np.ndarray,
    dt_mtu: float,
    start_mtu: float = 0.0,
    title: str = "Lorenz-96 two-scale truth",
    attrs: dict[str, Any] | None = None,
    extra: dict[str, np.ndarray] | None = None,
):
    """An xarray Dataset laid out like the Fortran programs' files: ``X(time, k)``.

    ``x`` is ``(time, K)`` or ``(member, time, K)``; time is in days since 2000-01-01
    (proleptic Gregorian), 1 MTU = 5 days. ``extra`` adds variables of the same shape
    (e.g. ``nudging_tendency`` in X units per MTU).
    """
    import xarray as xr

    dims = ("time", "k") if x.ndim == 2 else ("member", "time", "k")
    nt = x.shape[-2]
    days = (start_mtu + dt_mtu * np.arange(nt)) * SECONDS_PER_MTU / 86400.0
    data_vars = {
        "X": (dims, x, {"long_name": "Lorenz-96 slow variables", "units": "1"}),
    }
    for name, values in (extra or {}).items():
        data_vars[name] = (dims, values, {"units": "MTU-1", "long_name": name.replace("_", " ")})
    ds = xr.Dataset(
        data_vars,
        coords={
            "time": ("time", days, {"units": TIME_UNITS, "calendar": CALENDAR, "standard_name": "time"}),
            "k": ("k", np.arange(1, x.shape[-1] + 1, dtype=np.int32), {"long_name": "slow variable index"}),
        },
        attrs={
            "Conventions": "CF-1.8",
            "title": title,
            "source": "atmocorrect.lorenz96 (numpy reference implementation)",
            "mtu_seconds": SECONDS_PER_MTU,
            **(attrs or {}),
        },
    )
    ds.time.encoding.update({"units": TIME_UNITS, "calendar": CALENDAR})
    return ds


def nudged_run(
    truth: np.ndarray, F: float, dt: float, tau: float, x0: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The one-scale model nudged towards ``truth`` ``(..., time, K)`` sampled every ``dt``.

    Returns the nudged states and the nudging tendencies ``(truth - x) / tau`` (per MTU) at the
    sample times. The truth inside a step is interpolated linearly for the RK4 stages.
    """
    nt = truth.shape[-2]
    x = (truth[..., 0, :] if x0 is None else x0).copy()
    xs = np.empty_like(truth)
    nudge = np.empty_like(truth)
    for n in range(nt):
        xs[..., n, :] = x
        nudge[..., n, :] = (truth[..., n, :] - x) / tau
        if n == nt - 1:
            break
        a, b = truth[..., n, :], truth[..., n + 1, :]

        def f(s: np.ndarray, frac: float, a=a, b=b) -> np.ndarray:
            return one_scale_tendency(s, F) + (a + frac * (b - a) - s) / tau

        k1 = f(x, 0.0)
        k2 = f(x + 0.5 * dt * k1, 0.5)
        k3 = f(x + 0.5 * dt * k2, 0.5)
        k4 = f(x + dt * k3, 1.0)
        x = x + (dt / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4)
    return xs, nudge
