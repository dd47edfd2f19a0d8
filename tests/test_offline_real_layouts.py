"""Offline correction on layouts that real files have and the shipped pair has not: dims in
another order ((time, lon, lat), (lat, lon, time)), curvilinear lat/lon stored (x, y) beside
data in (time, y, x), a single point with scalar lat/lon (or a size-1 lon dim removed), a
reference whose regular grid stores 2-D lat/lon, UDUNITS spellings of the units (degree_C,
kg.m-2.s-1, ...), a reference whose time axis is unsorted or repeats a day; and, as guards of
what already worked, julian/all_leap simulations, CMIP6 1e20 holes and an int16-packed
reference.

Every variant is built in tmp_path from the shared real files (skipped, with the reason,
when they are absent: set ATMOCORRECT_SAMPLE_DATA). Values are compared with those of the
same data in the shipped layout; few training steps: the tests check the pairing and the
layout, not the skill.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from atmocorrect import units as U
from atmocorrect.data import samples
from atmocorrect.data.pairs import PairConfig, load_pair
from atmocorrect.errors import DataError
from atmocorrect.offline.apply import CorrectionRequest, correct_file
from atmocorrect.offline.config import TrainConfig
from atmocorrect.offline.train import train_offline

warnings.filterwarnings("ignore", category=FutureWarning)
CODER = xr.coders.CFDatetimeCoder(use_cftime=True)
STEPS = 20
YEARS = slice("1979", "1986")
CALIBRATION = (1979, 1984)
PERIOD = (1985, 1986)


def _open(path) -> xr.Dataset:
    with xr.open_dataset(path, decode_times=CODER) as ds:
        return ds.load()


def _write(ds: xr.Dataset, path: Path, calendar: str | None = None) -> Path:
    ds["time"].encoding = {"units": "days since 1850-01-01", **(
        {"calendar": calendar} if calendar else {})}
    for name in ds.variables:
        ds[name].encoding.pop("coordinates", None)
    ds.to_netcdf(path)
    return path


@pytest.fixture(scope="module")
def real(sample_data):
    """The real daily simulation (1979-1986) and ERA5 (1979-1987), in memory."""
    sim = _open(sample_data / samples.DAILY_HISTORICAL).sel(time=YEARS)
    ref = _open(sample_data / samples.DAILY_REFERENCE).sel(time=slice("1979", "1987"))
    return sim, ref


@pytest.fixture(scope="module")
def grid(real, tmp_path_factory):
    """A 3 x 3 simulation grid (48.5-50.5N, 8.5-10.5E) from the real model series at the
    nearest model latitude plus a different offset in every cell (so that a cell mistaken
    for another shows), and the ERA5 file it is paired with."""
    sim, ref = real
    d = tmp_path_factory.mktemp("grid")
    lats, lons = [48.5, 49.5, 50.5], [8.5, 9.5, 10.5]
    base = sim["tas"].interp(lat=lats, method="nearest",
                             kwargs={"fill_value": "extrapolate"}).isel(lon=0, drop=True)
    offset = xr.DataArray(np.array([[0.0, -1.3, -2.6], [0.7, -0.6, -1.9], [1.4, 0.1, -1.2]]),
                          dims=("lat", "lon"), coords={"lat": lats, "lon": lons})
    tas = (base + offset).transpose("time", "lat", "lon").astype("float32")
    tas.attrs = sim["tas"].attrs
    out = xr.Dataset({"tas": tas, "time_bounds": sim["time_bounds"]}, attrs=sim.attrs)
    out["lat"].attrs = {"units": "degrees_north", "standard_name": "latitude"}
    out["lon"].attrs = {"units": "degrees_east", "standard_name": "longitude"}
    ref_path = d / "era5.nc"
    ref.to_netcdf(ref_path)
    return out, _write(out.copy(), d / "grid.nc"), ref_path


def _train_and_correct(sim: Path, ref: Path, out: Path, methods=("ml", "linear-scaling")):
    ckpt = train_offline([sim], [ref], out / "ck", PairConfig(("tas",)),
                         TrainConfig(steps=STEPS, calibration=CALIBRATION))
    return {m: _open(correct_file(CorrectionRequest(method=m, inputs=(sim,), period=PERIOD,
                                                    output=out / f"{m}.nc", model=ckpt)))
            for m in methods}


# ------------------------------------------------------------------ dims order
def test_simulation_in_time_lon_lat_order_is_corrected_cell_by_cell(grid, tmp_path):
    """(time, lon, lat) and (lat, lon, time) simulations: the corrected values of every cell
    are those of the (time, lat, lon) file, and the output keeps the input's order. (Before:
    the training paired each cell's values with another cell's reference (points flattened
    lon-major beside lat-major coordinates), silently: held-out seasonal MAE of ml 1.820 K
    instead of 1.085 K on the 1979-1990 / 1991-1995 variant.)"""
    ds, normal, ref = grid
    (tmp_path / "n").mkdir()
    want = _train_and_correct(normal, ref, tmp_path / "n")
    for order in (("time", "lon", "lat"), ("lat", "lon", "time")):
        tag = "_".join(order)
        path = _write(ds.assign(tas=ds["tas"].transpose(*order)), tmp_path / f"g_{tag}.nc")
        (tmp_path / tag).mkdir()
        got = _train_and_correct(path, ref, tmp_path / tag)
        for method, res in got.items():
            assert res["tas"].dims == order, (order, method)
            np.testing.assert_allclose(res["tas"].transpose("time", "lat", "lon").values,
                                       want[method]["tas"].values, atol=1e-5,
                                       err_msg=f"{order} {method}")


def test_reference_in_other_dims_orders_gives_the_same_pair(grid, tmp_path):
    ds, normal, ref = grid
    want = load_pair([normal], [ref], PairConfig(("tas",)))
    era5 = _open(ref)
    for order in (("time", "lon", "lat"), ("lat", "lon", "time")):
        path = tmp_path / f"era5_{'_'.join(order)}.nc"
        era5.assign(t2m=era5["t2m"].transpose(*order)).to_netcdf(path)
        got = load_pair([normal], [path], PairConfig(("tas",)))
        assert got.ref["tas"].dims == got.sim["tas"].dims == ("time", "lat", "lon")
        np.testing.assert_allclose(got.ref["tas"].values, want.ref["tas"].values, atol=1e-5)


def _two_d(ds: xr.Dataset, var: str, coord_dims=("y", "x")) -> xr.Dataset:
    """``ds`` on dims (y, x) with 2-D lat/lon (no rotated pole), stored over ``coord_dims``."""
    la, lo = np.meshgrid(ds["lat"].values, ds["lon"].values, indexing="ij")
    out = ds.rename(lat="y", lon="x").drop_vars(["y", "x"])
    attrs = {"lat": {"units": "degrees_north", "standard_name": "latitude"},
             "lon": {"units": "degrees_east", "standard_name": "longitude"}}
    coords = {n: xr.DataArray(v, dims=("y", "x"), attrs=attrs[n]).transpose(*coord_dims)
              for n, v in (("lat", la), ("lon", lo))}
    out = out.assign_coords(coords)
    out[var].attrs.pop("coordinates", None)
    return out


def test_curvilinear_latlon_stored_x_y_pairs_each_cell_with_its_reference(grid, tmp_path):
    """2-D lat/lon stored (x, y) beside tas(time, y, x): the reference interpolated to the
    cells comes in the simulation's dims order, as for lat/lon stored (y, x). (Before: it came
    (time, x, y) and the training paired cell (y, x) with the reference of (x, y).)"""
    ds, _, ref = grid
    yx = load_pair([_write(_two_d(ds, "tas"), tmp_path / "yx.nc")], [ref], PairConfig(("tas",)))
    xy = load_pair([_write(_two_d(ds, "tas", ("x", "y")), tmp_path / "xy.nc")], [ref],
                   PairConfig(("tas",)))
    assert xy.sim["tas"].dims == xy.ref["tas"].dims == ("time", "y", "x")
    np.testing.assert_allclose(xy.ref["tas"].values, yx.ref["tas"].values, atol=1e-5)
    cells = xy.ref["tas"].isel(time=0)
    assert float(cells.lat.isel(y=2, x=0)) == 50.5 and float(cells.lon.isel(y=2, x=0)) == 8.5


# ------------------------------------------------------------------ single points
def test_single_point_with_scalar_lat_lon(real, tmp_path):
    """A one-point simulation with scalar lat/lon (tas(time)): trained, corrected by ml and a
    classical method, and written as tas(time) with scalar lat/lon; the values are those of
    the same point stored as a 1 x 1 grid. (Before: IndexError in the training.) A 4 x 1 grid
    stored without its size-1 lon dim is corrected like the 4 x 1 grid."""
    sim, ref = real
    ref_path = tmp_path / "era5.nc"
    ref.to_netcdf(ref_path)
    one = _write(sim.isel(lat=[1], lon=[0]), tmp_path / "one_1x1.nc")
    scalar = _write(sim.isel(lat=1, lon=0), tmp_path / "one_scalar.nc")
    for sub in "abcd":
        (tmp_path / sub).mkdir()
    want = _train_and_correct(one, ref_path, tmp_path / "a")
    got = _train_and_correct(scalar, ref_path, tmp_path / "b")
    for method, res in got.items():
        assert res["tas"].dims == ("time",)
        assert float(res["lat"]) == pytest.approx(49.43662) and float(res["lon"]) == 10.0
        np.testing.assert_allclose(res["tas"].values, want[method]["tas"].values[:, 0, 0],
                                   atol=1e-5)
    full = _write(sim.copy(), tmp_path / "full.nc")
    no_lon = _write(sim.isel(lon=0), tmp_path / "no_lon_dim.nc")
    want = _train_and_correct(full, ref_path, tmp_path / "c", methods=("ml",))["ml"]
    got = _train_and_correct(no_lon, ref_path, tmp_path / "d", methods=("ml",))["ml"]
    assert got["tas"].dims == ("time", "lat") and float(got["lon"]) == 10.0
    np.testing.assert_allclose(got["tas"].values, want["tas"].values[:, :, 0], atol=1e-5)


# ------------------------------------------------------------------ reference grid
def test_reference_regular_grid_with_2d_latlon(grid, tmp_path):
    """ERA5 whose regular grid stores lat(y, x)/lon(y, x) (as some regridders and
    converters write it), in either orientation: the same pair as from 1-D axes. (Before:
    "variable 'tas' has no lat/lon grid".) A truly curvilinear reference is refused, saying
    so."""
    _, normal, ref = grid
    era5 = _open(ref).drop_vars("realization", errors="ignore")
    want = load_pair([normal], [ref], PairConfig(("tas",)))
    flipped = era5.isel(lat=slice(None, None, -1))  # north to south, as ERA5 often is
    for dims in (("y", "x"), ("x", "y")):
        path = tmp_path / f"era5_2d_{dims[0]}{dims[1]}.nc"
        _write(_two_d(flipped, "t2m", dims).transpose("time", *dims), path)
        got = load_pair([normal], [path], PairConfig(("tas",)))
        np.testing.assert_allclose(got.ref["tas"].values, want.ref["tas"].values, atol=1e-5)
    bent = _two_d(era5, "t2m")
    bent = bent.assign_coords(lat=bent["lat"] + 0.1 * bent["x"].copy(data=np.arange(5.0)))
    _write(bent, tmp_path / "era5_curvi.nc")
    with pytest.raises(DataError, match=r"era5_curvi.nc.*curvilinear.*regular lat/lon grid"):
        load_pair([normal], [tmp_path / "era5_curvi.nc"], PairConfig(("tas",)))


# ------------------------------------------------------------------ units
@pytest.mark.parametrize("spelling, canonical", [
    ("degree_C", "degC"), ("degrees_C", "degC"), ("degrees C", "degC"), ("degreeC", "degC"),
    ("degrees_Celsius", "degC"), ("Celsius", "degC"), ("deg_C", "degC"), ("kelvin", "K"),
    ("degK", "K"), ("degree_K", "K"), ("mm/day", "mm day-1"), ("mm d-1", "mm day-1"),
    ("mm day-1", "mm day-1"), ("mm d^-1", "mm day-1"), ("kg/m2/s", "kg m-2 s-1"),
    ("kg m**-2 s**-1", "kg m-2 s-1"), ("kg.m-2.s-1", "kg m-2 s-1"),
    ("kg m^-2 s^-1", "kg m-2 s-1"), ("kg/(m2 s)", "kg m-2 s-1"), ("W/m^2", "W m-2"),
])
def test_udunits_spellings(spelling, canonical):
    assert U.canonical(spelling) == canonical


def test_units_spelled_the_udunits_way_convert(real, grid, sample_data, tmp_path):
    """tas in 'degree_C' against ERA5 in 'degrees C', and monthly pr in 'kg.m-2.s-1': the
    pair of the same values in K (kg m-2 s-1). (Before: "cannot convert units 'K' to
    'degree_C'".)"""
    sim, _ = real
    _, _, ref = grid
    base = load_pair([_write(sim.copy(), tmp_path / "k.nc")], [ref], PairConfig(("tas",)))
    c = sim.copy()
    c["tas"] = (sim["tas"] - np.float32(273.15)).assign_attrs({**sim["tas"].attrs,
                                                                "units": "degree_C"})
    era5 = _open(ref)
    era5["t2m"] = (era5["t2m"] - np.float32(273.15)).assign_attrs(
        {**era5["t2m"].attrs, "units": "degrees C"})
    era5.to_netcdf(tmp_path / "era5_degC.nc")
    got = load_pair([_write(c, tmp_path / "c.nc")], [tmp_path / "era5_degC.nc"],
                    PairConfig(("tas",)))
    assert got.ref["tas"].attrs["units"] == "degree_C"
    np.testing.assert_allclose(got.ref["tas"].values, base.ref["tas"].values - 273.15,
                               atol=2e-4)
    pr_file = sample_data / samples.MONTHLY_HISTORICAL["pr"]
    pr = _open(pr_file).sel(time=slice("1979", "1990"))
    pr["pr"].attrs["units"] = "kg.m-2.s-1"
    cfg = PairConfig(("pr",), outside="drop")
    ref_m = sample_data / samples.MONTHLY_REFERENCE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = load_pair([pr_file], [ref_m], cfg)
        got = load_pair([_write(pr, tmp_path / "pr.nc", "noleap")], [ref_m], cfg)
    years = slice("1979", "1990")
    np.testing.assert_allclose(got.ref["pr"].sel(time=years).values,
                               want.ref["pr"].sel(time=years).values, rtol=1e-6)


# ------------------------------------------------------------------ reference time axis
def test_reference_unsorted_or_with_a_repeated_day(grid, tmp_path):
    """Two days swapped, a day stored twice with the same values (two downloads merged): the
    same pair as from the clean file, with a warning; a day stored twice with different
    values is refused naming the day and the variable. (Before: "time is not strictly
    increasing at step 101".)"""
    _, normal, ref = grid
    era5 = _open(ref)
    want = load_pair([normal], [ref], PairConfig(("tas",)))
    order = np.arange(era5.sizes["time"])
    order[[100, 101]] = order[[101, 100]]
    order = np.insert(order, 2000, 2000)  # 1984-06-23 twice
    era5.isel(time=order).to_netcdf(tmp_path / "era5_messy.nc")
    with pytest.warns(UserWarning, match=r"era5_messy.nc: the time steps are not in time "
                      r"order \(first: 1979-04-12 00:00 before 1979-04-11 00:00\): sorted; "
                      r"1 step\(s\) stored twice .*1984-06-23"):
        got = load_pair([normal], [tmp_path / "era5_messy.nc"], PairConfig(("tas",)))
    np.testing.assert_array_equal(got.ref["tas"].values, want.ref["tas"].values)
    twice = era5.isel(time=np.insert(np.arange(era5.sizes["time"]), 2000, 2000))
    t2m = twice["t2m"].values.copy()
    t2m[2001] += 0.5
    twice.assign(t2m=twice["t2m"].copy(data=t2m)).to_netcdf(tmp_path / "era5_twice.nc")
    with pytest.raises(DataError, match=r"era5_twice.nc: time step 1984-06-23 00:00 is stored "
                       r"twice with different values of 't2m' \(up to 0.5 K apart\)"):
        load_pair([normal], [tmp_path / "era5_twice.nc"], PairConfig(("tas",)))


# ------------------------------------------------------------------ guards: worked already
def test_julian_all_leap_holes_and_packed_reference_pair_as_expected(real, grid, tmp_path):
    """What already worked, kept: julian and all_leap (366_day) simulations (the reference
    in their calendar, the values at each date those of the standard-calendar pair), CMIP6
    1e20 holes in the simulation (missing, not 1e20), an int16-packed ERA5 with _FillValue
    holes (unpacked to within half a packing step, holes missing)."""
    sim, _ = real
    _, _, ref = grid
    base = load_pair([_write(sim.copy(), tmp_path / "std.nc")], [ref], PairConfig(("tas",)))
    for calendar in ("julian", "366_day"):
        s = sim.drop_vars("time_bounds").convert_calendar(calendar, align_on="date",
                                                          use_cftime=True)
        pair = load_pair([_write(s, tmp_path / f"{calendar}.nc", calendar)], [ref],
                         PairConfig(("tas",)))
        assert pair.sim_calendar == calendar
        assert pair.ref["time"].values[0].calendar == ("julian" if calendar == "julian"
                                                       else "all_leap")
        common = base.ref["tas"].sel(time=slice("1979-01", "1979-02-28"))
        np.testing.assert_allclose(pair.ref["tas"].isel(time=slice(0, common.sizes["time"]))
                                   .values, common.values, atol=1e-5)
    holes = sim.copy()
    tas = holes["tas"].values.copy()
    tas[[10, 500, 1000], 1, 0] = np.nan
    holes["tas"] = holes["tas"].copy(data=tas)
    holes["tas"].encoding = {"_FillValue": np.float32(1e20), "missing_value": np.float32(1e20)}
    pair = load_pair([_write(holes, tmp_path / "holes.nc")], [ref], PairConfig(("tas",)))
    assert int(pair.sim["tas"].isnull().sum()) == 3 and float(pair.sim["tas"].max()) < 350
    era5 = _open(ref)
    t2m = era5["t2m"].values.copy()
    t2m[[5, 6], 2, 2] = np.nan
    era5["t2m"] = era5["t2m"].copy(data=t2m)
    lo, hi = float(np.nanmin(t2m)), float(np.nanmax(t2m))
    scale = (hi - lo) / 65000.0
    era5["t2m"].encoding = {"dtype": "int16", "scale_factor": scale,
                            "add_offset": (hi + lo) / 2, "_FillValue": np.int16(-32767)}
    era5.to_netcdf(tmp_path / "era5_int16.nc")
    std = load_pair([_write(sim.copy(), tmp_path / "pt.nc")], [ref], PairConfig(("tas",)))
    packed = load_pair([tmp_path / "pt.nc"], [tmp_path / "era5_int16.nc"], PairConfig(("tas",)))
    diff = np.abs(packed.ref["tas"].values - std.ref["tas"].values)
    # the hole at 50N 10E: missing at the points between 49N and 51N, 2 days each
    assert np.nanmax(diff) <= scale and np.isnan(diff).sum() == 4
