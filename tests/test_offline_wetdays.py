"""Dry days of daily precipitation in the learned correction (stochastic singularity removal).

The daily series are built from the real monthly pair (IPSL-CM5A2-INCA ``pr`` and ERA5 ``tp``,
the two model cells inside the ERA5 box): each month's real mean spread over days with random
wet days and gamma amounts (as in test_offline_generalise). The reference, interpolated from
independent cells, is wet on most days and the model on fewer than half: the wet-day
frequency is the bias to correct.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from test_offline_generalise import _daily_from_monthly, _open, _write

from atmocorrect.checkpoint import read_manifest
from atmocorrect.data import samples
from atmocorrect.data.coords import merge_expver
from atmocorrect.data.pairs import PairConfig, load_pair
from atmocorrect.offline.apply import CorrectionRequest, correct_file, load_offline_model
from atmocorrect.offline.config import ApplyConfig, NetworkConfig, TrainConfig
from atmocorrect.offline.metrics import marginal_metrics
from atmocorrect.offline.train import train_offline
from atmocorrect.offline.wetdays import jitter_dry, restore_dry, wet_threshold

YEARS = slice("1979", "1990")
WET = 0.1 / 86400.0  # 0.1 mm/day in kg m-2 s-1


def test_wet_threshold_in_the_variables_units():
    assert wet_threshold("pr", "kg m-2 s-1") == pytest.approx(WET)
    assert wet_threshold("pr", "mm day-1") == pytest.approx(0.1)
    assert wet_threshold("tas", "K") == 0.0
    assert wet_threshold("tp", "m", step_seconds=86400) == pytest.approx(1e-4)  # daily totals
    assert wet_threshold("pr", "mm", step_seconds=3 * 3600) == pytest.approx(0.1 / 8)
    with pytest.warns(UserWarning, match=r"'furlongs'.*'pr' are kept dry"):
        assert wet_threshold("pr", "furlongs") == 0.0


def test_jitter_replaces_only_dry_values_and_is_the_same_chunk_by_chunk():
    rng = np.random.default_rng(3)
    x = rng.gamma(0.7, 5e-5, (400, 5)) * (rng.random((400, 5)) < 0.5)
    x[7, 2] = np.nan
    points = np.array([10, 11, 12, 13, 14])
    y = jitter_dry(x, WET, points)
    dry = np.isfinite(x) & (x < WET)
    assert dry.sum() > 500
    assert ((y[dry] >= WET / 100) & (y[dry] < WET)).all()
    np.testing.assert_array_equal(y[~dry & np.isfinite(x)], x[~dry & np.isfinite(x)])
    assert np.isnan(y[7, 2])
    # a chunk of points gets exactly the draws it gets in the whole array
    np.testing.assert_array_equal(jitter_dry(x[:, 3:], WET, points[3:]), y[:, 3:])
    np.testing.assert_array_equal(restore_dry(y, WET)[dry], 0.0)
    np.testing.assert_array_equal(jitter_dry(x, 0.0, points), x)


def test_wet_day_count_metric():
    t = xr.date_range("2001-01-01", periods=730, freq="D", calendar="noleap").values
    ref = np.zeros((730, 1))
    ref[::2] = 3.0  # 182.5 wet days a year
    sim = np.zeros((730, 1))
    sim[::4] = 3.0
    sim[1::4] = 0.5  # below 1 mm: not wet
    m = marginal_metrics(sim, ref, t, t, frequency="day", wet_threshold=1.0)
    assert m["wet_days_bias_per_year"] == pytest.approx(91.5 - 182.5)
    assert "wet_days_bias_per_year" not in marginal_metrics(sim, ref, t, t, frequency="day")


@pytest.fixture(scope="module")
def daily_pr(sample_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("wetdays")
    pr = _open(sample_data / samples.MONTHLY_HISTORICAL["pr"])["pr"].sel(time=YEARS)
    sim = _write(_daily_from_monthly(pr, "noleap", 0).to_dataset(), out / "pr_day.nc", "noleap")
    era = merge_expver(_open(sample_data / samples.MONTHLY_REFERENCE))["tp"].sel(time=YEARS)
    tp = _daily_from_monthly(era.isel(latitude=slice(None, None, 2),
                                      longitude=slice(None, None, 2)), "proleptic_gregorian", 1)
    ref = _write(tp.to_dataset(), out / "tp_day.nc", "proleptic_gregorian")
    cfg = PairConfig(("pr",), outside="drop", accumulation_period=86400.0)
    ckpt = train_offline([sim], [ref], out / "ck", cfg,
                         TrainConfig(steps=400, calibration=(1979, 1990)))
    return {"sim": sim, "ref": ref, "pair": cfg, "ckpt": ckpt, "dir": out}


def test_learned_correction_fixes_the_wet_day_frequency(daily_pr):
    pair = load_pair([daily_pr["sim"]], [daily_pr["ref"]], daily_pr["pair"])
    ref = pair.ref["pr"].values.reshape(pair.ref["pr"].shape[0], -1)
    out = correct_file(CorrectionRequest(method="ml", inputs=(daily_pr["sim"],),
                                         model=daily_pr["ckpt"],
                                         output=daily_pr["dir"] / "ml.nc"))
    y = _open(out)["pr"].values.reshape(-1, 2)
    x = pair.sim["pr"].values.reshape(-1, 2)
    wet = {name: float((a >= WET).mean()) for name, a in (("raw", x), ("ml", y), ("ref", ref))}
    assert wet["ref"] - wet["raw"] > 0.3  # the bias is there ...
    assert abs(wet["ml"] - wet["ref"]) < 0.05, wet  # ... and corrected
    assert ((y == 0) | (y >= WET)).all() and np.isfinite(y).all()
    assert abs(y.mean() / ref.mean() - 1) < 0.1 < abs(x.mean() / ref.mean() - 1)
    # dry days on most steps: the automatic quantile-function resolution is the finer one
    assert read_manifest(daily_pr["ckpt"]).hyperparameters["network"]["ramps"] == 16


def test_chunked_correction_draws_the_same_dry_values(daily_pr):
    whole = correct_file(CorrectionRequest(method="ml", inputs=(daily_pr["sim"],),
                                           model=daily_pr["ckpt"],
                                           output=daily_pr["dir"] / "whole.nc"))
    chunked = correct_file(CorrectionRequest(method="ml", inputs=(daily_pr["sim"],),
                                             model=daily_pr["ckpt"],
                                             apply=ApplyConfig(chunk_points=1),
                                             output=daily_pr["dir"] / "chunked.nc"))
    np.testing.assert_array_equal(_open(whole)["pr"].values, _open(chunked)["pr"].values)


def test_checkpoint_without_wet_threshold_keeps_dry_days_dry(daily_pr):
    """Checkpoints written before the dry-day handling have no ``wet_threshold``: their dry
    values stay dry, as they did."""
    old = daily_pr["dir"] / "old_ckpt"
    shutil.copytree(daily_pr["ckpt"], old)
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["normalization"]["pr"]["wet_threshold"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    out = correct_file(CorrectionRequest(method="ml", inputs=(daily_pr["sim"],), model=old,
                                         output=daily_pr["dir"] / "old.nc"))
    y = _open(out)["pr"].values
    x = _open(daily_pr["sim"])["pr"].sel(lat=_open(out)["lat"], lon=_open(out)["lon"]).values
    assert (x == 0).sum() > 1000
    assert (y[x == 0] == 0).all()


def _calibration_scores(daily_pr, ckpt, name):
    """Wet-day (>= 1 mm) count bias per year and q50/q95 bias in mm/day of ``ml`` over the
    calibration years, against the interpolated reference."""
    pair = load_pair([daily_pr["sim"]], [daily_pr["ref"]], daily_pr["pair"])
    out = correct_file(CorrectionRequest(method="ml", inputs=(daily_pr["sim"],), model=ckpt,
                                         output=daily_pr["dir"] / name))
    ds = _open(out)
    y = ds["pr"].values.reshape(ds["pr"].shape[0], -1) * 86400
    ref = pair.ref["pr"].values.reshape(pair.ref["pr"].shape[0], -1) * 86400
    return marginal_metrics(y, ref, ds["time"].values, pair.ref["time"].values, "day",
                            wet_threshold=1.0)


def test_learned_dry_fraction_and_the_simulations_own_quantiles(daily_pr):
    """The dry-day fraction is learned explicitly (hurdle) and the simulation's side of the
    correction is the calibration's own quantiles: the calibration-period wet-day count,
    median and 95th percentile land much closer to the reference's than with one smooth
    quantile function over dry and wet values (hurdle off, the correction before)."""
    manifest = read_manifest(daily_pr["ckpt"])
    assert manifest.hyperparameters["network"]["hurdle"] is True
    assert manifest.normalization["pr"]["hurdle"] is True
    model = load_offline_model(daily_pr["ckpt"])[1]
    assert model.empirical_simulation("pr")
    # learned dry fractions against the calibration values below 0.1 mm/day, over the year
    pair = load_pair([daily_pr["sim"]], [daily_pr["ref"]], daily_pr["pair"])
    nodes = (np.arange(73) + 0.5) / 73
    points = np.arange(2)
    p_ref, p_sim = model.dry_fraction("pr", points, nodes)
    for p, da in ((p_ref, pair.ref["pr"]), (p_sim, pair.sim["pr"])):
        observed = (da.values.reshape(da.shape[0], -1) < WET).mean(axis=0)
        np.testing.assert_allclose(p.mean(axis=1), observed, atol=0.02)
    assert p_sim.mean() - p_ref.mean() > 0.3  # the model is dry far more often
    old = daily_pr["dir"] / "ck_no_hurdle"
    train_offline([daily_pr["sim"]], [daily_pr["ref"]], old, daily_pr["pair"],
                  TrainConfig(steps=400, calibration=(1979, 1990),
                              network=NetworkConfig(hurdle=False)))
    assert "hurdle" not in read_manifest(old).normalization["pr"]
    assert not load_offline_model(old)[1].empirical_simulation("pr")
    now = _calibration_scores(daily_pr, daily_pr["ckpt"], "hurdle.nc")
    before = _calibration_scores(daily_pr, old, "no_hurdle.nc")
    # measured (season averages in mm/day): wet days +2.9 (before -9.0) d/yr; q50 +0.04
    # (-0.20), q95 -0.01 (+0.59), mean +0.07 (+0.16) mm/day. Averaged in log space, as until
    # 2026-12-07: +1.8 (-3.1) d/yr, +0.02 (-0.13), -0.05 (+0.29), +0.05 (+0.14)
    assert abs(now["wet_days_bias_per_year"]) < 4.0
    for q in ("wet_days_bias_per_year", "q50_bias", "q95_bias", "mean_bias"):
        assert abs(now[q]) < 0.5 * abs(before[q]), (q, now[q], before[q])


def test_classical_dry_day_draws_are_reproducible_and_leave_numpy_alone():
    """ibicus draws precipitation's dry days from numpy's global generator, unseeded: the
    same QDM and quantile mapping gave other wet-day counts from run to run. Seeded per
    block from the data, they repeat exactly; the caller's global generator is left where
    it was; another block of data draws other values."""
    import cftime

    from atmocorrect.offline.classical import correct_block

    t = np.array([cftime.DatetimeNoLeap(1990, 1, 1) + np.timedelta64(i, "D").item()
                  for i in range(3 * 365)])
    rng = np.random.default_rng(5)

    def rain(scale):  # kg m-2 s-1, 40 % dry days
        x = rng.gamma(0.8, scale, (t.size, 3)) / 86400.0
        return np.where(rng.uniform(size=x.shape) < 0.4, 0.0, x)

    obs, hist, fut = rain(4.0), rain(3.0), rain(3.5)
    for method in ("qdm", "quantile-mapping"):
        np.random.seed(123)
        expected_next = np.random.uniform(size=4)
        np.random.seed(123)
        first = correct_block(method, "pr", "day", obs, hist, fut, t, t, t)
        assert np.array_equal(np.random.uniform(size=4), expected_next), method
        np.random.seed(7)  # another global state: the same output
        again = correct_block(method, "pr", "day", obs, hist, fut, t, t, t)
        np.testing.assert_array_equal(again, first, err_msg=method)
        other = correct_block(method, "pr", "day", obs, hist, fut[::-1].copy(), t, t, t)
        assert not np.array_equal(other[::-1], first), method


def test_split_validation_script_on_daily_precipitation(daily_pr, monkeypatch):
    """examples/offline/crossval.py on a precipitation pair: the pair read with --outside drop
    and --accumulation-period, the metrics in mm/day with the wet-day count (no frost days),
    the raw row equal to the metrics computed here, QDM the same in two runs."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "examples" / "offline" / "crossval.py"
    spec = importlib.util.spec_from_file_location("crossval_example", path)
    crossval = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(crossval)
    monkeypatch.setattr(crossval, "SPLITS", {"short": ((1979, 1986), (1987, 1990), "inner")})
    argv = ["--historical", str(daily_pr["sim"]), "--reference", str(daily_pr["ref"]),
            "--variable", "pr", "--outside", "drop", "--accumulation-period", "86400",
            "--splits", "short", "--steps", "400", "--out", str(daily_pr["dir"] / "cv")]
    first = crossval.run(crossval.parse_args(argv))["short"]["metrics"]
    again = crossval.run(crossval.parse_args(argv))["short"]["metrics"]
    assert again["qdm"] == first["qdm"]

    pair = load_pair([daily_pr["sim"]], [daily_pr["ref"]], daily_pr["pair"])
    ts, tr = pair.sim["time"].values, pair.ref["time"].values
    in_val = [np.array([1987 <= t.year <= 1990 for t in ts]),
              np.array([1987 <= t.year <= 1990 for t in tr])]
    sim = pair.sim["pr"].values.reshape(ts.size, -1)[in_val[0]] * 86400.0
    ref = pair.ref["pr"].values.reshape(tr.size, -1)[in_val[1]] * 86400.0
    expected = marginal_metrics(sim, ref, ts[in_val[0]], tr[in_val[1]], "day", None, 1.0)
    assert first["raw"] == pytest.approx(expected)
    assert "frost_days_bias_per_year" not in first["raw"]
    assert first["raw"]["wet_days_bias_per_year"] < -30  # the model drizzles too rarely
    for method in ("qdm", "ml"):
        assert abs(first[method]["wet_days_bias_per_year"]) < 15, method
        assert abs(first[method]["mean_bias"]) < 0.6 * abs(first["raw"]["mean_bias"]), method


def test_season_smoothing_of_log_quantiles_keeps_the_mean_in_physical_units():
    """Averaging log quantiles over the season is a geometric average: it lowers the mean and
    the upper tail. ``smoothing_space = "physical"`` averages in the variable's units (the
    average of quantile functions, whose mean is the average of the means); untransformed
    variables are averaged as before."""
    from types import SimpleNamespace

    from atmocorrect.offline.apply import _smooth_quantiles, smooth_season

    rng = np.random.default_rng(2)
    season = np.sin(np.linspace(0, 2 * np.pi, 73, endpoint=False))[None, :, None]
    table = np.sort(rng.normal(0.0, 1.0, (2, 73, 21)), axis=-1) + 1.5 * season  # log values
    log_model = SimpleNamespace(norm={"pr": {"transform": "log", "offset": 0.0}},
                                inverse_transform=lambda v, y: np.exp(y),
                                forward_transform=lambda v, x: np.log(x))
    physical = _smooth_quantiles(log_model, "pr", table, ApplyConfig())
    geometric = _smooth_quantiles(log_model, "pr", table,
                                  ApplyConfig(smoothing_space="transformed"))
    np.testing.assert_allclose(np.exp(physical), smooth_season(np.exp(table), 31.0, axis=1))
    np.testing.assert_array_equal(geometric, smooth_season(table, 31.0, axis=1))
    # the annual mean of each quantile, in mm/day, is kept only by the physical average
    np.testing.assert_allclose(np.exp(physical).mean(1), np.exp(table).mean(1), rtol=1e-12)
    assert (np.exp(geometric).mean(1) < np.exp(table).mean(1)).all()
    identity = SimpleNamespace(norm={"tas": {"transform": "identity"}})
    np.testing.assert_array_equal(_smooth_quantiles(identity, "tas", table, ApplyConfig()),
                                  smooth_season(table, 31.0, axis=1))


def test_checkpoint_from_before_the_physical_average_corrects_as_it_did(daily_pr):
    """A checkpoint whose stored apply settings predate ``smoothing_space`` keeps the
    log-space average it was written with, also when --threads/--chunk-points override how
    it runs; a new checkpoint uses the physical average."""
    old = daily_pr["dir"] / "ckpt_before_physical"
    shutil.copytree(daily_pr["ckpt"], old)
    manifest = json.loads((old / "manifest.json").read_text())
    assert manifest["model"]["hyperparameters"]["apply"].pop("smoothing_space") == "physical"
    (old / "manifest.json").write_text(json.dumps(manifest))

    def corrected(model, name, **request):
        out = correct_file(CorrectionRequest(method="ml", inputs=(daily_pr["sim"],),
                                             model=model, output=daily_pr["dir"] / name,
                                             **request))
        return _open(out)["pr"].values

    as_before = corrected(old, "before.nc", apply_overrides={"chunk_points": 1})
    explicit = corrected(daily_pr["ckpt"], "log_space.nc",
                         apply=ApplyConfig(smoothing_space="transformed"))
    new = corrected(daily_pr["ckpt"], "physical.nc", apply_overrides={"chunk_points": 1})
    np.testing.assert_array_equal(as_before, explicit)
    assert np.nanmean(new) > np.nanmean(as_before)  # the geometric average was lower
