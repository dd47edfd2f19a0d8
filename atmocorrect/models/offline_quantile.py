"""The learned offline correction: a network of monotone conditional quantile functions.

For every variable, point and season the network gives two quantile functions of the
standard-normal score ``z = Phi^-1(tau)``: the reference's (ERA5) and the calibration
simulation's. Their difference ``Delta(tau) = Q_ref(tau) - Q_sim(tau)`` is the correction a
value at quantile level ``tau`` receives (in the variable's transformed space: identity for
temperature, log for precipitation). Each quantile function is

    Q(z) = a + b z + sum_k w_k h tanh((z - c_k) / h) + w_r softplus(z - z_t) - w_l softplus(-z_t - z)

with ``b, w_k, w_l, w_r > 0``, hence increasing in ``z`` (quantiles never cross) and linear in
the tails (no wild extrapolation beyond the calibration range).

A checkpoint of this class is for ``atmocorrect correct`` only: loading it as an online
(tendency) model fails at load time with a message saying so.

Example
-------
>>> import torch
>>> net = QuantileNet(n_inputs=5, hidden=8, layers=1, ramps=4)
>>> q = net.quantiles(torch.zeros(3, 5), torch.tensor([[-1.0, 0.0, 1.0]] * 3), source=0)
>>> bool((q[:, 1:] > q[:, :-1]).all())  # monotone in z
True
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from ..checkpoint import Manifest
from ..errors import CheckpointError, FieldError, ModelError
from ..offline.config import clip_to_bounds
from ..offline.diurnal import series_names, slot_name
from . import register
from .neural import Block

MODEL_CLASS = "offline-quantile-delta"
SOURCES = ("reference", "simulation")
_TAIL_Z = 1.5
_SOFTPLUS_ONE = math.log(math.e - 1.0)  # softplus(x) = 1


def quantile_from_coeffs(coeffs: torch.Tensor, z: torch.Tensor, ramps: int) -> torch.Tensor:
    """Evaluate the monotone quantile function; ``coeffs`` (n, 4 + ramps), ``z`` (n, m)."""
    sp = nn.functional.softplus
    centres = torch.linspace(-2.0, 2.0, ramps, dtype=z.dtype, device=z.device)
    width = 4.0 / max(ramps - 1, 1) if ramps > 1 else 1.0
    a = coeffs[:, 0:1]
    b = sp(coeffs[:, 1:2])
    w = sp(coeffs[:, 2 : 2 + ramps])
    w_l = sp(coeffs[:, 2 + ramps : 3 + ramps])
    w_r = sp(coeffs[:, 3 + ramps : 4 + ramps])
    bumps = width * torch.tanh((z[:, :, None] - centres) / width)  # (n, m, ramps)
    q = a + b * z + (bumps * w[:, None, :]).sum(-1)
    q = q + w_r * sp(z - _TAIL_Z) - w_l * sp(-_TAIL_Z - z)
    return q


def dry_quantiles(u: np.ndarray, norm: Mapping[str, Any]) -> np.ndarray:
    """Standardised transformed values of the dry-day draws at levels ``u`` within the dry
    part: the quantile function of :func:`~atmocorrect.offline.wetdays.jitter_dry`'s
    log-uniform draws below the wet-day threshold, known exactly, so not learned.

    >>> n = {"wet_threshold": 1.0, "offset": 0.0, "mean": 0.0, "std": 1.0}
    >>> dry_quantiles(np.array([0.0, 0.5, 1.0]), n).round(3).tolist()  # log(0.01 .. 1)
    [-4.605, -2.303, 0.0]
    """
    from ..offline.wetdays import dry_draws

    x = dry_draws(u, float(norm["wet_threshold"]))
    return (np.log(x + float(norm["offset"])) - float(norm["mean"])) / float(norm["std"])


def hurdle_quantiles(z: np.ndarray, dry_fraction: np.ndarray, wet_quantiles,
                     norm: Mapping[str, Any]) -> np.ndarray:
    """The quantile function of all values (standardised, (rows, m)) of a variable with dry
    days, at scores ``z`` (m,), from its dry-day fraction ``p`` (rows,) and the quantile
    function of its wet values, ``wet_quantiles(z_wet)`` with ``z_wet`` (rows, m):
    ``Q(tau) = D(tau / p)`` below ``p`` (:func:`dry_quantiles`), else
    ``max(Q_wet((tau - p) / (1 - p)), threshold)``. Increasing in ``z``.

    >>> n = {"wet_threshold": 1.0, "offset": 0.0, "mean": 0.0, "std": 1.0}
    >>> q = hurdle_quantiles(np.array([-1.0, 0.0, 1.0]), np.array([0.5]), lambda zw: 1 + zw, n)
    >>> q.round(3).tolist()  # the lower half dry (below log 1 = 0), the upper half wet
    [[-3.144, 0.0, 1.475]]
    """
    from scipy.special import ndtr, ndtri

    tau = ndtr(np.asarray(z, dtype=np.float64))[None, :]
    p = np.clip(np.asarray(dry_fraction, dtype=np.float64), 0.0, 1.0 - 1e-9)[:, None]
    z_wet = ndtri(np.clip((tau - p) / (1.0 - p), 1e-12, 1.0 - 1e-12))
    threshold = dry_quantiles(np.ones(1), norm)[0]
    wet = np.maximum(np.asarray(wet_quantiles(z_wet), dtype=np.float64), threshold)
    with np.errstate(divide="ignore", invalid="ignore"):
        dry = dry_quantiles(np.clip(tau / np.maximum(p, 1e-300), 1e-12, 1.0), norm)
    return np.where(tau < p, dry, wet)


@dataclasses.dataclass(frozen=True)
class TokenLayout:
    """How a flat input row of the transformer trunk is laid out:
    ``[season (2 harmonics) | variable one-hot (n_vars) | point (3) | padding mask (T) |
    patches (T * patch_dim)]`` with ``T = token_vars * tokens_per_var`` tokens.

    ``slots``: sub-daily data corrected per time of day have ``n_vars = variables x slots``
    network variables (``tas@00:00``, ``tas@03:00``, ...: the one-hot), but one token per
    (variable, neighbourhood cell) whose patch spans the times of day (the climatology patch
    of every slot, one after the other), so the attention costs what it costs for daily
    data; 1 otherwise."""

    harmonics: int
    n_vars: int
    tokens_per_var: int
    patch_dim: int
    slots: int = 1

    def __post_init__(self) -> None:
        if self.slots < 1 or self.n_vars % self.slots:
            raise ModelError(f"token layout: {self.n_vars} variables are not a whole number "
                             f"of {self.slots} time-of-day slots each")

    @property
    def token_vars(self) -> int:
        """Variables with tokens of their own (the corrected variables, not their slots)."""
        return self.n_vars // self.slots

    @property
    def tokens(self) -> int:
        return self.token_vars * self.tokens_per_var

    @property
    def n_cond(self) -> int:
        return 2 * self.harmonics + self.n_vars + POINT_COLUMNS

    @property
    def n_inputs(self) -> int:
        return self.n_cond + self.tokens * (1 + self.patch_dim)

    def to_dict(self) -> dict[str, int]:
        d = dataclasses.asdict(self)
        if self.slots == 1:  # as written before slots existed
            del d["slots"]
        return d


#: Point columns of the transformer's query: standardised latitude, sin and cos longitude (the
#: first three point features).
POINT_COLUMNS = 3


class TransformerTrunk(nn.Module):
    """Climatology-patch tokens of every (variable, neighbourhood cell), attention across them.

    Each token is a space-time patch of one variable's calibration climatology at one cell
    (monthly means and spreads; of every time of day, for sub-daily data corrected per time
    of day: :attr:`TokenLayout.slots`), embedded linearly, plus a learned embedding of its variable
    and of its offset from the centre cell, plus the conditioning of the query (season
    harmonics, target variable, point position), which is also the content of an extra query
    token. After the pre-norm blocks the query token is read out. Padding tokens (cells
    outside the grid) are masked out of attention: their content never reaches the output.
    """

    def __init__(self, layout: TokenLayout, d_model: int, heads: int, layers: int) -> None:
        super().__init__()
        self.layout = layout
        self.cond = nn.Linear(layout.n_cond, d_model)
        self.embed = nn.Linear(layout.patch_dim, d_model)
        self.var_emb = nn.Parameter(0.02 * torch.randn(layout.token_vars, 1, d_model))
        self.pos_emb = nn.Parameter(0.02 * torch.randn(1, layout.tokens_per_var, d_model))
        self.query = nn.Parameter(0.02 * torch.randn(d_model))
        self.blocks = nn.ModuleList(Block(d_model, heads, 2 * d_model)
                                    for _ in range(layers))
        self.norm = nn.LayerNorm(d_model)
        self.width = d_model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lay = self.layout
        n, t = x.shape[0], lay.tokens
        c0 = lay.n_cond
        cond = self.cond(x[:, :c0])  # (n, d)
        pad = x[:, c0:c0 + t] > 0.5  # True: padding
        patches = x[:, c0 + t:].reshape(n, t, lay.patch_dim)
        ident = (self.var_emb + self.pos_emb).reshape(1, t, self.width)
        used = ~pad.all(dim=0)  # tokens that are padding in every row cannot change anything:
        if not bool(used.all()):  # leave them out (exact; most of a 3 x 3 on a 4 x 1 grid)
            patches, pad, ident = patches[:, used], pad[:, used], ident[:, used]
        tok = self.embed(patches) + ident + cond[:, None, :]
        h = torch.cat([(self.query + cond)[:, None, :], tok], dim=1)
        keep = torch.cat([torch.ones(n, 1, dtype=torch.bool, device=x.device), ~pad], dim=1)
        keep = keep[:, None, None, :]
        for block in self.blocks:
            h = block(h, keep)
        return self.norm(h[:, 0])


class QuantileNet(nn.Module):
    """A trunk (MLP, or transformer over climatology-patch tokens) shared by the reference
    and simulation heads (one per source)."""

    def __init__(self, n_inputs: int, hidden: int, layers: int, ramps: int, sources: int = 2,
                 *, trunk: str = "mlp", layout: TokenLayout | None = None, d_model: int = 32,
                 heads: int = 2, transformer_layers: int = 2, hurdle: bool = False):
        super().__init__()
        self.trunk_kind = trunk
        self.layout = layout
        if trunk == "transformer":
            if layout is None:
                raise ModelError("the transformer trunk needs a token layout")
            if layout.n_inputs != n_inputs:
                raise ModelError(f"token layout has {layout.n_inputs} inputs, not {n_inputs}")
            self.trunk: nn.Module = TransformerTrunk(layout, d_model, heads, transformer_layers)
            width = d_model
        elif trunk == "mlp":
            mods: list[nn.Module] = []
            width = n_inputs
            for _ in range(layers):
                mods += [nn.Linear(width, hidden), nn.SiLU()]
                width = hidden
            self.trunk = nn.Sequential(*mods)
        else:
            raise ModelError(f"unknown trunk {trunk!r} (mlp or transformer)")
        self.ramps = ramps
        self.sources = sources
        #: one more coefficient per source, the logit of the dry-day fraction (see
        #: :func:`hurdle_quantiles`), when a variable has dry days
        self.hurdle = hurdle
        self.n_coeffs = 4 + ramps + int(hurdle)
        self.head = nn.Linear(width, sources * self.n_coeffs)
        with torch.no_grad():
            self.head.weight.mul_(0.1)
            bias = torch.full((sources, self.n_coeffs), -4.0)
            bias[:, 0] = 0.0
            bias[:, 1] = _SOFTPLUS_ONE  # start from the standard normal: Q(z) ~ z
            if hurdle:
                bias[:, -1] = 0.0  # dry on half the days
            self.head.bias.copy_(bias.reshape(-1))

    def coeffs(self, x: torch.Tensor) -> torch.Tensor:
        """(n, sources, 4 + ramps [+ 1: the dry-fraction logit])."""
        return self.head(self.trunk(x)).reshape(x.shape[0], self.sources, self.n_coeffs)

    def dry_logit(self, x: torch.Tensor, source: int) -> torch.Tensor:
        """Logit of the dry-day fraction of ``source`` (n,); only with ``hurdle``."""
        if not self.hurdle:
            raise ModelError("this network has no dry-day fraction (hurdle off)")
        return self.coeffs(x)[:, source, -1]

    def quantiles(self, x: torch.Tensor, z: torch.Tensor, source: int) -> torch.Tensor:
        return quantile_from_coeffs(self.coeffs(x)[:, source], z, self.ramps)

    def delta(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``Q_reference(z) - Q_simulation(z)`` (standardised units)."""
        c = self.coeffs(x)
        return quantile_from_coeffs(c[:, 0], z, self.ramps) - quantile_from_coeffs(
            c[:, 1], z, self.ramps
        )


def diurnal_slots(hyper: Mapping[str, Any]) -> tuple[int, ...]:
    """The time-of-day slots (seconds after 00:00) of a checkpoint corrected per time of day
    (hyperparameter ``diurnal``); empty for daily and monthly data, pooled sub-daily data and
    checkpoints written before slots existed."""
    entry = hyper.get("diurnal") or {}
    try:
        slots = tuple(int(s) for s in entry.get("slots", ()))
    except (TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"offline checkpoint: invalid diurnal slots {entry!r}: {exc}"
                              ) from exc
    if any(not 0 <= s < 86400 for s in slots) or len(set(slots)) != len(slots):
        raise CheckpointError(f"offline checkpoint: diurnal slots {list(slots)} are not "
                              "distinct seconds after 00:00")
    return slots


def trunk_of(hyper: Mapping[str, Any]) -> str:
    """The trunk of a checkpoint's hyperparameters; checkpoints written before the trunk was
    selectable have no key and are MLPs."""
    return str(hyper["network"].get("trunk", "mlp"))


def build_net(hyper: Mapping[str, Any]) -> QuantileNet:
    net = hyper["network"]
    trunk = trunk_of(hyper)
    layout = None
    if trunk == "transformer":
        try:
            layout = TokenLayout(**{k: int(v) for k, v in hyper["tokens"].items()})
        except (KeyError, TypeError, ModelError) as exc:
            raise CheckpointError(f"transformer checkpoint lacks a valid token layout: {exc}"
                                  ) from exc
    try:
        return QuantileNet(
            n_inputs=int(hyper["n_inputs"]),
            hidden=int(net.get("hidden", 64)),
            layers=int(net.get("layers", 2)),
            ramps=int(net["ramps"]),
            sources=len(SOURCES),
            trunk=trunk,
            layout=layout,
            d_model=int(net.get("d_model", 32)),
            heads=int(net.get("heads", 2)),
            transformer_layers=int(net.get("transformer_layers", 2)),
            hurdle=bool(net.get("hurdle", False)),  # absent: written before it existed
        )
    except ModelError as exc:
        raise CheckpointError(f"offline checkpoint: {exc}") from exc


def input_features(
    season: np.ndarray, point_feats: np.ndarray, var_index: int, n_vars: int, harmonics: int
) -> np.ndarray:
    """Rows of network input: season harmonics, point features, variable one-hot."""
    from ..offline.features import season_features

    n = season.shape[0]
    onehot = np.zeros((n, n_vars), dtype=np.float32)
    onehot[:, var_index] = 1.0
    return np.concatenate(
        [season_features(season, harmonics), point_feats.astype(np.float32), onehot], axis=1
    )


def token_inputs(
    season: np.ndarray, point_feats: np.ndarray, patches: np.ndarray, mask: np.ndarray,
    var_index: int, layout: TokenLayout,
) -> np.ndarray:
    """Rows of transformer input (see :class:`TokenLayout`): ``point_feats`` (n, >= 3) of
    which the first three columns (lat, sin/cos lon) are used, ``patches`` (n, T, patch_dim),
    ``mask`` (n, T) True for padding."""
    from ..offline.features import season_features

    n = season.shape[0]
    onehot = np.zeros((n, layout.n_vars), dtype=np.float32)
    onehot[:, var_index] = 1.0
    return np.concatenate(
        [season_features(season, layout.harmonics), onehot,
         point_feats[:, :POINT_COLUMNS].astype(np.float32), mask.astype(np.float32),
         patches.reshape(n, -1).astype(np.float32)], axis=1)


#: Fractions within this much of a bound (as a share of ``upper - lower``) are taken as at the
#: bound by the logit transform: 1e-4 is ISIMIP3BASD's threshold for hurs (0.01 and 99.99 %),
#: prsnratio and tasskew, far below the values' resolution (hurs is rarely stored finer than
#: 0.01 %), and it keeps the logit of a value at the bound finite (+-9.2) and close enough to
#: the rest of the distribution (99 %: 4.6) that an atom at the bound (saturated days) does
#: not stretch the standardised space.
LOGIT_EPS = 1e-4


def logit_bounds(norm: Mapping[str, Any], var: str) -> tuple[float, float]:
    """The ``lower`` and ``upper`` bounds a ``logit`` variable's normalisation must hold."""
    lo, hi = norm.get("lower"), norm.get("upper")
    if lo is None or hi is None or not float(lo) < float(hi):
        raise CheckpointError(f"offline checkpoint: variable {var!r} has the logit transform "
                              f"but no valid bounds (lower {lo!r}, upper {hi!r})")
    return float(lo), float(hi)


def logit_forward(x: np.ndarray, lower: float, upper: float) -> np.ndarray:
    """``logit((x - lower) / (upper - lower))``, the fraction clipped to
    ``[LOGIT_EPS, 1 - LOGIT_EPS]`` (values at or beyond a bound are finite); NaN stays NaN.

    >>> logit_forward(np.array([0.0, 50.0, 100.0, 101.5, np.nan]), 0.0, 100.0).round(2).tolist()
    [-9.21, 0.0, 9.21, 9.21, nan]
    """
    frac = (np.asarray(x, dtype=np.float64) - lower) / (upper - lower)
    frac = np.clip(frac, LOGIT_EPS, 1.0 - LOGIT_EPS)
    return np.log(frac) - np.log1p(-frac)


def logit_inverse(y: np.ndarray, lower: float, upper: float) -> np.ndarray:
    """``lower + (upper - lower) expit(y)``: always within ``[lower, upper]``.

    >>> logit_inverse(np.array([-800.0, 0.0, 9.21, 800.0]), 0.0, 100.0).round(3).tolist()
    [0.0, 50.0, 99.99, 100.0]
    """
    from scipy.special import expit

    return np.clip(lower + (upper - lower) * expit(y), lower, upper)


def count_outside(x: np.ndarray, lower: float | None, upper: float | None) -> int:
    """How many finite values of ``x`` lie beyond the given bounds."""
    x = np.asarray(x)
    bad = np.zeros(x.shape, dtype=bool)
    if lower is not None:
        bad |= x < lower
    if upper is not None:
        bad |= x > upper
    return int(bad.sum())


def outside_message(x: np.ndarray, lower: float, upper: float, units: str | None) -> str:
    """``"12 of 5000 value(s) lie outside the physical bounds [0, 100] % (min 3.1, max 101)"``.
    """
    x = np.asarray(x, dtype=np.float64)
    finite = x[np.isfinite(x)]
    span = f" (min {finite.min():.6g}, max {finite.max():.6g})" if finite.size else ""
    u = f" {units}" if units not in (None, "", "1") else ""
    return (f"{count_outside(x, lower, upper)} of {finite.size} value(s) lie outside the "
            f"physical bounds [{lower:g}, {upper:g}]{u}{span}")


class OfflineQuantileModel:
    """A loaded offline checkpoint: maps values to corrected values, variable by variable."""

    halo: tuple[int, ...] = ()

    def __init__(self, manifest: Manifest, tensors: Mapping[str, Any], threads: int = 1):
        self.manifest = manifest
        self.hyper = dict(manifest.hyperparameters)
        self.fields = tuple(f.name for f in manifest.fields)
        #: sub-daily data corrected per time of day: the slots (seconds after 00:00), the
        #: network's variables then every field at every slot (``tas@03:00``); empty: none
        self.slots = diurnal_slots(self.hyper)
        self.variables = series_names(self.fields, self.slots)
        units = {f.name: f.units for f in manifest.fields}
        self.units = {**units, **{slot_name(f, s): units[f] for f in self.fields
                                  for s in self.slots}}
        self.norm = dict(manifest.normalization)
        missing = [v for v in self.variables if v not in self.norm]
        if missing:
            raise CheckpointError(f"offline checkpoint lacks normalisation for {missing}")
        for var in self.variables:  # at load time, where the checkpoint's path is known
            if self.norm[var].get("transform") == "logit":
                logit_bounds(self.norm[var], var)
        try:
            self.lat = tensors["grid.lat"].double().numpy()
            self.lon = tensors["grid.lon"].double().numpy()
            self.point_feats = tensors["grid.features"].float().numpy()
            self.moments = {v: tensors[f"clim.{v}"].double().numpy() for v in self.variables}
            #: the calibration simulation's own quantile tables of variables whose dry-day
            #: fraction is learned (offline.train.simulation_quantile_table); absent: none
            self.sim_quantiles = {v: tensors[f"simq.{v}"].double().numpy()
                                  for v in self.variables if f"simq.{v}" in tensors}
            # points the reference had no value at (absent: every point had)
            has_ref = tensors.get("grid.has_reference")
            self.has_reference = (np.ones(self.lat.shape, dtype=bool) if has_ref is None
                                  else has_ref.numpy().astype(bool))
            self.trunk = trunk_of(self.hyper)
            if self.trunk == "transformer":
                self.patches = tensors["grid.patches"].float().numpy()
                self.patch_mask = tensors["grid.patch_mask"].numpy().astype(bool)
            state = {k[4:]: v for k, v in tensors.items() if k.startswith("net.")}
        except KeyError as exc:
            raise CheckpointError(f"offline checkpoint lacks tensor {exc}") from exc
        self.net = build_net(self.hyper)
        try:
            self.net.load_state_dict(state)
        except RuntimeError as exc:
            raise CheckpointError(f"offline checkpoint weights do not fit the network: {exc}") from exc
        self.net.eval()
        self.threads = max(1, int(threads))

    @property
    def harmonics(self) -> int:
        return int(self.hyper["network"]["harmonics"])

    def cell_tolerance(self) -> float:
        """Half the smallest distance (``max(|dlat|, |dlon|)``, degrees) between two
        calibration points: half the smaller grid step of a regular grid, half the nearest
        neighbour's distance on curvilinear grids and stations. A point closer than this to a
        calibration point is corrected as that point (the correction is per cell)."""
        from ..data.regrid import cell_tolerance

        return cell_tolerance(self.lat, self.lon)

    def point_index(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """Indices into the checkpoint's grid of the given points (nearest calibration point
        within :meth:`cell_tolerance`); raises for points off the calibrated grid."""
        lat = np.asarray(lat, dtype=np.float64).ravel()
        lon = np.mod(np.asarray(lon, dtype=np.float64).ravel(), 360.0)
        glon = np.mod(self.lon, 360.0)
        dlat = np.abs(lat[:, None] - self.lat[None, :])
        dlon = np.abs((lon[:, None] - glon[None, :] + 180.0) % 360.0 - 180.0)
        d = np.maximum(dlat, dlon)
        idx = d.argmin(axis=1)
        tol = self.cell_tolerance()
        bad = d[np.arange(lat.size), idx] > tol
        if bad.any():
            k = int(np.argmax(bad))
            raise FieldError(
                f"{int(bad.sum())} point(s) of the input are not on the checkpoint's grid, e.g. "
                f"lat {lat[k]:.4f} lon {lon[k]:.4f} (farther than {tol:.3g} deg from every "
                f"calibration point); the checkpoint was calibrated on {self.lat.size} points "
                f"(lat {self.lat.min():.2f}..{self.lat.max():.2f}, "
                f"lon {self.lon.min():.2f}..{self.lon.max():.2f})"
            )
        return idx

    def forward_transform(self, var: str, x: np.ndarray) -> np.ndarray:
        """Values in the space the correction is learned in (see :func:`logit_forward` for
        ``logit``; input values beyond the bounds are clipped, with one warning per
        variable)."""
        n = self.norm[var]
        if n["transform"] == "log":
            return np.log(np.maximum(x, 0.0) + n["offset"])
        if n["transform"] == "logit":
            lo, hi = logit_bounds(n, var)
            outside = count_outside(x, lo, hi)
            warned = self.__dict__.setdefault("_bounds_warned", set())
            if outside and var not in warned:
                warned.add(var)
                warnings.warn(
                    f"variable {var!r}: {outside_message(x, lo, hi, self.units.get(var))} "
                    f"in a block of {x.shape[-1] if x.ndim > 1 else 1} point(s) of the input "
                    "(later blocks are not reported); clipped to the bounds for the logit "
                    "transform", stacklevel=2)
            return logit_forward(x, lo, hi)
        return x

    def inverse_transform(self, var: str, y: np.ndarray) -> np.ndarray:
        """Corrected values back in the variable's units, within its physical bounds when the
        checkpoint records them (``lower``/``upper``; absent in checkpoints written before
        bounds existed: not clipped, as then)."""
        n = self.norm[var]
        if n["transform"] == "log":
            out = np.maximum(np.exp(y) - n["offset"], 0.0)
        elif n["transform"] == "logit":
            out = logit_inverse(y, *logit_bounds(n, var))
        else:
            out = y
        return clip_to_bounds(out, n.get("lower"), n.get("upper"))

    def _forward(self, feats: np.ndarray, z: np.ndarray, what: str) -> np.ndarray:
        """Network output for rows of features at scores ``z`` (n, m): ``reference``,
        ``simulation`` quantiles or their ``delta``, in standardised units."""
        prev = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            with torch.no_grad():
                x = torch.from_numpy(feats)
                zz = torch.from_numpy(z.astype(np.float32))
                if what == "delta":
                    out = self.net.delta(x, zz)
                elif what.startswith("dry "):  # the dry-day fraction of a source
                    out = torch.sigmoid(self.net.dry_logit(x, SOURCES.index(what[4:])))
                else:
                    out = self.net.quantiles(x, zz, source=SOURCES.index(what))
        except Exception as exc:  # pragma: no cover - defensive
            raise ModelError(f"offline model evaluation failed: {exc}") from exc
        finally:
            torch.set_num_threads(prev)
        return out.double().numpy()

    def _feats(self, var: str, point: np.ndarray, season: np.ndarray) -> np.ndarray:
        if self.trunk == "transformer":
            return token_inputs(season, self.point_feats[point], self.patches[point],
                                self.patch_mask[point], self.variables.index(var),
                                self.net.layout)
        return input_features(season, self.point_feats[point], self.variables.index(var),
                              len(self.variables), self.harmonics)

    def empirical_simulation(self, var: str) -> bool:
        """Whether the simulation's side of ``var``'s correction comes from the calibration
        simulation's own quantiles (stored in the checkpoint) rather than from the network."""
        return var in self.sim_quantiles and self.hurdle(var)

    def _simulation_table(self, var: str, points: np.ndarray, nodes: np.ndarray,
                          z: np.ndarray) -> np.ndarray:
        """The stored calibration quantiles (transformed units), (points, nodes, z): the
        seasonal mean plus the spread times the anomaly quantile of the nearest stored node,
        interpolated linearly in ``z`` (clamped at the stored range)."""
        from ..offline.apply import moments_at

        spec = self.hyper["simulation_quantiles"]
        table = self.sim_quantiles[var][points]  # (points, stored nodes, levels)
        n_stored = table.shape[1]
        k = np.minimum((np.asarray(nodes) * n_stored).astype(int), n_stored - 1)
        grid = np.linspace(float(spec["z_min"]), float(spec["z_max"]), table.shape[2])
        pos = np.clip((z - grid[0]) / (grid[1] - grid[0]), 0.0, grid.size - 1.0)
        i0 = np.minimum(np.floor(pos).astype(int), grid.size - 2)
        frac = pos - i0
        anom = table[:, k][..., i0] * (1.0 - frac) + table[:, k][..., i0 + 1] * frac
        mean, spread = moments_at(self.moments[var][points], np.asarray(nodes, dtype=float))
        return mean.T[:, :, None] + spread.T[:, :, None] * anom

    def hurdle(self, var: str) -> bool:
        """Whether ``var``'s dry-day fraction is learned explicitly
        (:func:`hurdle_quantiles`; ``NetworkConfig.hurdle``)."""
        n = self.norm[var]
        return bool(n.get("hurdle", False)) and float(n.get("wet_threshold", 0.0)) > 0 \
            and self.net.hurdle

    def _quantiles(self, var: str, feats: np.ndarray, z: np.ndarray, source: str
                   ) -> np.ndarray:
        """Standardised quantiles (rows, m) of ``source`` at scores ``z`` (m,), the same for
        every row."""
        if not self.hurdle(var):
            return self._forward(feats, np.broadcast_to(z[None, :], (feats.shape[0], z.size)),
                                 source)
        return hurdle_quantiles(z, self._dry(feats, source),
                                lambda z_wet: self._forward(feats, z_wet, source),
                                self.norm[var])

    def _dry(self, feats: np.ndarray, source: str) -> np.ndarray:
        """The learned dry-day fraction of ``source`` for rows of features, (rows,)."""
        return self._forward(feats, np.zeros((feats.shape[0], 1)), "dry " + source)

    def dry_fraction(self, var: str, points: np.ndarray, nodes: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
        """The learned dry-day fractions (reference, simulation), (points, nodes) each."""
        if not self.hurdle(var):
            raise ModelError(f"variable {var!r} has no learned dry-day fraction")
        out = np.empty((2, points.size, nodes.size))
        for rows, feats in self._feats_by_padding(var, points, nodes):
            for k, source in enumerate(SOURCES):
                out[k, rows] = self._dry(feats, source).reshape(rows.size, nodes.size)
        return out[0], out[1]

    def delta(
        self, var: str, point: np.ndarray, season: np.ndarray, tau: np.ndarray
    ) -> np.ndarray:
        """Correction (transformed units) for values at quantile levels ``tau``; variables
        whose dry-day fraction is learned are corrected through :meth:`tables`."""
        from scipy.special import ndtri

        if self.hurdle(var):
            raise ModelError(f"variable {var!r} has a learned dry-day fraction: its correction "
                             "comes from tables() (the simulation's side from the checkpoint's "
                             "calibration quantiles)")
        z = ndtri(np.clip(tau, 1e-6, 1 - 1e-6))[:, None]
        out = self._forward(self._feats(var, point, season), z, "delta")[:, 0]
        return out * float(self.norm[var]["std"])

    def tables(
        self, var: str, points: np.ndarray, nodes: np.ndarray, z: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Reference and simulation quantiles (transformed units) on a (point, season node,
        z) grid: two arrays of shape (len(points), len(nodes), len(z)). The simulation's
        come from the stored calibration quantiles where the checkpoint has them
        (:meth:`empirical_simulation`), else from the network."""
        n = self.norm[var]
        stored = self.empirical_simulation(var)
        sources = SOURCES[:1] if stored else SOURCES
        out = np.empty((len(sources), points.size, nodes.size, z.size))
        for rows, feats in self._feats_by_padding(var, points, nodes):
            for k, source in enumerate(sources):
                q = self._quantiles(var, feats, z, source)
                out[k, rows] = q.reshape(rows.size, nodes.size, z.size) * n["std"] + n["mean"]
        q_sim = self._simulation_table(var, points, nodes, z) if stored else out[1]
        return out[0], q_sim

    def _feats_by_padding(self, var: str, points: np.ndarray, nodes: np.ndarray):
        """(rows of ``points``, their features at every season node), one group per padding
        pattern of the transformer's neighbourhood (one group for the MLP).

        The transformer leaves out the tokens that are padding in every row of a batch, which
        changes the float rounding (by an ulp) with the batch; grouping the points by pattern
        makes a point's tables independent of which other points share its chunk."""
        if self.trunk == "transformer":
            _, group = np.unique(self.patch_mask[points].reshape(points.size, -1), axis=0,
                                 return_inverse=True)
        else:
            group = np.zeros(points.size, dtype=np.int64)
        for g in np.unique(group):
            rows = np.flatnonzero(group.ravel() == g)
            yield rows, self._feats(var, np.repeat(points[rows], nodes.size),
                                    np.tile(nodes, rows.size))

    def mean_delta(self, var: str, points: np.ndarray, nodes: np.ndarray,
                   levels: int = 64) -> np.ndarray:
        """Mean correction over uniformly distributed quantile levels, (points, nodes)."""
        from scipy.special import ndtri

        z = ndtri((np.arange(levels) + 0.5) / levels)
        if self.hurdle(var):  # composed quantile functions: through the tables
            q_ref, q_sim = self.tables(var, points, nodes, z)
            return (q_ref - q_sim).mean(axis=-1)
        out = np.empty((points.size, nodes.size))
        for rows, feats in self._feats_by_padding(var, points, nodes):
            zz = np.broadcast_to(z[None, :], (feats.shape[0], levels))
            d = self._forward(feats, zz, "delta").mean(axis=1)
            out[rows] = d.reshape(rows.size, nodes.size)
        return out * float(self.norm[var]["std"])

    def tendency(self, inputs: Mapping[str, np.ndarray], time: float) -> dict[str, np.ndarray]:
        raise ModelError(
            "this checkpoint is an offline distribution correction; use `atmocorrect correct`"
        )


@register(MODEL_CLASS)
def _build(manifest: Manifest, tensors: Mapping[str, Any], context: Mapping[str, Any]):
    if not context.get("offline"):
        raise CheckpointError(
            f"checkpoint model class {MODEL_CLASS!r} corrects the distribution of finished "
            "simulation output (atmocorrect correct --method ml); it cannot nudge a running "
            "model online"
        )
    return OfflineQuantileModel(manifest, tensors, threads=int(context.get("num_threads", 1)))
