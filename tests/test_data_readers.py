"""Readers, units, calendars and interpolation on the shared real data (ERA5, CMIP6, GRIB).

Skipped, with the reason, when the sample data are absent (set ATMOCORRECT_SAMPLE_DATA).
"""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest
import xarray as xr

from atmocorrect.data import samples
from atmocorrect.data.conform import accumulation_period_seconds, conform_units
from atmocorrect.data.coords import longitude_convention, merge_expver, wrap_longitudes
from atmocorrect.data.pairs import PairConfig, load_pair
from atmocorrect.data.readers import check_grib, open_dataset, read_variable
from atmocorrect.data.regrid import interpolate_to
from atmocorrect.data.timeaxis import calendar_of, months, parse_period, select_years, years
from atmocorrect.errors import DataError

warnings.filterwarnings("ignore", category=FutureWarning)


@pytest.fixture(scope="module")
def data(sample_data):
    return sample_data


@pytest.fixture(scope="module")
def daily_pair(data):
    return load_pair([data / samples.DAILY_HISTORICAL], [data / samples.DAILY_REFERENCE],
                     PairConfig(("tas",)))


@pytest.fixture(scope="module")
def monthly_pair(data):
    return load_pair([data / p for p in samples.MONTHLY_HISTORICAL.values()],
                     [data / samples.MONTHLY_REFERENCE],
                     PairConfig(("tas", "pr", "psl"), outside="drop"))


# ----------------------------------------------------------------------------- daily pair
def test_daily_pair_is_on_the_model_points_with_cftime_calendars(daily_pair):
    assert daily_pair.ref["tas"].dims == ("time", "lat", "lon")
    np.testing.assert_allclose(daily_pair.ref["lat"], [48.169, 49.437, 50.704, 51.972], atol=1e-3)
    assert daily_pair.frequency == "day"
    assert daily_pair.sim_calendar == "gregorian"
    assert daily_pair.ref_calendar == "proleptic_gregorian"
    assert daily_pair.ref["tas"].attrs["units"] == "K"


def test_daily_pair_reproduces_the_documented_biases(daily_pair):
    """README: ERA5 minus model +1.7 K in January, -1.9 K in July; std 7.44 vs 8.16 K."""
    ref = select_years(daily_pair.ref["tas"], (1979, 2014))
    sim = daily_pair.sim["tas"]
    mr, ms = months(ref["time"].values), months(sim["time"].values)
    r, s = ref.values.reshape(ref.shape[0], -1), sim.values.reshape(sim.shape[0], -1)
    jan = r[mr == 1].mean() - s[ms == 1].mean()
    jul = r[mr == 7].mean() - s[ms == 7].mean()
    assert jan == pytest.approx(1.7, abs=0.1)
    assert jul == pytest.approx(-1.9, abs=0.1)
    assert r.std(0).mean() == pytest.approx(7.44, abs=0.1)
    assert s.std(0).mean() == pytest.approx(8.16, abs=0.1)


def test_bilinear_interpolation_matches_hand_computation(data):
    era = read_variable(data / samples.DAILY_REFERENCE, "t2m").isel(time=slice(0, 3))
    target = xr.Dataset(coords={"lat": [48.5, 50.0], "lon": [8.25]})
    out = interpolate_to(era, target)
    a = era.sel(lat=48.0, lon=8.0).values
    b = era.sel(lat=49.0, lon=8.0).values
    c = era.sel(lat=48.0, lon=9.0).values
    d = era.sel(lat=49.0, lon=9.0).values
    expected = 0.75 * (0.5 * a + 0.5 * b) + 0.25 * (0.5 * c + 0.5 * d)
    np.testing.assert_allclose(out.isel(lat=0, lon=0).values, expected, rtol=1e-6)
    np.testing.assert_allclose(out.sel(lat=50.0).isel(lon=0).values,
                               0.75 * era.sel(lat=50.0, lon=8.0).values
                               + 0.25 * era.sel(lat=50.0, lon=9.0).values, rtol=1e-6)


def test_scenario_and_reference_periods_do_not_overlap(data):
    with pytest.raises(DataError, match="do not overlap"):
        load_pair([data / samples.DAILY_SCENARIO], [data / samples.DAILY_REFERENCE],
                  PairConfig(("tas",)))


def test_missing_variable_names_file_and_contents(data):
    with pytest.raises(DataError, match=r"no variable 'pr'.*'tas'"):
        read_variable(data / samples.DAILY_HISTORICAL, "pr")


def test_degC_mislabelled_as_K_is_refused(data, tmp_path):
    ds = open_dataset(data / samples.DAILY_HISTORICAL).isel(time=slice(0, 400))
    bad = ds[["tas"]].copy()
    bad["tas"] = bad["tas"] - 273.15  # values now in degC, attribute still says K
    bad["tas"].attrs["units"] = "K"
    path = tmp_path / "tas_degC_labelled_K.nc"
    bad.to_netcdf(path)
    with pytest.raises(DataError, match=r"tas_degC_labelled_K.nc.*'tas'.*units 'K'.*degC"):
        load_pair([path], [data / samples.DAILY_REFERENCE], PairConfig(("tas",)))


def test_units_that_do_not_convert_are_refused(data):
    era = read_variable(data / samples.DAILY_REFERENCE, "t2m").isel(time=slice(0, 10))
    with pytest.raises(DataError, match=r"'t2m' is in 'K'.*'Pa'"):
        conform_units(era, "Pa")
    degc = conform_units(era, "degC")
    np.testing.assert_allclose(degc.values, era.values - 273.15, rtol=1e-6)


def test_mismatched_daily_calendars_are_converted_or_refused_on_request(data, tmp_path):
    ds = open_dataset(data / samples.DAILY_HISTORICAL)[["tas"]].isel(time=slice(0, 800))
    noleap = ds.convert_calendar("noleap", use_cftime=True)
    path = tmp_path / "tas_noleap.nc"
    noleap.to_netcdf(path)
    with pytest.raises(DataError, match=r"calendars differ.*'noleap'.*'proleptic_gregorian'"):
        load_pair([path], [data / samples.DAILY_REFERENCE],
                  PairConfig(("tas",), convert_calendar=False))
    pair = load_pair([path], [data / samples.DAILY_REFERENCE], PairConfig(("tas",)))
    assert calendar_of(pair.ref) in ("noleap", "365_day")
    assert not any(t.month == 2 and t.day == 29 for t in pair.ref["time"].values)


def test_truncated_netcdf_is_a_clear_error(data, tmp_path):
    src = data / samples.DAILY_REFERENCE
    cut = tmp_path / "truncated.nc"
    cut.write_bytes(src.read_bytes()[:200_000])
    with pytest.raises(DataError, match=r"truncated.nc: cannot open as netcdf"):
        open_dataset(cut)
    with pytest.raises(DataError, match="no such file"):
        open_dataset(tmp_path / "absent.nc")


# ----------------------------------------------------------------------------- monthly pair
def test_monthly_pair_merges_expver_converts_units_and_keeps_inside_cells(monthly_pair):
    ref, sim = monthly_pair.ref, monthly_pair.sim
    assert set(monthly_pair.variables) == {"tas", "pr", "psl"}
    np.testing.assert_allclose(sim["lat"], [46.42, 48.32], atol=0.01)
    np.testing.assert_allclose(sim["lon"], [3.75])
    assert ref.sizes["time"] == 520  # 518 ERA5 months + 2 ERA5T months, merged
    assert not np.isnan(ref["tas"].values).any()
    assert ref["pr"].attrs["units"] == "kg m-2 s-1"
    pr_mm_day = float(ref["pr"].mean()) * 86400
    assert 1.5 < pr_mm_day < 3.5  # ERA5 tp in m/day -> about 2.4 mm/day here
    assert float(ref["psl"].mean()) == pytest.approx(101730, abs=200)
    assert monthly_pair.sim_calendar == "noleap"  # monthly: matched by (year, month)


def test_expver_merge_prefers_final_era5(data):
    raw = xr.open_dataset(data / samples.MONTHLY_REFERENCE)
    merged = merge_expver(raw)
    assert "expver" not in merged.dims
    last = merged["t2m"].isel(time=-1)
    assert np.isfinite(last.values).all()  # April 2022 exists only as ERA5T (expver 5)
    np.testing.assert_allclose(merged["t2m"].isel(time=0).values,
                               raw["t2m"].isel(time=0).sel(expver=1).values)


def test_monthly_cells_outside_the_reference_are_an_error_by_default(data):
    with pytest.raises(DataError, match=r"outside the reference domain.*outside='drop'"):
        load_pair([data / samples.MONTHLY_HISTORICAL["tas"]], [data / samples.MONTHLY_REFERENCE],
                  PairConfig(("tas",)))


def test_accumulation_period(data):
    tp = read_variable(data / samples.MONTHLY_REFERENCE, "tp")
    assert accumulation_period_seconds(tp) == 86400.0
    daily = tp.isel(time=slice(0, 40)).assign_coords(
        time=xr.date_range("2000-01-01", periods=40, freq="D", calendar="standard",
                           use_cftime=True))
    with pytest.raises(DataError, match="daily time axis"):
        accumulation_period_seconds(daily)
    assert accumulation_period_seconds(daily, 3600.0) == 3600.0


# ----------------------------------------------------------------------------- GRIB
@pytest.fixture()
def grib():
    pytest.importorskip("cfgrib", reason="GRIB tests need cfgrib and ecCodes (offline extra)")


def test_grib_members_global_grid_is_standardised(data, grib):
    ds = open_dataset(data / samples.GRIB_MEMBERS)
    assert set(ds.data_vars) == {"z", "t"}
    assert ds["t"].dims == ("time", "number", "isobaricInhPa", "lat", "lon")
    assert ds["lat"].values[0] == -90.0 and ds["lat"].values[-1] == 90.0  # flipped to ascending
    assert longitude_convention(ds["lon"].values) == "0-360"
    assert ds.sizes == {"time": 4, "number": 10, "isobaricInhPa": 2, "lat": 61, "lon": 120}
    assert check_grib(data / samples.GRIB_MEMBERS) == 160
    t850 = ds["t"].sel(isobaricInhPa=850.0).isel(time=0, number=0)
    assert 200 < float(t850.min()) and float(t850.max()) < 320


def test_grib_interpolation_across_the_greenwich_seam(data, grib):
    t = open_dataset(data / samples.GRIB_MEMBERS)["t"].isel(time=0, number=0, isobaricInhPa=0)
    target = xr.Dataset(coords={"lat": [45.0], "lon": [-1.5, 1.5]})  # -180..180 target
    out = interpolate_to(t, target)
    west = 0.5 * (t.sel(lat=45.0, lon=357.0) + t.sel(lat=45.0, lon=0.0))
    east = 0.5 * (t.sel(lat=45.0, lon=0.0) + t.sel(lat=45.0, lon=3.0))
    np.testing.assert_allclose(out.values[0], [float(west), float(east)], rtol=1e-6)
    wrapped = wrap_longitudes(t, "-180-180")
    assert wrapped["lon"].values[0] == -180.0 and np.all(np.diff(wrapped["lon"].values) > 0)


def test_grib_levels_time_and_step_become_one_time_axis(data, grib):
    ds = open_dataset(data / samples.GRIB_LEVELS)
    assert ds["t"].dims[0] == "time" and ds.sizes["time"] == 4
    assert np.all(np.diff(ds["lon"].values) > 0) and ds["lon"].values[0] == -27.0
    assert ds["lat"].values[0] < ds["lat"].values[-1]
    assert [t.hour for t in ds["time"].values] == [6, 9, 18, 21]


def test_corrupted_and_truncated_grib_are_refused(data, grib, tmp_path):
    with pytest.raises(DataError, match=r"era5-levels-corrupted.grib: GRIB message 1 .*corrupted"):
        open_dataset(data / samples.GRIB_CORRUPTED)
    cut = tmp_path / "cut.grib"
    cut.write_bytes((data / samples.GRIB_MEMBERS).read_bytes()[:1_000_000])
    with pytest.raises(DataError, match=r"cut.grib: GRIB message 68 .*67 message\(s\) before"):
        open_dataset(cut)


def test_periods_and_years(daily_pair):
    assert parse_period("1979-2004") == (1979, 2004)
    with pytest.raises(DataError):
        parse_period("2004-1979")
    sub = select_years(daily_pair.sim, (2005, 2014))
    assert years(sub["time"].values).min() == 2005 and sub.sizes["time"] == 3652


def test_read_only_sample_files_are_not_written_next_to(data, grib, tmp_path):
    """cfgrib must not leave .idx files beside read-only data."""
    copy = tmp_path / "members.grib"
    shutil.copy(data / samples.GRIB_MEMBERS, copy)
    open_dataset(copy)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["members.grib"]
