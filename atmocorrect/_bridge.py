"""What the C layer of the Fortran bridge calls, one function per API call.

Every function returns ``(status, message)`` (plus a value where noted) instead of raising, so
the C side never has to interpret Python exceptions: status 0 is success; otherwise the message
names the problem and, for an unexpected Python error, ends with the traceback's last lines.

Host memory arrives as an address, a shape and byte strides (read from the Fortran array
descriptor) and becomes a numpy view: no copy, strided where the host passed a section.
"""

from __future__ import annotations

import traceback
from typing import Any

import numpy as np

from .errors import AtmocorrectError, UsageError

_correctors: dict[int, Any] = {}
_next_handle = 1
TRACEBACK_LINES = 4


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

    from .coupling import load

    comm = MPI.Comm.f2py(fortran_comm) if fortran_comm >= 0 else MPI.COMM_SELF
    corrector = load(checkpoint_dir, comm=comm, mode=mode or None)
    handle = _next_handle
    _next_handle += 1
    _correctors[handle] = corrector
    return handle


def init(checkpoint_dir: str, fortran_comm: int, mode: str = "") -> tuple:
    """(status, message, handle)."""
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


def step(handle: int, time: float, dt: float) -> tuple:
    return _guard("atmocorrect_step", lambda: _get(handle).step(time, dt))


def get_increment(handle: int, name: str, address: int, shape, strides, itemsize: int) -> tuple:
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


def finalize(handle: int) -> tuple:
    def go():
        _get(handle)
        _correctors.pop(handle, None)

    return _guard("atmocorrect_finalize", go)


def refuse_field(handle: int, name: str, message: str) -> tuple:
    """Take part in add_field's collective agreement for an array the C layer refused."""
    from .errors import FieldError

    def go():
        _get(handle)._agree(FieldError(message), "atmocorrect_add_field")

    return _guard(f"atmocorrect_add_field({name.strip()!r})", go)
