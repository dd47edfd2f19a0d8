"""Reference variables derived from ERA5's inputs: ``hurs`` from ``d2m``/``t2m``, ``sfcWind``
from ``u10``/``v10`` (atmocorrect/data/derived.py and its hook in the pair reading); the
formulas of ``tasrange`` and ``tasskew``, derived after the aggregation (their pairs are tested
in tests/test_offline_reference_kinds.py).

The formulas are checked against known values. End to end, an hourly reference is built in
tmp_path from the real ERA5 daily t2m (1979-1981, the 5 x 3 cells around the model's points)
plus a diurnal cycle of zero daily mean, as tests/test_offline_subdaily.py does, with a dewpoint
made from it (a seasonal depression and a weaker diurnal cycle) and wind components turning
within the day; the simulations are ``hurs`` and ``sfcWind`` variants of the real IPSL-CM6A-LR
tas. Checked: the pair holds the daily mean of the hourly RH (speed), not the RH (speed) of the
daily means, which a daily reference gives with a warning; ``train offline`` + ``correct
--method ml`` run on it within the bounds; errors name the file and what is missing. Skipped
with the reason when the sample data are absent (set ATMOCORRECT_SAMPLE_DATA).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from conftest import diurnal_anomaly, era5_daily_t2m, hourly_times

from atmocorrect import cli
from atmocorrect.data import samples
from atmocorrect.data.derived import (
    AFTER_AGGREGATION,
    DERIVATIONS,
    diurnal_range,
    diurnal_skewness,
    relative_humidity,
    saturation_vapour_pressure,
    wind_speed,
)
from atmocorrect.data.pairs import PairConfig, load_pair
from atmocorrect.errors import DataError

CODER = xr.coders.CFDatetimeCoder(use_cftime=True)
YEARS = slice("1979", "1981")
HOURS = np.arange(24)


def _open(path: Path) -> xr.Dataset:
    return xr.open_dataset(path, decode_times=CODER)


def _da(values, name: str, units: str) -> xr.DataArray:
    return xr.DataArray(np.asarray(values, dtype="f8"), dims="time", name=name,
                        attrs={"units": units})


# ------------------------------------------------------------------ formulas
def test_relative_humidity_known_values():
    t = _da([233.15, 253.15, 273.15, 293.15, 313.15], "t2m", "K")
    assert relative_humidity(t.rename("d2m"), t).values.tolist() == [100.0] * 5  # Td = T
    rh = relative_humidity(_da([10.0], "d2m", "degC"), _da([20.0], "t2m", "degC"))
    assert abs(float(rh[0]) - 52.5) < 0.05, float(rh[0])  # 52.52 % over water
    # K and degC give the same; saturation at 0 degC is 611 Pa; RH falls as T rises
    same = relative_humidity(_da([283.15], "d2m", "K"), _da([20.0], "t2m", "Celsius"))
    np.testing.assert_allclose(same.values, rh.values, rtol=1e-12)
    np.testing.assert_allclose(saturation_vapour_pressure(_da([273.16], "t", "K")), 611.21)
    drier = relative_humidity(_da([10.0] * 3, "d2m", "degC"), _da([15.0, 20.0, 30.0], "t2m", "degC"))
    assert np.all(np.diff(drier.values) < 0) and 25 < float(drier[-1]) < 30
    # dewpoint above the temperature: clipped to 100 %; NaN stays NaN
    out = relative_humidity(_da([21.0, np.nan], "d2m", "degC"), _da([20.0, 20.0], "t2m", "degC"))
    assert float(out[0]) == 100.0 and np.isnan(out[1])
    assert out.attrs["units"] == "%" and out.attrs["standard_name"] == "relative_humidity"
    assert "d2m and t2m" in out.attrs["history"] and "over water" in out.attrs["history"]


def test_water_and_mixed_phase_differ_by_a_fifth_at_minus_20():
    t = _da([253.15], "t", "K")
    water = float(saturation_vapour_pressure(t)[0])
    mixed = float(saturation_vapour_pressure(t, phase="mixed")[0])
    assert abs(water - 125.3) < 0.1 and abs(mixed - 103.4) < 0.1
    assert abs(water / mixed - 1.21) < 0.01
    warm = _da([293.15], "t", "K")  # above 0 degC they are the same
    assert float(saturation_vapour_pressure(warm)[0]) == float(
        saturation_vapour_pressure(warm, phase="mixed")[0])


def test_wind_speed_known_values():
    out = wind_speed(_da([3.0, -3.0, 0.0, np.nan], "u10", "m s-1"),
                     _da([4.0, -4.0, 0.0, 1.0], "v10", "m/s"))
    assert out.values[:3].tolist() == [5.0, 5.0, 0.0] and np.isnan(out.values[3])
    assert out.name == "sfcWind" and out.attrs["units"] == "m s-1"
    assert out.attrs["standard_name"] == "wind_speed" and "u10" in out.attrs["history"]


def test_input_units_are_checked_naming_file_and_variable():
    t = _da([293.15], "t2m", "K")
    no_units = _da([283.15], "d2m", "K")
    no_units.attrs = {}
    no_units.encoding["source"] = "era5_d2m.nc"
    with pytest.raises(DataError, match=r"era5_d2m\.nc: variable 'd2m' has no 'units'.*'hurs'"):
        relative_humidity(no_units, t)
    with pytest.raises(DataError, match=r"variable 'd2m' is in 'Pa'; expected K or degC"):
        relative_humidity(_da([283.15], "d2m", "Pa"), t)
    with pytest.raises(DataError, match=r"'t2m' has units 'K' but its values lie in 20 .*degC\?"):
        relative_humidity(_da([10.0], "d2m", "degC"), _da([20.0], "t2m", "K"))
    with pytest.raises(DataError, match=r"'u10' is in 'knots'; expected m s-1 to derive "
                                        r"'sfcWind'"):
        wind_speed(_da([3.0], "u10", "knots"), _da([4.0], "v10", "m s-1"))


def test_range_and_skewness_known_values():
    tx, tn = _da([300.0, 290.0, 280.0, 275.0], "tasmax", "K"), _da([290.0, 282.0, 280.0, 276.0],
                                                                     "tasmin", "K")
    tg = _da([292.5, 288.0, 280.0, 275.5], "tas", "K")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        rng = diurnal_range(tx, tn)
        skew = diurnal_skewness(tg, tx, tn)
    np.testing.assert_allclose(rng.values, [10.0, 8.0, 0.0, np.nan])  # crossed: missing
    # (292.5 - 290) / 10, (288 - 282) / 8; no range: missing, never inf; crossed: missing
    np.testing.assert_allclose(skew.values, [0.25, 0.75, np.nan, np.nan])
    assert rng.attrs["units"] == "K" and skew.attrs["units"] == "1"
    assert rng.name == "tasrange" and skew.name == "tasskew"
    messages = [str(w.message) for w in record]
    assert any("1 value(s) of tasrange with the daily maximum below the daily minimum" in m
               for m in messages), messages
    assert any("2 value(s) of tasskew without a daily range (maximum not above minimum)" in m
               for m in messages), messages
    # a mean outside its extremes (separately gridded, as E-OBS) is clipped to [0, 1]
    out = diurnal_skewness(_da([301.0, 281.0], "tas", "K"), tx[:2], tn[:2])
    assert out.values.tolist() == [1.0, 0.0]


def test_derivation_table():
    assert set(DERIVATIONS) == {"hurs", "sfcWind"}
    assert AFTER_AGGREGATION["tasrange"].components == ("tasmax", "tasmin")
    assert AFTER_AGGREGATION["tasskew"].components == ("tas", "tasmax", "tasmin")
    assert DERIVATIONS["hurs"].inputs[0][:2] == ("d2m", "2d")
    assert DERIVATIONS["sfcWind"].inputs[1][:2] == ("v10", "10v")


# ------------------------------------------------------------------ the hourly reference
def _write(ds: xr.Dataset, path: Path, units: str = "hours since 1979-01-01") -> Path:
    ds["time"].encoding = {"units": units, "calendar": "proleptic_gregorian", "dtype": "int64"}
    ds.to_netcdf(path)
    return path


def _interp(values: np.ndarray, like: xr.DataArray, sim: xr.Dataset) -> np.ndarray:
    """Daily values on the ERA5 cells, bilinearly interpolated to the model's points."""
    da = xr.DataArray(values, dims=like.dims, coords={"lat": like["lat"], "lon": like["lon"]})
    return da.interp(lat=sim["lat"].astype("f8"), lon=sim["lon"].astype("f8")).values


def _daily(x: np.ndarray) -> np.ndarray:
    return x.reshape(-1, 24, *x.shape[1:]).mean(1)


def _rh(td: np.ndarray, t: np.ndarray) -> np.ndarray:
    e = lambda x: np.exp(17.502 * (x - 273.16) / (x - 32.19))  # noqa: E731
    return np.clip(100.0 * e(td) / e(t), 0.0, 100.0)


def _falling(t: xr.DataArray) -> xr.DataArray:
    return 1.0 / (1.0 + np.exp((t - 283.15) / 6.0))


@pytest.fixture(scope="module")
def case(sample_data, tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("derived")
    daily = era5_daily_t2m(sample_data, YEARS)
    days = daily["time"].values
    rng = np.random.default_rng(1)
    anom = diurnal_anomaly(days, rng)[:, :, None, None]  # (days, 24, 1, 1), zero daily mean
    doy = np.array([t.dayofyr for t in days])
    season = np.cos(2 * np.pi * (doy - 180) / 365)[:, None, None, None]
    base = daily.values.astype("f8")[:, None]
    t2m = base + anom
    # dewpoint: a depression of 2..8 K (largest in summer, varying from day to day) and a
    # diurnal cycle a third of the temperature's: RH peaks at night, dips in the afternoon
    depression = (5.0 + 3.0 * season) * rng.uniform(0.5, 1.2, (days.size, 1, 1, 1))
    d2m = base - depression + anom / 3.0
    # wind: a daily mean (U, V) per day and cell plus a 4 m/s vector turning once a day
    mean_u = rng.normal(1.5, 3.0, (days.size, 1, *daily.shape[1:]))
    mean_v = rng.normal(0.5, 3.0, (days.size, 1, *daily.shape[1:]))
    turn = 2 * np.pi * HOURS[None, :, None, None] / 24
    u10, v10 = mean_u + 4.0 * np.cos(turn), mean_v + 4.0 * np.sin(turn)
    times = hourly_times(days)
    coords = {"time": times, "lat": daily["lat"], "lon": daily["lon"]}
    dims = ("time", "lat", "lon")
    hourly = {n: x.reshape(-1, *daily.shape[1:]) for n, x in
              (("t2m", t2m), ("d2m", d2m), ("u10", u10), ("v10", v10))}
    units = {"t2m": "K", "d2m": "K", "u10": "m s**-1", "v10": "m s**-1"}
    ds = xr.Dataset({n: xr.DataArray(x, dims=dims, coords=coords, attrs={"units": units[n]})
                     for n, x in hourly.items()})
    ref = _write(ds, d / "era5_hourly.nc")  # float64: the daily means are exact
    # the same as daily means (what a daily ERA5 download holds)
    day_coords = {"time": days, "lat": daily["lat"], "lon": daily["lon"]}
    means = xr.Dataset({n: xr.DataArray(_daily(x), dims=dims, coords=day_coords,
                                        attrs={"units": units[n]}) for n, x in hourly.items()})
    ref_daily = _write(means, d / "era5_daily.nc", "days since 1979-01-01")
    # the simulations: hurs (%) and sfcWind (m s-1) variants of the real IPSL tas
    s = _open(sample_data / samples.DAILY_HISTORICAL).sel(time=YEARS).load()
    sim_ds = xr.Dataset({
        "hurs": (40.0 + 50.0 * _falling(s["tas"])).astype("f4").assign_attrs(
            units="%", standard_name="relative_humidity"),
        "sfcWind": (2.5 + 4.0 * _falling(s["tas"])).astype("f4").assign_attrs(
            units="m s-1", standard_name="wind_speed"),
    }, attrs=s.attrs)
    sims = {}
    for var in ("hurs", "sfcWind"):
        sims[var] = d / f"{var}_day.nc"
        sim_ds[[var]].to_netcdf(sims[var])
    both = d / "hurs_sfcWind_day.nc"
    sim_ds.assign(tas=s["tas"]).to_netcdf(both)
    return {"dir": d, "ref": ref, "ref_daily": ref_daily, "sims": sims, "both": both,
            "sim_ds": sim_ds, "hourly": hourly, "like": daily, "data": sample_data}


def _load(sim: Path, ref: Path | list[Path], var: str | tuple[str, ...], **kw):
    refs = ref if isinstance(ref, list) else [ref]
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        pair = load_pair([sim], refs, PairConfig((var,) if isinstance(var, str) else var, **kw))
    return pair, [str(w.message) for w in record]


EXPECTED = {
    # the daily mean of the hourly values, and the value of the daily means
    "hurs": (lambda h: _daily(_rh(h["d2m"], h["t2m"])),
             lambda h: _rh(_daily(h["d2m"]), _daily(h["t2m"]))),
    "sfcWind": (lambda h: _daily(np.hypot(h["u10"], h["v10"])),
                lambda h: np.hypot(_daily(h["u10"]), _daily(h["v10"]))),
}


@pytest.mark.parametrize("var", ["hurs", "sfcWind"])
def test_hourly_reference_gives_the_daily_mean_of_the_derived_hours(case, var):
    pair, record = _load(case["sims"][var], case["ref"], var)
    assert not [m for m in record if "derived from" in m], record
    got = pair.ref[var]
    of_hours, of_means = (_interp(f(case["hourly"]), case["like"], case["sim_ds"])
                          for f in EXPECTED[var])
    assert got.shape == case["sim_ds"][var].shape and pair.frequency == "day"
    np.testing.assert_allclose(got.values, of_hours, atol=1e-4)
    # ... which is not the value of the daily means: RH of daily means is lower (1/e_w(T) is
    # convex in T), the speed of the mean wind lower still (the vector turns within the day)
    diff = of_hours - of_means
    if var == "hurs":
        # every day higher (0.01 .. 1.8 %, mean 0.37 %): far beyond the 1e-4 agreement above
        assert float(diff.min()) > 0.005 and 0.2 < float(diff.mean()) < 1.0, diff.mean()
        assert float(diff.max()) > 1.0, diff.max()
    else:
        # every day higher (by 0.3 .. 3.8 m/s, mean 1.46 m/s)
        assert float(diff.min()) > 0.2 and float(diff.mean()) > 1.0, diff.mean()
    assert "daily mean of 3600 s steps" in got.attrs["aggregation"]
    assert "derived by atmocorrect" in got.attrs["history"]
    assert pair.sources[f"reference:{var}"] == [str(case["ref"])]
    if var == "hurs":
        assert 0.0 <= float(got.min()) and float(got.max()) <= 100.0
        assert got.attrs["units"] == "%"


@pytest.mark.parametrize("var", ["hurs", "sfcWind"])
def test_daily_reference_is_derived_from_the_means_with_a_warning(case, var):
    pair, record = _load(case["sims"][var], case["ref_daily"], var)
    warned = [m for m in record if "derived from daily" in m]
    assert len(warned) == 1 and str(case["ref_daily"]) in warned[0], record
    assert ("underestimates the daily mean speed" if var == "sfcWind"
            else "not the daily mean of the hourly relative humidity") in warned[0]
    of_means = _interp(EXPECTED[var][1](case["hourly"]), case["like"], case["sim_ds"])
    np.testing.assert_allclose(pair.ref[var].values, of_means, atol=1e-4)


def test_inputs_in_separate_files_and_units(case):
    """d2m in its own file in degC (as a split download), t2m beside the winds: the same RH;
    tas and hurs together: tas is t2m itself, hurs derived."""
    ds = _open(case["ref"])
    d2m = (ds[["d2m"]] - 273.15)
    d2m["d2m"].attrs = {"units": "degC"}
    split = [_write(d2m, case["dir"] / "era5_d2m_degC.nc"),
             _write(ds[["t2m"]], case["dir"] / "era5_t2m.nc")]
    pair, _ = _load(case["sims"]["hurs"], split, "hurs")
    whole, _ = _load(case["sims"]["hurs"], case["ref"], "hurs")
    np.testing.assert_allclose(pair.ref["hurs"].values, whole.ref["hurs"].values, atol=1e-6)
    assert pair.sources["reference:hurs"] == [str(p) for p in split]
    pair, _ = _load(case["both"], case["ref"], ("tas", "hurs"))
    np.testing.assert_allclose(pair.ref["hurs"].values, whole.ref["hurs"].values, atol=1e-6)
    tas = _interp(_daily(case["hourly"]["t2m"]), case["like"], case["sim_ds"])
    np.testing.assert_allclose(pair.ref["tas"].values, tas, atol=1e-4)
    assert "history" not in pair.ref["tas"].attrs  # t2m itself


def test_train_and_correct_on_derived_references(case, tmp_path):
    """Both variables in one checkpoint; ml output within the bounds and corrected."""
    ckpt, out = tmp_path / "ck", tmp_path / "ml.nc"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert cli.main(["train", "offline", "--simulation", str(case["both"]), "--reference",
                         str(case["ref"]), "--variables", "hurs", "sfcWind", "--calibration",
                         "1979-1980", "--steps", "100", "--out", str(ckpt), "--quiet"]) == 0
        assert cli.main(["correct", "--method", "ml", "--model", str(ckpt), "--input",
                         str(case["both"]), "--period", "1981-1981", "--output", str(out),
                         "--quiet"]) == 0
    res = _open(out)
    for var, lo, hi in (("hurs", 0.0, 100.0), ("sfcWind", 0.0, np.inf)):
        y = res[var].values
        raw = case["sim_ds"][var].sel(time="1981").values
        assert y.shape == raw.shape == (365, 4, 1) and np.isfinite(y).all(), var
        assert lo <= y.min() and y.max() <= hi, (var, y.min(), y.max())
        assert float(np.abs(y - raw).mean()) > 0.1, var  # corrected


# ------------------------------------------------------------------ what cannot be derived
def test_missing_input_is_named_with_the_file(case):
    monthly = case["data"] / samples.MONTHLY_REFERENCE  # t2m, msl, tp: no dewpoint
    with pytest.raises(DataError) as err:
        load_pair([case["sims"]["hurs"]], [monthly], PairConfig(("hurs",)))
    msg = str(err.value)
    assert str(monthly) in msg and "'r2' or '2r' or 'hurs' or 'hu'" in msg, msg
    assert "t2m" in msg and "tp" in msg  # what the file has
    assert "nor can 'hurs' be derived: it needs d2m (or 2d, tdps) and t2m (or 2t, tas), " \
           "and no reference file holds d2m" in msg, msg
    # a file holding t2m only is not taken for hurs (its only variable), it is refused
    only_t2m = case["data"] / samples.DAILY_REFERENCE
    with pytest.raises(DataError, match=r"era5_daily_mean_2m_temperature_1979_2015\.nc: t2m\).*"
                                        r"no reference file holds d2m"):
        load_pair([case["sims"]["hurs"]], [only_t2m], PairConfig(("hurs",)))
    # winds: v10 missing
    ds = _open(case["ref_daily"])[["u10", "t2m"]]
    no_v = _write(ds, case["dir"] / "era5_u10_only.nc", "days since 1979-01-01")
    with pytest.raises(DataError, match=r"era5_u10_only\.nc: u10, t2m\).*needs u10 \(or 10u, "
                                        r"uas\) and v10 \(or 10v, vas\), and no reference file "
                                        r"holds v10"):
        load_pair([case["sims"]["sfcWind"]], [no_v], PairConfig(("sfcWind",)))


def test_reference_name_override_is_not_derived(case):
    """--reference-name says where the variable is: no derivation behind the user's back."""
    with pytest.raises(DataError) as err:
        load_pair([case["sims"]["hurs"]], [case["ref"]],
                  PairConfig(("hurs",), reference_names={"hurs": "rh"}))
    assert "no variable 'rh'" in str(err.value) and "be derived" not in str(err.value)
