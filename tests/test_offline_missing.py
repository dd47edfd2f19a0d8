"""Missing values in the reference: gaps in time (a station record, 1 % of days) and points
with no value at all (a land-sea mask, as E-OBS and ERA5-Land have). Built from the real ERA5
daily file with values removed; the classical methods (ibicus takes no NaN) and ``ml`` must
calibrate on what is there, and masked points must be an error naming them, or with
``--outside drop`` be written as missing values, never guessed."""

from __future__ import annotations

import warnings

import cftime
import numpy as np
import pytest
import xarray as xr

from atmocorrect.data import samples
from atmocorrect.data.pairs import PairConfig, load_pair
from atmocorrect.errors import DataError
from atmocorrect.offline.apply import CorrectionRequest, correct_file
from atmocorrect.offline.classical import correct_block
from atmocorrect.offline.config import TrainConfig
from atmocorrect.offline.evaluate import EvaluationSpec, evaluate
from atmocorrect.offline.metrics import marginal_metrics
from atmocorrect.offline.train import train_offline


def _days(n: int) -> np.ndarray:
    return np.array([cftime.DatetimeGregorian(2000, 1, 1) + np.timedelta64(i, "D").item()
                     for i in range(n)])


def test_classical_methods_calibrate_on_the_values_that_are_there():
    t = _days(1460)
    rng = np.random.default_rng(0)
    obs, hist = rng.normal(280, 5, (1460, 3)), rng.normal(278, 5, (1460, 3))
    complete = correct_block("linear-scaling", "tas", "day", obs, hist, hist, t, t, t)
    gappy = obs.copy()
    gappy[::50, 1] = np.nan  # 2 % of days missing at point 1
    gappy[:, 2] = np.nan  # point 2 masked
    out = correct_block("linear-scaling", "tas", "day", gappy, hist, hist, t, t, t)
    np.testing.assert_array_equal(out[:, 0], complete[:, 0])  # grouping leaves others alone
    assert np.isfinite(out[:, 1]).all()
    # linear scaling adds the mean bias of a 31-day window: 2 % fewer days move it a little
    assert np.abs(out[:, 1] - complete[:, 1]).max() < 0.5
    assert np.isnan(out[:, 2]).all()
    # a gap in the simulation itself stays a gap
    hist_gap = hist.copy()
    hist_gap[10, 0] = np.nan
    out = correct_block("qdm", "tas", "day", obs, hist, hist_gap, t, t, t)
    assert np.isnan(out[10, 0]) and np.isfinite(np.delete(out[:, 0], 10)).all()


def test_metrics_leave_out_points_without_reference_values():
    t = _days(730)
    rng = np.random.default_rng(1)
    ref = rng.normal(275, 8, (730, 2))
    sim = ref + 1.0
    base = marginal_metrics(sim, ref, t, t, "day", frost_threshold=273.15)
    ref_masked = np.concatenate([ref, np.full((730, 1), np.nan)], axis=1)
    sim_extra = np.concatenate([sim, rng.normal(260, 8, (730, 1))], axis=1)
    assert marginal_metrics(sim_extra, ref_masked, t, t, "day", frost_threshold=273.15) == base
    # frost days are a rate over the days present: a gap does not read as fewer frost days
    gappy = sim.copy()
    gappy[::2] = np.nan
    m = marginal_metrics(gappy, ref, t, t, "day", frost_threshold=273.15)
    assert m["frost_days_bias_per_year"] == pytest.approx(base["frost_days_bias_per_year"], abs=15)
    # the 365 days left of two years: their share of frost days times 365 steps a year
    sim_rate = np.sum(sim[1::2] < 273.15, 0) / 365 * 365
    ref_rate = np.sum(ref < 273.15, 0) / 2
    assert m["frost_days_bias_per_year"] == pytest.approx(float((sim_rate - ref_rate).mean()))


@pytest.fixture(scope="module")
def gappy_reference(sample_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("missing")
    ds = xr.open_dataset(sample_data / samples.DAILY_REFERENCE).load()
    t2m = ds["t2m"].values.copy()
    t2m[np.random.default_rng(0).random(t2m.shape[0]) < 0.01] = np.nan  # 1 % of days
    t2m[:, 0, :] = np.nan  # the southern row masked: the model point at 48.17N has no value
    ds["t2m"] = (ds["t2m"].dims, t2m, ds["t2m"].attrs)
    ds.to_netcdf(out / "era5_gappy.nc")
    return out / "era5_gappy.nc", out


def test_masked_points_are_an_error_naming_them(sample_data, gappy_reference):
    sim = sample_data / samples.DAILY_HISTORICAL
    with pytest.raises(DataError, match=r"1 of 4 simulation point.*era5_gappy.nc.*48.17N, "
                                        r"10.00E.*--outside drop"):
        load_pair([sim], [gappy_reference[0]], PairConfig(("tas",)))


def test_gaps_and_masked_points_end_to_end(sample_data, gappy_reference):
    ref, out = gappy_reference
    sim = sample_data / samples.DAILY_HISTORICAL
    cfg = PairConfig(("tas",), outside="drop")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ckpt = train_offline([sim], [ref], out / "ck", cfg,
                             TrainConfig(steps=30, calibration=(1979, 1990)))
        files = {}
        for method in ("ml", "qdm"):
            files[method] = correct_file(CorrectionRequest(
                method=method, inputs=(sim,), model=ckpt, period=(1991, 1994),
                output=out / f"{method}.nc"))
            y = xr.open_dataset(files[method])["tas"].values.reshape(-1, 4)
            assert np.isnan(y[:, 0]).all(), method  # masked: missing, not guessed
            assert np.isfinite(y[:, 1:]).all(), method  # gaps in the reference: calibrated
        whole = correct_file(CorrectionRequest(method="ml", inputs=(sim,), model=ckpt,
                                               output=out / "ml_whole.nc"))
        report = evaluate(EvaluationSpec(
            reference=(str(ref),), variables=("tas",), period=(1991, 1994), pair=cfg,
            methods={"raw": (str(sim),), **{k: (str(v),) for k, v in files.items()}},
            signals={"raw": (str(sim), str(sim)), "ml": (str(whole), str(whole))},
            baseline_period=(1991, 1994)))
    rows = report["methods"]
    for method in ("raw", "ml", "qdm"):
        assert all(np.isfinite(v) for v in rows[method].values()), (method, rows[method])
    # the signal (whole run minus 1991-1994) of raw is taken over the 3 points ml has too
    x = xr.open_dataset(sim)["tas"].astype("float64")
    per_point = (x.mean("time") - x.sel(time=slice("1991", "1994")).mean("time")).values.ravel()
    assert rows["raw"]["climate_change_signal"] == pytest.approx(per_point[1:].mean(), abs=1e-5)
    assert abs(per_point[1:].mean() - per_point.mean()) > 1e-3
