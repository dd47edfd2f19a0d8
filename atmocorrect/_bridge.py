"""What the C layer of the Fortran bridge calls, one function per API call.

Every function returns ``(status, message)`` (plus a value where noted) instead of raising, so
the C side never has to interpret Python exceptions: status 0 is success; otherwise the message
names the problem and, for an unexpected Python error, ends with the traceback's last lines.

Host memory arrives as an address, a shape and byte strides (read from the Fortran array
descriptor) and becomes a numpy view: no copy, strided where the host passed a section.

Under ``run.backend = "aot"`` (or ``ATMOCORRECT_BACKEND=aot``) the C layer calls
:func:`backend_info` after :func:`init` and :func:`aot_plan` once, at the first step; after
that ``step`` and ``get_increment`` never come here. :data:`calls` counts the calls per function;
with ``ATMOCORRECT_BRIDGE_STATS=PREFIX`` set, :func:`finalize` writes them to
``PREFIX.rankR.json`` (what the tests read to prove that the aot step never enters Python).
"""

from __future__ import annotations

import collections
import json
import os
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from .errors import AtmocorrectError, UsageError

_correctors: dict[int, Any] = {}
_aot_packages: dict[int, Path] = {}
_next_handle = 1
TRACEBACK_LINES = 4
STATS_ENV = "ATMOCORRECT_BRIDGE_STATS"
#: Calls per bridge function in this process.
calls: collections.Counter = collections.Counter()


class _HostMemory:
    """Exposes a block of host memory through the numpy array interface."""

    def __init__(self, address: int, shape: tuple, strides: tuple, typestr: str) -> None:
        self.__array_interface__ = {
            "version": 3,
            "data": (address, False),
            "shape": shape,
            "strides": strides,
            "typestr": typestr,
        }


def host_array(address: int, shape, strides, itemsize: int) -> np.ndarray:
    """A writable numpy view of host memory (itemsize 4: real32, 8: real64)."""
    typestr = {4: "<f4", 8: "<f8"}.get(itemsize)
    if typestr is None:
        raise UsageError(f"element size {itemsize} bytes is not real32 or real64")
    return np.asarray(_HostMemory(int(address), tuple(shape), tuple(strides), typestr))


def _guard(where: str, fn, *args) -> tuple:
    try:
        value = fn(*args)
        return (0, "", value)
    except AtmocorrectError as exc:
        return (exc.code, f"{where}: {exc}", None)
    except Exception as exc:
        tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
        tail = "".join(tb[-TRACEBACK_LINES:]).rstrip()
        return (5, f"{where}: {type(exc).__name__}: {exc}\n{tail}", None)


def _get(handle: int):
    try:
        return _correctors[handle]
    except KeyError:
        raise UsageError(
            f"handle {handle} is not an initialised corrector (call atmocorrect_init first, "
            "and not after atmocorrect_finalize)"
        ) from None


def _init(checkpoint_dir: str, fortran_comm: int, mode: str) -> int:
    global _next_handle
    from mpi4py import MPI

    from .config import backend_from_env
    from .coupling import load

    comm = MPI.Comm.f2py(fortran_comm) if fortran_comm >= 0 else MPI.COMM_SELF
    corrector = load(checkpoint_dir, comm=comm, mode=mode or None)
    corrector.run = backend_from_env(corrector.run)
    package = None
    if corrector.run.backend == "aot":
        from .aot import AOT_MODEL_CLASSES, check_package
        from .errors import CheckpointError

        if corrector.manifest.model_class not in AOT_MODEL_CLASSES:
            raise CheckpointError(
                f"backend 'aot': checkpoint {checkpoint_dir} holds model class "
                f"{corrector.manifest.model_class!r}; only {', '.join(AOT_MODEL_CLASSES)} run under "
                "the aot backend (use backend 'python')"
            )
        package = check_package(checkpoint_dir, corrector.manifest).resolve()
    handle = _next_handle
    _next_handle += 1
    _correctors[handle] = corrector
    if package is not None:
        _aot_packages[handle] = package
    return handle


def init(checkpoint_dir: str, fortran_comm: int, mode: str = "") -> tuple:
    """(status, message, handle)."""
    calls["init"] += 1
    return _guard("atmocorrect_init", _init, checkpoint_dir, fortran_comm, mode)


def set_grid(handle: int, global_shape, local_offset, lon, lat, levels) -> tuple:
    def go():
        _get(handle).set_grid(global_shape, local_offset, lon=lon, lat=lat, levels=levels)

    return _guard("atmocorrect_set_grid", go)


def coordinate(address: int, n: int) -> np.ndarray | None:
    """A copy of a real64 coordinate vector given by the host (None when absent)."""
    if n <= 0:
        return None
    return host_array(address, (n,), (8,), 8).copy()


def add_field(handle: int, name: str, address: int, shape, strides, itemsize: int, units: str) -> tuple:
    def go():
        array = host_array(address, shape, strides, itemsize)
        _get(handle).register(name.strip(), array, units=units.strip() or None)

    return _guard(f"atmocorrect_add_field({name.strip()!r})", go)


def backend_info(handle: int) -> tuple:
    """(status, message, (backend, mode, package path or "", torch version or ""))."""
    calls["backend_info"] += 1

    def go():
        corrector = _get(handle)
        version = ""
        if corrector.run.backend == "aot":
            import torch

            version = torch.__version__
        return (corrector.run.backend, corrector.run.mode, str(_aot_packages.get(handle, "")), version)

    return _guard("atmocorrect_init", go)


def aot_plan(handle: int) -> tuple:
    """(status, message, (int64 words, float64 words, names, package)): what the C++ step runs
    on, computed once, at the first step (collective). See :func:`atmocorrect.aot.bridge_plan`."""
    calls["aot_plan"] += 1

    def go():
        from .aot import bridge_plan

        return bridge_plan(_get(handle), _aot_packages[handle])

    return _guard("atmocorrect_step", go)


def step(handle: int, time: float, dt: float) -> tuple:
    calls["step"] += 1
    return _guard("atmocorrect_step", lambda: _get(handle).step(time, dt))


def get_increment(handle: int, name: str, address: int, shape, strides, itemsize: int) -> tuple:
    calls["get_increment"] += 1

    def go():
        corrector = _get(handle)
        key = name.strip()
        if key not in corrector.fields:
            raise UsageError(f"field {key!r} is not registered")
        out = host_array(address, shape, strides, itemsize)
        if out.shape != corrector.fields[key].shape:
            raise UsageError(
                f"field {key!r}: output array {out.shape} differs from the registered {corrector.fields[key].shape}"
            )
        inc = corrector.last_increment.get(key)
        out[...] = 0.0 if inc is None else inc

    return _guard(f"atmocorrect_get_increment({name.strip()!r})", go)


def field_address(handle: int, name: str) -> tuple:
    """(status, message, address of the registered view's first element)."""

    def go():
        corrector = _get(handle)
        key = name.strip()
        if key not in corrector.fields:
            raise UsageError(f"field {key!r} is not registered")
        return int(corrector.fields[key].__array_interface__["data"][0])

    return _guard("atmocorrect_field_address", go)


def _write_stats(corrector) -> None:
    prefix = os.environ.get(STATS_ENV, "").strip()
    if not prefix:
        return
    data = {"rank": corrector.rank, "backend": corrector.run.backend, "calls": dict(calls)}
    try:
        Path(f"{prefix}.rank{corrector.rank}.json").write_text(json.dumps(data) + "\n")
    except OSError:  # a diagnostic only: never fail finalize for it
        pass


def finalize(handle: int) -> tuple:
    calls["finalize"] += 1

    def go():
        corrector = _get(handle)
        _correctors.pop(handle, None)
        _aot_packages.pop(handle, None)
        _write_stats(corrector)

    return _guard("atmocorrect_finalize", go)


def refuse_field(handle: int, name: str, message: str) -> tuple:
    """Take part in add_field's collective agreement for an array the C layer refused."""
    from .errors import FieldError

    def go():
        _get(handle)._agree(FieldError(message), "atmocorrect_add_field")

    return _guard(f"atmocorrect_add_field({name.strip()!r})", go)
