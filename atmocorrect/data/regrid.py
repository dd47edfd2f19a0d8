"""The reference (ERA5) interpolated to the simulation's grid or points.

Handles what real pairs bring: a reference in 0..360 longitudes and a simulation in
-180..180 (or the reverse), global reference grids (interpolation across the 0/360 seam),
latitudes in either order (readers make them ascending), and simulation points outside the
reference domain (an error listing them, or ``outside="drop"`` to keep the cells inside).

The simulation may be a regular grid (1-D ``lat``, ``lon`` axes), a curvilinear grid (2-D
``lat``/``lon`` over two dims, e.g. CORDEX's ``rlat``, ``rlon``) or points along one dim
(stations); the reference must be a regular grid. ``outside="drop"`` keeps, on a regular grid,
the rows and columns inside the reference box; on a curvilinear grid, the largest block of
whole rows and columns (along its two dims) found by peeling border lines that hold cells
outside; of points, those inside.

Example
-------
>>> import numpy as np, xarray as xr
>>> ref = xr.DataArray(np.arange(12.0).reshape(3, 4), dims=("lat", "lon"),
...                    coords={"lat": [0.0, 1.0, 2.0], "lon": [0.0, 90.0, 180.0, 270.0]})
>>> sim = xr.DataArray(np.zeros((1, 2)), dims=("lat", "lon"),
...                    coords={"lat": [0.5], "lon": [-45.0, 45.0]})
>>> interpolate_to(ref, sim).values.round(2).tolist()  # -45 is 315: across the seam
[[3.5, 2.5]]
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
import xarray as xr

from ..errors import DataError
from .coords import (
    LonConvention,
    horizontal_dims,
    is_global_longitude,
    is_regular_grid,
    longitude_convention,
    wrap_longitudes,
    wrap_values,
)

Outside = Literal["error", "drop"]
Method = Literal["linear", "nearest"]


def _contiguous(lon: np.ndarray) -> bool:
    lon = np.sort(np.asarray(lon, dtype=float))
    if lon.size < 3:
        return lon.size < 2 or float(lon[-1] - lon[0]) < 180.0
    d = np.diff(lon)
    return float(d.max()) <= 1.5 * float(np.median(d)) + 1e-9


def reference_convention(ref: xr.DataArray) -> tuple[xr.DataArray, LonConvention, bool]:
    """The reference with its longitudes in a convention where they form one interval.

    A regional box across the Greenwich meridian cut from a global 0..360 file has
    longitudes ``0, 1, ..., 358, 359`` (a gap in the middle); expressed in -180..180 it is one
    interval. Returns (reference sorted in that convention, the convention, whether the axis
    is global, i.e. periodic).

    >>> r = xr.DataArray(np.zeros((1, 4)), dims=("lat", "lon"),
    ...                  coords={"lat": [0.0], "lon": [0.0, 1.0, 358.0, 359.0]})
    >>> out, conv, periodic = reference_convention(r)
    >>> conv, out.lon.values.tolist(), periodic
    ('-180-180', [-2.0, -1.0, 0.0, 1.0], False)
    """
    lon = ref["lon"].values
    conv = longitude_convention(lon)
    if is_global_longitude(lon):
        return wrap_longitudes(ref, conv), conv, True
    if _contiguous(wrap_values(lon, conv)):
        if np.all(np.diff(lon) > 0):
            return ref, conv, False
        return wrap_longitudes(ref, conv), conv, False
    other: LonConvention = "-180-180" if conv == "0-360" else "0-360"
    if _contiguous(wrap_values(lon, other)):
        return wrap_longitudes(ref, other), other, False
    return wrap_longitudes(ref, conv), conv, False


def _pad_periodic(ref: xr.DataArray) -> xr.DataArray:
    lon = ref["lon"].values
    first = ref.isel(lon=[0]).assign_coords(lon=[lon[0] + 360.0])
    last = ref.isel(lon=[-1]).assign_coords(lon=[lon[-1] - 360.0])
    return xr.concat([last, ref, first], dim="lon")


def _inside(ref: xr.DataArray, lat: np.ndarray, lon: np.ndarray, periodic: bool) -> np.ndarray:
    tol = 1e-6
    la = ref["lat"].values
    ok = (lat >= la.min() - tol) & (lat <= la.max() + tol)
    if not periodic:
        lo = ref["lon"].values
        ok &= (lon >= lo.min() - tol) & (lon <= lo.max() + tol)
    return ok


def _box(ref: xr.DataArray) -> str:
    la, lo = ref["lat"].values, ref["lon"].values
    return f"lat {la.min():g}..{la.max():g}, lon {lo.min():g}..{lo.max():g}"


def _source_of(obj: xr.DataArray | xr.Dataset) -> str:
    """The file(s) ``obj`` was read from (readers record them in ``encoding['source']``)."""
    source = obj.encoding.get("source")
    if source is None and isinstance(obj, xr.Dataset):
        source = next((obj[v].encoding["source"] for v in obj.data_vars
                       if "source" in obj[v].encoding), None)
    return str(source or "the simulation")


def subset_inside(sim: xr.DataArray | xr.Dataset, ref: xr.DataArray) -> xr.DataArray | xr.Dataset:
    """The simulation cells inside the reference box: on a regular grid the rows and columns
    inside; on a curvilinear grid a block of whole rows and columns (see
    :func:`inside_block`); of points along one dim, those inside."""
    if "lat" not in sim.coords or "lon" not in sim.coords:
        raise DataError(f"{_source_of(sim)}: no lat/lon coordinates to compare with the "
                        "reference box")
    ref, conv, periodic = reference_convention(ref)
    if not is_regular_grid(sim):
        return _subset_inside_aux(sim, ref, conv, periodic)
    lat = sim["lat"].values.astype(float)
    lon = wrap_values(sim["lon"].values, conv)
    la = ref["lat"].values
    keep_lat = (lat >= la.min() - 1e-6) & (lat <= la.max() + 1e-6)
    lo = ref["lon"].values
    keep_lon = np.ones(lon.shape, bool) if periodic else (lon >= lo.min() - 1e-6) & (lon <= lo.max() + 1e-6)
    if not keep_lat.any() or not keep_lon.any():
        raise DataError(
            f"no simulation cell lies inside the reference domain ({_box(ref)}); the "
            f"simulation spans lat {lat.min():g}..{lat.max():g}, lon {lon.min():g}..{lon.max():g}"
        )
    return sim.isel(lat=np.flatnonzero(keep_lat), lon=np.flatnonzero(keep_lon))


def inside_block(ok: np.ndarray) -> tuple[slice, slice] | None:
    """The block ``ok[rows, cols]`` of whole rows and columns that is all True, found by
    peeling, one at a time, the border row or column with the largest share of False cells
    (ties: the one losing fewest True cells); None when nothing is left.

    >>> ok = np.array([[0, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 0]], bool)
    >>> inside_block(ok)
    (slice(0, 2, None), slice(1, 4, None))
    """
    r0, r1, c0, c1 = 0, ok.shape[0], 0, ok.shape[1]
    while r0 < r1 and c0 < c1:
        sub = ok[r0:r1, c0:c1]
        if sub.all():
            return slice(r0, r1), slice(c0, c1)
        lines = {"top": sub[0], "bottom": sub[-1], "left": sub[:, 0], "right": sub[:, -1]}
        side = max(lines, key=lambda k: (1.0 - lines[k].mean(), -int(lines[k].sum())))
        if side == "top":
            r0 += 1
        elif side == "bottom":
            r1 -= 1
        elif side == "left":
            c0 += 1
        else:
            c1 -= 1
    return None


def _subset_inside_aux(sim, ref: xr.DataArray, conv: LonConvention, periodic: bool):
    """:func:`subset_inside` for ``lat``/``lon`` that are auxiliary coordinates: 2-D over the
    two dims of a curvilinear grid, or 1-D along a dim of points."""
    source = _source_of(sim)
    dims = horizontal_dims(sim)
    lat_b, lon_b = (c.transpose(*dims) for c in xr.broadcast(sim["lat"], sim["lon"]))
    lat, lon = lat_b.values.astype(float), wrap_values(lon_b.values, conv)
    ok = _inside(ref, lat, lon, periodic)
    if not ok.any():
        raise DataError(
            f"{source}: no simulation cell lies inside the reference domain ({_box(ref)}); "
            f"the simulation spans lat {lat.min():g}..{lat.max():g}, lon {lon.min():g}.."
            f"{lon.max():g}")
    if ok.all():
        return sim
    if len(dims) == 1:
        return sim.isel({dims[0]: np.flatnonzero(ok)})
    if len(dims) != 2:
        raise DataError(
            f"{source}: lat/lon span {len(dims)} dims {dims}; outside='drop' (--outside drop) "
            "handles a regular grid, a curvilinear grid (two dims) or points along one dim; "
            "crop the simulation to the reference box first")
    block = inside_block(ok)
    if block is None:  # pragma: no cover - ok.any() leaves at least one cell
        raise DataError(f"{source}: no block of cells lies inside the reference domain")
    rows, cols = block
    kept = ok[rows, cols].size
    lost = int(ok.sum()) - kept
    if lost:
        warnings.warn(
            f"{source}: outside='drop' keeps a block of {rows.stop - rows.start} x "
            f"{cols.stop - cols.start} cells of the curvilinear grid ({dims[0]} "
            f"{rows.start}..{rows.stop - 1}, {dims[1]} {cols.start}..{cols.stop - 1}) inside "
            f"the reference domain ({_box(ref)}); {lost} other cell(s) inside it are left out "
            "because their rows or columns reach outside", stacklevel=3)
    return sim.isel({dims[0]: np.arange(rows.start, rows.stop),
                     dims[1]: np.arange(cols.start, cols.stop)})


def cell_tolerance(lat: np.ndarray, lon: np.ndarray) -> float:
    """Half the smallest distance, as ``max(|dlat|, |dlon|)`` in degrees, between two distinct
    points (1e-3 for a single point): a point closer than this to a grid point is that point.
    On a regular grid it is half the smaller grid step; on curvilinear grids and stations it
    is half the distance to the nearest neighbour.

    >>> la, lo = np.meshgrid([48.0, 49.0, 50.0], [8.0, 8.5], indexing="ij")
    >>> cell_tolerance(la, lo)
    0.25
    """
    from scipy.spatial import cKDTree

    pts = np.column_stack([np.asarray(lat, float).ravel(),
                           np.mod(np.asarray(lon, float).ravel(), 360.0)])
    pts = np.unique(np.round(pts, 6), axis=0)
    if pts.shape[0] < 2:
        return 1e-3
    dist, _ = cKDTree(pts).query(pts, k=2, p=np.inf)
    return 0.5 * float(dist[:, 1].min())


def interpolate_to(
    ref: xr.DataArray,
    target: xr.DataArray | xr.Dataset,
    method: Method = "linear",
    outside: Outside = "error",
) -> xr.DataArray:
    """``ref`` (dims ``..., lat, lon``) interpolated to ``target``'s ``lat``/``lon``.

    The result carries the target's horizontal coordinates and dims (1-D grid, or points
    along any dim for 2-D/curvilinear and station coordinates).
    """
    if "lat" not in ref.dims or "lon" not in ref.dims:
        raise DataError(
            f"{ref.encoding.get('source', 'reference')}: variable {ref.name!r} has no lat/lon "
            f"grid (dims {ref.dims})"
        )
    source, attrs, name = ref.encoding.get("source", "reference"), dict(ref.attrs), ref.name
    if outside == "drop":
        target = subset_inside(target, ref)
    ref, conv, periodic = reference_convention(ref)
    src = _pad_periodic(ref) if periodic else ref
    tlat, tlon = target["lat"], target["lon"]
    grid = tlat.ndim == 1 and tlon.ndim == 1 and tlat.dims == ("lat",) and tlon.dims == ("lon",)
    if grid:
        lat_pts, lon_pts = np.meshgrid(tlat.values.astype(float), tlon.values.astype(float),
                                       indexing="ij")
    else:
        lat_pts, lon_pts = xr.broadcast(tlat, tlon)
        lat_pts, lon_pts = lat_pts.values.astype(float), lon_pts.values.astype(float)
    lon_wrapped = wrap_values(lon_pts, conv)
    ok = _inside(ref, lat_pts, lon_wrapped, periodic)
    if not ok.all():
        bad = [(float(a), float(b)) for a, b in zip(lat_pts[~ok], lon_pts[~ok], strict=True)][:5]
        raise DataError(
            f"{int((~ok).sum())} simulation point(s) lie outside the reference domain "
            f"({_box(ref)} from {source}), e.g. (lat, lon) "
            f"{bad}; crop the simulation, or pass outside='drop' (--outside drop) to keep "
            "the cells inside"
        )
    if grid:
        out = src.interp(
            lat=xr.DataArray(tlat.values.astype(float), dims="lat"),
            lon=xr.DataArray(wrap_values(tlon.values, conv), dims="lon"),
            method=method,
        )
        out = out.assign_coords(lat=tlat, lon=tlon)
    else:
        lat_b, lon_b = xr.broadcast(tlat, tlon)
        lon_b = lon_b.copy(data=wrap_values(lon_b.values, conv))
        out = src.interp(
            lat=lat_b.drop_vars(["lat", "lon"], errors="ignore").astype(float),
            lon=lon_b.drop_vars(["lat", "lon"], errors="ignore").astype(float),
            method=method,
        )
        out = out.assign_coords(lat=tlat, lon=tlon)
    out.attrs = attrs
    out.encoding = {"source": source}
    out.name = name
    return out
