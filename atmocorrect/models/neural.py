"""Torch predictors: the AtmoRep-style transformer and its baselines behind one interface.

Every model here corrects each grid point from a local neighbourhood of the state around it:
the coupling runtime hands :meth:`WindowPredictor.tendency` each field extended by ``halo``
points per leading (horizontal) dimension, the predictor cuts one window of ``2*halo + 1``
points per dimension around every interior point, and the network maps the window to the
correction at its centre. Levels (any trailing dimensions) are channels. Because every point
sees exactly its own window, the result at a point does not depend on how the domain is split
over MPI ranks.

Models (the ``model.class`` of a checkpoint):

``transformer``
    AtmoRep-style: each field's window is cut into space patches (``patch`` points per
    dimension); each patch of each field is one token (a per-field linear embedding of its
    levels x points, plus a learned field/position embedding); a pre-norm transformer encoder
    attends across all tokens of all fields; the centre token of each corrected field is read
    out by a linear head into the correction at the centre point, per level.
``mlp``
    A small multilayer perceptron on the flattened window (same inputs as the transformer).
``quartic``
    A polynomial of degree 4 (``degree``) in the centre value of each corrected field, per
    level, fitted by least squares to the same targets (Wilks 2005's form); halo 0.
``zero``
    No correction (a control that must reproduce the uncorrected model).

Inputs and targets are normalised with statistics stored in the manifest (``normalization``):
``{"inputs": {field: {"mean": [per level], "std": [...]}}, "targets": {field: {...}}}``,
targets in field units per second. Weights come from safetensors only.

Internal layout of a batch: ``(B, F, L, *S)``: batch, field, level, leading spatial dims.
Windows: ``(N, F, L, *W)`` with ``W = 2*halo + 1`` per spatial dim.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..checkpoint import Manifest
from ..devices import gpu_count, select_device
from ..errors import CheckpointError, ModelError
from . import register

MODEL_CLASSES = ("transformer", "mlp", "quartic", "zero")


# ---------------------------------------------------------------------- window helpers
def pad(x: torch.Tensor, halo: Sequence[int], periodic: Sequence[bool]) -> torch.Tensor:
    """Extend the trailing ``len(halo)`` dims of ``x`` by ``halo`` points on each side.

    Periodic dims wrap; the others replicate the edge value (what the decomposition does).
    """
    nd = len(halo)
    for i, h in enumerate(halo):
        if h == 0:
            continue
        d = x.ndim - nd + i
        n = x.shape[d]
        if i < len(periodic) and periodic[i]:
            if h > n:
                raise ModelError(f"halo {h} exceeds the periodic extent {n}")
            lo, hi = x.narrow(d, n - h, h), x.narrow(d, 0, h)
        else:
            shape = list(x.shape)
            shape[d] = h
            lo, hi = x.narrow(d, 0, 1).expand(shape), x.narrow(d, n - 1, 1).expand(shape)
        x = torch.cat([lo, x, hi], dim=d)
    return x


def window_view(ext: torch.Tensor, halo: Sequence[int]) -> torch.Tensor:
    """The windows of ``(B, F, L, *S_ext)`` as a strided view ``(B, *S, F, L, *W)`` (no copy)."""
    nd = len(halo)
    lead = ext.ndim - nd  # B, F, L
    out = ext
    for i, h in enumerate(halo):
        out = out.unfold(lead + i, 2 * h + 1, 1)
    # out: (B, F, L, *S, *W) -> (B, *S, F, L, *W)
    spatial = list(range(lead, lead + nd))
    win = list(range(lead + nd, lead + 2 * nd))
    return out.permute(0, *spatial, 1, 2, *win)


def windows(ext: torch.Tensor, halo: Sequence[int]) -> torch.Tensor:
    """Cut ``(B, F, L, *S_ext)`` into windows ``(B * prod(S), F, L, *W)`` around interior points.

    The windows are ordered batch-major, then C order over the interior spatial points.
    """
    nd = len(halo)
    f, lv = ext.shape[1:3]
    out = window_view(ext, halo)
    return out.reshape(-1, f, lv, *out.shape[-nd:]) if nd else out.reshape(-1, f, lv)


# ---------------------------------------------------------------------- networks
class WindowNet(nn.Module):
    """Base: maps normalised windows ``(N, F, L, *W)`` to normalised corrections ``(N, Fc, L)``."""

    def __init__(self, n_fields: int, n_levels: int, corrected: Sequence[int], halo: Sequence[int]):
        super().__init__()
        self.n_fields = n_fields
        self.n_levels = n_levels
        self.corrected = list(corrected)
        self.halo = tuple(int(h) for h in halo)
        self.window = tuple(2 * h + 1 for h in self.halo)


class Block(nn.Module):
    """Pre-norm transformer block: multi-head self-attention, then a GELU feed-forward.

    Written out (rather than ``nn.TransformerEncoderLayer``) because the tokens are few and
    the model tiny: one fused QKV projection and ``scaled_dot_product_attention`` halve the
    per-call overhead on the CPU hot path.
    """

    def __init__(self, d_model: int, heads: int, ff: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.ff1 = nn.Linear(d_model, ff)
        self.ff2 = nn.Linear(ff, d_model)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` (n, t, d); ``keep`` (n, 1, 1, t) bool, False for padding keys that must not be
        attended to (the offline trunk's cells outside the grid), or None."""
        n, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=keep)
        a = a.transpose(1, 2).reshape(n, t, d)
        x = x + self.proj(a)
        return x + self.ff2(nn.functional.gelu(self.ff1(self.norm2(x))))


class Transformer(WindowNet):
    """Per-field space patch tokens over the window, attention across all of them."""

    def __init__(
        self,
        n_fields: int,
        n_levels: int,
        corrected: Sequence[int],
        halo: Sequence[int],
        d_model: int = 64,
        heads: int = 4,
        layers: int = 2,
        ff: int = 128,
        patch: int = 1,
    ) -> None:
        super().__init__(n_fields, n_levels, corrected, halo)
        for w in self.window:
            if w % patch:
                raise ModelError(f"patch size {patch} does not divide the window width {w}")
        self.patch = patch
        self.grid = tuple(w // patch for w in self.window)  # tokens per dim
        self.tokens_per_field = math.prod(self.grid)
        token_in = n_levels * patch ** len(self.halo)
        # one embedding per field: weight (F, token_in, d)
        self.embed_w = nn.Parameter(torch.randn(n_fields, token_in, d_model) / math.sqrt(token_in))
        self.embed_b = nn.Parameter(torch.zeros(n_fields, d_model))
        self.pos = nn.Parameter(0.02 * torch.randn(n_fields, self.tokens_per_field, d_model))
        if d_model % heads:
            raise ModelError(f"d_model {d_model} is not a multiple of heads {heads}")
        self.blocks = nn.ModuleList(Block(d_model, heads, ff) for _ in range(layers))
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, n_levels)
        self.centre = math.prod(self.grid) // 2  # odd grid: the centre token (C order)

    def tokens(self, w: torch.Tensor) -> torch.Tensor:
        """``(N, F, L, *W)`` -> ``(N, F, T, L * patch**nd)``: space patches as tokens."""
        n, f, lv = w.shape[:3]
        nd = len(self.halo)
        p = self.patch
        if nd == 0:
            return w.reshape(n, f, 1, lv)
        # split each window dim into (grid, patch)
        shape = [n, f, lv]
        for g in self.grid:
            shape += [g, p]
        x = w.reshape(shape)
        grid_axes = [3 + 2 * i for i in range(nd)]
        patch_axes = [4 + 2 * i for i in range(nd)]
        x = x.permute(0, 1, *grid_axes, 2, *patch_axes)
        return x.reshape(n, f, self.tokens_per_field, lv * p**nd)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        t = self.tokens(w)  # (N, F, T, in)
        e = torch.einsum("nfti,fid->nftd", t, self.embed_w) + self.embed_b[:, None, :] + self.pos
        n = e.shape[0]
        h = e.reshape(n, -1, e.shape[-1])
        for block in self.blocks:
            h = block(h)
        h = h.reshape(n, self.n_fields, self.tokens_per_field, -1)
        c = self.norm(h[:, self.corrected, self.centre])  # (N, Fc, d)
        return self.head(c)  # (N, Fc, L)


class MLP(WindowNet):
    """Flattened window -> hidden layers -> correction at the centre."""

    def __init__(
        self,
        n_fields: int,
        n_levels: int,
        corrected: Sequence[int],
        halo: Sequence[int],
        hidden: Sequence[int] = (64, 64),
    ) -> None:
        super().__init__(n_fields, n_levels, corrected, halo)
        sizes = [n_fields * n_levels * math.prod(self.window), *hidden]
        mods: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            mods += [nn.Linear(a, b), nn.GELU()]
        mods.append(nn.Linear(sizes[-1], len(self.corrected) * n_levels))
        self.net = nn.Sequential(*mods)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        out = self.net(w.reshape(w.shape[0], -1))
        return out.reshape(w.shape[0], len(self.corrected), self.n_levels)


class Quartic(WindowNet):
    """sum_i a_i x^i of the centre value, per corrected field and level, in raw units.

    Unlike the networks it works on raw values (``raw = True``): its coefficients are the
    physical ones (field units per second per unit^i), so they compare with Wilks's.
    """

    raw = True

    def __init__(
        self,
        n_fields: int,
        n_levels: int,
        corrected: Sequence[int],
        halo: Sequence[int],
        degree: int = 4,
    ) -> None:
        super().__init__(n_fields, n_levels, corrected, (0,) * len(halo))
        self.degree = degree
        self.register_buffer("coeffs", torch.zeros(len(self.corrected), n_levels, degree + 1))

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        x = w.reshape(w.shape[0], self.n_fields, self.n_levels)[:, self.corrected]  # halo 0
        c = self.coeffs.to(x.dtype)
        out = torch.zeros_like(x) + c[..., self.degree]
        for i in range(self.degree - 1, -1, -1):
            out = out * x + c[..., i]
        return out

    @torch.no_grad()
    def fit(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Least squares: ``x`` raw centre values ``(N, F, L)``, ``y`` raw targets ``(N, Fc, L)``."""
        xs = x[:, self.corrected].double()
        ys = y.double()
        for i in range(len(self.corrected)):
            for lv in range(self.n_levels):
                xi = xs[:, i, lv]
                scale = float(xi.abs().max().clamp_min(1e-12))
                a = torch.stack([(xi / scale) ** p for p in range(self.degree + 1)], dim=1)
                sol = torch.linalg.lstsq(a, ys[:, i, lv : lv + 1]).solution[:, 0]
                self.coeffs[i, lv] = (sol / scale ** torch.arange(self.degree + 1)).to(self.coeffs)


class Zero(WindowNet):
    """No correction."""

    raw = True

    def __init__(self, n_fields: int, n_levels: int, corrected: Sequence[int], halo: Sequence[int]):
        super().__init__(n_fields, n_levels, corrected, (0,) * len(halo))

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w.new_zeros(w.shape[0], len(self.corrected), self.n_levels)


_NETS: dict[str, type[WindowNet]] = {
    "transformer": Transformer,
    "mlp": MLP,
    "quartic": Quartic,
    "zero": Zero,
}
_HYPER = {
    "transformer": ("d_model", "heads", "layers", "ff", "patch"),
    "mlp": ("hidden",),
    "quartic": ("degree",),
    "zero": (),
}


def build_net(
    model_class: str,
    n_fields: int,
    n_levels: int,
    corrected: Sequence[int],
    halo: Sequence[int],
    hyper: Mapping[str, Any],
) -> WindowNet:
    """Instantiate a network from its class name and hyperparameters (unknown keys ignored)."""
    try:
        cls = _NETS[model_class]
    except KeyError:
        raise CheckpointError(
            f"model class {model_class!r} is not one of {', '.join(_NETS)}"
        ) from None
    kwargs = {k: hyper[k] for k in _HYPER[model_class] if k in hyper}
    if "hidden" in kwargs:
        kwargs["hidden"] = tuple(int(h) for h in kwargs["hidden"])
    return cls(n_fields, n_levels, corrected, halo, **kwargs)


# ---------------------------------------------------------------------- normalisation
class Normalizer(nn.Module):
    """Input/target statistics ``(F, L)`` / ``(Fc, L)`` as buffers (not trained, not saved:
    they live in the manifest)."""

    def __init__(
        self,
        in_mean: np.ndarray,
        in_std: np.ndarray,
        out_mean: np.ndarray,
        out_std: np.ndarray,
    ) -> None:
        super().__init__()
        for name, v in (("in_mean", in_mean), ("in_std", in_std), ("out_mean", out_mean), ("out_std", out_std)):
            self.register_buffer(name, torch.as_tensor(np.asarray(v, dtype=np.float64)), persistent=False)

    @classmethod
    def from_manifest(
        cls, norm: Mapping[str, Any], fields: Sequence[str], corrected: Sequence[str], n_levels: int
    ) -> Normalizer:
        def stats(section: str, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
            table = norm.get(section) or {}
            mean = np.zeros((len(names), n_levels))
            std = np.ones((len(names), n_levels))
            for i, name in enumerate(names):
                if name not in table:
                    raise CheckpointError(f"normalization.{section} has no entry for field {name!r}")
                mean[i] = np.broadcast_to(np.asarray(table[name]["mean"], dtype=np.float64), n_levels)
                std[i] = np.broadcast_to(np.asarray(table[name]["std"], dtype=np.float64), n_levels)
            if not np.all(std > 0):
                raise CheckpointError(f"normalization.{section}: std must be positive")
            return mean, std

        im, isd = stats("inputs", fields)
        om, osd = stats("targets", corrected)
        return cls(im, isd, om, osd)


class CorrectionModel(nn.Module):
    """Network + normalisation: raw windows ``(N, F, L, *W)`` -> raw tendencies ``(N, Fc, L)``
    in field units per second. What training optimises and what the predictor runs."""

    def __init__(self, net: WindowNet, norm: Normalizer) -> None:
        super().__init__()
        self.net = net
        self.norm = norm
        self.raw = bool(getattr(net, "raw", False))

    def normalise_inputs(self, w: torch.Tensor) -> torch.Tensor:
        shape = (1, *self.norm.in_mean.shape) + (1,) * (w.ndim - 3)
        m = self.norm.in_mean.to(w.dtype).reshape(shape)
        s = self.norm.in_std.to(w.dtype).reshape(shape)
        return (w - m) / s

    def forward_normalised(self, w: torch.Tensor) -> torch.Tensor:
        """Normalised output for raw windows (training loss space); raw models give raw."""
        return self.net(w if self.raw else self.normalise_inputs(w))

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        out = self.forward_normalised(w)
        if self.raw:
            return out
        return out * self.norm.out_std.to(out.dtype) + self.norm.out_mean.to(out.dtype)


# ---------------------------------------------------------------------- the predictor
class WindowPredictor:
    """A :class:`~atmocorrect.models.Predictor` around a :class:`CorrectionModel`.

    ``tendency`` is the hot path the Fortran bridge calls at every time step: it converts the
    halo-extended host arrays (any dtype, Fortran or C order) to one float32 batch, runs the
    network without autograd and returns float64 tendencies over the interior block.
    """

    #: Windows per forward call. The networks are small (d_model 64): over a whole block their
    #: activations (N x tokens x d_model floats per layer) leave the CPU caches and the memory-
    #: bound ops (layout copies, norms, GELU, residual adds) dominate; 256 windows keep them in L2.
    chunk_windows = 256

    def __init__(
        self,
        model: CorrectionModel,
        fields: Sequence[str],
        corrected: Sequence[str],
        halo: Sequence[int],
        periodic: Sequence[bool] = (),
        num_threads: int = 0,
        device: str = "cpu",
    ) -> None:
        self.device = torch.device(device)
        self.model = model.eval().float().to(self.device)
        self.fields = tuple(fields)
        self.corrected = tuple(corrected)
        self.halo = tuple(int(h) for h in halo)
        self.periodic = tuple(bool(p) for p in periodic)
        if num_threads:
            torch.set_num_threads(int(num_threads))

    def new_batch(self, ext_shape: Sequence[int]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """An empty float32 model-input batch ``(1, F, L, *S_ext)`` for fields of host shape
        ``ext_shape`` (halo-extended), and per field a view of it in the host's layout
        ``(*S_ext, *levels)``: whoever fills the views (the halo exchange) fills the batch."""
        nd = len(self.halo)
        spatial, level_shape = tuple(ext_shape[:nd]), tuple(ext_shape[nd:])
        n_lev = int(np.prod(level_shape)) if level_shape else 1
        stack = np.empty((1, len(self.fields), n_lev, *spatial), dtype=np.float32)
        views = {}
        for i, name in enumerate(self.fields):
            v = np.moveaxis(stack[0, i], 0, -1)  # (*S_ext, L): a view
            views[name] = v.reshape(*spatial, *level_shape) if level_shape else v[..., 0]
        return stack, views

    def _batch(self, inputs: Mapping[str, np.ndarray]) -> tuple[np.ndarray, tuple[int, ...]]:
        arrays = []
        for name in self.fields:
            try:
                arrays.append(np.asarray(inputs[name]))
            except KeyError:
                raise ModelError(f"input field {name!r} missing") from None
        ref = arrays[0]
        stack, views = self.new_batch(ref.shape)
        for name, a in zip(self.fields, arrays, strict=True):
            if a.shape != ref.shape:
                raise ModelError(f"fields differ in shape: {self.fields[0]} {ref.shape}, {name} {a.shape}")
            views[name][...] = a
        return stack, ref.shape

    def tendency(self, inputs: Mapping[str, np.ndarray], time: float) -> dict[str, np.ndarray]:
        stack, ext_shape = self._batch(inputs)
        return self.tendency_batch(stack, ext_shape, time)

    def tendency_batch(self, stack: np.ndarray, ext_shape: Sequence[int], time: float) -> dict[str, np.ndarray]:
        """Tendencies over the interior for a batch from :meth:`new_batch`, filled."""
        nd = len(self.halo)
        interior = tuple(s - 2 * h for s, h in zip(ext_shape[:nd], self.halo, strict=True))
        level_shape = tuple(ext_shape[nd:])
        on_cpu = self.device.type == "cpu"
        with torch.inference_mode():
            x = torch.from_numpy(stack)
            if not on_cpu:  # one host-to-device copy of the batch; windows are cut on the GPU
                x = x.to(self.device)
            c = self.chunk_windows if on_cpu else 0  # a GPU wants the whole block at once
            if c and nd and math.prod(interior) > c:
                # chunks whose activations stay in cache (2-3x faster), cut from the unfolded
                # view row block by row block, so the windows are copied chunk by chunk while
                # in cache instead of all at once into a 9x larger array
                view = window_view(x, self.halo)  # (1, *S, F, L, *W), no copy
                rows = max(1, c // max(1, math.prod(interior[1:])))
                parts = []
                for r0 in range(0, interior[0], rows):
                    part = view[:, r0 : r0 + rows]
                    parts.append(self.model(part.reshape(-1, *part.shape[1 + nd :])))
                out = torch.cat(parts)
            else:
                out = self.model(windows(x, self.halo))  # (N, Fc, L)
        res = out.cpu().double().numpy()
        result = {}
        for i, name in enumerate(self.corrected):
            r = res[:, i, :].reshape(*interior, *(level_shape or ()))
            if not level_shape:
                r = r.reshape(interior)
            result[name] = r  # a view of res: the caller's increment arithmetic makes the copy
        return result

    def batch_tendency(self, x: torch.Tensor) -> torch.Tensor:
        """Tendencies (per second) for a batch ``(B, F, L, *S)`` of whole domains, padded here
        (periodic or edge-replicated as in the manifest): the fast path of the evaluation's
        batched forecasts. Returns ``(B, Fc, L, *S)``."""
        spatial = x.shape[3:]
        ext = pad(x, self.halo, self.periodic)
        out = self.model(windows(ext, self.halo))  # (B*prod(S), Fc, L)
        out = out.reshape(x.shape[0], *spatial, out.shape[1], out.shape[2])
        nd = len(spatial)
        return out.permute(0, nd + 1, nd + 2, *range(1, nd + 1))


# ---------------------------------------------------------------------- checkpoint glue
def model_from_manifest(manifest: Manifest, tensors: Mapping[str, Any] | None) -> CorrectionModel:
    """Rebuild the :class:`CorrectionModel` a manifest describes and load its weights."""
    hyper = manifest.hyperparameters
    fields = list(manifest.field_names)
    corrected = [f.name for f in manifest.fields if f.corrected]
    n_levels = int(hyper.get("n_levels", 1))
    halo = tuple(manifest.halo) or (0,)
    net = build_net(
        manifest.model_class,
        len(fields),
        n_levels,
        [fields.index(c) for c in corrected],
        halo,
        hyper,
    )
    norm = Normalizer.from_manifest(manifest.normalization, fields, corrected, n_levels)
    model = CorrectionModel(net, norm)
    if tensors is not None:
        state = {k: v for k, v in tensors.items()}
        try:
            model.net.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(
                f"weights do not fit model class {manifest.model_class!r} with hyperparameters "
                f"{hyper}: {str(exc).splitlines()[0]}"
            ) from exc
    return model


def _builder(manifest: Manifest, tensors: Mapping[str, Any], context: Mapping[str, Any]) -> WindowPredictor:
    model = model_from_manifest(manifest, tensors if manifest.model_class != "zero" else None)
    return WindowPredictor(
        model,
        manifest.field_names,
        [f.name for f in manifest.fields if f.corrected],
        model.net.halo,
        manifest.periodic,
        int(context.get("num_threads", 0)),
        select_device(str(context.get("device", "cpu")), int(context.get("local_rank", 0)), gpu_count(),
                      rank=context.get("rank")),
    )


for _name in MODEL_CLASSES:
    register(_name)(_builder)
