"""The coupling runtime: one :class:`Corrector` for the Fortran bridge and for Python drivers.

>>> import tempfile, numpy as np
>>> from atmocorrect.checkpoint import write_analytic_checkpoint
>>> ckpt = write_analytic_checkpoint(tempfile.mkdtemp() + "/c", field="t", units="K", tendency=0.5)
>>> c = load(ckpt)
>>> t = np.full((4, 3), 280.0)
>>> float(c.tendency({"t": t}, time=0.0)["t"][0, 0])
0.5
>>> c.apply({"t": t}, time=0.0, dt=2.0)
>>> float(t[0, 0])
281.0

Every method that touches the state is collective over the communicator: all ranks call it, and
if any rank fails, every rank raises from the same call and no rank's state is changed.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import units as _units
from .checkpoint import Manifest, read_manifest, read_weights
from .config import RunConfig
from .decomposition import Decomposition
from .devices import local_rank_of
from .errors import (
    AtmocorrectError,
    FieldError,
    GridError,
    ModelError,
    RemoteRankError,
    StateError,
    UsageError,
)
from .models import Predictor, build_predictor

LEVEL_DIM_NAMES = ("lev", "level", "levels", "plev", "z", "nz", "nlev")


def _default_threads(comm) -> int:
    """Cores for this rank: its CPU binding if the launcher bound it, else the node's cores
    shared evenly among the ranks on the node (so ranks never oversubscribe the cores)."""
    try:
        bound = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        bound = os.cpu_count() or 1
    total = os.cpu_count() or bound
    if bound < total:
        return bound
    local_ranks = 1
    if comm is not None and comm.Get_size() > 1:
        from mpi4py import MPI

        node = comm.Split_type(MPI.COMM_TYPE_SHARED)
        local_ranks = node.Get_size()
        node.Free()
    return max(1, total // local_ranks)


class Corrector:
    """A loaded checkpoint, ready to correct a state block by block.

    Parameters
    ----------
    manifest, predictor:
        What :func:`load` reads from a checkpoint directory.
    comm:
        An mpi4py communicator (the host's), or None for a single process.
    run:
        How the correction enters the state (mode, limiter, taper, NaN policy).
    """

    def __init__(
        self,
        manifest: Manifest,
        predictor: Predictor,
        comm=None,
        run: RunConfig | None = None,
        directory: Path | None = None,
    ) -> None:
        self.manifest = manifest
        self.predictor = predictor
        self.comm = comm if (comm is not None and comm.Get_size() > 1) else None
        self.rank = comm.Get_rank() if comm is not None else 0
        self.run = run or manifest.run
        self.directory = directory
        self.fields: dict[str, np.ndarray] = {}
        self.global_shape: tuple[int, ...] | None = None
        self.local_offset: tuple[int, ...] | None = None
        self.coords: dict[str, np.ndarray] = {}
        self._decomposition: Decomposition | None = None
        self._flags = np.zeros(2, dtype=np.int32)
        self.last_increment: dict[str, np.ndarray] = {}
        self.stats = {"steps": 0, "skipped_nonfinite": 0}

    # ------------------------------------------------------------------ setup
    def set_grid(
        self,
        global_shape: Sequence[int],
        local_offset: Sequence[int],
        lon: np.ndarray | None = None,
        lat: np.ndarray | None = None,
        levels: np.ndarray | None = None,
    ) -> None:
        """Declare the whole domain and where this rank's block starts (0-based)."""
        gs = tuple(int(g) for g in global_shape)
        off = tuple(int(o) for o in local_offset)
        if len(gs) != len(off):
            raise GridError(
                f"rank {self.rank}: global_shape {gs} and local_offset {off} differ in length"
            )
        if any(g <= 0 for g in gs) or any(o < 0 or o >= g for o, g in zip(off, gs, strict=True)):
            raise GridError(
                f"rank {self.rank}: local_offset {off} lies outside global_shape {gs} "
                "(offsets are 0-based)"
            )
        self.global_shape, self.local_offset = gs, off
        for name, values in (("lon", lon), ("lat", lat), ("levels", levels)):
            if values is not None:
                self.coords[name] = np.asarray(values, dtype=np.float64).copy()
        self._decomposition = None

    def check_field(self, name: str, array: np.ndarray, units: str | None = None) -> None:
        """Raise :class:`FieldError` naming the field if it does not fit the checkpoint."""
        try:
            spec = self.manifest.field(name)
        except KeyError:
            raise FieldError(
                f"field {name!r} is not in checkpoint {self.directory or ''} "
                f"(it expects {', '.join(self.manifest.field_names)})"
            ) from None
        if array.dtype not in (np.float32, np.float64):
            raise FieldError(f"field {name!r}: dtype {array.dtype} is not real32 or real64")
        if spec.dims is not None and array.ndim != len(spec.dims):
            raise FieldError(
                f"field {name!r}: rank {array.ndim} array {array.shape}, but the checkpoint expects "
                f"rank {len(spec.dims)} with dimensions {spec.dims}"
            )
        if spec.levels is not None:
            nlev = _levels_of(array.shape, spec.dims)
            if nlev != spec.levels:
                raise FieldError(
                    f"field {name!r}: {nlev} level(s) in array {array.shape}, but the checkpoint "
                    f"was trained on {spec.levels}"
                )
        if units is not None and units.strip() and not _units.same(units, spec.units):
            raise FieldError(
                f"field {name!r}: units {units!r} given, but the checkpoint expects {spec.units!r}"
            )
        if self.global_shape is not None:
            n = min(array.ndim, len(self.global_shape))
            for d in range(n):
                if self.local_offset[d] + array.shape[d] > self.global_shape[d]:
                    raise GridError(
                        f"field {name!r} on rank {self.rank}: local extent {array.shape[d]} at "
                        f"offset {self.local_offset[d]} exceeds global extent {self.global_shape[d]} "
                        f"along dimension {d + 1}"
                    )

    def register(self, name: str, array: np.ndarray, units: str | None = None) -> None:
        """Register a host array (a view, never copied); collective."""
        error = None
        try:
            if name in self.fields:
                raise FieldError(f"field {name!r} is already registered")
            self.check_field(name, array, units)
        except AtmocorrectError as exc:
            error = exc
        self._agree(error, "atmocorrect_add_field")
        self.fields[name] = array
        self._decomposition = None

    def missing_fields(self) -> list[str]:
        return [f.name for f in self.manifest.fields if f.name not in self.fields]

    # ------------------------------------------------------------------ collective helpers
    def _agree(self, error: BaseException | None, where: str, skip: bool = False) -> bool:
        """Collectively agree whether a phase succeeded; raise on every rank if one failed.

        Returns whether any rank asked to skip the step. One small allreduce on the hot path;
        messages are gathered only when something failed.
        """
        if self.comm is None:
            if error is not None:
                raise error
            return skip
        from mpi4py import MPI

        flags = self._flags
        flags[0], flags[1] = (1 if error is not None else 0), (1 if skip else 0)
        self.comm.Allreduce(MPI.IN_PLACE, flags, op=MPI.MAX)
        if flags[0] == 0:
            return bool(flags[1])
        messages = self.comm.allgather(
            None if error is None else (type(error).__name__, str(error), getattr(error, "code", 5))
        )
        if error is not None:
            raise error
        first = next((r, m) for r, m in enumerate(messages) if m is not None)
        rank, (kind, text, _code) = first
        raise RemoteRankError(f"{where} failed on rank {rank} ({kind}: {text}); state left untouched")

    def _decomp(self, state: Mapping[str, np.ndarray]) -> Decomposition:
        ref = max(state.values(), key=lambda a: a.ndim)
        if self._decomposition is not None and ref.shape[: len(self._decomposition.shape)] != self._decomposition.shape:
            # A new block shape (another caller of tendency/apply): rebuild, collectively.
            self._decomposition = None
        if self._decomposition is None:
            if self.global_shape is None:
                if self.comm is not None and any(self.predictor.halo):
                    raise GridError(
                        "this checkpoint needs halo context across ranks: call "
                        "atmocorrect_set_grid(global_shape, local_offset) before the first step"
                    )
                gs, off = ref.shape, (0,) * ref.ndim
            else:
                gs, off = self.global_shape, self.local_offset
            self._decomposition = Decomposition(self.comm, gs, off, ref.shape)
        return self._decomposition

    # ------------------------------------------------------------------ the step
    def _increments(
        self, state: Mapping[str, np.ndarray], time: float, dt: float | None
    ) -> dict[str, np.ndarray] | None:
        """Tendencies (dt None) or limited increments for ``state``; None if skipped (NaN)."""
        missing = [f.name for f in self.manifest.fields if f.name not in state]
        error: BaseException | None = None
        skip = False
        if missing:
            error = FieldError(f"field(s) {', '.join(missing)} not registered (the checkpoint needs them)")
        else:
            for name, a in state.items():
                if not _all_finite(a):
                    bad = int(a.size - np.count_nonzero(np.isfinite(a)))
                    if self.run.nonfinite == "skip":
                        skip = True
                    else:
                        error = StateError(
                            f"field {name!r} on rank {self.rank} holds {bad} NaN/Inf value(s); "
                            "state left untouched (set run.nonfinite = 'skip' to skip such steps)"
                        )
                    break
        skip = self._agree(error, "atmocorrect_step", skip=skip)
        if skip:
            self.stats["skipped_nonfinite"] += 1
            return None
        wanted = {f.name: state[f.name] for f in self.manifest.fields}
        halo = tuple(self.predictor.halo)
        batch = None
        if any(halo):
            new_batch = getattr(self.predictor, "new_batch", None)
            ref = wanted[self.manifest.fields[0].name]
            if new_batch is not None and all(a.shape == ref.shape for a in wanted.values()):
                # the halo exchange fills the model's float32 input batch straight from the host
                # arrays: one copy of the state per step, the model input itself
                h = halo + (0,) * (ref.ndim - len(halo))
                ext_shape = tuple(s + 2 * hd for s, hd in zip(ref.shape, h, strict=True))
                stack, views = new_batch(ext_shape)
                self._decomp(state).extend(wanted, halo, tuple(self.manifest.periodic), out=views)
                batch = (stack, ext_shape)
                inputs = None
            else:
                inputs = self._decomp(state).extend(wanted, halo, tuple(self.manifest.periodic))
        else:  # a pointwise model needs no context: the host's views go in as they are
            inputs = wanted
        result: dict[str, np.ndarray] | None = None
        error = None
        try:
            if batch is not None:
                tend = self.predictor.tendency_batch(batch[0], batch[1], time)
            else:
                tend = self.predictor.tendency(inputs, time)
            result = {}
            for name, t in tend.items():
                expected = state[name].shape
                if t.shape != expected:
                    raise ModelError(
                        f"model returned shape {t.shape} for field {name!r}, expected {expected}"
                    )
                if dt is None:
                    result[name] = t
                    continue
                inc = np.asarray(t, dtype=np.float64) * (dt * self.run.taper)
                if self.run.max_increment is not None:
                    np.clip(inc, -self.run.max_increment, self.run.max_increment, out=inc)
                if not _all_finite(inc):
                    raise ModelError(f"model produced NaN/Inf increments for field {name!r}")
                result[name] = inc
        except AtmocorrectError as exc:
            error = exc
        except Exception as exc:  # a bug in a model: report it with its traceback's last lines
            tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-3:])
            error = ModelError(f"{type(exc).__name__}: {exc}\n{tb}".rstrip())
        self._agree(error, "atmocorrect_step")
        return result

    def tendency(self, state: Mapping[str, np.ndarray], time: float = 0.0) -> dict[str, np.ndarray]:
        """Correction tendencies (field units per second) for ``state``, same shapes."""
        for name, a in state.items():
            self.check_field(name, np.asarray(a))
        out = self._increments({k: np.asarray(v) for k, v in state.items()}, time, None)
        return out or {}

    def apply(self, state: Mapping[str, np.ndarray], time: float = 0.0, dt: float = 1.0) -> None:
        """Nudge ``state`` in place by one step of length ``dt`` (honours the run mode)."""
        for name, a in state.items():
            if not isinstance(a, np.ndarray):
                raise UsageError(f"field {name!r}: apply() needs numpy arrays to update in place")
            self.check_field(name, a)
        self._step(state, time, dt)

    def step(self, time: float, dt: float) -> None:
        """One step over the registered host arrays (what ``atmocorrect_step`` calls)."""
        if not self.fields:
            raise UsageError("atmocorrect_step called before any atmocorrect_add_field")
        self._step(self.fields, time, dt)

    def _step(self, state: Mapping[str, np.ndarray], time: float, dt: float) -> None:
        if self.run.mode == "off":
            return
        if not np.isfinite(dt) or dt <= 0:
            raise UsageError(f"dt must be a positive number of seconds, got {dt}")
        incs = self._increments(state, time, dt)
        self.stats["steps"] += 1
        if incs is None:
            return
        self.last_increment = incs
        if self.run.mode == "apply":
            for name, inc in incs.items():
                target = state[name]
                np.add(target, inc, out=target, casting="unsafe")

def _all_finite(a: np.ndarray) -> bool:
    """One reduction, no temporary of the array's size: a NaN or Inf makes the sum non-finite;
    only a sum that overflows from finite values needs the element-wise check."""
    return bool(np.isfinite(a.sum(dtype=np.float64))) or bool(np.isfinite(a).all())


def _levels_of(shape: tuple[int, ...], dims: tuple[str, ...] | None) -> int:
    if dims is not None:
        for i, d in enumerate(dims):
            if d.lower() in LEVEL_DIM_NAMES:
                return shape[i]
        return 1
    return shape[-1] if len(shape) >= 3 else 1


def load(
    directory: str | os.PathLike,
    comm=None,
    mode: str | None = None,
    run: RunConfig | Mapping[str, Any] | None = None,
) -> Corrector:
    """Load a checkpoint directory into a :class:`Corrector`.

    ``comm`` is the host's mpi4py communicator (None: one process). ``mode`` overrides the
    checkpoint's run mode; ``run`` overrides its whole run configuration.
    """
    directory = Path(directory)
    manifest = read_manifest(directory)
    tensors = read_weights(directory, manifest)
    cfg = manifest.run
    if run is not None:
        cfg = run if isinstance(run, RunConfig) else cfg.replace(**dict(run))
    if mode:
        cfg = cfg.replace(mode=mode.strip().lower())
    context = {
        "rank": comm.Get_rank() if comm is not None else 0,
        "num_threads": cfg.num_threads or _default_threads(comm),
        "device": cfg.device,
        "local_rank": local_rank_of(comm)[0] if cfg.device != "cpu" else 0,
    }
    predictor = build_predictor(manifest, tensors, context)
    return Corrector(manifest, predictor, comm=comm, run=cfg, directory=directory)
