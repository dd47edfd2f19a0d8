"""Coordinate conventions of real files, brought to one form.

Real files name their axes ``lat``/``latitude``/``nav_lat``, run latitudes north to south
(ERA5, GRIB), use 0..360 or -180..180 longitudes, carry ERA5's ``expver`` dimension (1 = final
ERA5, 5 = preliminary ERA5T) and, from cfgrib, a ``time`` x ``step`` pair instead of one time
axis. :func:`standardise` returns a dataset with ``lat``/``lon`` (latitudes ascending), one
``time`` dimension and no ``expver``; longitudes keep their convention (see
:func:`longitude_convention` and :func:`wrap_longitudes`).

Example
-------
>>> import numpy as np, xarray as xr
>>> ds = xr.Dataset({"t2m": (("latitude", "longitude"), np.arange(6.0).reshape(2, 3))},
...                 coords={"latitude": [50.0, 49.0], "longitude": [358.0, 359.0, 0.0]})
>>> out = standardise(ds)
>>> out.lat.values.tolist(), out.t2m.dims
([49.0, 50.0], ('lat', 'lon'))
>>> longitude_convention(out.lon.values)
'0-360'
>>> wrap_longitudes(out, "-180-180").lon.values.tolist()
[-2.0, -1.0, 0.0]
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import xarray as xr

from ..errors import DataError

LAT_NAMES = ("lat", "latitude", "nav_lat", "lats")
LON_NAMES = ("lon", "longitude", "nav_lon", "lons")
#: ERA5 experiment versions in order of preference: final ERA5 before preliminary ERA5T.
EXPVER_PREFERENCE = ("1", "0001", "5", "0005")

LonConvention = Literal["0-360", "-180-180"]


def _find(ds: xr.Dataset, names: tuple[str, ...]) -> str | None:
    for n in names:
        if n in ds.coords or n in ds.dims or n in ds.variables:
            return n
    # by CF standard_name / units, for files with unusual names
    wanted = "latitude" if names is LAT_NAMES else "longitude"
    for n, v in ds.coords.items():
        if v.attrs.get("standard_name") == wanted:
            return str(n)
    return None


def merge_expver(ds: xr.Dataset, source: str = "dataset") -> xr.Dataset:
    """Merge ERA5's ``expver`` dimension: per time step, the final ERA5 value where present,
    else the preliminary ERA5T one. A scalar or per-time ``expver`` coordinate is dropped.

    >>> import numpy as np, xarray as xr
    >>> a = np.array([[1.0, np.nan], [np.nan, 7.0]])
    >>> ds = xr.Dataset({"t2m": (("time", "expver"), a)}, coords={"expver": [1, 5]})
    >>> merge_expver(ds).t2m.values.tolist()
    [1.0, 7.0]
    """
    if "expver" not in ds.dims:
        return ds.drop_vars("expver", errors="ignore")
    labels = [str(v).strip() for v in ds["expver"].values]
    order = sorted(
        range(len(labels)),
        key=lambda i: EXPVER_PREFERENCE.index(labels[i])
        if labels[i] in EXPVER_PREFERENCE
        else len(EXPVER_PREFERENCE) + i,
    )
    merged = ds.isel(expver=order[0])
    for i in order[1:]:
        merged = merged.combine_first(ds.isel(expver=i))
    merged = merged.drop_vars("expver", errors="ignore")
    for name in ds.data_vars:
        if "expver" in ds[name].dims:
            merged[name].attrs = ds[name].attrs
            merged[name].encoding = {
                k: v for k, v in ds[name].encoding.items() if k in ("dtype", "_FillValue")
            }
    merged.attrs = {**ds.attrs, "expver_merged": ", ".join(labels[i] for i in order)}
    return merged


def _stack_grib_time(ds: xr.Dataset) -> xr.Dataset:
    """cfgrib gives ``time`` (analysis) x ``step`` (forecast); make one ``time`` axis."""
    if "step" in ds.dims and ds.sizes["step"] == 1:
        ds = ds.isel(step=0)
    if "time" in ds.dims and ds.sizes["time"] == 1 and "step" in ds.dims and "valid_time" in ds:
        ds = ds.isel(time=0).swap_dims({"step": "valid_time"})
        return ds.drop_vars(["time"], errors="ignore").rename({"valid_time": "time"})
    if "time" in ds.dims and "step" in ds.dims and "valid_time" in ds.coords:
        stacked = ds.stack(_vt=("time", "step"))
        valid = stacked["valid_time"].values
        stacked = stacked.drop_vars(["_vt", "time", "step", "valid_time"], errors="ignore")
        stacked = stacked.rename({"_vt": "time"}).assign_coords(time=("time", valid))
        return stacked.sortby("time").transpose("time", ...)
    if "time" not in ds.dims and "valid_time" in ds.dims:
        ds = ds.drop_vars("time", errors="ignore").rename({"valid_time": "time"})
    return ds


def standardise(ds: xr.Dataset, source: str = "dataset") -> xr.Dataset:
    """``lat``/``lon`` names, ascending 1-D latitudes, one ``time`` axis, ``expver`` merged."""
    ds = merge_expver(ds, source)
    ds = _stack_grib_time(ds)
    if "time" in ds.dims:
        ds = ds.transpose("time", ...)
    lat, lon = _find(ds, LAT_NAMES), _find(ds, LON_NAMES)
    rename = {}
    if lat and lat != "lat":
        rename[lat] = "lat"
    if lon and lon != "lon":
        rename[lon] = "lon"
    if rename:
        ds = ds.rename(rename)
    flipped = False
    if "lat" in ds.dims and ds["lat"].ndim == 1 and ds.sizes["lat"] > 1:
        lat_values = ds["lat"].values
        if np.all(np.diff(lat_values) < 0):
            ds = ds.isel(lat=slice(None, None, -1))
            flipped = True
        elif not np.all(np.diff(lat_values) > 0):
            raise DataError(f"{source}: latitudes are not monotonic: {lat_values[:6]}...")
    if "lon" in ds.dims and ds["lon"].ndim == 1 and ds.sizes["lon"] > 1:
        lon_values = ds["lon"].values
        if np.unique(lon_values).size != lon_values.size:
            raise DataError(f"{source}: longitudes repeat: {lon_values[:6]}...")
    # what was changed, so that output written for this input can be given its layout back
    ds.encoding["atmocorrect_layout"] = {
        "renamed": {v: k for k, v in rename.items()},
        "lat_flipped": flipped,
    }
    return ds


def restore_layout(ds: xr.Dataset, layout: dict | None) -> xr.Dataset:
    """Undo :func:`standardise`'s renaming and latitude flip (for output files).

    >>> import xarray as xr
    >>> raw = xr.Dataset(coords={"latitude": [50.0, 49.0]})
    >>> std = standardise(raw)
    >>> restore_layout(std, std.encoding["atmocorrect_layout"]).latitude.values.tolist()
    [50.0, 49.0]
    """
    if not layout:
        return ds
    if layout.get("lat_flipped") and "lat" in ds.dims:
        ds = ds.isel(lat=slice(None, None, -1))
    renamed = {k: v for k, v in layout.get("renamed", {}).items() if k in ds.variables or k in ds.dims}
    return ds.rename(renamed) if renamed else ds


def longitude_convention(lon: np.ndarray) -> LonConvention:
    """``'-180-180'`` if any longitude is negative, else ``'0-360'``."""
    lon = np.asarray(lon, dtype=float)
    return "-180-180" if np.nanmin(lon) < 0 else "0-360"


def wrap_values(lon: np.ndarray, convention: LonConvention) -> np.ndarray:
    """Longitudes expressed in ``convention`` (``[0, 360)`` or ``[-180, 180)``)."""
    lon = np.asarray(lon, dtype=float)
    if convention == "0-360":
        return np.mod(lon, 360.0)
    return np.mod(lon + 180.0, 360.0) - 180.0


def wrap_longitudes(obj: xr.Dataset | xr.DataArray, convention: LonConvention):
    """Re-express a 1-D ``lon`` axis in ``convention`` and sort it ascending."""
    if "lon" not in obj.coords:
        return obj
    new = wrap_values(obj["lon"].values, convention)
    out = obj.assign_coords(lon=(obj["lon"].dims, new, obj["lon"].attrs))
    if out["lon"].ndim == 1 and "lon" in out.dims:
        out = out.sortby("lon")
    return out


def is_global_longitude(lon: np.ndarray, tol: float = 1e-6) -> bool:
    """True when a regular 1-D longitude axis covers the whole circle (spacing * n == 360)."""
    lon = np.sort(np.asarray(lon, dtype=float))
    if lon.size < 3:
        return False
    step = np.median(np.diff(lon))
    return abs(step * lon.size - 360.0) < max(tol, 1e-3 * step)
