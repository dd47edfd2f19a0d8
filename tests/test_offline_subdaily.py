"""A reference at a finer time step than the simulation: hourly ERA5 against a daily model.

The hourly reference is built from the real ERA5 daily t2m (1979-1981, the 5 x 3 cells around
the model's 4 points) plus a diurnal cycle whose mean over the 24 hours is zero, so the daily
mean of the hours is the real daily mean; the simulation is the real IPSL-CM6A-LR tas. Checked
on values: the daily mean of the hours gives the daily pair, ``tasmax`` the daily maximum
(ERA5 ``mx2t`` stamped at the end of its hour), hourly ``tp`` in m per hour the daily flux of
the 24 hours ending at 24:00, incomplete days and gaps become missing with a warning,
irregular steps are an error, ``noleap`` and ``360_day`` models get the hourly reference as
the daily one, monthly models the monthly mean of complete days, and ``train offline`` +
``correct --method ml`` run on it as on the daily file. Skipped with the reason when the
sample data are absent (set ATMOCORRECT_SAMPLE_DATA).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import cftime
import numpy as np
import pytest
import xarray as xr
from conftest import diurnal_anomaly, era5_daily_t2m, hourly_times

from atmocorrect import cli
from atmocorrect.data import samples
from atmocorrect.data.pairs import PairConfig, load_pair
from atmocorrect.errors import DataError

CODER = xr.coders.CFDatetimeCoder(use_cftime=True)
YEARS = slice("1979", "1981")
INCOMPLETE = "hold fewer values than a complete"


def _open(path: Path) -> xr.Dataset:
    return xr.open_dataset(path, decode_times=CODER)


def _write(ds: xr.Dataset, path: Path, units: str = "hours since 1979-01-01",
           calendar: str = "proleptic_gregorian") -> Path:
    ds["time"].encoding = {"units": units, "calendar": calendar, "dtype": "int64"}
    ds.to_netcdf(path)
    return path


def _interp(da: xr.DataArray, sim: xr.Dataset) -> np.ndarray:
    """Bilinear interpolation to the model's points, as the pair does."""
    return da.interp(lat=sim["lat"].astype("f8"), lon=sim["lon"].astype("f8")).values


@pytest.fixture(scope="module")
def case(sample_data, tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("subdaily")
    daily = era5_daily_t2m(sample_data, YEARS)
    days = daily["time"].values
    # zero mean over the 24 hours: the daily mean of the hours is the real daily mean
    anom = diurnal_anomaly(days, np.random.default_rng(0))  # (days, 24)
    hourly = daily.values.astype("f8")[:, None] + anom[:, :, None, None] * (
        1.0 + 0.05 * daily["lat"].values[None, None, :, None] - 2.5)  # cells differ a little
    np.testing.assert_allclose(hourly.mean(1), daily.values, atol=1e-4)
    times = hourly_times(days)
    t2m = xr.DataArray(hourly.reshape(-1, *daily.shape[1:]), dims=("time", "lat", "lon"),
                       coords={"time": times, "lat": daily["lat"], "lon": daily["lon"]},
                       attrs=daily.attrs, name="t2m")  # float64, so means are exact
    ref = _write(t2m.to_dataset(), d / "era5_t2m_hourly.nc")
    # ERA5 mx2t: the maximum over the hour ending at the stamp (the hour before it)
    before = np.concatenate([t2m.values[:1], t2m.values[:-1]])
    mx2t = t2m.copy(data=np.maximum(before, t2m.values) + 0.2).rename("mx2t")
    mx2t.attrs = {"units": "K", "long_name": "Maximum temperature at 2 metres since previous "
                  "post-processing", "GRIB_stepType": "max"}
    _write(mx2t.to_dataset(), d / "era5_mx2t_hourly.nc")
    sim_ds = _open(sample_data / samples.DAILY_HISTORICAL).sel(time=YEARS).load()
    sim = d / "tas_day.nc"
    sim_ds.to_netcdf(sim)
    return {"dir": d, "ref": ref, "mx2t": d / "era5_mx2t_hourly.nc", "sim": sim,
            "sim_ds": sim_ds, "t2m": t2m, "mx2t_da": mx2t, "data": sample_data}


def _no_incomplete_warning(record: list) -> None:
    assert not [w for w in record if INCOMPLETE in str(w.message)], [str(w.message) for w in record]


# ------------------------------------------------------------------ (a) mean: the daily pair
def test_hourly_reference_gives_the_daily_pair(case):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        hourly = load_pair([case["sim"]], [case["ref"]], PairConfig(("tas",)))
    _no_incomplete_warning(record)
    daily = load_pair([case["sim"]], [case["data"] / samples.DAILY_REFERENCE],
                      PairConfig(("tas",)))
    h = hourly.ref["tas"]
    d = daily.ref["tas"].sel(time=h["time"])
    assert h.sizes["time"] == 1096 and h["time"].values[0] == cftime.DatetimeProlepticGregorian(
        1979, 1, 1, has_year_zero=True)  # 00:00 of the date, as the daily ERA5 file
    assert hourly.frequency == "day" and h.dims == d.dims
    np.testing.assert_allclose(h.values, d.values, atol=1e-5)
    assert "daily mean of 3600 s steps" in h.attrs["aggregation"]


# ------------------------------------------------------------------ (b) tasmax: the daily max
def _tasmax_sim(case, cell_methods: str | None, name: str) -> Path:
    s = case["sim_ds"].rename(tas="tasmax")
    attrs = {k: v for k, v in case["sim_ds"]["tas"].attrs.items() if k != "cell_methods"}
    if cell_methods is not None:
        attrs["cell_methods"] = cell_methods
    s["tasmax"] = s["tasmax"] + np.float32(4.0)
    s["tasmax"].attrs = attrs
    path = case["dir"] / name
    s.to_netcdf(path)
    return path


def test_tasmax_gets_the_daily_maximum_of_the_hours(case):
    sim = _tasmax_sim(case, "area: mean time: maximum", "tasmax_day.nc")
    pair = load_pair([sim], [case["ref"]],
                     PairConfig(("tasmax",), reference_names={"tasmax": "t2m"}))
    t2m = case["t2m"]
    daymax = t2m.values.reshape(-1, 24, *t2m.shape[1:]).max(1)
    expected = _interp(xr.DataArray(daymax, dims=t2m.dims,
                                    coords={"lat": t2m["lat"], "lon": t2m["lon"]}),
                       case["sim_ds"])
    np.testing.assert_allclose(pair.ref["tasmax"].values, expected, atol=1e-5)
    mean = load_pair([case["sim"]], [case["ref"]], PairConfig(("tas",))).ref["tas"]
    assert 1.5 < float((pair.ref["tasmax"] - mean).mean()) < 6.0  # not the mean (before: 0)
    # without cell_methods the CMIP name says it: the same
    bare = _tasmax_sim(case, None, "tasmax_bare.nc")
    same = load_pair([bare], [case["ref"]],
                     PairConfig(("tasmax",), reference_names={"tasmax": "t2m"}))
    np.testing.assert_array_equal(same.ref["tasmax"].values, pair.ref["tasmax"].values)
    # tasmax made from tas keeps tas's 'time: mean': followed, but warned about
    copied = _tasmax_sim(case, "area: time: mean", "tasmax_copied.nc")
    with pytest.warns(UserWarning, match=r"tasmax_copied.nc: variable 'tasmax' has "
                      r"cell_methods 'area: time: mean' \(time: mean\), not the time: maximum"):
        load_pair([copied], [case["ref"]],
                  PairConfig(("tasmax",), reference_names={"tasmax": "t2m"}))
    # ERA5 hourly mx2t: each value is the maximum of the hour ending at its stamp, so the day
    # is 01:00 .. 24:00; its first day has no 00:00 before it: days 1979-01-01 .. 1981-12-30
    # are complete, 1981-12-31 lacks its last hour
    with pytest.warns(UserWarning, match=r"era5_mx2t_hourly.nc: 1 of 1096 days of tasmax "
                      r"hold fewer values.*first: 1981-12-31, 23 of 24"):
        mx = load_pair([sim], [case["mx2t"]], PairConfig(("tasmax",))).ref["tasmax"]
    m = case["mx2t_da"].values
    ends = m[1:-23].reshape(-1, 24, *m.shape[1:]).max(1)  # stamps 01:00 d .. 00:00 d+1
    expected = _interp(xr.DataArray(ends, dims=t2m.dims,
                                    coords={"lat": t2m["lat"], "lon": t2m["lon"]}),
                       case["sim_ds"])
    got = mx.sel(time=slice("1979-01-01", "1981-12-30"))
    np.testing.assert_allclose(got.values, expected, atol=1e-5)
    assert np.isnan(mx.sel(time="1981-12-31").values).all()


def test_monthly_tasmax_is_the_monthly_mean_of_complete_daily_maxima(case):
    """A monthly model (CMIP6 Amon tasmax: 'time: maximum within days time: mean over days')
    against the hourly reference: the daily maxima, then their monthly mean; a month with an
    incomplete day is missing."""
    s = case["sim_ds"]["tas"].resample(time="MS").mean() + np.float32(4.0)
    s = s.assign_coords(time=[t + np.timedelta64(14, "D").item() for t in s["time"].values])
    s.attrs = {"units": "K", "cell_methods":
               "area: mean time: maximum within days time: mean over days"}
    sim = _write(s.rename("tasmax").to_dataset(), case["dir"] / "tasmax_Amon.nc",
                 "days since 1850-01-01", "gregorian")
    t2m = case["t2m"]
    cut = t2m.drop_isel(time=np.arange(24 * 40 + 3, 24 * 40 + 6))  # a gap on 1979-02-10
    ref = _write(cut.to_dataset(), case["dir"] / "era5_gap.nc")
    with pytest.warns(UserWarning) as record:
        pair = load_pair([sim], [ref],
                         PairConfig(("tasmax",), reference_names={"tasmax": "t2m"}))
    text = " ".join(str(w.message) for w in record)
    assert "1 of 1096 days" in text and "first: 1979-02-10, 21 of 24" in text
    assert "1 of 36 months" in text and "first: 1979-02, 27 of 28" in text
    got = pair.ref["tasmax"]
    assert pair.frequency == "month" and got.sizes["time"] == 36
    assert np.isnan(got.isel(time=1).values).all() and np.isfinite(got.drop_isel(time=1)).all()
    daymax = t2m.resample(time="1D").max()
    expected = _interp(daymax.resample(time="MS").mean(), case["sim_ds"])
    np.testing.assert_allclose(got.drop_isel(time=1).values,
                               np.delete(expected, 1, axis=0), atol=1e-5)


# ------------------------------------------------------------------ (c) hourly tp in m
def test_hourly_tp_in_metres_gives_the_daily_flux(case):
    t2m = case["t2m"]
    rng = np.random.default_rng(1)
    amount = rng.gamma(0.4, 5e-4, t2m.shape) * (rng.random(t2m.shape) < 0.15)  # m per hour
    tp = t2m.copy(data=amount).rename("tp")
    tp.attrs = {"units": "m", "long_name": "Total precipitation"}
    ref = _write(tp.to_dataset(), case["dir"] / "era5_tp_hourly.nc")
    s = case["sim_ds"].rename(tas="pr")
    s["pr"] = xr.full_like(s["pr"], 3e-5).assign_attrs(
        units="kg m-2 s-1", standard_name="precipitation_flux", cell_methods="area: time: mean")
    sim = case["dir"] / "pr_day.nc"
    s.to_netcdf(sim)
    with pytest.warns(UserWarning, match=r"1 of 1096 days of pr.*first: 1981-12-31, 23 of 24"):
        pair = load_pair([sim], [ref], PairConfig(("pr",)))
    got = pair.ref["pr"].sel(time=slice("1979-01-01", "1981-12-30"))
    # the day d is the 24 hourly amounts stamped 01:00 d .. 00:00 d+1 (ERA5: each amount is
    # the hour ending at its stamp); the mean flux of a day is its total / 86400 s
    total = amount[1:-23].reshape(-1, 24, *amount.shape[1:]).sum(1)  # m per day
    flux = xr.DataArray(total * 1000.0 / 86400.0, dims=t2m.dims,
                        coords={"lat": t2m["lat"], "lon": t2m["lon"]})
    np.testing.assert_allclose(got.values, _interp(flux, case["sim_ds"]), rtol=1e-6, atol=1e-12)
    assert pair.ref["pr"].attrs["units"] == "kg m-2 s-1"
    assert np.isnan(pair.ref["pr"].sel(time="1981-12-31").values).all()
    assert 1e-6 < float(got.mean()) < 1e-4  # ~0.1-9 mm a day: neither x1000 nor /24
    with warnings.catch_warnings(record=True) as record:  # a period kept from daily files
        warnings.simplefilter("always")
        load_pair([sim], [ref], PairConfig(("pr",), accumulation_period=86400.0))
    assert any("'tp': each amount is taken as accumulated over 86400 s (the accumulation "
               "period given) but the values are 3600 s apart" in str(w.message) for w in record)
    # the same hourly amounts downloaded every 6th hour: which accumulation? say it
    six = _write(tp.isel(time=slice(0, None, 6)).to_dataset(), case["dir"] / "era5_tp_6h.nc")
    with pytest.raises(DataError, match=r"era5_tp_6h.nc: variable 'tp' is an accumulation in "
                       r"'m' on a 6-hourly time axis.*--accumulation-period 3600.*21600"):
        load_pair([sim], [six], PairConfig(("pr",)))
    with pytest.warns(UserWarning, match="fewer values"):
        sampled = load_pair([sim], [six], PairConfig(("pr",), accumulation_period=3600.0))
    hours = amount[::6][1:-3].reshape(-1, 4, *amount.shape[1:]).mean(1)  # m per hour
    rate = xr.DataArray(hours * 1000.0 / 3600.0, dims=t2m.dims,
                        coords={"lat": t2m["lat"], "lon": t2m["lon"]})
    np.testing.assert_allclose(sampled.ref["pr"].sel(time=slice("1979-01-01", "1981-12-30")),
                               _interp(rate, case["sim_ds"]), rtol=1e-6, atol=1e-12)


def test_era5_land_running_totals_are_deaccumulated(case):
    """ERA5-Land's hourly tp is the total since 00 UTC (01 UTC: the first hour; 00 UTC: the
    whole day before): recognised and de-accumulated, so the pair equals the one from hourly
    amounts; ERA5's hourly amounts are not mistaken for running totals."""
    t2m = case["t2m"]
    rng = np.random.default_rng(2)
    amount = rng.gamma(0.4, 5e-4, t2m.shape) * (rng.random(t2m.shape) < 0.15)  # m per hour
    hours = np.array([t.hour for t in t2m["time"].values])
    running = amount.copy()
    for i in range(1, running.shape[0]):
        if hours[i] != 1:
            running[i] += running[i - 1]
    tp = t2m.copy(data=amount).rename("tp").assign_attrs(units="m", long_name="Total precipitation")
    hourly = _write(tp.to_dataset(), case["dir"] / "era5_tp_amounts.nc")
    land = _write(tp.copy(data=running).to_dataset(), case["dir"] / "era5_land_tp.nc")
    s = case["sim_ds"].rename(tas="pr")
    s["pr"] = xr.full_like(s["pr"], 3e-5).assign_attrs(
        units="kg m-2 s-1", standard_name="precipitation_flux", cell_methods="area: time: mean")
    sim = case["dir"] / "pr_day_land.nc"
    s.to_netcdf(sim)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        from_amounts = load_pair([sim], [hourly], PairConfig(("pr",)))
    assert not [w for w in record if "running totals" in str(w.message)]
    with pytest.warns(UserWarning, match=r"era5_land_tp.nc: 'tp' holds running totals since "
                      r"00 UTC .*de-accumulated"):
        from_land = load_pair([sim], [land], PairConfig(("pr",)))
    days = slice("1979-01-02", "1981-12-30")  # the first stamp (00 UTC) has no hour before it
    a, b = from_amounts.ref["pr"].sel(time=days), from_land.ref["pr"].sel(time=days)
    assert float(a.mean()) > 1e-6
    np.testing.assert_allclose(b.values, a.values, rtol=1e-6, atol=1e-12)
    # read as hourly amounts, the running totals would be about 12 times too wet
    assert float(a.mean()) * 5 < float(running.mean() * 1000.0 / 3600.0)


# ------------------------------------------------------------------ (d) incomplete days
def test_incomplete_days_and_gaps_are_missing_with_a_warning(case):
    t2m = case["t2m"]
    start = 24 * (31 + 28 + 31 + 30 + 31 + 14) + 10  # 1979-06-15 10:00
    cut = t2m.drop_isel(time=np.r_[0:5, start:start + 4])  # first day from 05:00; 4 h gap
    vals = cut.values.copy()
    nan_hour = int(np.flatnonzero([str(t) == "1980-03-10 12:00:00"
                                   for t in cut["time"].values])[0])
    vals[nan_hour] = np.nan  # an hour missing as NaN (an ERA5T merge)
    ref = _write(cut.copy(data=vals).to_dataset(), case["dir"] / "era5_incomplete.nc")
    with pytest.warns(UserWarning, match=r"reference .*era5_incomplete.nc: 3 of 1096 days of "
                      r"tas hold fewer values than a complete day \(first: 1979-01-01, 19 of "
                      r"24 values\).*missing \(NaN\)"):
        got = load_pair([case["sim"]], [ref], PairConfig(("tas",))).ref["tas"]
    full = load_pair([case["sim"]], [case["ref"]], PairConfig(("tas",))).ref["tas"]
    bad = ["1979-01-01", "1979-06-15", "1980-03-10"]
    for day in bad:
        assert np.isnan(got.sel(time=day).values).all(), day
    keep = ~np.isin([t.strftime("%Y-%m-%d") for t in got["time"].values], bad)
    np.testing.assert_array_equal(got.values[keep], full.values[keep])
    # a stamp off the hourly grid is an error naming the file and the step
    times = t2m["time"].values.copy()
    times[30] = times[30] + np.timedelta64(30, "m").item()
    odd = _write(t2m.assign_coords(time=times).isel(time=slice(0, 24 * 40)).to_dataset(),
                 case["dir"] / "era5_irregular.nc", "minutes since 1979-01-01")
    with pytest.raises(DataError, match=r"reference .*era5_irregular.nc: irregular time steps: "
                       r"step 30 \(1979-01-02 05:00 to 1979-01-02 06:30\) is 5400 s, not a "
                       r"whole number of the axis's 3600 s step"):
        load_pair([case["sim"]], [odd], PairConfig(("tas",)))


# ------------------------------------------------------------------ calendars
@pytest.mark.parametrize("calendar,days", [("noleap", 3 * 365), ("360_day", 1096 - 21)])
def test_other_model_calendars_get_the_hourly_reference_as_the_daily_one(case, calendar, days):
    """Aggregated in ERA5's calendar, then converted as a daily reference is: a ``noleap``
    model loses 29 February (all 24 hours of it), a ``360_day`` one the 31st days, and 29/30
    February are absent, not missing days (1096 days less 21 31st days)."""
    model = case["sim_ds"].drop_vars("time_bounds").convert_calendar(
        calendar, align_on="year" if calendar == "360_day" else None, use_cftime=True)
    sim = _write(model, case["dir"] / f"tas_{calendar}.nc", "hours since 1850-01-01", calendar)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        hourly = load_pair([sim], [case["ref"]], PairConfig(("tas",))).ref["tas"]
    _no_incomplete_warning(record)
    daily = load_pair([sim], [case["data"] / samples.DAILY_REFERENCE],
                      PairConfig(("tas",))).ref["tas"].sel(time=YEARS)
    assert hourly.sizes["time"] == days and np.isfinite(hourly.values).all()
    assert {t.calendar for t in hourly["time"].values} == {calendar}
    assert not any(t.month == 2 and t.day == 29 for t in hourly["time"].values) or \
        calendar == "360_day"
    np.testing.assert_array_equal(hourly["time"].values, daily["time"].values)
    np.testing.assert_allclose(hourly.values, daily.values, atol=1e-5)


# ------------------------------------------------------------------ (e) train + correct
def test_train_and_correct_on_the_hourly_reference(case, tmp_path):
    outs = {}
    for name, ref in (("hourly", case["ref"]),
                      ("daily", case["data"] / samples.DAILY_REFERENCE)):
        ckpt = tmp_path / f"ck_{name}"
        assert cli.main(["train", "offline", "--simulation", str(case["sim"]), "--reference",
                         str(ref), "--variables", "tas", "--calibration", "1979-1980",
                         "--steps", "20", "--out", str(ckpt), "--quiet"]) == 0
        out = tmp_path / f"ml_{name}.nc"
        assert cli.main(["correct", "--method", "ml", "--model", str(ckpt), "--input",
                         str(case["sim"]), "--period", "1981-1981", "--output", str(out),
                         "--quiet"]) == 0
        outs[name] = _open(out)["tas"]
    res = outs["hourly"]
    raw = case["sim_ds"]["tas"].sel(time="1981")
    assert res.shape == (365, 4, 1) and np.isfinite(res.values).all()
    assert 0.1 < float(np.abs(res.values - raw.values).mean()) < 3.0  # corrected, not wild
    # the hourly reference is the daily one: the same correction
    np.testing.assert_allclose(res.values, outs["daily"].values, atol=2e-3)


# ------------------------------------------------------------- (f) a 3-hourly simulation
def _three_hourly_sim(case, name: str, cell_methods: str, units: str, value: float) -> Path:
    """A 3-hourly model file (stamps 00:00, 03:00, ...) on the model's points, 1979-1981."""
    sim = case["sim_ds"]
    days = sim["time"].values
    stamps = np.array([cftime.DatetimeGregorian(t.year, t.month, t.day, h)
                       for t in days for h in range(0, 24, 3)])
    data = np.full((stamps.size, *sim["tas"].shape[1:]), value, dtype="float32")
    da = xr.DataArray(data, dims=sim["tas"].dims, coords={"time": stamps, "lat": sim["lat"],
                      "lon": sim["lon"]}, name=name,
                      attrs={"units": units, "cell_methods": cell_methods})
    path = case["dir"] / f"{name}_3hr_{cell_methods.split()[-1]}.nc"
    _write(da.to_dataset(), path)
    return path


def test_three_hourly_simulation_gets_three_hourly_reference_values(case):
    """Hourly ERA5 for a 3-hourly model: instants (3hrPt, `time: point`) are compared with the
    reference's instants at the model's stamps; 3-hour means with the mean of the hours;
    ERA5 tp (each hour ending at its stamp) with the 3 hours of the step; a reference step
    that does not divide the model's is an error."""
    t2m = case["t2m"]
    point = _three_hourly_sim(case, "tas", "area: mean time: point", "K", 280.0)
    pair = load_pair([point], [case["ref"]], PairConfig(("tas",)))
    assert pair.frequency == "subdaily"
    hours = np.array([t.hour for t in t2m["time"].values])
    instants = t2m.isel(time=np.flatnonzero(hours % 3 == 0))
    np.testing.assert_allclose(pair.ref["tas"].values, _interp(instants, case["sim_ds"]),
                               atol=1e-5)
    assert pair.ref["tas"].sizes["time"] == 3 * 365 * 8 + 8  # 1979-1981 (1980 a leap year)

    mean = _three_hourly_sim(case, "tas", "area: time: mean", "K", 280.0)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        pair = load_pair([mean], [case["ref"]], PairConfig(("tas",)))
    _no_incomplete_warning(record)
    means = t2m.coarsen(time=3).mean()  # 00-02, 03-05, ...: the instants inside each step
    np.testing.assert_allclose(pair.ref["tas"].values, _interp(means, case["sim_ds"]),
                               atol=1e-4)
    # a 3-hour mean differs from the instant at its start (the diurnal cycle): not sampled
    assert float(abs(means - instants.values).mean()) > 0.3

    rng = np.random.default_rng(3)
    amount = rng.gamma(0.4, 5e-4, t2m.shape) * (rng.random(t2m.shape) < 0.15)  # m per hour
    tp = t2m.copy(data=amount).rename("tp").assign_attrs(units="m")
    hourly_tp = _write(tp.to_dataset(), case["dir"] / "era5_tp_for_3hr.nc")
    pr = _three_hourly_sim(case, "pr", "area: time: mean", "kg m-2 s-1", 3e-5)
    with pytest.warns(UserWarning, match=r"1 of \d+ 3-hour steps of pr hold fewer values.*"
                      r"first: 1981-12-31 21:00, 2 of 3"):
        pair = load_pair([pr], [hourly_tp], PairConfig(("pr",)))
    # the step 00:00-03:00 holds the amounts stamped 01:00, 02:00, 03:00
    totals = amount[1:-2].reshape(-1, 3, *amount.shape[1:]).sum(1)  # m per 3 hours
    flux = xr.DataArray(totals * 1000.0 / 10800.0, dims=t2m.dims,
                        coords={"lat": t2m["lat"], "lon": t2m["lon"]})
    # 1978-12-31 21:00 (ERA5's tp at 1979-01-01 00:00) and 1981-12-31 21:00 are incomplete
    got = pair.ref["pr"].sel(time=slice("1979-01-01", "1981-12-31T18:00")).values
    np.testing.assert_allclose(got, _interp(flux, case["sim_ds"]), rtol=1e-6, atol=1e-12)

    two_hourly = _write(t2m.isel(time=slice(0, None, 2)).to_dataset(),
                        case["dir"] / "era5_t2m_2h.nc")
    with pytest.raises(DataError, match=r"era5_t2m_2h.nc has 7200 s steps, the simulation "
                       r".*10800 s steps"):
        load_pair([point], [two_hourly], PairConfig(("tas",)))


def test_day_counts_only_for_daily_data(case):
    """Frost and wet days are counts of days: a 3-hourly series has no such metric (before, its
    steps were counted as days: 8 frost 'days' for one frosty day)."""
    from atmocorrect.offline.metrics import marginal_metrics

    hourly = case["t2m"].isel(lat=0, lon=0).values[:, None]
    times = case["t2m"]["time"].values
    m = marginal_metrics(hourly, hourly, times, times, "subdaily", 273.15)
    assert "frost_days_bias_per_year" not in m and m["mean_bias"] == 0.0
    daily = case["t2m"].isel(lat=0, lon=0).values.reshape(-1, 24).mean(1)[:, None]
    days = times[::24]
    shifted = marginal_metrics(daily - 1.0, daily, days, days, "day", 273.15)
    assert shifted["frost_days_bias_per_year"] > 0  # 1 K colder: more frost days
