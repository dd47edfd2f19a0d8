"""Reference kinds beyond temperature, pressure and precipitation: ERA5 radiation (``ssrd`` ->
``rsds``, ``strd`` -> ``rlds``, J m-2 accumulations to W m-2), the daily temperature range and
skewness derived after the aggregation (``tasrange``, ``tasskew``), and sub-daily pairing of
ERA5 accumulations known as such by their name only.

Built in tmp_path from the shared real files (skipped, with the reason, when absent), as
tests/test_offline_subdaily.py builds its variants, over 1979-1980 only:

* an hourly reference made from the real ERA5 daily t2m (the 5 x 3 cells around the model's
  points) plus a diurnal cycle of zero daily mean (``t2m``), the ERA5 maxima and minima of the
  hour ending at each stamp (``mx2t``, ``mn2t``), and a downward solar radiation (``ssrd``, J m-2
  over the hour ending at the stamp) whose daily mean flux follows the real daily temperature
  and whose hours follow the sun;
* daily simulations made from the real IPSL-CM6A-LR tas: ``rsds``, ``rlds`` (W m-2),
  ``tasrange`` (K) and ``tasskew`` (1), and an hourly ``pr`` stamped mid-step (00:30, ...).

Every expected value is computed here by hand from the arrays written to the files.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import cftime
import numpy as np
import pytest
import xarray as xr
from conftest import (
    diurnal_anomaly,
    era5_daily_t2m,
    hourly_times,
    open_cftime,
    write_cftime,
)

from atmocorrect.data import samples
from atmocorrect.data.pairs import PairConfig, ends_its_step, load_pair
from atmocorrect.errors import DataError
from atmocorrect.offline.config import TrainConfig
from atmocorrect.offline.train import _series

YEARS = slice("1979", "1980")
NDAYS = 731
INCOMPLETE = "hold fewer values than a complete"


_open = open_cftime


def _write(ds: xr.Dataset, path: Path, units: str = "hours since 1979-01-01") -> Path:
    return write_cftime(ds, path, units)


def _interp(values: np.ndarray, like: xr.DataArray, sim: xr.Dataset) -> np.ndarray:
    """Values (time, lat, lon) on the ERA5 cells, bilinearly interpolated to the model's
    points, as the pair does."""
    da = xr.DataArray(values, dims=like.dims, coords={"lat": like["lat"], "lon": like["lon"]})
    return da.interp(lat=sim["lat"].astype("f8"), lon=sim["lon"].astype("f8")).values


def _daily_like(like: xr.DataArray, values: np.ndarray, name: str, **attrs) -> xr.DataArray:
    """``values`` on ``like``'s days and cells, float64 without ``like``'s packing (the real
    file's scale_factor): hand computations stay exact."""
    return xr.DataArray(values, dims=like.dims, coords=like.coords, name=name, attrs=attrs)


def _by_day(x: np.ndarray) -> np.ndarray:
    """(days, 24, ...) from hourly (time, ...)."""
    return x.reshape(-1, 24, *x.shape[1:])


def _load(sim: Path, refs: list[Path], var: str, **kw):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        pair = load_pair([sim], refs, PairConfig((var,), **kw))
    return pair, [str(w.message) for w in record]


@pytest.fixture(scope="module")
def case(sample_data, tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("kinds")
    daily = era5_daily_t2m(sample_data, YEARS)
    days = daily["time"].values
    times = hourly_times(days)
    anom = diurnal_anomaly(days, np.random.default_rng(3))[:, :, None, None]
    t2m = (daily.values.astype("f8")[:, None] + anom).reshape(-1, *daily.shape[1:])
    # ERA5 mx2t/mn2t: the extremes of the hour ending at the stamp (the hour before it)
    before = np.concatenate([t2m[:1], t2m[:-1]])
    mx2t, mn2t = np.maximum(before, t2m) + 0.2, np.minimum(before, t2m) - 0.3
    # ssrd: J m-2 over the hour ending at the stamp; the day's mean flux (W m-2) grows with the
    # real daily temperature, the hours follow the sun (zero at night, mean 1 over the day)
    flux = np.clip(9.0 * (daily.values.astype("f8") - 263.0), 5.0, 330.0)  # (days, lat, lon)
    mid = (np.arange(24) + 0.5 - 12.0) / 24.0  # the hour before stamp h+1, around noon
    sun = np.maximum(np.cos(2 * np.pi * mid), 0.0)
    sun /= sun.mean()
    # the hour [h, h+1) of day d is stamped h+1 (the last one 00:00 of d+1): shift by one
    amounts = (flux[:, None] * sun[None, :, None, None] * 3600.0).reshape(-1, *daily.shape[1:])
    ssrd = np.concatenate([np.zeros_like(amounts[:1]), amounts[:-1]])  # stamp 00:00 of day 1
    coords = {"time": times, "lat": daily["lat"], "lon": daily["lon"]}
    dims = ("time", "lat", "lon")

    def var(x, units, **attrs):
        return xr.DataArray(x, dims=dims, coords=coords, attrs={"units": units, **attrs})

    files = {
        "t2m": _write(xr.Dataset({"t2m": var(t2m, "K")}), d / "era5_t2m_1h.nc"),
        "all": _write(xr.Dataset({"t2m": var(t2m, "K"), "mx2t": var(mx2t, "K"),
                                  "mn2t": var(mn2t, "K")}), d / "era5_t2m_mx2t_mn2t_1h.nc"),
        # an hourly netCDF download: no GRIB_stepType, known as an accumulation by name/units
        "ssrd": _write(xr.Dataset({"ssrd": var(ssrd, "J m**-2", long_name="Surface short-wave "
                                                "(solar) radiation downwards")}),
                       d / "era5_ssrd_1h.nc"),
    }
    s = _open(sample_data / samples.DAILY_HISTORICAL).sel(time=YEARS).load()
    tas = s["tas"].astype("f8")
    sims = {
        "rsds": (np.clip(8.0 * (tas - 263.0), 3.0, 320.0), "W m-2",
                 "surface_downwelling_shortwave_flux_in_air"),
        "rlds": (np.clip(4.0 * (tas - 200.0), 150.0, 450.0), "W m-2",
                 "surface_downwelling_longwave_flux_in_air"),
        "tasrange": (6.0 + 4.0 * np.cos(2 * np.pi * (tas["time.dayofyear"] - 180) / 365.0)
                     + 0.0 * tas, "K", None),
        "tasskew": (0.45 + 0.1 * np.tanh((tas - 283.0) / 10.0), "1", None),
    }
    sim_files = {}
    for name, (x, units, std) in sims.items():
        attrs = {"units": units, "cell_methods": "area: time: mean",
                 **({"standard_name": std} if std else {})}
        ds = xr.Dataset({name: x.astype("f4").transpose(*tas.dims).assign_attrs(attrs)},
                        attrs=s.attrs)
        sim_files[name] = d / f"{name}_day.nc"
        ds.to_netcdf(sim_files[name])
    return {"dir": d, "files": files, "sims": sim_files, "sim_ds": s, "like": daily,
            "t2m": t2m, "mx2t": mx2t, "mn2t": mn2t, "ssrd": ssrd, "flux": flux,
            "data": sample_data}


# ------------------------------------------------------------------ radiation
def test_hourly_ssrd_gives_the_daily_mean_downward_flux(case):
    """ERA5 hourly ssrd (J m-2 over the hour ending at the stamp) is the reference of rsds
    (W m-2): the day d is the 24 hours stamped 01:00 d .. 00:00 d+1, its mean flux their total
    / 86400 s, which is the daily flux the variant was built from."""
    pair, record = _load(case["sims"]["rsds"], [case["files"]["ssrd"]], "rsds")
    assert not [m for m in record if "only variable" in m], record
    incomplete = [m for m in record if INCOMPLETE in m]
    assert len(incomplete) == 1 and "first: 1980-12-31, 23 of 24" in incomplete[0], record
    got = pair.ref["rsds"]
    assert got.attrs["units"] == "W m-2" and pair.frequency == "day"
    assert "(each the step ending at its stamp)" in got.attrs["aggregation"]
    ssrd = case["ssrd"]
    by_hand = _by_day(ssrd[1:-23]).sum(1) / 86400.0  # J m-2 a day / s = W m-2
    expected = _interp(by_hand, case["like"], case["sim_ds"])
    days = got.sel(time=slice("1979-01-01", "1980-12-30"))
    np.testing.assert_allclose(days.values, expected, rtol=1e-9, atol=1e-9)
    # the hand computation is the flux the variant was built from: 5 .. 330 W m-2 a day
    np.testing.assert_allclose(by_hand, case["flux"][:-1], rtol=1e-12)
    assert 20.0 < float(days.mean()) < 200.0  # neither J m-2 (x3600) nor per day (/24)
    assert np.isnan(got.sel(time="1980-12-31").values).all()
    assert pair.sources["reference:rsds"] == [str(case["files"]["ssrd"])]


def test_daily_strd_needs_its_accumulation_period(case):
    """ERA5 daily statistics of strd hold the daily mean of hourly amounts (J m-2 per hour):
    with --accumulation-period 3600 the reference of rlds is that mean / 3600 s; without it,
    an error names the file, the variable and the option; daily totals taken as hourly amounts
    are implausible fluxes, and the error says which period was used and how to give it."""
    rng = np.random.default_rng(4)
    like = case["like"]
    watts = np.clip(4.2 * (like.values.astype("f8") - 205.0), 150.0, 450.0) + rng.normal(
        0.0, 5.0, like.shape)
    strd = _daily_like(like, watts * 3600.0, "strd", units="J m**-2",
                       long_name="Surface thermal radiation downwards")
    daily = _write(strd.to_dataset(), case["dir"] / "era5_strd_daily_mean.nc",
                   "days since 1979-01-01")
    sim = case["sims"]["rlds"]
    with pytest.raises(DataError, match=r"era5_strd_daily_mean\.nc: variable 'strd' is an "
                       r"accumulation in 'J m\*\*-2' on a daily time axis.*daily mean of hourly "
                       r"accumulations.*--accumulation-period"):
        load_pair([sim], [daily], PairConfig(("rlds",)))
    pair, _ = _load(sim, [daily], "rlds", accumulation_period=3600.0)
    np.testing.assert_allclose(pair.ref["rlds"].values,
                               _interp(watts, like, case["sim_ds"]), rtol=1e-9)
    assert pair.ref["rlds"].attrs["units"] == "W m-2"
    totals = _write(strd.copy(data=watts * 86400.0).to_dataset(),
                    case["dir"] / "era5_strd_daily_total.nc", "days since 1979-01-01")
    with pytest.raises(DataError, match=r"era5_strd_daily_total\.nc: variable 'strd' in "
                       r"'J m\*\*-2' accumulated over 3600 s \(the accumulation period given\) "
                       r"is a mean flux of [\d.]+ .. [\d.]+ W m-2, outside the plausible range "
                       r"-1000 .. 1500 W m-2: is the accumulation period right\? Give "
                       r"--accumulation-period"):
        load_pair([sim], [totals], PairConfig(("rlds",), accumulation_period=3600.0))
    pair, _ = _load(sim, [totals], "rlds", accumulation_period=86400.0)
    np.testing.assert_allclose(pair.ref["rlds"].values,
                               _interp(watts, like, case["sim_ds"]), rtol=1e-9)


def test_sub_daily_ssrd_every_sixth_hour_asks_for_the_period(case):
    six = _write(_open(case["files"]["ssrd"]).isel(time=slice(0, None, 6)),
                 case["dir"] / "era5_ssrd_6h.nc")
    with pytest.raises(DataError, match=r"era5_ssrd_6h\.nc: variable 'ssrd' is an accumulation "
                       r"in 'J m\*\*-2' on a 6-hourly time axis.*--accumulation-period 3600.*"
                       r"--accumulation-period 21600"):
        load_pair([case["sims"]["rsds"]], [six], PairConfig(("rsds",)))


def test_net_radiation_is_not_taken_for_the_downward_flux(case):
    """ERA5 ssr (net solar) is no rsds: a file holding only it is refused, not used as its
    only variable; --reference-name takes it on purpose."""
    ssr = _open(case["files"]["ssrd"]).rename(ssrd="ssr")
    path = _write(ssr, case["dir"] / "era5_ssr_1h.nc")
    with pytest.raises(DataError, match=r"reference .*era5_ssr_1h\.nc: its only variable 'ssr' "
                       r"is net surface solar radiation .*give ssrd; it is not taken for 'rsds' "
                       r"\(.*--reference-name rsds=ssr\)"):
        load_pair([case["sims"]["rsds"]], [path], PairConfig(("rsds",)))
    pair, _ = _load(case["sims"]["rsds"], [path], "rsds", reference_names={"rsds": "ssr"})
    assert pair.ref["rsds"].attrs["units"] == "W m-2"


# ------------------------------------------------------------------ tasrange, tasskew
def _expected(case, values: np.ndarray) -> np.ndarray:
    return _interp(values, case["like"], case["sim_ds"])


def test_tasrange_from_hourly_t2m_is_the_daily_max_minus_min(case):
    pair, record = _load(case["sims"]["tasrange"], [case["files"]["t2m"]], "tasrange")
    assert not [m for m in record if INCOMPLETE in m or "only variable" in m], record
    hours = _by_day(case["t2m"])  # instants 00:00 .. 23:00 of each day
    by_hand = hours.max(1) - hours.min(1)
    got = pair.ref["tasrange"]
    assert got.sizes["time"] == NDAYS and got.attrs["units"] == "K"
    np.testing.assert_allclose(got.values, _expected(case, by_hand), atol=1e-9)
    assert 0.5 < float(got.min()) and float(got.max()) < 25.0
    assert "daily maximum minus daily minimum" in got.attrs["history"]
    assert "from daily max of t2m and daily min of t2m" in got.attrs["history"]
    assert "derived per day after t2m: daily maximum of 3600 s steps" in got.attrs["aggregation"]
    # not the daily mean of anything: the mean of t2m's hourly differences would be ~0
    assert float(got.mean()) > 3.0


def test_tasrange_from_mx2t_and_mn2t(case):
    """mx2t and mn2t present (beside t2m): the daily maximum of mx2t minus the daily minimum of
    mn2t, each value in the day of the hour ending at its stamp (01:00 .. 00:00 next day)."""
    pair, record = _load(case["sims"]["tasrange"], [case["files"]["all"]], "tasrange")
    incomplete = [m for m in record if INCOMPLETE in m]
    assert incomplete and all("first: 1980-12-31, 23 of 24" in m for m in incomplete), record
    mx, mn = _by_day(case["mx2t"][1:-23]), _by_day(case["mn2t"][1:-23])
    by_hand = mx.max(1) - mn.min(1)
    got = pair.ref["tasrange"]
    np.testing.assert_allclose(got.sel(time=slice("1979-01-01", "1980-12-30")).values,
                               _expected(case, by_hand), atol=1e-9)
    assert np.isnan(got.sel(time="1980-12-31").values).all()
    assert "from daily max of mx2t and daily min of mn2t" in got.attrs["history"]
    # wider than the range of the instants (the extremes between the hours, +0.2/-0.3 K)
    inst = _load(case["sims"]["tasrange"], [case["files"]["t2m"]], "tasrange")[0]
    assert float((got - inst.ref["tasrange"]).mean()) > 0.5


def test_tasskew_from_hourly_t2m(case):
    pair, _ = _load(case["sims"]["tasskew"], [case["files"]["t2m"]], "tasskew")
    hours = _by_day(case["t2m"])
    lo, hi = hours.min(1), hours.max(1)
    by_hand = (hours.mean(1) - lo) / (hi - lo)
    got = pair.ref["tasskew"]
    assert got.attrs["units"] == "1"
    np.testing.assert_allclose(got.values, _expected(case, by_hand), atol=1e-9)
    assert 0.0 < float(got.min()) and float(got.max()) < 1.0


def test_daily_tx_tn_in_degc_as_eobs(case):
    """A daily reference holding tx, tn and tg (E-OBS, degC): tasrange = tx - tn as read,
    tasskew = (tg - tn) / (tx - tn); a day with tx == tn gives a missing tasskew, with a
    warning, and no division by zero."""
    hours = _by_day(case["t2m"])
    like = case["like"]
    tx, tn, tg = (hours.max(1) - 273.15, hours.min(1) - 273.15, hours.mean(1) - 273.15)
    tx[5, 0, 0] = tn[5, 0, 0] = tg[5, 0, 0]  # a day without range at one cell
    ds = xr.Dataset({n: _daily_like(like, x, n, units="Celsius")
                     for n, x in (("tx", tx), ("tn", tn), ("tg", tg))})
    path = _write(ds, case["dir"] / "eobs_tx_tn_tg.nc", "days since 1950-01-01")
    pair, _ = _load(case["sims"]["tasrange"], [path], "tasrange")
    np.testing.assert_allclose(pair.ref["tasrange"].values, _expected(case, tx - tn), atol=1e-9)
    pair, record = _load(case["sims"]["tasskew"], [path], "tasskew")
    assert any("1 value(s) of tasskew without a daily range (maximum not above minimum); "
               "set to missing" in m
               for m in record), record
    skew = (tg - tn) / np.where(tx > tn, tx - tn, np.nan)
    got = pair.ref["tasskew"].values
    want = _expected(case, skew)
    assert np.isnan(got[5]).any() and np.isfinite(got[6]).all()
    ok = np.isfinite(want)
    np.testing.assert_allclose(got[ok], want[ok], atol=1e-9)


def test_daily_means_give_no_range_and_say_what_is_needed(case):
    only_t2m = case["data"] / samples.DAILY_REFERENCE
    with pytest.raises(DataError) as err:
        load_pair([case["sims"]["tasrange"]], [only_t2m], PairConfig(("tasrange",)))
    msg = str(err.value)
    assert "no variable 'tasrange'" in msg and str(only_t2m) in msg, msg
    assert ("nor can 'tasrange' be derived (after the aggregation to days): it needs the daily "
            "maximum and minimum temperature: mx2t (or tasmax, tx, mx2t24) and mn2t (or "
            "tasmin, tn, mn2t24), or sub-daily t2m") in msg, msg
    assert f"the reference holds {only_t2m}: daily or coarser t2m" in msg, msg


# ------------------------------------------------------------------ sub-daily pairing
def test_hourly_tp_by_name_pairs_each_model_hour_with_the_hour_ending_after_it(case):
    """An hourly model pr (means stamped mid-step, 00:30, ...) against hourly netCDF tp without
    GRIB attributes (the amount of the hour ending at its stamp, known by its name): the
    model's 00:30 (00:00-01:00) is paired with tp stamped 01:00, not 00:00 (the hour before)."""
    d = case["dir"]
    rng = np.random.default_rng(5)
    shape = case["t2m"][: 24 * 365].shape  # 1979
    amount = rng.gamma(0.4, 5e-4, shape) * (rng.random(shape) < 0.15)  # m per hour
    like = case["like"]
    times = hourly_times(like["time"].values[:365])
    tp = xr.DataArray(amount, dims=like.dims, name="tp", attrs={
        "units": "m", "long_name": "Total precipitation"},
        coords={"time": times, "lat": like["lat"], "lon": like["lon"]})
    ref = _write(tp.to_dataset(), d / "era5_tp_1h.nc")
    s = case["sim_ds"]["tas"].isel(time=slice(0, 365))
    mid = times + np.timedelta64(30, "m").item()
    pr = xr.DataArray(np.full((mid.size, *s.shape[1:]), 3e-5, dtype="f4"), dims=s.dims,
                      name="pr", coords={"time": mid, "lat": s["lat"], "lon": s["lon"]},
                      attrs={"units": "kg m-2 s-1", "standard_name": "precipitation_flux",
                             "cell_methods": "area: time: mean"})
    sim = _write(pr.to_dataset(), d / "pr_1hr_mid.nc", "minutes since 1979-01-01")
    pair, _ = _load(sim, [ref], "pr")
    assert ends_its_step(pair.ref["pr"]) and "aggregation" not in pair.ref["pr"].attrs
    flux = _interp(amount * 1000.0 / 3600.0, like, pair.sim)  # (hours, points)
    np.testing.assert_allclose(pair.ref["pr"].values, flux, rtol=1e-6, atol=1e-12)
    slots, series = _series(pair, pair.sim, pair.ref, TrainConfig(calibration=(1979, 1979)),
                            3600)
    assert len(slots) == 24 and slots[0] == 1800
    for _, name, s_part, r_part, _ in series:
        s_hours = {t.hour for t in s_part["time"].values}
        r_hours = {t.hour for t in r_part["time"].values}
        assert len(s_hours) == 1 and r_hours == {(s_hours.pop() + 1) % 24}, name
    # the model's 00:30 of 1979-01-01 .. 12-30 meets the tp stamped 01:00 of the same days
    _, name, s_part, r_part, _ = series[0]
    assert name == "pr@00:30" and str(r_part["time"].values[0]) == "1979-01-01 01:00:00"
    np.testing.assert_allclose(r_part["pr"].values, flux[1::24], rtol=1e-6, atol=1e-12)
    # the 23:30 slot (23:00-24:00) meets the tp stamped 00:00 (slots are compared as
    # distributions over the period, not day by day)
    _, name, s_part, r_part, _ = series[-1]
    assert name == "pr@23:30" and {t.hour for t in r_part["time"].values} == {0}
    np.testing.assert_allclose(r_part["pr"].values, flux[0::24], rtol=1e-6, atol=1e-12)


def test_step_end_is_decided_once_for_aggregation_and_pairing(case):
    """The pair says, per reference, whether its values as they are in the pair end their
    steps: hourly tp as read yes, its daily sums no, hourly t2m no."""
    d = case["dir"]
    pair, _ = _load(case["sims"]["rsds"], [case["files"]["ssrd"]], "rsds")
    assert not ends_its_step(pair.ref["rsds"])  # aggregated to days, labelled by their start
    sub = _write(_open(case["files"]["t2m"]).isel(time=slice(0, 24 * 40)),
                 d / "era5_t2m_40d.nc")
    s = case["sim_ds"]["tas"].isel(time=slice(0, 40))
    hourly = xr.DataArray(
        np.repeat(s.values, 24, axis=0), dims=s.dims, name="tas",
        coords={"time": hourly_times(s["time"].values), "lat": s["lat"], "lon": s["lon"]},
        attrs={"units": "K", "cell_methods": "area: time: point"})
    sim = _write(hourly.to_dataset(), d / "tas_1hrPt.nc")
    pair, _ = _load(sim, [sub], "tas")
    assert not ends_its_step(pair.ref["tas"])


# ------------------------------------------------------------------ sub-daily radiation
def _rsds_3hr(case) -> Path:
    """3-hourly rsds means stamped mid-step (01:30, ..., 22:30): the daily rsds of the variant
    spread over the day by the sun (0 at 01:30, 04:30, 19:30 and 22:30, as the reference's
    hours are)."""
    s = case["sim_ds"]["tas"]
    daily = np.clip(8.0 * (s.values.astype("f8") - 263.0), 3.0, 320.0)
    hours = np.arange(8) * 3 + 1.5
    sun = np.maximum(np.cos(2 * np.pi * (hours - 12.0) / 24.0), 0.0)
    sun /= sun.mean()
    x = (daily[:, None] * sun[None, :, None, None]).reshape(-1, *s.shape[1:])
    days = [cftime.DatetimeProlepticGregorian(t.year, t.month, t.day, has_year_zero=True)
            for t in s["time"].values]  # the model's days are stamped at noon
    stamps = np.array([t + np.timedelta64(int(h * 60), "m").item() for t in days
                       for h in hours])
    da = xr.DataArray(x.astype("f4"), dims=s.dims, name="rsds",
                      coords={"time": stamps, "lat": s["lat"], "lon": s["lon"]},
                      attrs={"units": "W m-2", "cell_methods": "area: time: mean",
                             "standard_name": "surface_downwelling_shortwave_flux_in_air"})
    return _write(da.to_dataset(), case["dir"] / "rsds_3hr.nc", "minutes since 1979-01-01")


def test_sub_daily_radiation_at_night_per_time_of_day(case, tmp_path):
    """3-hourly rsds against hourly ERA5 ssrd. The classical methods per time of day: at the
    times of day when both are 0 (night) ibicus's multiplicative linear scaling would divide
    0 by 0 (NaN at half the steps, silently); those are left as they are, the day's are
    scaled. ibicus has no QDM defaults for rsds: refused before any work, naming what it
    has. The learned correction per time of day refuses a time of day that is 0 everywhere,
    naming it and --diurnal pooled."""
    from atmocorrect.errors import UsageError
    from atmocorrect.offline.apply import CorrectionRequest, correct_file
    from atmocorrect.offline.train import train_offline

    sim, ref = _rsds_3hr(case), case["files"]["ssrd"]
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        out = _open(correct_file(CorrectionRequest(
            method="linear-scaling", inputs=(sim,), output=tmp_path / "ls.nc",
            reference=(ref,), historical=(sim,), calibration=(1979, 1980))))["rsds"]
    assert not [str(w.message) for w in record if "returned no value" in str(w.message)]
    raw = _open(sim)["rsds"]
    hours = np.array([t.hour for t in out["time"].values])
    night = np.isin(hours, (1, 4, 19, 22))
    assert np.isfinite(out.values).all()
    np.testing.assert_array_equal(out.values[night], raw.values[night])
    assert (raw.values[night] == 0).all()
    day = ~night
    ratio = out.values[day].mean() / raw.values[day].mean()
    assert abs(ratio - 1.0) > 0.01  # the day's hours are scaled (ERA5 9 W m-2 K-1, model 8)
    assert "one correction per time of day" in out.attrs["bias_adjustment"]
    with pytest.raises(UsageError, match=r"--method qdm: ibicus has no default settings of "
                       r"QuantileDeltaMapping for 'rsds'.*methods with defaults for it: "
                       r"linear-scaling \(or --method ml\)"):
        correct_file(CorrectionRequest(method="qdm", inputs=(sim,), output=tmp_path / "q.nc",
                                       reference=(ref,), historical=(sim,),
                                       calibration=(1979, 1980)))
    assert not list(tmp_path.glob("q.nc*"))
    with pytest.raises(DataError, match=r"rsds_3hr.nc: variable 'rsds@01:30' is constant \(0 "
                       r"W m-2 at every point\) over 1979-1980.*--diurnal pooled"):
        train_offline([sim], [ref], tmp_path / "ck", PairConfig(("rsds",)),
                      TrainConfig(calibration=(1979, 1980), steps=5))


# ------------------------------------------------------------------ review mends
def test_tasrange_is_converted_as_a_difference(case, tmp_path):
    """A reference holding tasrange in K for a simulation's tasrange in degC: 8 K is 8 degC
    (was -265.15 degC, silently: the offset of absolute temperatures), and the learned
    correction converts an input in degC the same way (its checkpoint works in K)."""
    like = case["like"]
    values = 8.0 + 0.1 * (like.values.astype("f8") - 280.0)  # 5.5 .. 11 K
    rng_k = _daily_like(like, values, "tasrange", units="K")
    ref = _write(rng_k.to_dataset(), tmp_path / "ref_tasrange_K.nc", "days since 1979-01-01")
    s = case["sim_ds"]
    sims = {}
    for units in ("K", "degC"):
        da = (6.0 + 0.1 * (s["tas"] - 280.0)).astype("f4").assign_attrs(
            units=units, cell_methods="area: time: mean")
        sims[units] = tmp_path / f"tasrange_{units}.nc"
        xr.Dataset({"tasrange": da}, attrs=s.attrs).to_netcdf(sims[units])
    pair, _ = _load(sims["degC"], [ref], "tasrange")
    in_k, _ = _load(sims["K"], [ref], "tasrange")
    np.testing.assert_allclose(pair.ref["tasrange"].values, in_k.ref["tasrange"].values)
    np.testing.assert_allclose(float(pair.ref["tasrange"].mean()),
                               float(_interp(values, like, s).mean()), rtol=1e-9)
    assert pair.ref["tasrange"].attrs["units"] == "degC"
    from atmocorrect.offline.apply import CorrectionRequest, correct_file
    from atmocorrect.offline.train import train_offline

    ck = train_offline([sims["K"]], [ref], tmp_path / "ck", PairConfig(("tasrange",)),
                       TrainConfig(calibration=(1979, 1980), steps=5))
    out = {u: _open(correct_file(CorrectionRequest(
        method="ml", inputs=(sims[u],), output=tmp_path / f"ml_{u}.nc", model=ck)))["tasrange"]
        for u in ("K", "degC")}
    assert out["degC"].attrs["units"] == "degC"
    np.testing.assert_allclose(out["degC"].values, out["K"].values, atol=1e-4)
    assert 0.0 < float(out["degC"].mean()) < 20.0
    # a range has no frost days, even when its file calls it an air temperature
    from atmocorrect.offline.evaluate import _frost_threshold

    assert _frost_threshold("tasrange", "K", {"standard_name": "air_temperature"}) is None
    assert _frost_threshold("tasmin", "K", {}) == 273.15


def test_era5_land_radiation_running_totals_are_deaccumulated(case, tmp_path):
    """ERA5-Land ssrd: running totals since 00 UTC. At winter levels their mean flux is
    plausible, so they were taken as hourly amounts (12.5 times too bright, silently); they
    are recognised (within a day they never decrease, where hourly solar amounts fall every
    afternoon) and de-accumulated, giving the pair of the hourly amounts."""
    ds = _open(case["files"]["ssrd"]).load()
    amounts = ds["ssrd"].values * 0.4
    hours = np.array([t.hour for t in ds["time"].values])
    running, total = np.empty_like(amounts), np.zeros(amounts.shape[1:])
    for i, h in enumerate(hours):
        total = amounts[i] if h == 1 else total + amounts[i]
        running[i] = total
    hourly = _write(ds.copy(data={"ssrd": amounts}), tmp_path / "era5_ssrd_x04.nc")
    land = _write(ds.copy(data={"ssrd": running}), tmp_path / "era5land_ssrd_x04.nc")
    good, _ = _load(case["sims"]["rsds"], [hourly], "rsds")
    got, record = _load(case["sims"]["rsds"], [land], "rsds")
    assert any("holds running totals since 00 UTC" in m for m in record), record
    np.testing.assert_allclose(got.ref["rsds"].values, good.ref["rsds"].values, rtol=1e-6,
                               atol=1e-6)
    assert not any("running totals" in m for m in _load(case["sims"]["rsds"], [hourly],
                                                          "rsds")[1])


def test_the_other_downward_flux_is_not_taken_for_radiation(case):
    """A file holding only ssrd asked for rlds (or only strd for rsds) is refused naming it
    (was taken with a warning: a solar flux calibrating longwave radiation)."""
    with pytest.raises(DataError, match=r"era5_ssrd_1h.nc: its only variable 'ssrd' is "
                       r"downward solar \(shortwave\) radiation, the reference of rsds, not of "
                       r"rlds: give strd.*--reference-name rlds=ssrd"):
        load_pair([case["sims"]["rlds"]], [case["files"]["ssrd"]], PairConfig(("rlds",)))
