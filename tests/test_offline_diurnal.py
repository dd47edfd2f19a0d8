"""Sub-daily data corrected per time of day (``TrainConfig.diurnal = "slots"``, the default).

Built in tmp_path from the shared real files (skipped, with the reason, when absent), as
tests/test_offline_subdaily.py builds its variants: a 3-hourly simulation of instants
(3hrPt: 00:00, 03:00, ..., 21:00 UTC) = the real IPSL-CM6A-LR daily tas + a diurnal cycle of
amplitude 2 K peaking at 12 UTC, and an hourly reference = the real ERA5 daily t2m + a
diurnal cycle of amplitude 5 K peaking at 15 UTC (both a little larger in summer, varying
from day to day), 1979-1981. The model's diurnal cycle is too small and too early, and its
daily means carry IPSL's real seasonal bias.

Checked on the values over the calibration period: the mean diurnal cycle of the ``ml``
output (mean per time of day, averaged over the points) matches the reference's with one
correction per time of day and not with one over all hours; the daily means are corrected
as well; an input at other times of day is refused, naming the file and the slots; a subset
of the slots is corrected as in the whole file; a reference at other times of day is refused
at training; a perfect model of 3-hour means gets no correction whether it is stamped mid-step
or at the end of its steps (with time bounds; without them, stamps on the steps' boundaries
are refused); warnings and errors name the time of day; daily data are not affected; the MLP
trunk corrects the diurnal cycle too; sub-daily precipitation draws its dry values per time of
day.
"""

from __future__ import annotations

import dataclasses
import re
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from conftest import open_cftime, perfect_three_hour_model, stamps_at, write_cftime

from atmocorrect import cli
from atmocorrect.checkpoint import read_manifest, read_weights
from atmocorrect.data import samples
from atmocorrect.data.pairs import PairConfig, load_pair
from atmocorrect.errors import DataError
from atmocorrect.offline.apply import CorrectionRequest, correct_file
from atmocorrect.offline.config import NetworkConfig, TrainConfig
from atmocorrect.offline.train import prepare, train_offline

warnings.filterwarnings("ignore", category=FutureWarning)
YEARS = slice("1979", "1981")
CALIBRATION = (1979, 1981)
STEPS = 150
SLOTS = np.arange(0, 24, 3)
A_SIM, PEAK_SIM = 2.0, 12.0  # K, UTC hour
A_REF, PEAK_REF = 5.0, 15.0


_open = open_cftime


def _write(ds: xr.Dataset, path: Path, units: str = "hours since 1979-01-01") -> Path:
    return write_cftime(ds, path, units)


def _cycle(days: np.ndarray, hours: np.ndarray, amp: float, peak: float,
           seed: int) -> np.ndarray:
    """(days, hours) diurnal cycle: zero mean over the day's hours (and over 3-hourly
    instants), 30 % larger in summer, scaled by a random factor per day (clouds)."""
    doy = np.array([t.dayofyr for t in days])
    rng = np.random.default_rng(seed)
    a = amp * (1.0 + 0.3 * np.cos(2 * np.pi * (doy - 180) / 365.0))[:, None] * rng.uniform(
        0.6, 1.4, (days.size, 1))
    return a * np.cos(2 * np.pi * (hours[None, :] - peak) / 24.0)


_stamps = stamps_at


def _sub_daily(daily: xr.DataArray, hours: np.ndarray, cycle: np.ndarray, name: str,
               attrs: dict, minutes: int = 0) -> xr.DataArray:
    """``daily`` (time, y, x) + ``cycle`` (days, hours) at every hour of ``hours``."""
    x = daily.values.astype("f8")[:, None] + cycle[:, :, None, None]
    return xr.DataArray(x.reshape(-1, *daily.shape[1:]), dims=daily.dims,
                        coords={"time": _stamps(daily["time"].values, hours, minutes),
                                **{d: daily[d] for d in daily.dims[1:]}},
                        name=name, attrs=attrs)


@pytest.fixture(scope="module")
def case(sample_data, tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("diurnal")
    daily_sim = _open(sample_data / samples.DAILY_HISTORICAL)["tas"].sel(time=YEARS).load()
    attrs = {"units": "K", "standard_name": "air_temperature",
             "cell_methods": "area: mean time: point"}
    sim = _sub_daily(daily_sim, SLOTS, _cycle(daily_sim["time"].values, SLOTS, A_SIM, PEAK_SIM, 0),
                     "tas", attrs).astype("f4")
    sim.attrs = attrs
    daily_ref = _open(sample_data / samples.DAILY_REFERENCE)["t2m"].sel(
        time=YEARS, lon=slice(9, 11)).load()
    hours = np.arange(24)
    t2m = _sub_daily(daily_ref, hours, _cycle(daily_ref["time"].values, hours, A_REF, PEAK_REF, 1),
                     "t2m", dict(daily_ref.attrs))
    files = {"sim": _write(sim.to_dataset(), d / "tas_3hrPt.nc"),
             "ref": _write(t2m.to_dataset(), d / "era5_t2m_1h.nc")}
    return {"dir": d, "data": sample_data, "sim_da": sim, "t2m": t2m, "daily_sim": daily_sim,
            "daily_ref": daily_ref, **files}


@pytest.fixture(scope="module")
def trained(case) -> dict:
    """Checkpoints with one correction per time of day (the default) and over all hours
    (``--diurnal pooled``, through the command line), and the corrected calibration period;
    training times are printed (``pytest -s``)."""
    d, out = case["dir"], {}
    t0 = time.perf_counter()
    out["slots_ckpt"] = train_offline([case["sim"]], [case["ref"]], d / "ck_slots",
                                      PairConfig(("tas",)),
                                      TrainConfig(steps=STEPS, calibration=CALIBRATION))
    t1 = time.perf_counter()
    assert cli.main(["train", "offline", "--simulation", str(case["sim"]), "--reference",
                     str(case["ref"]), "--variables", "tas", "--calibration", "1979-1981",
                     "--steps", str(STEPS), "--diurnal", "pooled", "--out",
                     str(d / "ck_pooled"), "--quiet"]) == 0
    t2 = time.perf_counter()
    print(f"\ntraining {STEPS} steps, 3-hourly 1979-1981: slots {t1 - t0:.1f} s, "
          f"pooled {t2 - t1:.1f} s (reading the pair included)")
    out["pooled_ckpt"] = d / "ck_pooled"
    for mode in ("slots", "pooled"):
        path = correct_file(CorrectionRequest(method="ml", inputs=(case["sim"],),
                                              output=d / f"ml_{mode}.nc",
                                              model=out[f"{mode}_ckpt"]))
        out[mode] = _open(path)["tas"].load()
    return out


def _slot_means(da: xr.DataArray) -> np.ndarray:
    """(8, points): the mean of every time of day over the period, per point."""
    hours = np.array([t.hour for t in da["time"].values])
    x = np.asarray(da.values, dtype=np.float64).reshape(da.shape[0], -1)
    return np.stack([x[hours == h].mean(axis=0) for h in SLOTS])


def _monthly_means(da: xr.DataArray) -> np.ndarray:
    """(12, points): the seasonal cycle of the daily means (every time step of a month)."""
    month = np.array([t.month for t in da["time"].values])
    x = np.asarray(da.values, dtype=np.float64).reshape(da.shape[0], -1)
    return np.stack([x[month == m].mean(axis=0) for m in range(1, 13)])


def test_one_correction_per_time_of_day_corrects_the_diurnal_cycle(case, trained):
    ref = load_pair([case["sim"]], [case["ref"]], PairConfig(("tas",))).ref["tas"]
    target = _slot_means(ref)
    cycle_mae = {}
    for name, da in (("raw", case["sim_da"]), ("pooled", trained["pooled"]),
                     ("slots", trained["slots"])):
        assert da.shape == case["sim_da"].shape and np.isfinite(da.values).all()
        bias = (_slot_means(da) - target).mean(axis=1)  # per time of day, over the points
        cycle_mae[name] = float(np.abs(bias).mean())
    print("per-time-of-day mean bias, MAE over the 8 slots (K):",
          {k: round(v, 3) for k, v in cycle_mae.items()})
    # the pooled correction hardly touches the diurnal cycle (nights 3.5 K too warm, afternoons
    # 3.5 K too cold in the raw model); one correction per time of day removes it
    assert cycle_mae["raw"] > 2.0 and cycle_mae["pooled"] > 1.5
    assert cycle_mae["slots"] < 0.3 and cycle_mae["slots"] * 5 < cycle_mae["pooled"]
    manifest = read_manifest(trained["slots_ckpt"])
    assert manifest.hyperparameters["diurnal"]["slots"] == [int(h) * 3600 for h in SLOTS]
    assert manifest.hyperparameters["tokens"]["slots"] == 8
    assert "tas@03:00" in manifest.normalization and manifest.field_names == ("tas",)
    assert "per time of day (00:00, 03:00" in trained["slots"].attrs["bias_adjustment"]
    pooled = read_manifest(trained["pooled_ckpt"])
    assert "diurnal" not in pooled.hyperparameters and "slots" not in pooled.hyperparameters["tokens"]
    assert pooled.provenance["config"]["train"]["diurnal"] == "pooled"


def test_daily_means_are_still_corrected(case, trained):
    ref = load_pair([case["sim"]], [case["ref"]], PairConfig(("tas",))).ref["tas"]
    target = _monthly_means(ref)
    mae = {name: float(np.abs(_monthly_means(da) - target).mean())
           for name, da in (("raw", case["sim_da"]), ("slots", trained["slots"]))}
    print("seasonal-cycle MAE of the daily means (K):", {k: round(v, 3) for k, v in mae.items()})
    assert mae["slots"] < 0.5 * mae["raw"]


def test_other_times_of_day_are_refused_and_a_subset_is_corrected_alike(case, trained):
    d, sim = case["dir"], case["sim_da"]
    shifted = _write(sim.assign_coords(time=_stamps(case["daily_sim"]["time"].values, SLOTS + 1))
                     .to_dataset(), d / "tas_3hr_shifted.nc")
    with pytest.raises(DataError, match=r"tas_3hr_shifted.nc: 8768 time step\(s\) of the input "
                       r"are at times of day \(01:00, 04:00, .*22:00 UTC\).*knows 00:00, 03:00, "
                       r"06:00, 09:00, 12:00, 15:00, 18:00, 21:00 UTC"):
        correct_file(CorrectionRequest(method="ml", inputs=(shifted,), output=d / "bad.nc",
                                       model=trained["slots_ckpt"]))
    # every 6 hours: each time of day is corrected on its own, so exactly as in the whole file
    six = _write(sim.isel(time=slice(0, None, 2)).to_dataset(), d / "tas_6hr.nc")
    got = _open(correct_file(CorrectionRequest(method="ml", inputs=(six,),
                                               output=d / "ml_6hr.nc",
                                               model=trained["slots_ckpt"])))["tas"]
    np.testing.assert_array_equal(got.values, trained["slots"].isel(time=slice(0, None, 2)).values)


def test_reference_times_of_day_must_match_the_simulations(case):
    d, cfg = case["dir"], TrainConfig(calibration=CALIBRATION)
    # a 3-hourly reference at 01:00, 04:00, ...: which hour pairs with the model's 00:00?
    odd = _write(case["t2m"].isel(time=slice(1, None, 3)).to_dataset(), d / "era5_3h_odd.nc")
    pair = load_pair([case["sim"]], [odd], PairConfig(("tas",)))
    with pytest.raises(DataError, match=r"era5_3h_odd.nc has the times of day 01:00, 04:00, "
                       r".*the simulation .*tas_3hrPt.nc 00:00, 03:00.*diurnal='pooled'"):
        prepare(pair, cfg)
    assert not prepare(pair, TrainConfig(calibration=CALIBRATION, diurnal="pooled")).slots
    # 3-hour means stamped mid-step (01:30, ...) against the hourly reference's means over the
    # same steps, labelled by their start (00:00, ...): paired in order
    mean = case["sim_da"].assign_coords(time=_stamps(case["daily_sim"]["time"].values, SLOTS, 30)
                                     + np.timedelta64(1, "h").item())
    mean.attrs = {**mean.attrs, "cell_methods": "area: time: mean"}
    mid = _write(mean.to_dataset(), d / "tas_3hr_mean.nc", "minutes since 1979-01-01")
    data = prepare(load_pair([mid], [case["ref"]], PairConfig(("tas",))), cfg)
    assert data.slots == tuple(int(h) * 3600 + 5400 for h in SLOTS)
    first = data.variables[0]
    assert first.name == "tas@01:30" and len(data.variables) == 8
    hourly = case["t2m"].isel(time=slice(0, 3 * 24 * 365 + 24))
    steps = hourly.coarsen(time=3).mean().isel(time=slice(0, None, 8))  # 00:00-03:00 each day
    expected = steps.interp(lat=case["sim_da"]["lat"].astype("f8"),
                            lon=case["sim_da"]["lon"].astype("f8")).values.reshape(steps.shape[0], -1)
    # detrended per point: compare the day-to-day anomalies
    np.testing.assert_allclose(np.diff(first.ref, axis=0), np.diff(expected, axis=0), atol=0.05)


def _perfect_model(case, minutes: int, bounds: bool, name: str) -> Path:
    """A perfect 3-hourly model: the exact 3-hour means of the hourly reference on the model's
    points, each stamped ``minutes`` after the start of its step (90: mid-step, 180: at its
    end, as CF allows), with CF time bounds or without."""
    ds = perfect_three_hour_model(case["t2m"], case["sim_da"], case["daily_ref"]["time"].values,
                                  minutes, bounds)
    return _write(ds, case["dir"] / name, "minutes since 1979-01-01")


def test_a_perfect_model_is_left_alone_however_its_steps_are_stamped(case):
    """Each time of day is paired with the reference's values over the same steps (labelled by
    their start): a perfect model of 3-hour means gets no correction, stamped mid-step (01:30
    = 00:00-03:00, told from the stamps) or at the end of its steps (03:00 = 00:00-03:00, told
    from its time bounds; paired by time of day, the end-stamped 03:00 met the reference's step
    03:00-06:00: a mean |correction| of 0.8 K after these 20 steps, 2.4 K after 150). Stamps on the steps' boundaries without time
    bounds (the 3 hours before 03:00 or after?) are refused, naming the file."""
    d, got = case["dir"], {}
    for tag, minutes, bounds in (("mid", 90, False), ("end", 180, True)):
        path = _perfect_model(case, minutes, bounds, f"tas_3hr_perfect_{tag}.nc")
        ckpt = train_offline([path], [case["ref"]], d / f"ck_perfect_{tag}", PairConfig(("tas",)),
                             TrainConfig(steps=20, calibration=CALIBRATION,
                                         network=NetworkConfig(trunk="mlp")))
        out = _open(correct_file(CorrectionRequest(method="ml", inputs=(path,),
                                                   output=d / f"ml_perfect_{tag}.nc",
                                                   model=ckpt)))["tas"]
        got[tag] = float(np.abs(out.values - _open(path)["tas"].values).mean())
    print("perfect model, mean |correction| (K):", {k: round(v, 3) for k, v in got.items()})
    assert got["mid"] < 0.1 and got["end"] < 0.1
    bare = _perfect_model(case, 180, False, "tas_3hr_perfect_end_bare.nc")
    with pytest.raises(DataError, match=r"tas_3hr_perfect_end_bare.nc holds values stamped on "
                       r"the boundaries of its 3-hour steps \(00:00, 03:00, .*21:00 UTC\), "
                       r"without time bounds .*value at 03:00 describes the 3 hours before it "
                       r"or after it.*diurnal='pooled'"):
        prepare(load_pair([bare], [case["ref"]], PairConfig(("tas",))),
                TrainConfig(calibration=CALIBRATION))


def test_messages_name_the_time_of_day_the_file_and_the_value(case):
    """Per time of day, the warning about calibration values beyond the physical bounds and the
    error about negative values under a log transform name the slot, the file and (for the
    log transform) the minimum."""
    pair = load_pair([case["sim"]], [case["ref"]], PairConfig(("tas",)))
    cfg = TrainConfig(calibration=CALIBRATION)

    def as_var(name: str, shift: float, units: str):
        data = {role: xr.Dataset({name: (getattr(pair, role)["tas"] + shift).assign_attrs(
            {**getattr(pair, role)["tas"].attrs, "units": units})}) for role in ("sim", "ref")}
        return dataclasses.replace(pair, **data, sources={
            f"{role}:{name}": pair.sources[f"{role}:tas"] for role in ("simulation", "reference")})

    # "hurs" in % from tas - 200 K: 50-110 %, above 100 % in summer (supersaturation)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        prepare(as_var("hurs", -200.0, "%"), cfg)
    outside = [str(w.message) for w in record if "clipped to the bounds" in str(w.message)]
    assert any(re.match(r"simulation .*tas_3hrPt.nc: variable 'hurs@12:00': \d+ of 4384 "
                        r"value\(s\) lie outside", m) for m in outside), outside
    assert all(re.search(r"variable 'hurs@\d\d:00'", m) for m in outside)
    with pytest.raises(DataError, match=r"simulation .*tas_3hrPt.nc: variable 'tas@00:00' has "
                       r"negative values \(minimum -[\d.]+ K\) in 1979-1981; its log transform"):
        prepare(as_var("tas", -290.0, "K"), dataclasses.replace(cfg, transforms={"tas": "log"}))


def test_daily_data_are_not_affected(case, tmp_path):
    """``diurnal`` is a no-op for daily data: the same calibration series, no slots, and the
    same checkpoint and corrected values with either setting (checked against files written
    before slots existed, too: docs/offline.md)."""
    sim, ref = case["data"] / samples.DAILY_HISTORICAL, case["data"] / samples.DAILY_REFERENCE
    pair = load_pair([sim], [ref], PairConfig(("tas",)))
    a = prepare(pair, TrainConfig(calibration=(1979, 1990)))
    b = prepare(pair, TrainConfig(calibration=(1979, 1990), diurnal="pooled"))
    assert not a.slots and [v.name for v in a.variables] == ["tas"]
    np.testing.assert_array_equal(a.variables[0].sim, b.variables[0].sim)
    np.testing.assert_array_equal(a.point_feats, b.point_feats)
    outs = {}
    for mode in ("slots", "pooled"):
        ckpt = train_offline([sim], [ref], tmp_path / f"ck_{mode}", PairConfig(("tas",)),
                             TrainConfig(steps=10, calibration=(1979, 1990), diurnal=mode,
                                         network=NetworkConfig(trunk="mlp")))
        hyper = read_manifest(ckpt).hyperparameters
        assert "diurnal" not in hyper
        outs[mode] = (read_weights(ckpt, read_manifest(ckpt)), _open(correct_file(
            CorrectionRequest(method="ml", inputs=(sim,), output=tmp_path / f"{mode}.nc",
                              model=ckpt, period=(1991, 1992))))["tas"].values)
    for k, v in outs["slots"][0].items():
        np.testing.assert_array_equal(v.numpy(), outs["pooled"][0][k].numpy())
    np.testing.assert_array_equal(outs["slots"][1], outs["pooled"][1])


def test_mlp_trunk_per_time_of_day(case, tmp_path):
    """The MLP trunk takes the slots as variables too (one-hot and point features) and corrects
    the diurnal cycle as well (it learns more slowly than the transformer: at 60 steps the
    cycle is still half wrong, 120 are taken; ~7 s). Checked on 1981: what is left per time of
    day is mostly that year's common mean bias, the shape of the cycle is right."""
    ckpt = train_offline([case["sim"]], [case["ref"]], tmp_path / "ck", PairConfig(("tas",)),
                         TrainConfig(steps=120, calibration=CALIBRATION,
                                     network=NetworkConfig(trunk="mlp")))
    manifest = read_manifest(ckpt)
    assert manifest.hyperparameters["n_inputs"] == 2 * 6 + 3 + 4 * 8 + 8
    out = _open(correct_file(CorrectionRequest(method="ml", inputs=(case["sim"],),
                                               output=tmp_path / "ml.nc", model=ckpt,
                                               period=(1981, 1981))))["tas"]
    assert out.shape == case["sim_da"].sel(time="1981").shape and np.isfinite(out.values).all()
    ref = load_pair([case["sim"]], [case["ref"]], PairConfig(("tas",))).ref["tas"].sel(time="1981")
    target = _slot_means(ref)
    cycle_mae = {}
    for name, da in (("raw", case["sim_da"].sel(time="1981")), ("slots", out)):
        bias = (_slot_means(da) - target).mean(axis=1)  # per time of day, over the points
        cycle_mae[name] = float(np.abs(bias).mean())
        cycle_mae[f"{name}, shape"] = float(np.abs(bias - bias.mean()).mean())
    print("MLP trunk, per-time-of-day mean bias MAE, 1981 (K):",
          {k: round(v, 3) for k, v in cycle_mae.items()})
    assert cycle_mae["raw, shape"] > 2.0 and cycle_mae["slots, shape"] < 0.3
    assert cycle_mae["slots"] < 0.5 * cycle_mae["raw"]


def _dry_pr(tas: xr.DataArray, name: str, **attrs) -> xr.DataArray:
    """A precipitation-like flux from temperature (kg m-2 s-1): wet above 283 K, dry (0)
    below it at every time of day of the same cold days."""
    x = np.clip(np.asarray(tas.values, np.float64) - 283.0, 0.0, None) * 2e-5
    return tas.copy(data=x.astype(tas.dtype)).rename(name).assign_attrs(
        {"units": "kg m-2 s-1", "standard_name": "precipitation_flux", **attrs})


def test_each_time_of_day_draws_its_own_dry_values(case, monkeypatch):
    """Sub-daily precipitation per time of day: the dry values of the calibration are
    jittered with draws seeded by point *and* time of day, so the slots of one point, dry on
    the same days, get different draws (the same seed for every slot moved dry 03:00 and
    15:00 values in lockstep); 00:00 keeps the point's seed (daily data's draws). The
    correction seeds its draws with the slot it corrects."""
    from atmocorrect.offline import apply as apply_module
    from atmocorrect.offline.wetdays import jitter_dry

    d = case["dir"]
    sim = _write(_dry_pr(case["sim_da"], "pr", cell_methods="area: mean time: point")
                 .to_dataset(), d / "pr_3hrPt.nc")
    ref = _write(_dry_pr(case["t2m"], "pr").to_dataset(), d / "pr_1h.nc")
    pair = load_pair([sim], [ref], PairConfig(("pr",)))
    data = prepare(pair, TrainConfig(calibration=CALIBRATION))
    by_name = {v.name: v for v in data.variables}
    s00, s03, s15 = (by_name[f"pr@{h}"].sim for h in ("00:00", "03:00", "15:00"))
    raw = np.asarray(pair.sim["pr"].values, np.float64).reshape(pair.sim.sizes["time"], -1)
    hours = np.array([t.hour for t in pair.sim["time"].values])
    dry = (raw[hours == 0] == 0) & (raw[hours == 3] == 0) & (raw[hours == 15] == 0)
    assert dry.sum() > 1000  # the cold days: dry at every time of day
    assert np.all(s00[dry] != s03[dry]) and np.all(s03[dry] != s15[dry])
    # 00:00 is jittered as a daily series of the same point is (seed [seed, point])
    v00 = by_name["pr@00:00"]
    again = np.log(jitter_dry(raw[hours == 0], v00.wet_threshold, np.arange(raw.shape[1]),
                              seed=TrainConfig().seed) + v00.offset)
    np.testing.assert_array_equal(s00, again)
    # the correction passes each slot to the draws
    seen: list[int] = []

    def spy(x, threshold, points, seed=20161, slot=0):
        seen.append(slot)
        return jitter_dry(x, threshold, points, seed, slot)

    monkeypatch.setattr(apply_module, "jitter_dry", spy)
    correct_file(CorrectionRequest(method="ml", inputs=(case["sim"],), output=d / "ml_spy.nc",
                                   model=train_offline(
                                       [case["sim"]], [case["ref"]], d / "ck_spy",
                                       PairConfig(("tas",)),
                                       TrainConfig(steps=5, calibration=CALIBRATION))))
    assert sorted(set(seen)) == [int(h) * 3600 for h in SLOTS]
