"""Offline correction on the shared real data: training, ml and ibicus corrections, CLI,
CF output, chunking, climate-change signal, evaluation; monthly multi-variable pair.

Skipped, with the reason, when the sample data are absent (set ATMOCORRECT_SAMPLE_DATA).
"""

from __future__ import annotations

import doctest
import json
import warnings

import numpy as np
import pytest
import xarray as xr

from atmocorrect import cli
from atmocorrect.checkpoint import read_manifest
from atmocorrect.data import samples
from atmocorrect.data.pairs import PairConfig, load_pair
from atmocorrect.data.timeaxis import select_years
from atmocorrect.errors import CheckpointError, DataError, FieldError, UsageError
from atmocorrect.offline import apply as apply_mod
from atmocorrect.offline import climatology, config, evaluate, features, metrics
from atmocorrect.offline.apply import CorrectionRequest, correct_file
from atmocorrect.offline.config import ApplyConfig, TrainConfig
from atmocorrect.offline.evaluate import EvaluationSpec, markdown_table
from atmocorrect.offline.train import train_offline

warnings.filterwarnings("ignore", category=FutureWarning)
STEPS = 300  # enough for the tests' thresholds; the demo trains 1500 steps
CODER = xr.coders.CFDatetimeCoder(use_cftime=True)


@pytest.fixture(scope="module")
def data(sample_data):
    return sample_data


@pytest.fixture(scope="module")
def daily_ckpt(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("offline") / "daily_ckpt"
    return train_offline([data / samples.DAILY_HISTORICAL], [data / samples.DAILY_REFERENCE],
                         out, PairConfig(("tas",)), TrainConfig(steps=STEPS))


@pytest.fixture(scope="module")
def heldout_ml(data, daily_ckpt, tmp_path_factory):
    out = tmp_path_factory.mktemp("heldout") / "corrected_2005-2014.nc"
    return correct_file(CorrectionRequest(
        method="ml", inputs=(data / samples.DAILY_HISTORICAL,), output=out, model=daily_ckpt,
        period=(2005, 2014)))


def _open(path):
    return xr.open_dataset(path, decode_times=CODER)


def test_doctests_of_the_offline_modules():
    for mod in (climatology, config, evaluate, features, metrics):
        result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0, mod.__name__
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for fn in (apply_mod.smooth_season, apply_mod.seasonal_ranks):
        for test in doctest.DocTestFinder().find(fn, globs={"np": np, fn.__name__: fn}):
            assert runner.run(test).failed == 0, fn.__name__


# ----------------------------------------------------------------------------- checkpoint
def test_checkpoint_manifest_and_offline_only_loading(daily_ckpt):
    m = read_manifest(daily_ckpt)
    assert m.model_class == "offline-quantile-delta"
    assert m.field_names == ("tas",) and m.field("tas").units == "K"
    assert m.provenance["calibration"] == "1979-2004"
    assert len(m.provenance["simulation"][0]["sha256"]) == 64
    assert m.hyperparameters["frequency"] == "day"
    assert m.normalization["tas"]["std"] == pytest.approx(8.17, abs=0.05)
    import atmocorrect

    with pytest.raises(CheckpointError, match="cannot nudge a running model online"):
        atmocorrect.load(daily_ckpt)


# ----------------------------------------------------------------------------- ml output
def test_ml_output_keeps_layout_and_has_cf_metadata(data, heldout_ml):
    src = _open(data / samples.DAILY_HISTORICAL)
    out = _open(heldout_ml)
    assert out["tas"].dims == src["tas"].dims == ("time", "lat", "lon")
    assert out.sizes["time"] == 3652 and out["tas"].dtype == np.float32
    assert out["time"].encoding["calendar"] == src["time"].encoding["calendar"]
    assert "time_bounds" in out
    assert out["tas"].attrs["standard_name"] == "air_temperature"
    assert out["tas"].attrs["units"] == "K"
    assert "ml" in out["tas"].attrs["bias_adjustment"]
    assert out.attrs["history"].splitlines()[0].endswith("atmocorrect 0.1.0)")
    assert out.attrs["history"].splitlines()[1] == src.attrs["history"].splitlines()[0]
    assert "CF-" in out.attrs["Conventions"]
    assert not list(heldout_ml.parent.glob(".*tmp*"))


def test_ml_corrects_the_distribution_where_calibrated(data, daily_ckpt, tmp_path):
    out = correct_file(CorrectionRequest(
        method="ml", inputs=(data / samples.DAILY_HISTORICAL,), output=tmp_path / "cal.nc",
        model=daily_ckpt, period=(1979, 2004)))
    pair = load_pair([out], [data / samples.DAILY_REFERENCE], PairConfig(("tas",)))
    raw = load_pair([data / samples.DAILY_HISTORICAL], [data / samples.DAILY_REFERENCE],
                    PairConfig(("tas",)))

    def score(p):
        s, r = select_years(p.sim["tas"], (1979, 2004)), select_years(p.ref["tas"], (1979, 2004))
        return metrics.marginal_metrics(s.values.reshape(s.shape[0], -1),
                                        r.values.reshape(r.shape[0], -1),
                                        s["time"].values, r["time"].values, "day", 273.15)

    m, m0 = score(pair), score(raw)
    assert m0["seasonal_cycle_mae"] == pytest.approx(1.21, abs=0.02)
    assert m["seasonal_cycle_mae"] < 0.25
    assert abs(m["mean_bias"]) < 0.1
    assert abs(m["std_ratio"] - 1) < 0.03 < abs(m0["std_ratio"] - 1)
    assert abs(m["q95_bias"]) < 0.4 < abs(m0["q95_bias"])
    assert abs(m["frost_days_bias_per_year"]) < 3 < abs(m0["frost_days_bias_per_year"])


def test_ml_keeps_the_climate_change_signal(data, daily_ckpt, tmp_path):
    base = correct_file(CorrectionRequest(
        method="ml", inputs=(data / samples.DAILY_HISTORICAL,), output=tmp_path / "b.nc",
        model=daily_ckpt, period=(1979, 2004)))
    fut = correct_file(CorrectionRequest(
        method="ml", inputs=(data / samples.DAILY_SCENARIO,), output=tmp_path / "f.nc",
        model=daily_ckpt))
    raw_b = select_years(_open(data / samples.DAILY_HISTORICAL)["tas"], (1979, 2004))
    raw_f = _open(data / samples.DAILY_SCENARIO)["tas"]
    flat = lambda da: da.values.reshape(da.shape[0], -1)  # noqa: E731
    raw_signal = metrics.climate_signal(flat(raw_b), flat(raw_f))
    ml_signal = metrics.climate_signal(flat(_open(base)["tas"]), flat(_open(fut)["tas"]))
    assert raw_signal == pytest.approx(3.94, abs=0.01)
    assert abs(ml_signal - raw_signal) < 0.01  # ibicus QDM: -0.007


def _heldout_arrays(data, daily_ckpt):
    from atmocorrect.data.timeaxis import season_position, years

    _, model = apply_mod.load_offline_model(daily_ckpt)
    da = select_years(_open(data / samples.DAILY_HISTORICAL)["tas"], (2005, 2014))
    x = da.values.reshape(da.shape[0], -1).astype(np.float64)
    lat, lon = xr.broadcast(da["lat"], da["lon"])
    pts = model.point_index(lat.values.ravel(), lon.values.ravel())
    t = da["time"].values
    return model, x, pts, season_position(t, "day"), years(t)


def test_ml_keeps_the_change_of_every_quantile_like_qdm(data, daily_ckpt):
    """A warmer and more variable era (every quantile changed differently) is corrected by
    the same amount per quantile level: the simulated change of each quantile is kept."""
    model, x, pts, season, yrs = _heldout_arrays(data, daily_ckpt)
    cfg = ApplyConfig()
    m = x.mean(axis=0)
    changed = m + 2.0 + 1.25 * (x - m)
    a = apply_mod.ml_correct_points(model, "tas", x, pts, season, yrs, cfg, "day")
    b = apply_mod.ml_correct_points(model, "tas", changed, pts, season, yrs, cfg, "day")
    # each value is corrected exactly as its counterpart at the same quantile level of its
    # season in the other era, so every seasonal quantile keeps the simulated change
    np.testing.assert_allclose(b - a, changed - x, atol=1e-6)


def test_ml_preserves_ranks_within_a_season_and_adds_no_noise(data, daily_ckpt):
    """Values of the same day of the year keep their order, and the correction is a smooth
    function of the season: its day-to-day changes are far smaller than the weather's."""
    model, x, pts, season, yrs = _heldout_arrays(data, daily_ckpt)
    out = apply_mod.ml_correct_points(model, "tas", x, pts, season, yrs, ApplyConfig(), "day")
    for s in np.unique(season)[::17]:
        rows = np.flatnonzero(season == s)
        for j in range(x.shape[1]):
            assert (np.argsort(x[rows, j], kind="stable")
                    == np.argsort(out[rows, j], kind="stable")).all()
    corr = out - x
    assert np.abs(np.diff(corr, axis=0)).mean() < 0.2 * np.abs(np.diff(x, axis=0)).mean()


def test_apply_config_rejects_unknown_settings():
    with pytest.raises(UsageError, match="rank"):
        ApplyConfig(rank="magic")
    with pytest.raises(UsageError, match="mean_adjust"):
        ApplyConfig(mean_adjust="sometimes")


def test_chunking_does_not_change_the_result(data, daily_ckpt, heldout_ml, tmp_path):
    small = correct_file(CorrectionRequest(
        method="ml", inputs=(data / samples.DAILY_HISTORICAL,), output=tmp_path / "c1.nc",
        model=daily_ckpt, period=(2005, 2014), apply=ApplyConfig(chunk_points=1)))
    np.testing.assert_array_equal(_open(small)["tas"].values, _open(heldout_ml)["tas"].values)


# ----------------------------------------------------------------------------- classical
def test_ibicus_qdm_reproduces_the_issue_reference(data, daily_ckpt, heldout_ml, tmp_path):
    pytest.importorskip("ibicus", reason="the classical methods need ibicus (offline extra)")
    qdm = correct_file(CorrectionRequest(
        method="qdm", inputs=(data / samples.DAILY_HISTORICAL,), output=tmp_path / "qdm.nc",
        model=daily_ckpt, period=(2005, 2014)))  # reference/historical from the provenance
    spec = EvaluationSpec(reference=(str(data / samples.DAILY_REFERENCE),), variables=("tas",),
                          period=(2005, 2014),
                          methods={"raw": (str(data / samples.DAILY_HISTORICAL),),
                                   "qdm": (str(qdm),), "ml": (str(heldout_ml),)})
    report = evaluate.evaluate(spec)
    raw, q = report["methods"]["raw"], report["methods"]["qdm"]
    assert raw["mean_bias"] == pytest.approx(0.13, abs=0.005)
    assert raw["seasonal_cycle_mae"] == pytest.approx(1.11, abs=0.005)
    assert raw["frost_days_bias_per_year"] == pytest.approx(2.6, abs=0.1)
    assert q["mean_bias"] == pytest.approx(0.19, abs=0.005)
    assert q["q05_bias"] == pytest.approx(1.22, abs=0.005)
    assert q["q95_bias"] == pytest.approx(0.29, abs=0.005)
    assert q["std_ratio"] == pytest.approx(0.985, abs=0.001)
    assert q["frost_days_bias_per_year"] == pytest.approx(-5.3, abs=0.05)
    ml = report["methods"]["ml"]
    assert ml["seasonal_cycle_mae"] < 0.9 and abs(ml["std_ratio"] - 1) < 0.02
    table = markdown_table(report)
    assert table.splitlines()[0].startswith("| method | mean bias |")
    assert "| ml at least as good as qdm |" in table


# ----------------------------------------------------------------------------- CLI
def test_cli_refuses_output_equal_to_input_and_existing_output(data, daily_ckpt, tmp_path,
                                                               capsys):
    inp = str(data / samples.DAILY_HISTORICAL)
    rc = cli.main(["correct", "--model", str(daily_ckpt), "--input", inp, "--output", inp])
    assert rc == 1 and "is the input file" in capsys.readouterr().err
    existing = tmp_path / "exists.nc"
    existing.write_text("keep me")
    rc = cli.main(["correct", "--model", str(daily_ckpt), "--input", inp, "--output",
                   str(existing)])
    assert rc == 1 and "--overwrite" in capsys.readouterr().err
    assert existing.read_text() == "keep me"
    rc = cli.main(["correct", "--model", str(daily_ckpt), "--input", inp, "--output",
                   str(existing), "--overwrite", "--period", "2010-2011", "--quiet"])
    assert rc == 0 and _open(existing).sizes["time"] == 730


def test_cli_ml_without_checkpoint_and_classical_without_reference(data, tmp_path, capsys):
    inp = str(data / samples.DAILY_HISTORICAL)
    rc = cli.main(["correct", "--model", str(tmp_path / "none"), "--input", inp, "--output",
                   str(tmp_path / "o.nc")])
    assert rc == 1 and "does not exist" in capsys.readouterr().err
    with pytest.raises(UsageError, match="needs --reference and --historical"):
        correct_file(CorrectionRequest(method="qdm", inputs=(inp,), output=tmp_path / "q.nc"))


def test_evaluate_offline_cli_writes_json_and_plots(data, heldout_ml, tmp_path, capsys):
    import argparse

    parser = argparse.ArgumentParser()
    evaluate.add_arguments(parser)
    args = parser.parse_args([
        "--reference", str(data / samples.DAILY_REFERENCE), "--period", "2005-2014",
        "--method", f"raw={data / samples.DAILY_HISTORICAL}", "--method", f"ml={heldout_ml}",
        "--json", str(tmp_path / "report.json"), "--plots", str(tmp_path)])
    assert evaluate.run(args) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert set(report["methods"]) == {"raw", "ml"}
    assert report["methods"]["raw"]["std_ratio"] == pytest.approx(1.086, abs=0.001)
    assert (tmp_path / "seasonal_cycle.png").stat().st_size > 1000
    assert (tmp_path / "qq.png").stat().st_size > 1000
    assert (tmp_path / "bias_map.png").stat().st_size > 1000
    assert str(tmp_path / "bias_map.png") in report["meta"]["plots"]
    assert "| raw |" in capsys.readouterr().out


def test_bias_map_field_is_the_per_cell_bias_in_the_grid_shape():
    """The map shows per cell what the table averages: sim mean minus reference mean, in the
    grid's shape (a curvilinear grid along its own dims), with each cell's lat/lon."""
    lat = xr.DataArray([[48.0, 48.2, 48.4], [49.0, 49.2, 49.4]], dims=("rlat", "rlon"))
    lon = xr.DataArray([[8.0, 9.0, 10.0], [8.1, 9.1, 10.1]], dims=("rlat", "rlon"))
    rng = np.random.default_rng(0)
    values = rng.normal(280.0, 5.0, (50, 2, 3))
    da = xr.DataArray(values, dims=("time", "rlat", "rlon"),
                      coords={"lat": lat, "lon": lon}, name="tas")
    ref = values.reshape(50, -1) - np.arange(6.0)  # cell k too warm by k
    ref[:10, 5] = np.nan  # missing reference days do not bias the cell
    bias, la, lo = evaluate._bias_field(da, values.reshape(50, -1), ref)
    assert bias.shape == la.shape == lo.shape == (2, 3)
    np.testing.assert_allclose(la, lat.values)
    np.testing.assert_allclose(lo, lon.values)
    expected = values.reshape(50, -1).mean(0) - np.nanmean(ref, 0)
    np.testing.assert_allclose(bias.ravel(), expected)
    assert bias[0, 1] == pytest.approx(1.0, abs=1e-9) and abs(bias[1, 2] - 5.0) < 2.0


# ----------------------------------------------------------------------------- monthly pair
@pytest.fixture(scope="module")
def monthly_ckpt(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("monthly") / "ckpt"
    return train_offline([data / p for p in samples.MONTHLY_HISTORICAL.values()],
                         [data / samples.MONTHLY_REFERENCE], out,
                         PairConfig(("tas", "pr", "psl"), outside="drop"),
                         TrainConfig(steps=STEPS))


def test_monthly_multivariable_correction(data, monthly_ckpt, tmp_path):
    m = read_manifest(monthly_ckpt)
    assert m.field_names == ("tas", "pr", "psl")
    assert m.normalization["pr"]["transform"] == "log"
    assert m.hyperparameters["frequency"] == "month"
    assert m.hyperparameters["network"]["ramps"] == 8  # monthly pr has no dry months here
    # the two model cells inside the ERA5 box, one file per variable in the input
    inputs = {}
    for v, p in samples.MONTHLY_HISTORICAL.items():
        ds = xr.open_dataset(data / p, decode_times=CODER).sel(lat=[46.42, 48.32],
                                                             method="nearest").isel(lon=[0])
        inputs[v] = tmp_path / f"{v}_inside.nc"
        ds.to_netcdf(inputs[v])
    out = correct_file(CorrectionRequest(
        method="ml", inputs=tuple(inputs.values()), output=tmp_path / "monthly_bc.nc",
        model=monthly_ckpt, period=(1979, 2004)))
    ds = _open(out)
    assert set(ds.data_vars) >= {"tas", "pr", "psl"} and ds["pr"].dims == ("time", "lat", "lon")
    assert float(ds["pr"].min()) >= 0
    pair = load_pair([out], [data / samples.MONTHLY_REFERENCE],
                     PairConfig(("tas", "pr", "psl")))
    raw = load_pair(list(inputs.values()), [data / samples.MONTHLY_REFERENCE],
                    PairConfig(("tas", "pr", "psl")))
    for v in ("tas", "pr", "psl"):  # calibration-period mean bias: at least 4x smaller
        c = float(select_years(pair.sim[v], (1979, 2004)).mean())
        r = float(select_years(pair.ref[v], (1979, 2004)).mean())
        s = float(select_years(raw.sim[v], (1979, 2004)).mean())
        assert abs(c - r) < 0.25 * abs(s - r), (v, c, r, s)
    # pr: ERA5 is drier than the model; the corrected mean must follow ERA5
    assert float(pair.sim["pr"].mean()) * 86400 == pytest.approx(
        float(select_years(pair.ref["pr"], (1979, 2004)).mean()) * 86400, rel=0.05)


def test_drop_checkpoint_corrects_the_calibrated_cells_wrong_grid_fails(data, monthly_ckpt,
                                                                          daily_ckpt, tmp_path):
    # trained with outside="drop": the full 8 x 5 model files give the 2 calibrated cells
    full = correct_file(CorrectionRequest(
        method="ml", inputs=tuple(data / p for p in samples.MONTHLY_HISTORICAL.values()),
        output=tmp_path / "full.nc", model=monthly_ckpt, period=(2005, 2014)))
    ds = _open(full)
    assert ds["tas"].shape == (120, 2, 1)
    np.testing.assert_allclose(ds["lat"].values, [46.42, 48.32], atol=0.01)
    # a grid with none of the calibrated cells, or off the grid of an outside="error" one
    moved = tmp_path / "moved"
    moved.mkdir()
    for v, p in samples.MONTHLY_HISTORICAL.items():
        m = _open(data / p)
        m.assign_coords(lon=m.lon + 1.0).to_netcdf(moved / f"{v}.nc")
    out = tmp_path / "wrong_grid.nc"
    with pytest.raises(DataError, match="none of the input's cells is one of the 2 calibrated"):
        correct_file(CorrectionRequest(method="ml", inputs=tuple(moved.glob("*.nc")),
                                       output=out, model=monthly_ckpt))
    daily = _open(data / samples.DAILY_HISTORICAL).isel(time=slice(0, 400))
    daily.assign_coords(lon=daily.lon + 0.7).to_netcdf(moved / "daily.nc")
    with pytest.raises(FieldError, match="not on the checkpoint's grid"):
        correct_file(CorrectionRequest(method="ml", inputs=(moved / "daily.nc",), output=out,
                                       model=daily_ckpt))
    assert not out.exists() and not list(tmp_path.glob(".*tmp*"))


def test_daily_checkpoint_refuses_monthly_input(data, daily_ckpt, tmp_path):
    with pytest.raises(DataError, match="monthly data but the checkpoint .* was trained on daily data"):
        correct_file(CorrectionRequest(
            method="ml", inputs=(data / samples.MONTHLY_HISTORICAL["tas"],),
            output=tmp_path / "x.nc", model=daily_ckpt))


def test_file_and_dask_chunks_are_bounded():
    import dask.array as dsa

    big = xr.DataArray(dsa.zeros((36500, 720, 1440), dtype=np.float32, chunks=(365, 720, 1440)),
                       dims=("time", "lat", "lon"))
    assert apply_mod._file_chunks(big) == (1, 720, 1440)
    assert apply_mod._chunks_for(big, 256) == {"time": -1, "lat": 1, "lon": 256}
    small = xr.DataArray(np.zeros((3650, 4, 1), np.float32), dims=("time", "lat", "lon"))
    assert apply_mod._file_chunks(small) == (3650, 4, 1)
    assert apply_mod._chunks_for(small, 256) == {"time": -1, "lat": 4, "lon": 1}
