"""Offline correction on inputs that differ from the shipped pair the way real CMIP6/ERA5
files differ: gridded simulations, noleap/360_day calendars, ERA5 from the new CDS
(valid_time, latitude/longitude, north to south, 0..360), a regional box across the Greenwich
meridian, tasmax-like and daily precipitation variables, monthly psl, periods that do not
cover the calibration, an absent scenario file, float64, missing units, time_bnds.

Every variant is built in tmp_path from the shared real files (skipped, with the reason,
when they are absent: set ATMOCORRECT_SAMPLE_DATA). Few training steps: these tests check that
the paths work and keep their promises (layout, calendar, signal), not the skill.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import cftime
import numpy as np
import pytest
import xarray as xr

from atmocorrect import cli
from atmocorrect.checkpoint import read_manifest
from atmocorrect.data import samples
from atmocorrect.data.coords import merge_expver
from atmocorrect.data.pairs import PairConfig, load_pair
from atmocorrect.errors import DataError
from atmocorrect.offline.apply import CorrectionRequest, correct_file
from atmocorrect.offline.config import TrainConfig
from atmocorrect.offline.train import train_offline

warnings.filterwarnings("ignore", category=FutureWarning)
CODER = xr.coders.CFDatetimeCoder(use_cftime=True)
STEPS = 20
SHORT = {"calibration": (1979, 1990)}  # short calibration keeps the tests fast
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data(sample_data):
    return sample_data


def _open(path) -> xr.Dataset:
    return xr.open_dataset(path, decode_times=CODER)


def _write(ds: xr.Dataset, path: Path, calendar: str | None = None) -> Path:
    enc = {"units": "days since 1850-01-01"}
    if calendar:
        enc["calendar"] = calendar
    ds["time"].encoding = enc
    ds.to_netcdf(path)
    return path


def _to_calendar(src: Path, dst: Path, calendar: str, years: slice) -> Path:
    ds = _open(src).sel(time=years).drop_vars("time_bounds", errors="ignore")
    out = ds.convert_calendar(calendar, align_on="year" if calendar == "360_day" else None,
                              use_cftime=True)
    return _write(out, dst, calendar)


def _gridded(data: Path, src: Path, dst: Path, lats, lons, years: slice) -> Path:
    """A lat x lon box (CMIP6 layout with lat_bnds/lon_bnds) from the model's 4 points: the
    series at the nearest model latitude plus ERA5's climatological difference between the cell
    and 10E (so cells differ)."""
    s = _open(src).sel(time=years)
    r = _open(data / samples.DAILY_REFERENCE)["t2m"].mean("time")
    base = s["tas"].interp(lat=lats, method="nearest",
                           kwargs={"fill_value": "extrapolate"}).isel(lon=0, drop=True)
    clim = r.interp(lat=lats, lon=lons) - r.interp(lat=lats, lon=[10.0]).isel(lon=0, drop=True)
    tas = (base + clim).transpose("time", "lat", "lon").astype("float32")
    tas.attrs = s["tas"].attrs
    out = xr.Dataset({"tas": tas}, attrs=s.attrs)
    out = out.drop_vars([c for c in out.coords if c not in ("time", "lat", "lon")])
    out["time_bounds"] = s["time_bounds"]
    step = float(np.diff(lats)[0]) / 2
    out["lat_bnds"] = (("lat", "bnds"), np.stack([np.array(lats) - step, np.array(lats) + step], 1))
    out["lon_bnds"] = (("lon", "bnds"), np.stack([np.array(lons) - step, np.array(lons) + step], 1))
    out["lat"].attrs = {"units": "degrees_north", "standard_name": "latitude", "bounds": "lat_bnds"}
    out["lon"].attrs = {"units": "degrees_east", "standard_name": "longitude", "bounds": "lon_bnds"}
    return _write(out, dst)


def _new_cds_reference(data: Path, dst: Path) -> Path:
    """ERA5 as the new CDS writes it: ``valid_time``, ``latitude``/``longitude``, latitudes
    north to south, longitudes 0..360, a string ``expver`` along time, a scalar ``number``."""
    ds = _open(data / samples.DAILY_REFERENCE).drop_vars("realization", errors="ignore")
    ds = ds.rename(time="valid_time", lat="latitude", lon="longitude")
    ds = ds.isel(latitude=slice(None, None, -1))
    ds = ds.assign_coords(longitude=np.mod(ds.longitude.values, 360.0),
                          expver=("valid_time", np.array(["0001"] * ds.sizes["valid_time"])),
                          number=0)
    ds["valid_time"].encoding = {"units": "seconds since 1970-01-01", "dtype": "int64",
                                 "calendar": "proleptic_gregorian"}
    ds.to_netcdf(dst)
    return dst


def _cli(argv: list[str]) -> int:
    return cli.main([str(a) for a in argv])


# ------------------------------------------------------------------ gridded, noleap, CLI
@pytest.fixture(scope="module")
def noleap_grid(data, tmp_path_factory):
    """A 3 x 3 gridded noleap simulation (1979-1994) and its checkpoint, trained through
    `atmocorrect train offline`."""
    d = tmp_path_factory.mktemp("grid")
    grid = _gridded(data, data / samples.DAILY_HISTORICAL, d / "grid.nc",
                    [48.5, 49.5, 50.5], [8.5, 9.5, 10.5], slice("1979", "1994"))
    sim = _to_calendar(grid, d / "tas_day_grid_noleap.nc", "noleap", slice(None))
    ds = _open(grid)
    noleap = _open(sim)
    noleap["lat_bnds"], noleap["lon_bnds"] = ds["lat_bnds"], ds["lon_bnds"]
    noleap = noleap.load()
    noleap.close()
    sim.unlink()
    _write(noleap, sim, "noleap")
    ckpt = d / "ckpt"
    assert _cli(["train", "offline", "--simulation", sim, "--reference",
                 data / samples.DAILY_REFERENCE, "--variables", "tas", "--calibration",
                 "1979-1990", "--steps", STEPS, "--out", ckpt, "--quiet"]) == 0
    return sim, ckpt


def test_train_offline_cli_help_teaches(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["train", "offline", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for text in ("--simulation", "--reference", "--calibration", "--reference-name",
                 "--accumulation-period", "--no-convert-calendar", "examples:",
                 "quantile", "atmocorrect correct"):
        assert text in out, text
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    assert "atmocorrect train offline" in capsys.readouterr().out
    assert cli.main(["train"]) == 1
    assert "needs --config and --out" in capsys.readouterr().err


def test_gridded_noleap_simulation_end_to_end(data, noleap_grid, tmp_path):
    sim, ckpt = noleap_grid
    manifest = read_manifest(ckpt)
    assert manifest.hyperparameters["grid_shape"] == [3, 3]
    assert manifest.provenance["calendars"]["simulation"] == "noleap"
    out = tmp_path / "ml.nc"
    assert _cli(["correct", "--model", ckpt, "--input", sim, "--period", "1991-1994",
                 "--output", out, "--quiet"]) == 0
    res, src = _open(out), _open(sim)
    assert res["tas"].dims == ("time", "lat", "lon") and res["tas"].shape == (4 * 365, 3, 3)
    assert res["time"].encoding["calendar"] == "noleap"
    assert "lat_bnds" in res and "lon_bnds" in res
    assert np.isfinite(res["tas"].values).all()
    raw = src["tas"].sel(time=slice("1991", "1994")).values
    assert 0.2 < float(np.abs(res["tas"].values - raw).mean()) < 3.0  # corrected, not wild
    qdm = tmp_path / "qdm.nc"
    assert _cli(["correct", "--method", "qdm", "--model", ckpt, "--input", sim, "--period",
                 "1991-1994", "--output", qdm, "--quiet"]) == 0
    assert np.isfinite(_open(qdm)["tas"].values).all()
    report = tmp_path / "report.json"
    assert _cli(["evaluate", "offline", "--reference", data / samples.DAILY_REFERENCE,
                 "--period", "1991-1994", "--method", f"raw={sim}", "--method", f"ml={out}",
                 "--method", f"qdm={qdm}", "--json", report]) == 0
    rows = json.loads(report.read_text())["methods"]
    assert rows["ml"]["seasonal_cycle_mae"] < rows["raw"]["seasonal_cycle_mae"]


def test_360_day_simulation_and_scenario(data, tmp_path):
    hist = _to_calendar(data / samples.DAILY_HISTORICAL, tmp_path / "h360.nc", "360_day",
                        slice("1979", "1994"))
    fut = _to_calendar(data / samples.DAILY_SCENARIO, tmp_path / "f360.nc", "360_day",
                       slice("2050", "2055"))
    ckpt = train_offline([hist], [data / samples.DAILY_REFERENCE], tmp_path / "ck",
                         PairConfig(("tas",)), TrainConfig(steps=STEPS, **SHORT))
    for method in ("ml", "qdm"):
        out = correct_file(CorrectionRequest(method=method, inputs=(fut,),
                                             output=tmp_path / f"{method}.nc", model=ckpt))
        res = _open(out)
        assert res["time"].encoding["calendar"] == "360_day"
        assert res.sizes["time"] == 6 * 360 and np.isfinite(res["tas"].values).all()
    # the learned correction keeps the scenario's change of the mean (its own era)
    base = correct_file(CorrectionRequest(method="ml", inputs=(hist,), output=tmp_path / "b.nc",
                                          model=ckpt, period=(1979, 1990)))
    raw_signal = float(_open(fut)["tas"].mean() - _open(hist)["tas"].sel(
        time=slice("1979", "1990")).mean())
    ml_signal = float(_open(tmp_path / "ml.nc")["tas"].mean() - _open(base)["tas"].mean())
    assert ml_signal == pytest.approx(raw_signal, abs=0.05)


def test_daily_calendars_refused_only_on_request(data, tmp_path):
    sim = _to_calendar(data / samples.DAILY_HISTORICAL, tmp_path / "n.nc", "noleap",
                       slice("1979", "1981"))
    with pytest.raises(DataError, match=r"calendars differ.*'noleap'.*--no-convert-calendar"):
        load_pair([sim], [data / samples.DAILY_REFERENCE],
                  PairConfig(("tas",), convert_calendar=False))


# ------------------------------------------------------------------ reference layouts
def test_new_cds_era5_layout_gives_the_same_pair(data, tmp_path):
    ref = _new_cds_reference(data, tmp_path / "era5_new_cds.nc")
    a = load_pair([data / samples.DAILY_HISTORICAL], [data / samples.DAILY_REFERENCE],
                  PairConfig(("tas",)))
    b = load_pair([data / samples.DAILY_HISTORICAL], [ref], PairConfig(("tas",)))
    assert b.ref["tas"].dims == a.ref["tas"].dims
    np.testing.assert_allclose(b.ref["tas"].values, a.ref["tas"].values, atol=1e-4)


def test_reference_box_across_greenwich_stored_0_360(data, tmp_path):
    """A regional reference cut from a global 0..360 file across 0E (longitudes 0, 1, 2, 358,
    359) and a simulation in -180..180: the same values as without the shift."""
    r = _open(data / samples.DAILY_REFERENCE).isel(time=slice(0, 400))
    shifted = r.assign_coords(lon=np.mod(r.lon.values - 10.0, 360.0)).sortby("lon")
    assert shifted.lon.values.tolist() == [0.0, 1.0, 2.0, 358.0, 359.0]
    ref_path = tmp_path / "ref_seam.nc"
    shifted.to_netcdf(ref_path)
    r.to_netcdf(tmp_path / "ref.nc")
    grid = _gridded(data, data / samples.DAILY_HISTORICAL, tmp_path / "g.nc", [48.5, 49.5],
                    [8.5, 9.5, 10.5, 11.5], slice("1979", "1979"))
    g = _open(grid)
    g.assign_coords(lon=g.lon.values - 10.0).to_netcdf(tmp_path / "g_seam.nc")
    a = load_pair([grid], [tmp_path / "ref.nc"], PairConfig(("tas",)))
    b = load_pair([tmp_path / "g_seam.nc"], [ref_path], PairConfig(("tas",)))
    assert b.ref["lon"].values.tolist() == [-1.5, -0.5, 0.5, 1.5]
    np.testing.assert_allclose(b.ref["tas"].values, a.ref["tas"].values, atol=1e-4)


# ------------------------------------------------------------------ other variables
def test_tasmax_like_variable_with_era5_or_single_variable_reference(data, tmp_path):
    s = _open(data / samples.DAILY_HISTORICAL).sel(time=slice("1979", "1992")).rename(
        tas="tasmax")
    s["tasmax"] = s["tasmax"] + np.float32(4.0)
    s["tasmax"].attrs = {**_open(data / samples.DAILY_HISTORICAL)["tas"].attrs,
                         "long_name": "Daily Maximum Near-Surface Air Temperature"}
    sim = tmp_path / "tasmax_day.nc"
    s.to_netcdf(sim)
    r = _open(data / samples.DAILY_REFERENCE)
    r["t2m"] = (r["t2m"] + np.float32(5.0)).assign_attrs(r["t2m"].attrs)
    r.to_netcdf(tmp_path / "era5_t2m_dailymax.nc")  # new-CDS daily statistics keep 't2m'
    r.rename(t2m="mx2t").to_netcdf(tmp_path / "era5_mx2t.nc")
    pair = load_pair([sim], [tmp_path / "era5_mx2t.nc"], PairConfig(("tasmax",)))
    with pytest.warns(UserWarning, match=r"only variable 't2m' for 'tasmax'"):
        same = load_pair([sim], [tmp_path / "era5_t2m_dailymax.nc"], PairConfig(("tasmax",)))
    np.testing.assert_allclose(same.ref["tasmax"].values, pair.ref["tasmax"].values)
    named = load_pair([sim], [tmp_path / "era5_t2m_dailymax.nc"],
                      PairConfig(("tasmax",), reference_names={"tasmax": "t2m"}))
    assert named.ref["tasmax"].shape == pair.ref["tasmax"].shape
    ckpt = train_offline([sim], [tmp_path / "era5_mx2t.nc"], tmp_path / "ck",
                         PairConfig(("tasmax",)), TrainConfig(steps=STEPS, **SHORT))
    out = correct_file(CorrectionRequest(method="ml", inputs=(sim,), output=tmp_path / "o.nc",
                                         model=ckpt, period=(1991, 1992)))
    assert list(_open(out).data_vars) == ["tasmax", "time_bounds"]


def _daily_from_monthly(da: xr.DataArray, calendar: str, seed: int) -> xr.DataArray:
    """Daily values whose monthly means are the real monthly ones: wet days drawn with
    probability 0.45 and gamma-distributed amounts (seeded)."""
    rng = np.random.default_rng(seed)
    values, times = [], []
    for i, t in enumerate(da["time"].values):
        nxt = cftime.datetime(t.year + (t.month == 12), t.month % 12 + 1, 1, calendar=calendar)
        n = (nxt - cftime.datetime(t.year, t.month, 1, calendar=calendar)).days
        shape = (n, *da.shape[1:])
        w = rng.gamma(0.7, 1.0, shape) * (rng.random(shape) < 0.45)
        values.append(da.values[i][None] * w / np.maximum(w.mean(0), 1e-12))
        times += [cftime.datetime(t.year, t.month, d + 1, calendar=calendar) for d in range(n)]
    return xr.DataArray(np.concatenate(values).astype("float32"), dims=da.dims,
                        coords={**{c: da[c] for c in da.dims[1:]}, "time": times},
                        attrs=da.attrs, name=da.name)


def test_daily_precipitation_flux_against_era5_tp_in_metres(data, tmp_path):
    """CMIP6 daily pr (kg m-2 s-1, noleap, 8 x 5 grid) against ERA5 daily tp (m per day,
    standard calendar, north to south, 0.5 deg): accumulation period required, calendars
    converted, cells outside the ERA5 box dropped; amounts stay >= 0 and the wet-day threshold
    (0.1 mm/day, in kg m-2 s-1) is recorded for the dry-day handling (test_offline_wetdays)."""
    years = slice("1979", "1990")
    pr = _open(data / samples.MONTHLY_HISTORICAL["pr"])["pr"].sel(time=years)
    sim = _write(_daily_from_monthly(pr, "noleap", 0).to_dataset(), tmp_path / "pr_day.nc",
                 "noleap")
    era = merge_expver(_open(data / samples.MONTHLY_REFERENCE))["tp"].sel(time=years)
    tp = _daily_from_monthly(era.isel(latitude=slice(None, None, 2),
                                      longitude=slice(None, None, 2)), "proleptic_gregorian", 1)
    ref = _write(tp.to_dataset(), tmp_path / "tp_day.nc", "proleptic_gregorian")
    with pytest.raises(DataError, match=r"tp_day.nc.*'tp'.*daily.*--accumulation-period"):
        load_pair([sim], [ref], PairConfig(("pr",), outside="drop"))
    cfg = PairConfig(("pr",), outside="drop", accumulation_period=86400.0)
    pair = load_pair([sim], [ref], cfg)
    assert pair.sim["pr"].shape[1:] == (2, 1)
    ratio = float(pair.ref["pr"].mean() / pair.sim["pr"].mean())
    assert 0.3 < ratio < 3.0  # m per day -> kg m-2 s-1, not off by 1000 or 86400
    ckpt = train_offline([sim], [ref], tmp_path / "ck", cfg, TrainConfig(steps=STEPS, **SHORT))
    norm = read_manifest(ckpt).normalization["pr"]
    assert norm["transform"] == "log"
    assert norm["wet_threshold"] * 86400 == pytest.approx(0.1)
    # trained with outside="drop": the full 8 x 5 input is corrected on the 2 cells calibrated
    out = correct_file(CorrectionRequest(method="ml", inputs=(sim,), model=ckpt,
                                         output=tmp_path / "ml.nc"))
    res = _open(out)
    assert res["pr"].shape[1:] == (2, 1)
    np.testing.assert_allclose(res["lat"].values, [46.42, 48.32], atol=0.01)
    x = _open(sim)["pr"].sel(lat=res["lat"], lon=res["lon"]).values
    y = res["pr"].values
    assert (y >= 0).all() and np.isfinite(y).all()
    assert x.shape == y.shape and ((y == 0) | (y >= norm["wet_threshold"])).all()
    qdm = correct_file(CorrectionRequest(method="qdm", inputs=(sim,), model=ckpt,
                                         output=tmp_path / "qdm.nc"))
    q = _open(qdm)["pr"]
    assert q.shape == res["pr"].shape and (np.nan_to_num(q.values) >= 0).all()


# ------------------------------------------------------------------ periods, files, types
def test_calibration_not_covered_names_period_and_file(data, tmp_path):
    late = tmp_path / "tas_1985-2014.nc"
    _open(data / samples.DAILY_HISTORICAL).sel(time=slice("1985", None)).to_netcdf(late)
    with pytest.raises(DataError, match=r"simulation .*tas_1985-2014.nc covers 1985-01-01 .. "
                       r"2014-12-31.*not the whole period 1979-2004.*--calibration 1985-2004"):
        train_offline([late], [data / samples.DAILY_REFERENCE], tmp_path / "ck",
                      PairConfig(("tas",)), TrainConfig(steps=STEPS))
    assert not (tmp_path / "ck").exists()
    with pytest.raises(DataError, match=r"not the whole period 1979-2004"):
        correct_file(CorrectionRequest(method="qdm", inputs=(late,), output=tmp_path / "q.nc",
                                       historical=(late,),
                                       reference=(data / samples.DAILY_REFERENCE,),
                                       calibration=(1979, 2004)))


def test_demo_without_scenario_file_skips_the_signal_with_a_note(data, tmp_path, capsys):
    sys.path.insert(0, str(REPO / "examples" / "offline"))
    try:
        import run_offline_demo as demo
    finally:
        sys.path.pop(0)
    hist = tmp_path / "hist.nc"
    _open(data / samples.DAILY_HISTORICAL).sel(time=slice("1979", "1994")).to_netcdf(hist)
    argv = ["--historical", hist, "--reference", data / samples.DAILY_REFERENCE, "--future",
            tmp_path / "absent_ssp585.nc", "--calibration", "1979-1990", "--heldout",
            "1991-1994", "--steps", STEPS, "--bootstrap", 0, "--out", tmp_path / "out"]
    report = demo.run(demo.parse_args([str(a) for a in argv]))
    out = capsys.readouterr().out
    assert "absent_ssp585.nc does not exist; the climate-change signal rows are skipped" in out
    assert set(report["methods"]) == {"raw", "linear-scaling", "quantile-mapping", "qdm", "ml"}
    assert "climate_change_signal" not in report["methods"]["ml"]
    assert "skipped" in report["meta"]["climate_change_signal"]
    assert (tmp_path / "out" / "corrected_1991-1994.nc").exists()
    bad = demo.parse_args([str(a) for a in [*argv[:8], "--heldout", "2010-2020"]])
    with pytest.raises(DataError, match=r"hist.nc covers 1979-01-01 .. 1994-12-31.*2010-2020"):
        demo.run(bad)


def test_float64_input_missing_units_and_time_bnds(data, tmp_path):
    s = _open(data / samples.DAILY_HISTORICAL).sel(time=slice("1979", "1992"))
    f64 = s.copy()
    f64["tas"] = s["tas"].astype("float64").assign_attrs(s["tas"].attrs)
    f64 = f64.rename(time_bounds="time_bnds")
    f64["time"].attrs["bounds"] = "time_bnds"
    f64.to_netcdf(tmp_path / "f64.nc")
    ckpt = train_offline([tmp_path / "f64.nc"], [data / samples.DAILY_REFERENCE],
                         tmp_path / "ck", PairConfig(("tas",)), TrainConfig(steps=STEPS, **SHORT))
    out = _open(correct_file(CorrectionRequest(method="ml", inputs=(tmp_path / "f64.nc",),
                                               output=tmp_path / "o.nc", model=ckpt,
                                               period=(1991, 1992))))
    assert out["tas"].dtype == np.float64 and "time_bnds" in out
    assert out["time_bnds"].shape == (731, 2)
    out32 = _open(correct_file(CorrectionRequest(
        method="ml", inputs=(data / samples.DAILY_HISTORICAL,), output=tmp_path / "o32.nc",
        model=ckpt, period=(1991, 1992))))
    assert out32["tas"].dtype == np.float32
    np.testing.assert_allclose(out32["tas"].values, out["tas"].values, atol=2e-3)
    nounits = s.copy()
    del nounits["tas"].attrs["units"]
    nounits.to_netcdf(tmp_path / "nounits.nc")
    with pytest.raises(DataError, match=r"nounits.nc: variable 'tas' has no 'units'"):
        load_pair([tmp_path / "nounits.nc"], [data / samples.DAILY_REFERENCE],
                  PairConfig(("tas",)))
    with pytest.raises(DataError, match=r"nounits.nc: variable 'tas' has no 'units'.*'K'"):
        correct_file(CorrectionRequest(method="ml", inputs=(tmp_path / "nounits.nc",),
                                       output=tmp_path / "x.nc", model=ckpt))


def test_monthly_psl_through_the_demo(data, tmp_path):
    sys.path.insert(0, str(REPO / "examples" / "offline"))
    try:
        import run_offline_demo as demo
    finally:
        sys.path.pop(0)
    argv = ["--historical", data / samples.MONTHLY_HISTORICAL["psl"], "--reference",
            data / samples.MONTHLY_REFERENCE, "--variable", "psl", "--outside", "drop",
            "--steps", STEPS, "--bootstrap", 0, "--out", tmp_path / "out"]
    report = demo.run(demo.parse_args([str(a) for a in argv]))
    rows = report["methods"]
    assert report["meta"]["units"]["psl"] == "Pa"
    assert "frost_days_bias_per_year" not in rows["ml"]
    for m in ("raw", "qdm", "ml"):
        assert np.isfinite(rows[m]["mean_bias"]) and abs(rows[m]["mean_bias"]) < 500


def test_doctests_of_the_new_helpers():
    import doctest

    from atmocorrect.data import regrid, timeaxis
    from atmocorrect.offline import apply as apply_mod

    for mod in (regrid, timeaxis):
        assert doctest.testmod(mod, optionflags=doctest.ELLIPSIS).failed == 0, mod.__name__
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    fn = apply_mod.interp_uniform
    for test in doctest.DocTestFinder().find(fn, globs={"np": np, fn.__name__: fn}):
        assert runner.run(test).failed == 0


def test_coarser_reference_than_simulation_is_refused_in_words(data):
    """A monthly reference cannot calibrate a daily simulation, and the error says so in words
    (the message used to build them from the frequency's name: "monthly-or-coarser",
    "dayly")."""
    with pytest.raises(DataError, match=r"the reference is monthly \(.*\) but the simulation "
                                        r"is daily \(.*\); a coarser reference cannot"):
        load_pair([data / samples.DAILY_HISTORICAL], [data / samples.MONTHLY_REFERENCE],
                  PairConfig(("tas",)))
