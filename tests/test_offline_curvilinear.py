"""Offline correction of a simulation on a curvilinear grid, as a CORDEX regional model
delivers it (dims ``rlat``/``rlon``, 2-D ``lat``/``lon`` auxiliary coordinates, a
``rotated_pole`` grid mapping, ``lat_vertices``/``lon_vertices``), and of points along one
dim (stations).

The variants are built in tmp_path from the shared real files (skipped, with the reason, when
they are absent): a 4 x 5 EUR-44-like rotated grid (pole 39.25N, -162E) inside the ERA5 box,
whose values are the IPSL-CM6A-LR series at the nearest IPSL latitude plus ERA5's
climatological difference between the cell and 10E (a free-running model's weather, not
ERA5's); a 6 x 7 grid that reaches outside the ERA5 box (``--outside drop``); six stations.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr

from atmocorrect import cli
from atmocorrect.checkpoint import read_manifest
from atmocorrect.data import samples
from atmocorrect.data.coords import horizontal_dims, rotated_to_geographic
from atmocorrect.data.pairs import PairConfig, load_pair
from atmocorrect.data.regrid import cell_tolerance, inside_block
from atmocorrect.errors import DataError
from atmocorrect.offline.apply import CorrectionRequest, correct_file
from atmocorrect.offline.features import neighbourhood_offsets, neighbourhood_table
from atmocorrect.offline.train import train_offline

warnings.filterwarnings("ignore", category=FutureWarning)
CODER = xr.coders.CFDatetimeCoder(use_cftime=True)
REPO = Path(__file__).resolve().parents[1]
POLE = (39.25, -162.0)  # EURO-CORDEX
CAL = "1979-1990"
STEPS = 150  # enough for a clear improvement of the calibration monthly means
#: rotated coordinates of a 4 x 5 block of the EUR-44 grid (0.44 deg) around 50N 10E: its
#: cells lie in 49.17..50.67N, 8.56..11.50E, inside the ERA5 box (48..52N, 8..12E)
RLAT = np.array([-1.21, -0.77, -0.33, 0.11])
RLON = np.array([-5.99, -5.55, -5.11, -4.67, -4.23])
#: 6 x 7 around 50N 10E: its western and eastern columns reach outside the ERA5 box
RLAT_BIG = np.round(-0.4724 + 0.44 * (np.arange(6) - 2.5), 3)
RLON_BIG = np.round(-5.1326 + 0.44 * (np.arange(7) - 3), 3)
STATIONS = (np.array([48.7, 49.3, 49.9, 50.4, 51.1, 51.4]),
            np.array([9.1, 11.2, 8.7, 10.3, 9.6, 11.3]))


@pytest.fixture(scope="module")
def data(sample_data):
    return sample_data


def _open(path) -> xr.Dataset:
    return xr.open_dataset(path, decode_times=CODER)


def _cli(argv: list) -> int:
    return cli.main([str(a) for a in argv])


def _model_like(data: Path, src: Path, lat: np.ndarray, lon: np.ndarray, dims: tuple[str, ...],
                years: slice) -> tuple[xr.Dataset, xr.DataArray]:
    """The IPSL series at the nearest IPSL latitude plus ERA5's climatological difference
    between each cell and 10E at its latitude, float32 K, dims ``(time, *dims)``."""
    s = _open(src).sel(time=years)
    r = _open(data / samples.DAILY_REFERENCE)["t2m"].mean("time")
    la, lo = xr.DataArray(lat, dims=dims), xr.DataArray(lon, dims=dims)
    base = s["tas"].isel(lon=0, drop=True).sel(lat=la, method="nearest").drop_vars("lat")
    clim = r.interp(lat=la, lon=lo) - r.interp(lat=la, lon=xr.full_like(lo, 10.0))
    tas = (base + clim.drop_vars(["lat", "lon"], errors="ignore")).transpose("time", *dims).astype("float32")
    tas.attrs = {k: v for k, v in s["tas"].attrs.items() if k not in ("coordinates",)}
    return s, tas


def _vertices(rlat: np.ndarray, rlon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cell corners (rlat, rlon, 4), counter-clockwise from the lower left, in lat/lon."""
    hy, hx = np.diff(rlat).mean() / 2, np.diff(rlon).mean() / 2
    y, x = np.meshgrid(rlat, rlon, indexing="ij")
    cy = np.stack([y - hy, y - hy, y + hy, y + hy], -1)
    cx = np.stack([x - hx, x + hx, x + hx, x - hx], -1)
    return rotated_to_geographic(cy, cx, *POLE)


def write_cordex(data: Path, src: Path, dst: Path, years: slice, rlat: np.ndarray = RLAT,
                 rlon: np.ndarray = RLON, latlon: bool = True) -> Path:
    """A CORDEX-like file: tas(time, rlat, rlon) with ``coordinates = "lat lon"`` and
    ``grid_mapping = "rotated_pole"``, lat/lon_vertices, time_bnds, CF time encoding."""
    y, x = np.meshgrid(rlat, rlon, indexing="ij")
    lat, lon = rotated_to_geographic(y, x, *POLE)
    s, tas = _model_like(data, src, lat, lon, ("rlat", "rlon"), years)
    tas.attrs["grid_mapping"] = "rotated_pole"
    ds = xr.Dataset({"tas": tas}, coords={
        "rlat": ("rlat", rlat, {"standard_name": "grid_latitude", "units": "degrees",
                                "axis": "Y", "long_name": "latitude in rotated pole grid"}),
        "rlon": ("rlon", rlon, {"standard_name": "grid_longitude", "units": "degrees",
                                "axis": "X", "long_name": "longitude in rotated pole grid"}),
        "lat": (("rlat", "rlon"), lat, {"standard_name": "latitude", "units": "degrees_north",
                                        "bounds": "lat_vertices"}),
        "lon": (("rlat", "rlon"), lon, {"standard_name": "longitude", "units": "degrees_east",
                                        "bounds": "lon_vertices"}),
    }, attrs={"Conventions": "CF-1.6", "project_id": "CORDEX", "CORDEX_domain": "EUR-44"})
    ds["rotated_pole"] = xr.DataArray(np.int32(0), attrs={
        "grid_mapping_name": "rotated_latitude_longitude",
        "grid_north_pole_latitude": POLE[0], "grid_north_pole_longitude": POLE[1]})
    ds["time_bnds"] = s["time_bounds"]
    ds["time"].attrs["bounds"] = "time_bnds"
    vl, vo = _vertices(rlat, rlon)
    ds["lat_vertices"] = (("rlat", "rlon", "vertices"), vl, {"units": "degrees_north"})
    ds["lon_vertices"] = (("rlat", "rlon", "vertices"), vo, {"units": "degrees_east"})
    ds = ds.drop_vars(["height", "realization"], errors="ignore")
    if not latlon:
        ds = ds.drop_vars(["lat", "lon", "lat_vertices", "lon_vertices"])
    ds["time"].encoding = {"units": "days since 1949-12-01", "calendar": "proleptic_gregorian"}
    ds.to_netcdf(dst)
    return dst


def write_stations(data: Path, src: Path, dst: Path, years: slice,
                   stations: tuple[np.ndarray, np.ndarray] = STATIONS) -> Path:
    """Points along one dim ``station`` with 1-D lat(station), lon(station), a name each."""
    lat, lon = stations
    _, tas = _model_like(data, src, lat, lon, ("station",), years)
    ds = xr.Dataset({"tas": tas}, coords={
        "lat": ("station", lat, {"standard_name": "latitude", "units": "degrees_north"}),
        "lon": ("station", lon, {"standard_name": "longitude", "units": "degrees_east"}),
        "station_name": ("station", np.array([f"st{i}" for i in range(lat.size)]))})
    ds = ds.drop_vars(["height", "realization"], errors="ignore")
    ds["time"].encoding = {"units": "days since 1850-01-01", "calendar": "proleptic_gregorian"}
    ds.to_netcdf(dst)
    return dst


def _monthly_mae(sim: xr.DataArray, ref: xr.DataArray) -> float:
    """Mean absolute difference of the 12 calendar-month means, per point, averaged."""
    def clim(a):
        return a.groupby("time.month").mean("time")
    return float(np.abs(clim(sim) - clim(ref)).mean())


def _reference_on(sim_path: Path, data: Path, years: tuple[int, int]) -> xr.DataArray:
    pair = load_pair([sim_path], [data / samples.DAILY_REFERENCE], PairConfig(("tas",)))
    return pair.ref["tas"].sel(time=slice(str(years[0]), str(years[1])))


def _assert_same_layout(out: Path, src: Path, grid_mapping: bool = True) -> None:
    res, inp = _open(out), _open(src)
    assert res["tas"].dims == inp["tas"].dims
    for c in ("lat", "lon"):
        assert res[c].dims == inp[c].dims
        np.testing.assert_allclose(res[c].values, inp[c].values)
    assert np.isfinite(res["tas"].values).all() and res["tas"].dtype == np.float32
    nc = netCDF4.Dataset(out)
    try:
        assert sorted(nc["tas"].coordinates.split()) == sorted(
            netCDF4.Dataset(src)["tas"].coordinates.split())
        if grid_mapping:
            assert nc["tas"].grid_mapping == "rotated_pole"
            pole = nc["rotated_pole"]
            assert pole.grid_mapping_name == "rotated_latitude_longitude"
            assert (pole.grid_north_pole_latitude, pole.grid_north_pole_longitude) == POLE
            assert nc["lat"].dimensions == ("rlat", "rlon")
            assert nc["lat_vertices"].dimensions == ("rlat", "rlon", "vertices")
    finally:
        nc.close()


# ------------------------------------------------------------------ helpers
def test_rotated_pole_transform_and_grid_helpers():
    # EURO-CORDEX: the rotated origin is 50.75N 18E, the EUR-11 lower-left corner 21.99N 10.06W
    lat, lon = rotated_to_geographic(np.array([0.0, -23.375]), np.array([0.0, -28.375]), *POLE)
    np.testing.assert_allclose(lat, [50.75, 21.988], atol=1e-3)
    np.testing.assert_allclose(lon, [18.0, -10.064], atol=1e-3)
    y, x = np.meshgrid(RLAT, RLON, indexing="ij")
    la, lo = rotated_to_geographic(y, x, *POLE)
    assert 49.0 < la.min() and la.max() < 51.0 and 8.5 < lo.min() and lo.max() < 11.6
    # a regular grid keeps its old tolerance (half the smaller step); rotated: half the nearest
    # neighbour's distance, not the spacing of sorted latitudes (0.02 deg)
    g = np.meshgrid([48.17, 49.44, 50.70, 51.97], [10.0], indexing="ij")
    assert cell_tolerance(*g) == pytest.approx(0.63)
    assert 0.2 < cell_tolerance(la, lo) < 0.25
    ok = np.ones((6, 7), bool)
    ok[3:, 0] = ok[:3, 6] = False
    assert inside_block(ok) == (slice(0, 6), slice(1, 6))
    # stations: the neighbourhood is the nearest stations, not the neighbours in the file
    table = neighbourhood_table((6,), 1, *STATIONS)
    assert table.shape == (6, 9) and (table[:, 4] == np.arange(6)).all()
    d = np.hypot(STATIONS[0] - STATIONS[0][0], (STATIONS[1] - STATIONS[1][0]) * 0.64)
    assert table[0, 0] == int(np.argsort(d)[1])  # the nearest other station first
    np.testing.assert_array_equal(neighbourhood_table((4, 5), 1), neighbourhood_offsets((4, 5), 1))


def test_doctests_of_the_grid_helpers():
    import doctest

    from atmocorrect.data import coords, regrid
    from atmocorrect.offline import apply as apply_mod
    from atmocorrect.offline import features

    for mod in (coords, regrid, features):
        assert doctest.testmod(mod, optionflags=doctest.ELLIPSIS).failed == 0, mod.__name__
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    fn = apply_mod.matches_cells
    for test in doctest.DocTestFinder().find(fn, globs={"np": np, fn.__name__: fn}):
        assert runner.run(test).failed == 0


# ------------------------------------------------------------------ CORDEX grid, CLI
def _train(data, hist, ckpt):
    """A checkpoint trained on ``hist`` against the daily ERA5 through the CLI."""
    assert _cli(["train", "offline", "--simulation", hist, "--reference",
                 data / samples.DAILY_REFERENCE, "--variables", "tas", "--calibration", CAL,
                 "--steps", STEPS, "--out", ckpt, "--quiet"]) == 0
    return ckpt


@pytest.fixture(scope="module")
def cordex(data, tmp_path_factory):
    """4 x 5 rotated grid (historical 1979-1994, SSP5-8.5 2050-2053) and a checkpoint trained
    through `atmocorrect train offline`."""
    d = tmp_path_factory.mktemp("cordex")
    hist = write_cordex(data, data / samples.DAILY_HISTORICAL, d / "tas_EUR-44_hist.nc",
                        slice("1979", "1994"))
    fut = write_cordex(data, data / samples.DAILY_SCENARIO, d / "tas_EUR-44_ssp585.nc",
                       slice("2050", "2053"))
    return hist, fut, _train(data, hist, d / "ckpt")


def test_cordex_grid_train_correct_evaluate(data, cordex, tmp_path):
    hist, fut, ckpt = cordex
    assert read_manifest(ckpt).hyperparameters["grid_shape"] == [4, 5]  # rlat x rlon
    runs = {}
    for method, inp, period in (("ml", hist, "1979-1990"), ("ml", hist, "1991-1994"),
                                ("ml", fut, None), ("qdm", hist, "1991-1994"),
                                ("qdm", fut, None), ("linear-scaling", fut, None)):
        out = tmp_path / f"{method}_{Path(inp).stem}_{period}.nc"
        argv = ["correct", "--method", method, "--model", ckpt, "--input", inp, "--output", out,
                "--quiet"]
        assert _cli(argv + (["--period", period] if period else [])) == 0
        _assert_same_layout(out, inp)
        runs[(method, Path(inp).stem, period)] = out
    # calibration fit: the learned correction brings the monthly means close to ERA5's
    ref = _reference_on(hist, data, (1979, 1990))
    raw = _open(hist)["tas"].sel(time=slice("1979", "1990"))
    ml = _open(runs[("ml", hist.stem, "1979-1990")])["tas"]
    raw_mae, ml_mae = _monthly_mae(raw, ref), _monthly_mae(ml, ref)
    assert raw_mae > 0.8 and ml_mae < 0.5 * raw_mae, (raw_mae, ml_mae)
    # the climate-change signal is the model's (per cell, as the learned correction promises)
    raw_sig = _open(fut)["tas"].mean("time") - raw.mean("time")
    ml_sig = _open(runs[("ml", fut.stem, None)])["tas"].mean("time") - ml.mean("time")
    np.testing.assert_allclose(ml_sig.values, raw_sig.values, atol=0.05)
    qdm = _open(runs[("qdm", fut.stem, None)])["tas"]
    assert "realization" not in qdm.coords  # ERA5's scalar coordinate stays out
    report = tmp_path / "report.json"
    assert _cli(["evaluate", "offline", "--reference", data / samples.DAILY_REFERENCE,
                 "--period", "1991-1994", "--method", f"raw={hist}", "--method",
                 f"ml={runs[('ml', hist.stem, '1991-1994')]}", "--method",
                 f"qdm={runs[('qdm', hist.stem, '1991-1994')]}", "--json", report]) == 0
    rows = json.loads(report.read_text())["methods"]
    assert rows["ml"]["seasonal_cycle_mae"] < rows["raw"]["seasonal_cycle_mae"]
    assert all(np.isfinite(v) for r in rows.values() for v in r.values())


def test_rotated_pole_file_without_lat_lon(data, cordex, tmp_path):
    """A rotated-pole file with rlat/rlon and the grid mapping but no 2-D lat/lon: they are
    computed from the pole (the same pair as with them) and left out of the output again."""
    hist, _, ckpt = cordex
    bare = write_cordex(data, data / samples.DAILY_HISTORICAL, tmp_path / "bare.nc",
                        slice("1989", "1992"), latlon=False)
    a = load_pair([hist], [data / samples.DAILY_REFERENCE], PairConfig(("tas",)))
    b = load_pair([bare], [data / samples.DAILY_REFERENCE], PairConfig(("tas",)))
    assert horizontal_dims(b.sim["tas"]) == ("rlat", "rlon")
    np.testing.assert_allclose(b.ref["tas"].sel(time="1990").values,
                               a.ref["tas"].sel(time="1990").values, atol=1e-4)
    out = correct_file(CorrectionRequest(method="ml", inputs=(bare,), model=ckpt,
                                         output=tmp_path / "ml.nc", period=(1991, 1992)))
    res = _open(out)
    assert "lat" not in res.variables and res["tas"].dims == ("time", "rlat", "rlon")
    assert res["tas"].attrs["grid_mapping"] == "rotated_pole" and "rotated_pole" in res
    assert np.isfinite(res["tas"].values).all()


def test_cordex_outside_drop_keeps_a_block_inside(data, tmp_path):
    """6 x 7 grid whose western and eastern columns reach outside the ERA5 box: an error
    naming the points, or with --outside drop the 6 x 5 block inside, in training, in every
    correction of the full file, and in the signal of the evaluation (raw on the same cells)."""
    hist = write_cordex(data, data / samples.DAILY_HISTORICAL, tmp_path / "big_hist.nc",
                        slice("1979", "1992"), RLAT_BIG, RLON_BIG)
    fut = write_cordex(data, data / samples.DAILY_SCENARIO, tmp_path / "big_ssp.nc",
                       slice("2050", "2051"), RLAT_BIG, RLON_BIG)
    ref = data / samples.DAILY_REFERENCE
    with pytest.raises(DataError, match=r"7 simulation point\(s\) lie outside the reference "
                       r"domain.*--outside drop"):
        load_pair([hist], [ref], PairConfig(("tas",)))
    cfg = PairConfig(("tas",), outside="drop")
    with pytest.warns(UserWarning, match=r"big_hist.nc: outside='drop' keeps a block of 6 x 5 "
                      r"cells .*rlon 1..5.*5 other cell\(s\)"):
        pair = load_pair([hist], [ref], cfg)
    assert pair.ref["tas"].shape[1:] == (6, 5)
    from atmocorrect.offline.config import TrainConfig

    with pytest.warns(UserWarning, match="keeps a block"):
        ckpt = train_offline([hist], [ref], tmp_path / "ck", cfg,
                             TrainConfig(calibration=(1979, 1990), steps=20))
    block = _open(hist).isel(rlon=slice(1, 6))
    outs = {}
    for method, inp, period in (("ml", hist, (1991, 1992)), ("ml", fut, None),
                                ("qdm", fut, None)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            outs[(method, inp.stem)] = out = correct_file(CorrectionRequest(
                method=method, inputs=(inp,), model=ckpt, period=period,
                output=tmp_path / f"{method}_{inp.stem}.nc"))
        res = _open(out)
        assert res.sizes["rlat"] == 6 and res.sizes["rlon"] == 5
        np.testing.assert_allclose(res["lat"].values, block["lat"].values)
        np.testing.assert_allclose(res["rlon"].values, block["rlon"].values)
        assert res["lat_vertices"].shape == (6, 5, 4) and "rotated_pole" in res
        assert np.isfinite(res["tas"].values).all()
    base = correct_file(CorrectionRequest(method="ml", inputs=(hist,), model=ckpt,
                                          period=(1979, 1990), output=tmp_path / "base.nc"))
    from atmocorrect.offline.evaluate import EvaluationSpec, evaluate

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        report = evaluate(EvaluationSpec(
            reference=(str(ref),), variables=("tas",), period=(1991, 1992),
            methods={"raw": (str(hist),), "ml": (str(outs[("ml", hist.stem)]),)},
            signals={"raw": (str(hist), str(fut)), "ml": (str(base), str(outs[("ml", fut.stem)]))},
            baseline_period=(1979, 1990), pair=cfg))
    raw_block = (_open(fut)["tas"].isel(rlon=slice(1, 6)).mean()
                 - _open(hist)["tas"].sel(time=slice("1979", "1990")).isel(rlon=slice(1, 6)).mean())
    rows = report["methods"]
    assert rows["raw"]["climate_change_signal"] == pytest.approx(float(raw_block), abs=1e-4)
    assert abs(rows["ml"]["climate_change_signal_change"]) < 0.05


# ------------------------------------------------------------------ stations
def test_stations_train_correct_keep_the_layout(data, tmp_path):
    hist = write_stations(data, data / samples.DAILY_HISTORICAL, tmp_path / "st_hist.nc",
                          slice("1979", "1992"))
    fut = write_stations(data, data / samples.DAILY_SCENARIO, tmp_path / "st_ssp.nc",
                         slice("2050", "2051"))
    ckpt = _train(data, hist, tmp_path / "ck")
    assert read_manifest(ckpt).hyperparameters["grid_shape"] == [6]  # points, not 1 x 6
    outs = {}
    for method, inp, period in (("ml", hist, (1979, 1990)), ("ml", fut, None),
                                ("qdm", fut, None)):
        outs[(method, inp.stem)] = out = correct_file(CorrectionRequest(
            method=method, inputs=(inp,), model=ckpt, period=period,
            output=tmp_path / f"{method}_{inp.stem}.nc"))
        _assert_same_layout(out, inp, grid_mapping=False)
        res = _open(out)
        assert res["tas"].dims == ("time", "station")
        assert res["station_name"].values.tolist() == [f"st{i}" for i in range(6)]
    ref = _reference_on(hist, data, (1979, 1990))
    raw = _open(hist)["tas"].sel(time=slice("1979", "1990"))
    ml = _open(outs[("ml", hist.stem)])["tas"]
    raw_mae, ml_mae = _monthly_mae(raw, ref), _monthly_mae(ml, ref)
    assert raw_mae > 0.8 and ml_mae < 0.5 * raw_mae, (raw_mae, ml_mae)
    raw_sig = _open(fut)["tas"].mean("time") - raw.mean("time")
    ml_sig = _open(outs[("ml", fut.stem)])["tas"].mean("time") - ml.mean("time")
    np.testing.assert_allclose(ml_sig.values, raw_sig.values, atol=0.05)
    # a station outside the reference box: named, or dropped with --outside drop
    far = (np.append(STATIONS[0], 53.0), np.append(STATIONS[1], 10.0))
    extra = write_stations(data, data / samples.DAILY_HISTORICAL, tmp_path / "st7.nc",
                           slice("1979", "1980"), far)
    with pytest.raises(DataError, match=r"1 simulation point\(s\) lie outside.*\(53.0, 10.0\)"):
        load_pair([extra], [data / samples.DAILY_REFERENCE], PairConfig(("tas",)))
    pair = load_pair([extra], [data / samples.DAILY_REFERENCE],
                     PairConfig(("tas",), outside="drop"))
    assert pair.sim["tas"].dims == ("time", "station") and pair.sim.sizes["station"] == 6


def test_demo_on_the_cordex_grid(data, cordex, tmp_path):
    sys.path.insert(0, str(REPO / "examples" / "offline"))
    try:
        import run_offline_demo as demo
    finally:
        sys.path.pop(0)
    hist, fut, _ = cordex
    argv = ["--historical", hist, "--reference", data / samples.DAILY_REFERENCE, "--future",
            fut, "--calibration", CAL, "--heldout", "1991-1994", "--steps", 30,
            "--bootstrap", 0, "--out", tmp_path / "out"]
    report = demo.run(demo.parse_args([str(a) for a in argv]))
    rows = report["methods"]
    assert set(rows) == {"raw", "linear-scaling", "quantile-mapping", "qdm", "ml"}
    for m in ("qdm", "ml"):
        assert abs(rows[m]["climate_change_signal_change"]) < 0.05
        assert rows[m]["seasonal_cycle_mae"] < rows["raw"]["seasonal_cycle_mae"]
    _assert_same_layout(tmp_path / "out" / "corrected_1991-1994.nc", hist)
