"""Coordinate conventions of real files, brought to one form.

Real files name their axes ``lat``/``latitude``/``nav_lat``, run latitudes north to south
(ERA5, GRIB), use 0..360 or -180..180 longitudes, carry ERA5's ``expver`` dimension (1 = final
ERA5, 5 = preliminary ERA5T) and, from cfgrib, a ``time`` x ``step`` pair instead of one time
axis. :func:`standardise` returns a dataset with ``lat``/``lon`` (latitudes ascending), one
``time`` dimension and no ``expver``; longitudes keep their convention (see
:func:`longitude_convention` and :func:`wrap_longitudes`).

``lat``/``lon`` are either the 1-D axes of a regular grid (dims ``lat``, ``lon``) or auxiliary
coordinates over other dims: 2-D over the two dims of a curvilinear grid (CORDEX: ``lat(rlat,
rlon)`` beside a ``rotated_pole`` grid mapping), or 1-D along a station dim. The dims they span
are the *horizontal dims* (:func:`horizontal_dims`); code that needs the grid's rows and columns
takes them from there, never from the names. A rotated-pole file without ``lat``/``lon`` gets
them computed from its ``grid_latitude``/``grid_longitude`` axes (:func:`rotated_to_geographic`);
output files leave them out again.

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


def rotated_to_geographic(
    rlat: np.ndarray, rlon: np.ndarray, pole_lat: float, pole_lon: float
) -> tuple[np.ndarray, np.ndarray]:
    """Geographic (lat, lon) in degrees of rotated-pole coordinates (CF
    ``rotated_latitude_longitude`` with ``north_pole_grid_longitude = 0``); longitudes in
    -180..180.

    >>> lat, lon = rotated_to_geographic(np.array([0.0]), np.array([0.0]), 39.25, -162.0)
    >>> round(float(lat[0]), 6), round(float(lon[0]), 6)  # EURO-CORDEX's centre
    (50.75, 18.0)
    """
    plat = np.deg2rad(pole_lat)
    rl, ro = np.deg2rad(np.asarray(rlat, float)), np.deg2rad(np.asarray(rlon, float))
    x, y, z = np.cos(rl) * np.cos(ro), np.cos(rl) * np.sin(ro), np.sin(rl)
    gx = x * np.sin(plat) - z * np.cos(plat)
    gz = x * np.cos(plat) + z * np.sin(plat)
    lat = np.rad2deg(np.arcsin(np.clip(gz, -1.0, 1.0)))
    lon = np.rad2deg(np.arctan2(y, gx)) + pole_lon + 180.0
    return lat, np.mod(lon + 180.0, 360.0) - 180.0


def _axis_with(ds: xr.Dataset, standard_name: str) -> str | None:
    for n, v in ds.coords.items():
        if v.ndim == 1 and v.attrs.get("standard_name") == standard_name:
            return str(n)
    return None


def _derive_rotated_latlon(ds: xr.Dataset, source: str) -> xr.Dataset | None:
    """``lat``/``lon`` (2-D) computed from a rotated-pole grid mapping and the
    ``grid_latitude``/``grid_longitude`` axes, or None when the file has no such grid."""
    mapping = next((v for v in ds.variables.values()
                    if v.attrs.get("grid_mapping_name") == "rotated_latitude_longitude"), None)
    ry, rx = _axis_with(ds, "grid_latitude"), _axis_with(ds, "grid_longitude")
    if mapping is None or ry is None or rx is None:
        return None
    try:
        plat = float(mapping.attrs["grid_north_pole_latitude"])
        plon = float(mapping.attrs["grid_north_pole_longitude"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(
            f"{source}: the rotated_latitude_longitude grid mapping lacks a numeric "
            "grid_north_pole_latitude/grid_north_pole_longitude; add them, or lat/lon "
            "coordinates") from exc
    if float(mapping.attrs.get("north_pole_grid_longitude", 0.0)) != 0.0:
        raise DataError(
            f"{source}: rotated pole with north_pole_grid_longitude="
            f"{mapping.attrs['north_pole_grid_longitude']} is not supported without 2-D "
            "lat/lon coordinates in the file; add them (e.g. cdo setgrid / xesmf)")
    la, lo = np.meshgrid(ds[ry].values, ds[rx].values, indexing="ij")
    lat, lon = rotated_to_geographic(la, lo, plat, plon)
    return ds.assign_coords(
        lat=((ry, rx), lat, {"standard_name": "latitude", "units": "degrees_north"}),
        lon=((ry, rx), lon, {"standard_name": "longitude", "units": "degrees_east"}))


def horizontal_dims(obj: xr.Dataset | xr.DataArray) -> tuple[str, ...]:
    """The dims the ``lat``/``lon`` coordinates span (``lat, lon`` on a regular grid, the two
    dims of a curvilinear grid, the station dim of points), in ``obj``'s order.

    >>> da = xr.DataArray(np.zeros((1, 2, 3)), dims=("time", "rlat", "rlon"),
    ...                   coords={"lat": (("rlat", "rlon"), np.zeros((2, 3))),
    ...                           "lon": (("rlat", "rlon"), np.zeros((2, 3)))})
    >>> horizontal_dims(da)
    ('rlat', 'rlon')
    """
    if "lat" not in obj.coords or "lon" not in obj.coords:
        raise DataError(f"{obj.encoding.get('source', 'data')}: no lat/lon coordinates "
                        f"(dims {tuple(obj.dims)})")
    spanned = set(obj["lat"].dims) | set(obj["lon"].dims)
    order = obj.dims if isinstance(obj, xr.DataArray) else (*obj["lat"].dims, *obj["lon"].dims)
    return tuple(dict.fromkeys(str(d) for d in order if d in spanned))


def cell_latlon(da: xr.DataArray, source: str | None = None
                ) -> tuple[xr.DataArray, xr.DataArray]:
    """``lat`` and ``lon`` of every cell of ``da``: broadcast over all its dims but ``time``
    and in their order (a regular grid's axes as 2-D fields, a curvilinear grid's as they are,
    and over ensemble members too), so that ``.values.ravel()`` follows the cells of
    ``da.values.reshape(n_time, -1)``.

    >>> da = xr.DataArray(np.zeros((1, 2, 3)), dims=("time", "lat", "lon"),
    ...                   coords={"lat": [48.0, 49.0], "lon": [8.0, 9.0, 10.0]})
    >>> [c.shape for c in cell_latlon(da)], cell_latlon(da)[0].values[:, 0].tolist()
    ([(2, 3), (2, 3)], [48.0, 49.0])
    """
    spatial = [d for d in da.dims if d != "time"]
    lat, lon = xr.broadcast(da["lat"], da["lon"])
    outside = sorted(str(d) for d in set(lat.dims) - set(spatial))
    if outside:
        raise DataError(f"{source or da.encoding.get('source', 'the simulation')}: lat/lon of "
                        f"{da.name!r} depend on dims {outside} that the variable lacks")
    template = da.isel(time=0, drop=True) if "time" in da.dims else da
    return tuple(c.broadcast_like(template).transpose(*spatial) for c in (lat, lon))


#: Names of ensemble-member dims (intake-esm/Pangeo ``member_id``, CMIP ``realization``, ERA5
#: ensemble ``number``); a dim whose coordinate has ``standard_name = realization`` is one too.
MEMBER_DIMS = frozenset({"member", "member_id", "members", "realization", "realisation",
                         "ensemble", "ensemble_member", "ens", "number"})


def member_dims(da: xr.DataArray) -> tuple[str, ...]:
    """The dims of ``da`` that index ensemble members, in ``da``'s order.

    >>> da = xr.DataArray(np.zeros((2, 3)), dims=("member_id", "time"))
    >>> member_dims(da)
    ('member_id',)
    """
    def is_member(dim: str) -> bool:
        coord = da.coords.get(dim)
        named = coord is not None and coord.attrs.get("standard_name") == "realization"
        return dim.lower() in MEMBER_DIMS or named

    return tuple(str(d) for d in da.dims if is_member(str(d)))


def member_labels(da: xr.DataArray, dims: tuple[str, ...]) -> list[tuple]:
    """The label of every member of ``da`` along ``dims`` (their coordinate values, else
    positions), in the order of ``da.transpose(*dims, ...)``.

    >>> da = xr.DataArray(np.zeros((2, 3)), dims=("member_id", "time"),
    ...                   coords={"member_id": ["r1i1p1f1", "r2i1p1f1"]})
    >>> member_labels(da, ("member_id",))
    [('r1i1p1f1',), ('r2i1p1f1',)]
    """
    import itertools

    axes = [[v.item() if hasattr(v, "item") else v for v in da[d].values] if d in da.coords
            else list(range(da.sizes[d])) for d in dims]
    return list(itertools.product(*axes))


def describe_dim(da: xr.DataArray, dim: str) -> str:
    """``dim (size: first labels, ...)`` for messages.

    >>> describe_dim(xr.DataArray(np.zeros(2), dims="plev", coords={"plev": [850, 500]}), "plev")
    'plev (2: 850, 500)'
    """
    size = da.sizes[dim]
    if dim not in da.coords:
        return f"{dim} ({size})"
    labels = ", ".join(repr(v.item()) if hasattr(v, "item") else repr(v)
                       for v in da[dim].values[:3])
    return f"{dim} ({size}: {labels}{', ...' if size > 3 else ''})"


def _labels_along(da: xr.DataArray, dim: str) -> list:
    return [v.decode() if isinstance(v, bytes) else v for v in da[dim].values.tolist()]


def match_members(x: xr.DataArray, other: xr.DataArray, what_x: str, what_other: str,
                  how: str) -> dict[str, list[int]]:
    """Per member dim, the positions in ``other`` of ``x``'s ensemble members, in ``x``'s
    order (for ``other.isel(...)``; ``{}`` when neither has members): the one rule by which
    two files' members are paired (an input and its historical run in ``correct``, a signal's
    future and its baseline in ``evaluate offline``).

    Along each member dim, members are matched by label (the dim's coordinate) when both
    files label them, ``other`` holding every member of ``x`` and possibly more; by position
    when neither labels them and both have as many. Anything else (members on one side only,
    other member dims, a member ``other`` lacks, labels on one side only, different counts
    without labels) is a :class:`DataError` naming both files (``what_x``, ``what_other``),
    the dim and the members at fault, and saying ``how`` the members are used.

    >>> x = xr.DataArray(np.zeros((2, 1)), dims=("member_id", "time"), name="tas",
    ...                  coords={"member_id": ["r2i1p1f1", "r1i1p1f1"]})
    >>> hist = xr.DataArray(np.zeros((3, 1)), dims=("member_id", "time"), name="tas",
    ...                     coords={"member_id": ["r1i1p1f1", "r2i1p1f1", "r3i1p1f1"]})
    >>> match_members(x, hist, "input a.nc", "the historical simulation b.nc", "why")
    {'member_id': [1, 0]}
    >>> match_members(x.drop_vars("member_id"), hist.isel(member_id=[0, 1]), "input a.nc",
    ...               "the historical simulation b.nc", "why")
    Traceback (most recent call last):
    atmocorrect.errors.DataError: the historical simulation b.nc labels its members along 'member_id' (member_id (2: 'r1i1p1f1', 'r2i1p1f1')) but input a.nc does not (member_id (2)), so they cannot be matched: why; give both a 'member_id' coordinate with the member labels, or neither (matched by position)
    """
    mx, mo = member_dims(x), member_dims(other)
    if not mx and not mo:
        return {}
    dx, do = (", ".join(describe_dim(da, d) for d in dims) for da, dims in ((x, mx), (other, mo)))
    if not mo:
        raise DataError(
            f"{what_x}: variable {x.name!r} has dims {dx} (ensemble members) but {what_other} "
            f"has no member dim: {how}; give both with the same members along {mx[0]!r}, or "
            f"give {what_x} one member at a time (xarray .isel({mx[0]}=0), cdo/ncks)")
    if not mx:
        raise DataError(
            f"{what_other}: variable {other.name!r} has dims {do} (ensemble members) but "
            f"{what_x} has no member dim: {how}; select in {what_other} the member that goes "
            f"with {what_x} (xarray .isel({mo[0]}=...), cdo/ncks), or give both with the same "
            "members")
    if set(mx) != set(mo):
        raise DataError(f"{what_x} and {what_other} index their ensemble members along "
                        f"different dims ({dx} vs {do}): {how}; rename one")
    pick: dict[str, list[int]] = {}
    for d in mx:
        labelled = [w for da, w in ((x, what_x), (other, what_other)) if d in da.coords]
        if len(labelled) == 1:
            unlabelled = what_other if labelled[0] == what_x else what_x
            described = {what_x: describe_dim(x, d), what_other: describe_dim(other, d)}
            raise DataError(
                f"{labelled[0]} labels its members along {d!r} ({described[labelled[0]]}) but "
                f"{unlabelled} does not ({described[unlabelled]}), so they cannot be matched: "
                f"{how}; give both a {d!r} coordinate with the member labels, or neither "
                "(matched by position)")
        if not labelled:
            if x.sizes[d] != other.sizes[d]:
                raise DataError(
                    f"{what_x} and {what_other} have {x.sizes[d]} and {other.sizes[d]} members "
                    f"along {d!r}, without labels to match them: {how}; give both a {d!r} "
                    "coordinate with the member labels")
            pick[d] = list(range(x.sizes[d]))
            continue
        want, have = _labels_along(x, d), _labels_along(other, d)
        missing = [w for w in want if w not in have]
        if missing:
            raise DataError(
                f"{what_x} has members {', '.join(map(repr, missing[:5]))}"
                f"{', ...' if len(missing) > 5 else ''} along {d!r} that {what_other} lacks "
                f"({describe_dim(other, d)}): {how}; every member of {what_x} must be in "
                f"{what_other}")
        repeated = sorted({repr(w) for w in want if have.count(w) > 1})
        if repeated:
            raise DataError(f"{what_other} repeats members {', '.join(repeated[:5])} along "
                            f"{d!r}, so those of {what_x} cannot be matched by label: {how}")
        pick[d] = [have.index(w) for w in want]
    return pick


def check_time_and_grid_only(da: xr.DataArray, source: str, role: str = "simulation",
                             allow_members: bool = False) -> None:
    """Raise a :class:`DataError` when ``da`` has dims besides ``time``, its horizontal grid
    and, with ``allow_members``, ensemble members (pooled by the training, corrected and
    scored member by member; never in a reference): the corrections are per grid cell of one
    field.

    >>> da = xr.DataArray(np.zeros((2, 3, 1)), dims=("plev", "time", "lat"),
    ...                   coords={"plev": [85000.0, 50000.0], "lat": [50.0], "lon": 10.0},
    ...                   name="ta")
    >>> check_time_and_grid_only(da, "ta_day.nc")
    Traceback (most recent call last):
    atmocorrect.errors.DataError: simulation ta_day.nc: variable 'ta' has dims plev (2: 85000.0, 50000.0) besides time and its horizontal grid (lat); atmocorrect corrects one field at a time: select one level (xarray .isel(plev=0), cdo/ncks) or give one file per level
    """
    if "time" not in da.dims:
        raise DataError(f"{role} {source}: variable {da.name!r} has no time dimension "
                        f"(dims {tuple(da.dims)})")
    grid = horizontal_dims(da)
    members = member_dims(da)
    extra = [str(d) for d in da.dims if d != "time" and d not in grid
             and not (allow_members and d in members)]
    if not extra:
        return
    what = (f"{role} {source}: variable {da.name!r} has dims "
            f"{', '.join(describe_dim(da, d) for d in extra)} "
            f"besides time and its horizontal grid ({', '.join(grid)})")
    if all(d in members for d in extra):
        raise DataError(
            f"{what}: ensemble members are pooled by `atmocorrect train offline`, and corrected "
            "and scored member by member by `atmocorrect correct` and `evaluate offline`, but "
            f"the {role} takes one member at a time: select one "
            f"(xarray .isel({extra[0]}=0), cdo/ncks) or give one file per member")
    raise DataError(
        f"{what}; atmocorrect corrects one field at a time: select one level "
        f"(xarray .isel({extra[0]}=0), cdo/ncks) or give one file per level")


def regular_axes(ds: xr.Dataset, source: str = "dataset", tol: float = 1e-6) -> xr.Dataset:
    """A regular grid whose ``lat``/``lon`` are stored as 2-D arrays over its two dims
    (``lat(y, x)``, ``lon(y, x)``, without a rotated pole: latitudes constant along one dim,
    longitudes along the other) with 1-D ``lat``/``lon`` axes instead, latitudes ascending
    (a reference must be a regular grid; :func:`standardise` keeps a simulation's layout).
    Anything else is returned as it is.

    >>> la, lo = np.meshgrid([50.0, 49.0], [8.0, 9.0, 10.0], indexing="ij")
    >>> ds = xr.Dataset({"t2m": (("time", "y", "x"), np.arange(6.0).reshape(1, 2, 3))},
    ...                 coords={"lat": (("y", "x"), la), "lon": (("y", "x"), lo)})
    >>> out = regular_axes(ds)
    >>> out.t2m.dims, out.lat.values.tolist(), out.t2m.values[0, :, 0].tolist()
    (('time', 'lat', 'lon'), [49.0, 50.0], [3.0, 0.0])
    """
    if "lat" not in ds.coords or "lon" not in ds.coords:
        return ds
    lat, lon = ds["lat"], ds["lon"]
    if lat.ndim != 2 or set(lon.dims) != set(lat.dims):
        return ds
    la = np.asarray(lat.values, dtype=float)
    lon_values = np.asarray(lon.transpose(*lat.dims).values, dtype=float)
    first = lon_values.flat[0]
    lo = np.mod(lon_values - first + 180.0, 360.0) - 180.0 + first  # 359 and -1 agree
    d0, d1 = (str(d) for d in lat.dims)
    if np.allclose(la, la[:, :1], atol=tol) and np.allclose(lo, lo[:1, :], atol=tol):
        lat_dim, lon_dim, lat1, lon1 = d0, d1, la[:, 0], lon_values[0, :]
    elif np.allclose(la, la[:1, :], atol=tol) and np.allclose(lo, lo[:, :1], atol=tol):
        lat_dim, lon_dim, lat1, lon1 = d1, d0, la[0, :], lon_values[:, 0]
    else:
        return ds  # curvilinear
    if np.unique(lat1).size != lat1.size or np.unique(lon1).size != lon1.size:
        return ds
    if any(v.attrs.get("grid_mapping_name") == "rotated_latitude_longitude"
           for v in ds.variables.values()):
        return ds
    out = ds.drop_vars(["lat", "lon", *[d for d in (lat_dim, lon_dim) if d in ds.variables]])
    out = out.rename({lat_dim: "lat", lon_dim: "lon"})
    out = out.assign_coords(lat=("lat", lat1, dict(lat.attrs)), lon=("lon", lon1, dict(lon.attrs)))
    for n in out.data_vars:
        out[n] = out[n].transpose(*_latlon_order(out[n].dims))
    if out.sizes["lat"] > 1 and np.all(np.diff(lat1) < 0):
        out = out.isel(lat=slice(None, None, -1))
    elif out.sizes["lat"] > 1 and not np.all(np.diff(lat1) > 0):
        raise DataError(f"{source}: latitudes are not monotonic along {lat_dim!r}: "
                        f"{lat1[:6]}...")
    out.attrs, out.encoding = dict(ds.attrs), dict(ds.encoding)
    for n in out.data_vars:
        out[n].encoding = dict(ds[n].encoding)
    return out


def is_regular_grid(obj: xr.Dataset | xr.DataArray) -> bool:
    """Whether ``lat``/``lon`` are the 1-D axes of a regular grid (dims ``lat`` and ``lon``)."""
    return ("lat" in obj.coords and "lon" in obj.coords and obj["lat"].dims == ("lat",)
            and obj["lon"].dims == ("lon",))


def _expand_scalar_latlon(ds: xr.Dataset) -> tuple[xr.Dataset, list[str]]:
    """A single point stored with scalar ``lat``/``lon`` coordinates (``tas(time)``), or a
    regular grid whose size-1 ``lat`` or ``lon`` dim was removed (``tas(time, lat)`` beside a
    scalar ``lon``: ``ncks``/``cdo`` and xarray's ``isel(lon=0)`` do that), gets those size-1
    dims back on its variables with a time axis, so that it is the 1 x 1 (n x 1) regular grid it
    is; returns the dataset and the dims added (:func:`restore_layout` removes them again).

    >>> ds = xr.Dataset({"tas": ("time", np.zeros(3))}, coords={"lat": 50.0, "lon": 10.0})
    >>> out, added = _expand_scalar_latlon(ds)
    >>> out.tas.dims, added, out.lat.values.tolist()
    (('time', 'lat', 'lon'), ['lat', 'lon'], [50.0])
    """
    if "lat" not in ds.coords or "lon" not in ds.coords:
        return ds, []
    lat, lon = ds["lat"], ds["lon"]
    if lat.ndim == 0 and lon.ndim == 0:
        expand = ["lat", "lon"]
    elif lat.ndim == 0 and lon.dims == ("lon",):
        expand = ["lat"]
    elif lon.ndim == 0 and lat.dims == ("lat",):
        expand = ["lon"]
    else:
        return ds, []
    timed = [n for n in ds.data_vars if "time" in ds[n].dims and not _is_bounds_name(str(n))]
    if not timed or any(d in ds.dims for d in expand):
        return ds, []
    coords = {d: ds[d] for d in expand}
    out = ds.drop_vars(expand)
    for n in timed:
        var = out[n]
        # the new dims after the existing ones: (time, lat) + lon, or (time,) + (lat, lon)
        out[n] = var.expand_dims({d: 1 for d in expand}, axis=[var.ndim + k for k in
                                                             range(len(expand))])
        out[n].attrs, out[n].encoding = ds[n].attrs, ds[n].encoding
    out = out.assign_coords({d: (d, np.atleast_1d(coords[d].values), coords[d].attrs)
                             for d in expand})
    for d in expand:
        out[d].encoding = dict(coords[d].encoding)
    out.encoding = dict(ds.encoding)
    return out, expand


def _is_bounds_name(name: str) -> bool:
    return name.endswith(("_bnds", "_bounds", "_bnd")) or name in ("bnds", "bounds")


def _latlon_order(dims: tuple[str, ...]) -> tuple[str, ...]:
    """``dims`` with ``lat`` before ``lon`` (the order the flattening of a regular grid into
    points assumes everywhere: point ``i * nlon + j`` is row ``i``, column ``j``).

    >>> _latlon_order(("time", "lon", "lat")), _latlon_order(("time", "lat", "lon"))
    (('time', 'lat', 'lon'), ('time', 'lat', 'lon'))
    """
    if "lat" not in dims or "lon" not in dims:
        return tuple(dims)
    i, j = dims.index("lat"), dims.index("lon")
    if i < j:
        return tuple(dims)
    out = list(dims)
    out[i], out[j] = "lon", "lat"
    return tuple(out)


def standardise(ds: xr.Dataset, source: str = "dataset") -> xr.Dataset:
    """``lat``/``lon`` names, ascending 1-D latitudes, one ``time`` axis, ``expver`` merged;
    ``lat``/``lon`` stored as data variables (a file without a ``coordinates`` attribute)
    become coordinates, and a rotated-pole file without them gets them computed. Variables
    with a time axis get it first and, on a regular grid, ``lat`` before ``lon`` (a file in
    ``(time, lon, lat)`` or ``(lat, lon, time)`` order); a single point with scalar
    ``lat``/``lon`` (or a grid with a size-1 ``lat`` or ``lon`` dim removed) gets them as
    size-1 dims. :func:`restore_layout` gives output files the input's layout back."""
    ds = merge_expver(ds, source)
    ds = _stack_grib_time(ds)
    # the dims orders as stored, to write back where they change below
    stored = {str(n): tuple(str(d) for d in ds[n].dims) for n in ds.data_vars
              if "time" in ds[n].dims}
    if "time" in ds.dims:
        ds = ds.transpose("time", ...)
    lat, lon = _find(ds, LAT_NAMES), _find(ds, LON_NAMES)
    derived: list[str] = []
    if lat is None and lon is None:
        rotated = _derive_rotated_latlon(ds, source)
        if rotated is not None:
            ds, lat, lon, derived = rotated, "lat", "lon", ["lat", "lon"]
    rename = {}
    if lat and lat != "lat":
        rename[lat] = "lat"
    if lon and lon != "lon":
        rename[lon] = "lon"
    if rename:
        ds = ds.rename(rename)
    promoted = [n for n in ("lat", "lon") if n in ds.data_vars and "time" not in ds[n].dims]
    if promoted:
        ds = ds.set_coords(promoted)
    ds, expanded = _expand_scalar_latlon(ds)
    if is_regular_grid(ds):  # (time, lon, lat) files: lat before lon, as flattening assumes
        for n in stored:
            if n in ds.data_vars and _latlon_order(ds[n].dims) != ds[n].dims:
                ds[n] = ds[n].transpose(*_latlon_order(ds[n].dims))
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
    # dims orders that changed (time put first, lat before lon), in the stored names
    back = {v: k for k, v in rename.items()}
    orders = {}
    for n, dims in stored.items():
        now = tuple(back.get(str(d), str(d)) for d in ds[n].dims if d not in expanded)
        if n in ds.data_vars and now != dims:
            orders[n] = list(dims)
    # what was changed, so that output written for this input can be given its layout back
    ds.encoding["atmocorrect_layout"] = {
        "renamed": back,
        "lat_flipped": flipped,
        **({"derived": derived} if derived else {}),
        **({"promoted": promoted} if promoted else {}),
        **({"expanded": expanded} if expanded else {}),
        **({"orders": orders} if orders else {}),
    }
    return ds


def restore_layout(ds: xr.Dataset, layout: dict | None) -> xr.Dataset:
    """Undo :func:`standardise`'s renaming, latitude flip, added size-1 dims and reordering
    (for output files).

    >>> import xarray as xr
    >>> raw = xr.Dataset(coords={"latitude": [50.0, 49.0]})
    >>> std = standardise(raw)
    >>> restore_layout(std, std.encoding["atmocorrect_layout"]).latitude.values.tolist()
    [50.0, 49.0]
    >>> raw = xr.Dataset({"tas": (("time", "lon", "lat"), np.zeros((1, 3, 2)))},
    ...                  coords={"lat": [48.0, 49.0], "lon": [8.0, 9.0, 10.0]})
    >>> std = standardise(raw)
    >>> std.tas.dims, restore_layout(std, std.encoding["atmocorrect_layout"]).tas.dims
    (('time', 'lat', 'lon'), ('time', 'lon', 'lat'))
    """
    if not layout:
        return ds
    if layout.get("derived"):  # computed from a rotated pole: not in the input, not written
        ds = ds.drop_vars([n for n in layout["derived"] if n in ds.variables])
    if layout.get("promoted"):  # data variables in the input: written as they were
        ds = ds.reset_coords([n for n in layout["promoted"] if n in ds.coords])
    if layout.get("lat_flipped") and "lat" in ds.dims:
        ds = ds.isel(lat=slice(None, None, -1))
    expanded = [d for d in layout.get("expanded", []) if d in ds.dims]
    if expanded:  # scalar lat/lon in the input: size-1 dims back to scalars
        ds = ds.isel({d: 0 for d in expanded})
    renamed = {k: v for k, v in layout.get("renamed", {}).items() if k in ds.variables or k in ds.dims}
    ds = ds.rename(renamed) if renamed else ds
    for name, order in layout.get("orders", {}).items():  # e.g. (member_id, time, lat, lon)
        if name in ds.data_vars and set(order) == set(ds[name].dims):
            ds[name] = ds[name].transpose(*order)
    return ds


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
