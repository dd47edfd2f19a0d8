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

A large reference (a continent or the globe, one file or many) is read only where the
interpolation needs it: :func:`reference_window` cuts, lazily, the rows and columns around the
simulation's points (handling the conventions above), and :func:`interpolate_to` and
:func:`subset_inside` given its :class:`Frame` treat the window as the whole grid: same values,
same messages.

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

import dataclasses
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


def _convention_of(lon: np.ndarray) -> tuple[LonConvention, bool, bool]:
    """(the convention in which ``lon`` forms one interval, whether the axis is global, whether
    :func:`reference_convention` re-expresses and sorts it) of a reference's 1-D longitudes."""
    conv = longitude_convention(lon)
    if is_global_longitude(lon):
        return conv, True, True
    if _contiguous(wrap_values(lon, conv)):
        return conv, False, not bool(np.all(np.diff(lon) > 0))
    other: LonConvention = "-180-180" if conv == "0-360" else "0-360"
    if _contiguous(wrap_values(lon, other)):
        return other, False, True
    return conv, False, True


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
    conv, periodic, wrapped = _convention_of(ref["lon"].values)
    return (wrap_longitudes(ref, conv) if wrapped else ref), conv, periodic


def _pad_periodic(ref: xr.DataArray) -> xr.DataArray:
    lon = ref["lon"].values
    first = ref.isel(lon=[0]).assign_coords(lon=[lon[0] + 360.0])
    last = ref.isel(lon=[-1]).assign_coords(lon=[lon[-1] - 360.0])
    return xr.concat([last, ref, first], dim="lon")


@dataclasses.dataclass(frozen=True, eq=False)
class Frame:
    """How the interpolation reads a regular reference grid: the longitude convention in
    which its longitudes form one interval (:func:`reference_convention`), whether the axis is
    global (periodic), and the grid's box (``lat``, ``lon``: its smallest and largest latitude
    and longitude, in that convention, of the coordinates' dtype). A window cut from the grid
    (:func:`reference_window`) is interpolated and checked in the frame of the whole grid, so
    that it gives the values and the messages the whole grid gives."""

    convention: LonConvention
    periodic: bool
    lat: np.ndarray
    lon: np.ndarray


def _bounds(box: xr.DataArray | Frame) -> tuple[np.ndarray, np.ndarray]:
    """The latitudes and longitudes whose extremes are the box of a reference (in its
    convention) or of a frame."""
    if isinstance(box, Frame):
        return box.lat, box.lon
    return box["lat"].values, box["lon"].values


def _inside(box: xr.DataArray | Frame, lat: np.ndarray, lon: np.ndarray,
            periodic: bool) -> np.ndarray:
    tol = 1e-6
    la, lo = _bounds(box)
    ok = (lat >= la.min() - tol) & (lat <= la.max() + tol)
    if not periodic:
        ok &= (lon >= lo.min() - tol) & (lon <= lo.max() + tol)
    return ok


def _box(box: xr.DataArray | Frame) -> str:
    la, lo = _bounds(box)
    return f"lat {la.min():g}..{la.max():g}, lon {lo.min():g}..{lo.max():g}"


def _source_of(obj: xr.DataArray | xr.Dataset, default: str = "the simulation") -> str:
    """The file(s) ``obj`` was read from (readers record them in ``encoding['source']``)."""
    source = obj.encoding.get("source")
    if source is None and isinstance(obj, xr.Dataset):
        source = next((obj[v].encoding["source"] for v in obj.data_vars
                       if "source" in obj[v].encoding), None)
    return str(source or default)


def _in_frame(ref: xr.DataArray, frame: Frame | None
              ) -> tuple[xr.DataArray | Frame, LonConvention, bool]:
    """(what gives the box, the convention, whether periodic) of ``ref``: from ``frame`` when
    ``ref`` is a window cut in it, else from ``ref`` itself (:func:`reference_convention`)."""
    if frame is not None:
        return frame, frame.convention, frame.periodic
    return reference_convention(ref)


def subset_inside(sim: xr.DataArray | xr.Dataset, ref: xr.DataArray,
                  frame: Frame | None = None) -> xr.DataArray | xr.Dataset:
    """The simulation cells inside the reference box: on a regular grid the rows and columns
    inside; on a curvilinear grid a block of whole rows and columns (see
    :func:`inside_block`); of points along one dim, those inside. ``frame``: ``ref`` is a
    window (:func:`reference_window`) and the box is its whole grid's."""
    if "lat" not in sim.coords or "lon" not in sim.coords:
        raise DataError(f"{_source_of(sim)}: no lat/lon coordinates to compare with the "
                        "reference box")
    box, conv, periodic = _in_frame(ref, frame)
    if not is_regular_grid(sim):
        return _subset_inside_aux(sim, box, conv, periodic)
    lat = sim["lat"].values.astype(float)
    lon = wrap_values(sim["lon"].values, conv)
    la, lo = _bounds(box)
    keep_lat = (lat >= la.min() - 1e-6) & (lat <= la.max() + 1e-6)
    keep_lon = np.ones(lon.shape, bool) if periodic else (lon >= lo.min() - 1e-6) & (lon <= lo.max() + 1e-6)
    if not keep_lat.any() or not keep_lon.any():
        raise DataError(
            f"no simulation cell lies inside the reference domain ({_box(box)}); the "
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


def _subset_inside_aux(sim, ref: xr.DataArray | Frame, conv: LonConvention, periodic: bool):
    """:func:`subset_inside` for ``lat``/``lon`` that are auxiliary coordinates: 2-D over the
    two dims of a curvilinear grid, or 1-D along a dim of points; ``ref`` gives the box."""
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


def _is_grid(target: xr.DataArray | xr.Dataset) -> bool:
    """Whether ``target``'s ``lat``/``lon`` are the 1-D axes of a regular grid."""
    tlat, tlon = target["lat"], target["lon"]
    return tlat.ndim == 1 and tlon.ndim == 1 and tlat.dims == ("lat",) and tlon.dims == ("lon",)


def _target_points(target: xr.DataArray | xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Latitude and longitude (as given) of every point of ``target``, same shape."""
    tlat, tlon = target["lat"], target["lon"]
    if _is_grid(target):
        return np.meshgrid(tlat.values.astype(float), tlon.values.astype(float), indexing="ij")
    lat_pts, lon_pts = xr.broadcast(tlat, tlon)
    return lat_pts.values.astype(float), lon_pts.values.astype(float)


def _check_inside(box: xr.DataArray | Frame, lat_pts: np.ndarray, lon_pts: np.ndarray,
                  conv: LonConvention, periodic: bool, source: str) -> None:
    """Raise naming the target points outside the reference box."""
    ok = _inside(box, lat_pts, wrap_values(lon_pts, conv), periodic)
    if not ok.all():
        bad = [(float(a), float(b)) for a, b in zip(lat_pts[~ok], lon_pts[~ok], strict=True)][:5]
        raise DataError(
            f"{int((~ok).sum())} simulation point(s) lie outside the reference domain "
            f"({_box(box)} from {source}), e.g. (lat, lon) "
            f"{bad}; crop the simulation, or pass outside='drop' (--outside drop) to keep "
            "the cells inside"
        )


def _source_longitudes(lon: np.ndarray) -> tuple[np.ndarray, np.ndarray, Frame, bool]:
    """The longitudes :func:`interpolate_to` reads a reference grid at, in order (its frame's
    convention, sorted, a global axis padded with a cell beyond each end as
    :func:`_pad_periodic` does), the positions in ``lon`` they come from, the frame's
    convention and periodicity (its box still empty), and whether the values differ from
    ``lon``'s."""
    conv, periodic, wrapped = _convention_of(lon)
    if not wrapped:
        values, order = np.asarray(lon), np.arange(lon.size)
    else:
        w = wrap_values(lon, conv)
        order = np.argsort(w, kind="stable")  # as sortby (np.lexsort, stable)
        values = w[order]
    frame = Frame(conv, periodic, np.array([]), np.array([values.min(), values.max()]))
    if periodic:
        values = np.concatenate([[values[-1] - 360.0], values, [values[0] + 360.0]])
        order = np.concatenate([[order[-1]], order, [order[0]]])
    return values, order, frame, wrapped


def _needed(grid: np.ndarray, points: np.ndarray, margin: int) -> np.ndarray:
    """Positions in the ascending ``grid`` of the two cells around each point (the ones a
    linear or nearest interpolation reads) and ``margin`` more on each side.

    >>> _needed(np.arange(10.0), np.array([2.5, 2.7, 6.0]), 1).tolist()
    [1, 2, 3, 4, 5, 6, 7]
    """
    n = grid.size
    i = np.searchsorted(grid, points.ravel())
    lo = np.clip(i - 1 - margin, 0, n - 1)
    hi = np.clip(i + margin, 0, n - 1)
    mark = np.zeros(n + 1, dtype=np.int64)
    np.add.at(mark, lo, 1)
    np.add.at(mark, hi + 1, -1)
    return np.flatnonzero(np.cumsum(mark[:-1]) > 0)


def _as_slice(idx: np.ndarray) -> slice | np.ndarray:
    """``idx`` as a slice when it is one run of consecutive positions (read as one block)."""
    if idx.size and np.all(np.diff(idx) == 1):
        return slice(int(idx[0]), int(idx[-1]) + 1)
    return idx


def reference_window(
    ref: xr.DataArray | xr.Dataset, target: xr.DataArray | xr.Dataset, margin: int = 1,
) -> tuple[xr.DataArray | xr.Dataset, Frame | None]:
    """The cells of a regular reference grid that interpolating it to ``target``'s points
    reads, as :func:`interpolate_to` reads them, and the :class:`Frame` of the whole grid to
    interpolate the window in (``interpolate_to(window, target, frame=frame)`` gives the values
    ``interpolate_to(ref, target)`` gives, bit for bit).

    The window holds the rows and columns around each target point (those it lies between and
    ``margin`` more on each side: a simulation over a small region reads a small window of a
    global reference), longitudes in the frame's convention and sorted, the cells beyond a
    global grid's seam repeated (a window across 0 deg E of a 0..360 grid holds 358, 359, 360,
    361, ...). Indexing only: a lazily opened (dask) reference stays lazy and only the window
    is read when it is loaded. A reference that is not a regular grid is returned as it is,
    with no frame (:func:`interpolate_to` says why it cannot be used); target points outside
    the grid raise :func:`interpolate_to`'s error.

    >>> ref = xr.DataArray(np.zeros((4, 8)), dims=("lat", "lon"), coords={
    ...     "lat": [0.0, 1.0, 2.0, 3.0], "lon": np.arange(0.0, 360.0, 45.0)})
    >>> sim = xr.Dataset(coords={"lat": [1.5], "lon": [-10.0]})
    >>> window, frame = reference_window(ref, sim, margin=0)
    >>> window.lat.values.tolist(), window.lon.values.tolist(), frame.periodic
    ([1.0, 2.0], [315.0, 360.0], True)
    """
    if not is_regular_grid(ref) or "lat" not in ref.dims or "lon" not in ref.dims:
        return ref, None
    la = ref["lat"].values
    if la.size > 1 and not np.all(np.diff(la) > 0):  # readers make latitudes ascending
        return ref, None
    values, order, frame, wrapped = _source_longitudes(ref["lon"].values)
    frame = dataclasses.replace(frame, lat=np.array([la.min(), la.max()]))
    lat_pts, lon_pts = _target_points(target)
    _check_inside(frame, lat_pts, lon_pts, frame.convention, frame.periodic,
                  _source_of(ref, "reference"))
    rows = _needed(la, lat_pts, margin)
    cols = _needed(values, wrap_values(lon_pts, frame.convention), margin)
    window = ref.isel(lat=_as_slice(rows), lon=_as_slice(order[cols]))
    if wrapped:
        window = window.assign_coords(lon=("lon", values[cols], dict(ref["lon"].attrs)))
    return window, frame


def interpolate_to(
    ref: xr.DataArray,
    target: xr.DataArray | xr.Dataset,
    method: Method = "linear",
    outside: Outside = "error",
    frame: Frame | None = None,
) -> xr.DataArray:
    """``ref`` (dims ``..., lat, lon``) interpolated to ``target``'s ``lat``/``lon``.

    The result carries the target's horizontal coordinates and dims (1-D grid, or points
    along any dim for 2-D/curvilinear and station coordinates). ``frame``: ``ref`` is a window
    cut by :func:`reference_window` and read in the frame of its whole grid.
    """
    if "lat" not in ref.dims or "lon" not in ref.dims:
        how = ""
        if "lat" in ref.coords and ref["lat"].ndim == 2:
            how = (f" but a curvilinear one (2-D lat/lon over {', '.join(map(str, ref['lat'].dims))}"
                   "); the reference must be a regular lat/lon grid: regrid it first (cdo "
                   "remapbil, xesmf)")
        raise DataError(
            f"{ref.encoding.get('source', 'reference')}: variable {ref.name!r} has no lat/lon "
            f"grid (dims {ref.dims}){how}"
        )
    source, attrs, name = ref.encoding.get("source", "reference"), dict(ref.attrs), ref.name
    if outside == "drop":
        target = subset_inside(target, ref, frame)
    if frame is None:
        ref, conv, periodic = reference_convention(ref)
        src, box = (_pad_periodic(ref) if periodic else ref), ref
    else:  # a window: already in the frame's convention, sorted, the seam's cells repeated
        src, box, conv, periodic = ref, frame, frame.convention, frame.periodic
    tlat, tlon = target["lat"], target["lon"]
    grid = _is_grid(target)
    lat_pts, lon_pts = _target_points(target)
    _check_inside(box, lat_pts, lon_pts, conv, periodic, source)
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
