"""Open netCDF and GRIB files through xarray, with errors that name the file and the problem.

Every reader returns data with standard coordinates (see :mod:`atmocorrect.data.coords`):
``lat``/``lon`` with ascending latitudes, one ``time`` axis of cftime values (GRIB times too),
ERA5's ``expver`` merged. GRIB files are scanned message by message with ecCodes before cfgrib
reads them, because cfgrib skips a corrupted message with a log line and returns the rest.

Example
-------
>>> from atmocorrect.data.samples import sample_data_dir, DAILY_REFERENCE
>>> d = sample_data_dir()
>>> if d is not None:  # doctest: +SKIP
...     t2m = read_variable(d / DAILY_REFERENCE, "t2m")
...     t2m.dims
('time', 'lat', 'lon')
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import xarray as xr

from ..errors import DataError
from .coords import standardise
from .timeaxis import to_cftime

Format = Literal["netcdf", "grib", "zarr"]
PathLike = str | os.PathLike
_NETCDF_MAGIC = (b"CDF\x01", b"CDF\x02", b"CDF\x05", b"\x89HDF\r\n\x1a\n")
_GRIB_SUFFIXES = (".grib", ".grb", ".grib1", ".grib2", ".grb2")


def detect_format(path: PathLike) -> Format:
    """``netcdf``, ``grib`` or ``zarr``, from the first bytes (or the directory for zarr)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.is_dir():
        if (path / ".zgroup").exists() or (path / "zarr.json").exists():
            return "zarr"
        raise DataError(f"{path}: is a directory, not a netCDF/GRIB file or a zarr store")
    with open(path, "rb") as fh:
        head = fh.read(8)
    if not head:
        raise DataError(f"{path}: the file is empty")
    if any(head.startswith(m) for m in _NETCDF_MAGIC):
        return "netcdf"
    if head.startswith(b"GRIB") or path.suffix.lower() in _GRIB_SUFFIXES:
        return "grib"
    raise DataError(
        f"{path}: not a netCDF (CDF/HDF5) or GRIB file (starts with {head[:8]!r}); "
        "is it truncated or of another format?"
    )


def check_grib(path: PathLike) -> int:
    """Scan every GRIB message with ecCodes; return their number, raise on the first bad one.

    >>> from atmocorrect.data.samples import sample_data_dir, GRIB_CORRUPTED
    >>> d = sample_data_dir()
    >>> if d is not None:  # doctest: +SKIP
    ...     check_grib(d / GRIB_CORRUPTED)
    Traceback (most recent call last):
    atmocorrect.errors.DataError: ...: GRIB message 2 (from byte ...) is corrupted ...
    """
    try:
        import eccodes
    except ImportError as exc:  # pragma: no cover - cfgrib needs it anyway
        raise DataError(f"{path}: reading GRIB needs ecCodes (pip install eccodes cfgrib)") from exc
    path = Path(path)
    count = 0
    with open(path, "rb") as fh:
        while True:
            offset = fh.tell()
            try:
                gid = eccodes.codes_grib_new_from_file(fh)
            except eccodes.GribInternalError as exc:
                raise DataError(
                    f"{path}: GRIB message {count + 1} (from byte {offset}) is corrupted or "
                    f"truncated: {exc}; {count} message(s) before it were readable"
                ) from exc
            if gid is None:
                break
            eccodes.codes_release(gid)
            count += 1
    if count == 0:
        raise DataError(f"{path}: contains no GRIB message")
    return count


def _open_grib(path: Path, chunks: Any, grib_filter: Mapping[str, Any] | None) -> xr.Dataset:
    try:
        import cfgrib  # noqa: F401
    except ImportError as exc:
        raise DataError(f"{path}: reading GRIB needs cfgrib (pip install cfgrib)") from exc
    kwargs: dict[str, Any] = {"indexpath": "", "errors": "raise"}
    if grib_filter:
        kwargs["filter_by_keys"] = dict(grib_filter)
    try:
        ds = xr.open_dataset(path, engine="cfgrib", backend_kwargs=kwargs, chunks=chunks)
    except Exception as exc:  # cfgrib.DatasetBuildError, gribapi errors
        name = type(exc).__name__
        if name == "DatasetBuildError":
            raise DataError(
                f"{path}: the GRIB messages do not form one hypercube ({exc}); pass a "
                "filter such as {'typeOfLevel': 'isobaricInhPa'} (grib_filter=...)"
            ) from exc
        raise DataError(f"{path}: cfgrib cannot read the file: {name}: {exc}") from exc
    for name in ("time", "valid_time"):
        if name in ds.coords and np.issubdtype(ds[name].dtype, np.datetime64):
            values = to_cftime(ds[name].values)
            ds = ds.assign_coords({name: (ds[name].dims, values, ds[name].attrs)})
    return ds


def open_dataset(
    path: PathLike,
    *,
    chunks: Mapping[str, int] | str | None = None,
    grib_filter: Mapping[str, Any] | None = None,
    check: bool = True,
) -> xr.Dataset:
    """Open one netCDF, GRIB or zarr dataset, standardised (see module docstring).

    ``chunks`` makes the variables dask arrays (bounded memory); ``grib_filter`` is passed to
    cfgrib as ``filter_by_keys``; ``check=False`` skips the GRIB message scan.
    """
    path = Path(path)
    fmt = detect_format(path)
    if fmt == "grib":
        if check:
            check_grib(path)
        ds = _open_grib(path, chunks, grib_filter)
    else:
        coder = xr.coders.CFDatetimeCoder(use_cftime=True)
        try:
            if fmt == "zarr":
                ds = xr.open_zarr(path, decode_times=coder, chunks=chunks)
            else:
                ds = xr.open_dataset(path, decode_times=coder, chunks=chunks)
        except (OSError, RuntimeError, ValueError, KeyError) as exc:
            raise DataError(
                f"{path}: cannot open as {fmt}: {type(exc).__name__}: {exc} "
                "(corrupted or truncated file?)"
            ) from exc
    ds = standardise(ds, source=str(path))
    ds.attrs.setdefault("source_file", str(path))
    ds.encoding["source"] = str(path)
    return ds


def find_variable(
    ds: xr.Dataset, name: str, aliases: Sequence[str] = (), source: str = "dataset"
) -> str:
    """The name under which ``name`` (or one of ``aliases``) is stored; raise listing those there."""
    for candidate in (name, *aliases):
        if candidate in ds.data_vars:
            return candidate
    lowered = {str(v).lower(): str(v) for v in ds.data_vars}
    for candidate in (name, *aliases):
        if candidate.lower() in lowered:
            return lowered[candidate.lower()]
    tried = ", ".join(repr(c) for c in (name, *aliases))
    have = ", ".join(repr(str(v)) for v in ds.data_vars) or "none"
    raise DataError(f"{source}: no variable {tried}; the file holds {have}")


def open_many(
    paths: PathLike | Sequence[PathLike],
    *,
    chunks: Mapping[str, int] | str | None = None,
    grib_filter: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Open one file, or several that continue each other in time (CMIP6 splits), as one dataset."""
    if isinstance(paths, str | os.PathLike):
        return open_dataset(paths, chunks=chunks, grib_filter=grib_filter)
    paths = list(paths)
    if not paths:
        raise DataError("no input file given")
    parts = [open_dataset(p, chunks=chunks, grib_filter=grib_filter) for p in paths]
    if len(parts) == 1:
        return parts[0]
    merged = join_in_time(parts, f"files {', '.join(map(str, paths))}")
    merged.encoding["source"] = ", ".join(map(str, paths))
    return merged


def collect_variable(
    files: Sequence[PathLike], opened: Sequence[xr.Dataset], names: Sequence[str], role: str
) -> tuple[xr.DataArray, list[str]] | None:
    """The variable stored under one of ``names`` (:func:`find_variable`), joined in time over
    the opened ``files`` that hold it (:func:`join_in_time`), and those files; None when no
    file holds it. ``role`` (simulation, reference) names the files in errors."""
    parts, where = [], []
    for path, ds in zip(files, opened, strict=True):
        try:
            stored = find_variable(ds, names[0], names[1:], source=str(path))
        except DataError:
            continue
        parts.append(ds[stored])
        where.append(str(path))
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0], where
    return join_in_time(parts, f"{role} files {', '.join(where)} ({names[0]!r})"), where


def join_in_time(parts: Sequence[Any], what: str) -> Any:
    """Datasets or arrays that continue each other in time (a run split into files), joined in
    time order; ``what`` names them in the error when they cannot be joined or overlap.

    >>> import cftime
    >>> t = [cftime.datetime(2000, 1, d, calendar="noleap") for d in (1, 2, 3, 4)]
    >>> a = xr.DataArray([1.0, 2.0], dims="time", coords={"time": t[:2]})
    >>> b = xr.DataArray([3.0, 4.0], dims="time", coords={"time": t[2:]})
    >>> join_in_time([b, a], "parts").values.tolist()
    [1.0, 2.0, 3.0, 4.0]
    >>> join_in_time([a, a], "files x.nc, y.nc")
    Traceback (most recent call last):
    ...
    atmocorrect.errors.DataError: files x.nc, y.nc overlap or repeat time steps (2000-01-01 00:00:00 at step 3)
    """
    parts = sorted(parts, key=lambda d: d["time"].values[0])
    try:
        kwargs = {"data_vars": "minimal"} if isinstance(parts[0], xr.Dataset) else {}
        joined = xr.concat(parts, dim="time", coords="minimal", compat="override",
                           join="override", **kwargs)
    except Exception as exc:
        raise DataError(f"cannot join {what} along time: {type(exc).__name__}: {exc}") from exc
    t = joined["time"].values
    if np.any(t[1:] <= t[:-1]):
        k = int(np.argmax(t[1:] <= t[:-1])) + 1
        raise DataError(f"{what} overlap or repeat time steps ({t[k]} at step {k + 1})")
    return joined


def read_variable(
    paths: PathLike | Sequence[PathLike],
    name: str,
    *,
    aliases: Sequence[str] = (),
    chunks: Mapping[str, int] | str | None = None,
    grib_filter: Mapping[str, Any] | None = None,
) -> xr.DataArray:
    """One variable, in its file's units, with standard coordinates; ``.name`` is as stored.

    ``encoding['source']`` names the file(s), so later errors can too.
    """
    ds = open_many(paths, chunks=chunks, grib_filter=grib_filter)
    source = ds.encoding.get("source", str(paths))
    var = find_variable(ds, name, aliases, source=source)
    da = ds[var]
    da.encoding["source"] = source
    if "time" not in da.dims:
        raise DataError(f"{source}: variable {var!r} has no time dimension (dims {da.dims})")
    return da
