"""The classical methods (ibicus) on sub-daily data: one adjustment per time of day.

Built in tmp_path from the shared real files (skipped, with the reason, when absent), as
tests/test_offline_diurnal.py builds its variant: a 3-hourly simulation of instants (3hrPt:
00:00, 03:00, ..., 21:00 UTC) = the real IPSL-CM6A-LR daily tas + a diurnal cycle of 2 K
amplitude peaking at 12 UTC, and an hourly reference = the real ERA5 daily t2m + the cycle of
``conftest.diurnal_anomaly`` (3 +- 2 K, peaking mid-afternoon), 1979-1981. The model's diurnal
cycle is too small and too early.

Checked on the values: QDM per time of day removes the per-time-of-day mean bias that QDM over
all hours leaves (ibicus is written for daily data; pooled, it calibrates 03:00 and 15:00 on one
distribution); a 6-hourly subset is adjusted exactly as in the whole file; an input at times of
day the historical run does not hold is refused naming the file and the slots; 3-hour means
pair with the reference's step they cover (a perfect model stamped at the end of its steps,
with time bounds, is left alone; without bounds its stamps are refused); daily data take the
path they took before (the values are pinned); through ``correct_file`` (``atmocorrect
correct``) per time of day by default and over all hours with ``diurnal="pooled"``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from conftest import (
    diurnal_anomaly,
    hourly_times,
    open_cftime,
    perfect_three_hour_model,
    stamps_at,
    write_cftime,
)

from atmocorrect.data import samples
from atmocorrect.data.pairs import PairConfig, load_pair
from atmocorrect.data.timeaxis import select_years
from atmocorrect.errors import DataError
from atmocorrect.offline.apply import CorrectionRequest, correct_file
from atmocorrect.offline.classical import SlotPlan, classical_slots, correct_block

warnings.filterwarnings("ignore", category=FutureWarning)
CALIBRATION = (1979, 1981)
SLOTS = np.arange(0, 24, 3)


_open = open_cftime


def _write(ds: xr.Dataset, path: Path, units: str = "minutes since 1979-01-01") -> Path:
    return write_cftime(ds, path, units)


_stamps = stamps_at


def _model_cycle(days: np.ndarray) -> np.ndarray:
    """(days, 8) the model's cycle at 00:00, 03:00, ...: 2 K peaking at 12 UTC, 30 % larger
    in summer, varying from day to day."""
    doy = np.array([t.dayofyr for t in days])
    amp = 2.0 * (1.0 + 0.3 * np.cos(2 * np.pi * (doy - 180) / 365.0))[:, None]
    amp = amp * np.random.default_rng(0).uniform(0.6, 1.4, (days.size, 1))
    return amp * np.cos(2 * np.pi * (SLOTS[None, :] - 12.0) / 24.0)


@pytest.fixture(scope="module")
def case(sample_data, tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("subdaily_classical")
    daily_sim = _open(sample_data / samples.DAILY_HISTORICAL)["tas"].sel(
        time=slice("1979", "1981")).load()
    days = daily_sim["time"].values
    x = daily_sim.values.astype("f8")[:, None] + _model_cycle(days)[:, :, None, None]
    sim = xr.DataArray(x.reshape(-1, *daily_sim.shape[1:]).astype("f4"), dims=daily_sim.dims,
                       coords={"time": _stamps(days, SLOTS), "lat": daily_sim["lat"],
                               "lon": daily_sim["lon"]}, name="tas",
                       attrs={"units": "K", "standard_name": "air_temperature",
                              "cell_methods": "area: mean time: point"})
    daily_ref = _open(sample_data / samples.DAILY_REFERENCE)["t2m"].sel(
        time=slice("1979", "1981"), lon=slice(9, 11)).load()
    rdays = daily_ref["time"].values
    y = daily_ref.values[:, None] + diurnal_anomaly(rdays, np.random.default_rng(1))[:, :, None,
                                                                                      None]
    t2m = xr.DataArray(y.reshape(-1, *daily_ref.shape[1:]), dims=daily_ref.dims,
                       coords={"time": hourly_times(rdays), "lat": daily_ref["lat"],
                               "lon": daily_ref["lon"]}, name="t2m", attrs=dict(daily_ref.attrs))
    files = {"sim": _write(sim.to_dataset(), d / "tas_3hrPt.nc"),
             "ref": _write(t2m.to_dataset(), d / "era5_t2m_1h.nc")}
    return {"dir": d, "data": sample_data, "sim_da": sim, "t2m": t2m, "days": days, **files}


def _calibration(sim: Path, ref: Path) -> tuple:
    """The pair, its reference and historical ``tas`` over the calibration period."""
    pair = load_pair([sim], [ref], PairConfig(("tas",)))
    return (pair, select_years(pair.ref, CALIBRATION)["tas"],
            select_years(pair.sim, CALIBRATION)["tas"])


def _adjust(method: str, pair, obs: xr.DataArray, hist: xr.DataArray, fut: xr.DataArray,
            plan: SlotPlan | None) -> np.ndarray:
    """``fut`` (time, points) adjusted as ``correct`` adjusts one chunk of points."""
    flat = lambda da: np.asarray(da.values, np.float64).reshape(da.shape[0], -1)  # noqa: E731
    return correct_block(method, "tas", pair.frequency, flat(obs), flat(hist), flat(fut),
                         obs["time"].values, hist["time"].values, fut["time"].values,
                         slots=plan)


def _slot_bias(x: np.ndarray, times: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(8,): the mean of every time of day minus ``target``'s, averaged over the points."""
    hours = np.array([t.hour for t in times])
    return np.array([(x[hours == h].mean(0) - target[i]).mean() for i, h in enumerate(SLOTS)])


def test_qdm_per_time_of_day_corrects_the_diurnal_cycle(case):
    """QDM per time of day against QDM over all hours (the previous behaviour, kept as
    ``diurnal="pooled"``), over the calibration period: the per-time-of-day mean bias (the
    MAE over the 8 slots, averaged over the points) falls from 1.15 K raw to 0.04 K per time of
    day; pooled it stays at 1.19 K (errors of up to 2.3 K at single times of day). A 6-hourly subset of the input is adjusted exactly as in
    the whole file (each time of day is a series of its own)."""
    pair, obs, hist = _calibration(case["sim"], case["ref"])
    plan = classical_slots(pair, "tas", obs, hist, hist["time"].values, "tas_3hrPt.nc", "qdm")
    assert plan is not None and plan.slots == tuple(int(h) * 3600 for h in SLOTS)
    assert classical_slots(pair, "tas", obs, hist, hist["time"].values, "tas_3hrPt.nc", "qdm",
                           diurnal="pooled") is None
    hours = np.array([t.hour for t in obs["time"].values])
    ref = np.asarray(obs.values, np.float64).reshape(obs.shape[0], -1)
    target = np.stack([ref[hours == h].mean(0) for h in SLOTS])
    times = hist["time"].values
    raw = np.asarray(hist.values, np.float64).reshape(hist.shape[0], -1)
    out = {"slots": _adjust("qdm", pair, obs, hist, hist, plan),
           "pooled": _adjust("qdm", pair, obs, hist, hist, None)}
    mae = {k: float(np.abs(_slot_bias(v, times, target)).mean())
           for k, v in (("raw", raw), *out.items())}
    print("qdm, per-time-of-day mean bias MAE over the 8 slots, 1979-1981 (K):",
          {k: round(v, 3) for k, v in mae.items()},
          "pooled per slot:", np.round(_slot_bias(out["pooled"], times, target), 2).tolist())
    assert mae["raw"] > 1.0 and mae["pooled"] > 1.0
    assert mae["slots"] < 0.1 and mae["slots"] * 20 < mae["pooled"]
    # and the monthly means are adjusted as well as pooled QDM adjusts them (ibicus's QDM
    # calibrated on 3 years leaves 0.84 K pooled, 0.78 K per time of day, from 1.26 K raw)
    month = np.array([t.month for t in times])
    monthly = lambda x, rows: np.stack([x[rows == m].mean(0) for m in range(1, 13)])  # noqa: E731
    ref_month = monthly(ref, np.array([t.month for t in obs["time"].values]))
    seasonal = {k: float(np.abs(monthly(x, month) - ref_month).mean())
                for k, x in (("raw", raw), *out.items())}
    print("seasonal-cycle MAE (K):", {k: round(v, 3) for k, v in seasonal.items()})
    assert seasonal["slots"] <= seasonal["pooled"] + 0.02
    assert seasonal["slots"] < 0.75 * seasonal["raw"]
    # every 6 hours: the same values as in the whole file
    six = hist.isel(time=slice(0, None, 2))
    plan6 = classical_slots(pair, "tas", obs, hist, six["time"].values, "tas_6hr.nc", "qdm")
    assert plan6 is not None and [p.seconds for p in plan6.parts] == [0, 21600, 43200, 64800]
    np.testing.assert_array_equal(_adjust("qdm", pair, obs, hist, six, plan6),
                                  out["slots"][::2])


def test_other_times_of_day_are_refused(case):
    """An input at 01:00, 04:00, ... against a historical run at 00:00, 03:00, ...: which
    time of day's calibration would it take? Refused, naming the file, the historical file
    and the slots."""
    pair, obs, hist = _calibration(case["sim"], case["ref"])
    shifted = _stamps(case["days"], SLOTS + 1)
    with pytest.raises(DataError, match=r"tas_3hr_shifted.nc: 8768 time step\(s\) of the input "
                       r"are at times of day \(01:00, 04:00, .*22:00 UTC\) that the historical "
                       r"simulation .*tas_3hrPt.nc does not hold: --method qdm corrects each "
                       r"time of day on its own.*holds 00:00, 03:00, 06:00, 09:00, 12:00, "
                       r"15:00, 18:00, 21:00 UTC.*--diurnal pooled"):
        classical_slots(pair, "tas", obs, hist, shifted, "tas_3hr_shifted.nc", "qdm")
    assert classical_slots(pair, "tas", obs, hist, shifted, "tas_3hr_shifted.nc", "qdm",
                           diurnal="pooled") is None


def _perfect_model(case, minutes: int, bounds: bool, name: str) -> Path:
    """A perfect 3-hourly model: the exact 3-hour means of the hourly reference at the
    model's points, each stamped ``minutes`` after the start of its step, with CF time bounds
    or without."""
    return _write(perfect_three_hour_model(case["t2m"], case["sim_da"], case["days"], minutes,
                                           bounds), case["dir"] / name)


def test_three_hour_means_pair_with_the_reference_step_they_cover(case):
    """A perfect model of 3-hour means stamped at the end of its steps (03:00 = 00:00-03:00,
    told from its time bounds) is paired per time of day with the reference's means over the
    same steps, as ``ml`` pairs them, and left alone by QDM per time of day (paired by label,
    its 03:00 would meet the reference's 03:00-06:00 and get a wrong cycle); without time
    bounds its stamps on the steps' boundaries are refused, naming the file."""
    path = _perfect_model(case, 180, True, "tas_3hr_perfect_end.nc")
    pair, obs, hist = _calibration(path, case["ref"])
    plan = classical_slots(pair, "tas", obs, hist, hist["time"].values, path.name, "qdm")
    # stamped 03:00, ..., 21:00 and 00:00 (the step 21:00-24:00 of the day before)
    assert plan is not None and plan.slots == tuple(int(h) * 3600 for h in SLOTS)
    parts = {p.seconds: p for p in plan.parts}
    # 03:00 = 00:00-03:00: the reference's step labelled 00:00; 00:00 = 21:00-24:00
    assert {t.hour for t in obs["time"].values[parts[10800].obs]} == {0}
    assert {t.hour for t in obs["time"].values[parts[0].obs]} == {21}
    out = _adjust("qdm", pair, obs, hist, hist, plan)
    x = np.asarray(hist.values, np.float64).reshape(hist.shape[0], -1)
    change = float(np.abs(out - x).mean())
    print(f"perfect model stamped at the end of its steps, qdm per time of day: mean "
          f"|correction| {change:.3f} K")
    assert change < 0.1
    bare = _perfect_model(case, 180, False, "tas_3hr_perfect_end_bare.nc")
    pair, obs, hist = _calibration(bare, case["ref"])
    with pytest.raises(DataError, match=r"tas_3hr_perfect_end_bare.nc holds values stamped on "
                       r"the boundaries of its 3-hour steps.*--diurnal pooled"):
        classical_slots(pair, "tas", obs, hist, hist["time"].values, bare.name, "qdm")


#: qdm of the daily pair, calibrated 1979-1990, 1991-01-01..05 at the first point, as the code
#: before per-time-of-day adjustment wrote them (float32 output).
DAILY_QDM_1991 = [273.37424, 271.2641, 270.69287, 274.70435, 275.47644]


def test_daily_data_take_the_previous_path(case, tmp_path):
    """Daily data get no plan and are adjusted as before, bit for bit (values pinned from
    the code before this change; ``diurnal`` makes no difference)."""
    sim, ref = case["data"] / samples.DAILY_HISTORICAL, case["data"] / samples.DAILY_REFERENCE
    pair = load_pair([sim], [ref], PairConfig(("tas",)))
    obs, hist = (select_years(ds, (1979, 1990))["tas"] for ds in (pair.ref, pair.sim))
    fut = select_years(pair.sim, (1991, 1992))["tas"]
    for mode in ("slots", "pooled"):
        assert classical_slots(pair, "tas", obs, hist, fut["time"].values, sim.name, "qdm",
                               diurnal=mode) is None
    got = _open(correct_file(CorrectionRequest(
        method="qdm", inputs=(sim,), output=tmp_path / "qdm.nc", reference=(ref,),
        historical=(sim,), calibration=(1979, 1990), period=(1991, 1992))))["tas"]
    np.testing.assert_array_equal(got.values[:5, 0, 0], np.array(DAILY_QDM_1991, "f4"))
    direct = _adjust("qdm", pair, obs, hist, fut, None)
    np.testing.assert_array_equal(got.values.reshape(got.shape[0], -1),
                                  direct.astype(got.dtype))
    pooled = _open(correct_file(CorrectionRequest(
        method="qdm", inputs=(sim,), output=tmp_path / "qdm_pooled.nc", reference=(ref,),
        historical=(sim,), calibration=(1979, 1990), period=(1991, 1992),
        diurnal="pooled")))["tas"]
    np.testing.assert_array_equal(pooled.values, got.values)


def test_correct_file_per_time_of_day_and_pooled(case):
    """Through ``correct_file`` (``atmocorrect correct --method qdm``): per time of day by
    default, over all hours with ``diurnal="pooled"`` (bit for bit ``correct_block`` without a
    plan, the previous behaviour); the output says which; an input at other times of day is
    refused."""
    d = case["dir"]
    pair, obs, hist = _calibration(case["sim"], case["ref"])
    hours = np.array([t.hour for t in obs["time"].values])
    ref = np.asarray(obs.values, np.float64).reshape(obs.shape[0], -1)
    target = np.stack([ref[hours == h].mean(0) for h in SLOTS])
    got = {}
    for mode in ("slots", "pooled"):
        da = _open(correct_file(CorrectionRequest(
            method="qdm", inputs=(case["sim"],), output=d / f"qdm_{mode}.nc",
            reference=(case["ref"],), historical=(case["sim"],), calibration=CALIBRATION,
            diurnal=mode)))["tas"]
        got[mode] = da
        x = np.asarray(da.values, np.float64).reshape(da.shape[0], -1)
        got[f"{mode} mae"] = float(np.abs(_slot_bias(x, da["time"].values, target)).mean())
    assert got["slots mae"] < 0.1 and got["pooled mae"] > 1.0
    assert "one correction per time of day (00:00, 03:00" in got["slots"].attrs["bias_adjustment"]
    assert "per time of day" not in got["pooled"].attrs["bias_adjustment"]
    np.testing.assert_array_equal(
        got["pooled"].values.reshape(got["pooled"].shape[0], -1),
        _adjust("qdm", pair, obs, hist, hist, None).astype("f4"))
    shifted = _write(case["sim_da"].assign_coords(time=_stamps(case["days"], SLOTS + 1))
                     .to_dataset(), d / "tas_3hr_shifted.nc")
    with pytest.raises(DataError, match=r"tas_3hr_shifted.nc: 8768 time step\(s\).*historical "
                       r"simulation .*tas_3hrPt.nc does not hold"):
        correct_file(CorrectionRequest(method="qdm", inputs=(shifted,), output=d / "bad.nc",
                                       reference=(case["ref"],), historical=(case["sim"],),
                                       calibration=CALIBRATION))


def test_cli_diurnal_reaches_the_classical_methods_and_is_refused_for_a_trained_ml(
        case, capsys):
    """``atmocorrect correct --diurnal pooled`` gives the pooled adjustment (bit for bit
    ``correct_file(diurnal="pooled")``); with ``--method ml`` and no ``--train`` the
    checkpoint decides, so ``--diurnal`` is refused rather than silently ignored."""
    from atmocorrect import cli

    d = case["dir"]
    out = d / "qdm_cli_pooled.nc"
    assert cli.main(["correct", "--method", "qdm", "--input", str(case["sim"]), "--output",
                     str(out), "--reference", str(case["ref"]), "--historical",
                     str(case["sim"]), "--calibration", "1979-1981", "--diurnal", "pooled",
                     "--quiet"]) == 0
    direct = _open(correct_file(CorrectionRequest(
        method="qdm", inputs=(case["sim"],), output=d / "qdm_direct_pooled.nc",
        reference=(case["ref"],), historical=(case["sim"],), calibration=CALIBRATION,
        diurnal="pooled")))["tas"]
    np.testing.assert_array_equal(_open(out)["tas"].values, direct.values)
    rc = cli.main(["correct", "--method", "ml", "--model", str(d / "no_checkpoint"), "--input",
                   str(case["sim"]), "--output", str(d / "ml.nc"), "--diurnal", "slots"])
    assert rc == 1
    assert "--diurnal slots with --method ml applies to --train only" in capsys.readouterr().err
    assert not (d / "ml.nc").exists()
