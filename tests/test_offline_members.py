"""Ensemble members in one file (a ``member_id`` dim, as intake-esm/Pangeo stack them): the
training pools the members (more samples of the model's climate), the learned correction
corrects every member on its own with the one checkpoint, the classical methods calibrate each
member on the same member of the historical run (and say so when it has none), and the
evaluation scores every member and reports their mean.

Built in tmp_path from the shared real files (skipped, with the reason, when absent): the
real IPSL-CM6A-LR run and a second "member" made of the same run shifted by a year plus 0.3 K
(a stand-in for another realisation: only one is shipped).
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import xarray as xr

from atmocorrect import cli
from atmocorrect.checkpoint import read_manifest
from atmocorrect.data import samples
from atmocorrect.data.pairs import PairConfig, load_pair
from atmocorrect.errors import DataError
from atmocorrect.offline.config import TrainConfig
from atmocorrect.offline.train import prepare

warnings.filterwarnings("ignore", category=FutureWarning)
CODER = xr.coders.CFDatetimeCoder(use_cftime=True)
MEMBERS = ["r1i1p1f1", "r2i1p1f1"]


@pytest.fixture(scope="module")
def ensemble(sample_data, tmp_path_factory):
    d = tmp_path_factory.mktemp("members")
    ds = xr.open_dataset(sample_data / samples.DAILY_HISTORICAL, decode_times=CODER)
    ds = ds.sel(time=slice("1979", "1994")).load()
    other = (ds["tas"].roll(time=365, roll_coords=False) + 0.3).assign_attrs(ds["tas"].attrs)
    tas = xr.concat([ds["tas"], other], dim="member_id").assign_coords(member_id=MEMBERS)
    both = ds.drop_vars("tas").assign(tas=tas.transpose("member_id", "time", "lat", "lon"))
    files = {"both": d / "tas_members.nc", "r1": d / "tas_r1.nc", "r2": d / "tas_r2.nc"}
    both.to_netcdf(files["both"])
    for k in range(len(MEMBERS)):
        both.isel(member_id=k, drop=True).to_netcdf(files[f"r{k + 1}"])
    ckpt = d / "ckpt"
    assert cli.main(["train", "offline", "--simulation", str(files["both"]), "--reference",
                     str(sample_data / samples.DAILY_REFERENCE), "--variables", "tas",
                     "--calibration", "1979-1990", "--steps", "30", "--out", str(ckpt),
                     "--quiet"]) == 0
    return {"dir": d, "files": files, "ckpt": ckpt, "ref": sample_data / samples.DAILY_REFERENCE}


def test_training_pools_the_members(ensemble):
    files, ref = ensemble["files"], ensemble["ref"]
    cfg = TrainConfig(calibration=(1979, 1990))
    pooled = prepare(load_pair([files["both"]], [ref], PairConfig(("tas",), pool_members=True)),
                     cfg)
    single = prepare(load_pair([files["r1"]], [ref], PairConfig(("tas",))), cfg)
    v, w = pooled.variables[0], single.variables[0]
    n = w.sim.shape[0]
    assert v.sim.shape == (2 * n, 4) and v.sim_season.shape == (2 * n,)
    np.testing.assert_allclose(v.sim[:n], w.sim)  # member 1 first, detrended on its own
    assert v.ref.shape == w.ref.shape  # the reference is not duplicated
    assert pooled.grid_shape == single.grid_shape == (4, 1)
    manifest = read_manifest(ensemble["ckpt"])
    assert manifest.provenance["members"] == {"dims": ["member_id"], "count": 2,
                                              "labels": {"member_id": MEMBERS}}
    assert "member_id" not in manifest.fields[0].dims
    # without pooling (the classical path), a member dim is refused, naming what to do
    with pytest.raises(DataError, match=r"ensemble members are pooled by `atmocorrect train "
                       r"offline`.*one member at a time"):
        load_pair([files["both"]], [ref], PairConfig(("tas",)))


def test_ml_corrects_each_member_as_its_own_file(ensemble, capsys):
    d, files, ckpt = ensemble["dir"], ensemble["files"], ensemble["ckpt"]
    outs = {}
    for key in ("both", "r1", "r2"):
        outs[key] = d / f"ml_{key}.nc"
        assert cli.main(["correct", "--method", "ml", "--model", str(ckpt), "--input",
                         str(files[key]), "--output", str(outs[key]), "--quiet"]) == 0
    both = xr.open_dataset(outs["both"], decode_times=CODER)["tas"]
    assert both.dims == ("member_id", "time", "lat", "lon")  # the input's order kept
    assert both["member_id"].values.tolist() == MEMBERS
    for k in (1, 2):
        alone = xr.open_dataset(outs[f"r{k}"], decode_times=CODER)["tas"]
        np.testing.assert_array_equal(both.isel(member_id=k - 1).values, alone.values)
    raw = xr.open_dataset(files["both"], decode_times=CODER)["tas"]
    july = (both - raw).where(raw["time"].dt.month == 7).mean(["time", "lat", "lon"])
    assert (july < -0.5).all(), july.values  # the model's summer warm bias corrected
    # the classical methods take one member at a time: a clear error, no output
    rc = cli.main(["correct", "--method", "qdm", "--historical", str(files["r1"]),
                   "--reference", str(ensemble["ref"]), "--calibration", "1979-1990",
                   "--input", str(files["both"]), "--output", str(d / "qdm.nc"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1 and "has dims member_id (2: 'r1i1p1f1', 'r2i1p1f1')" in err, err
    assert not (d / "qdm.nc").exists()


# ------------------------------------------------------------ classical methods, evaluation
def _load(path) -> xr.Dataset:
    """The file's contents in memory, the file closed again (netCDF handles left open while
    the same file is read and written elsewhere can crash HDF5)."""
    with xr.open_dataset(path, decode_times=CODER) as ds:
        return ds.load()


def _qdm(ensemble, historical, inp, out, *extra: str) -> int:
    return cli.main(["correct", "--method", "qdm", "--historical", str(historical),
                     "--reference", str(ensemble["ref"]), "--calibration", "1979-1990",
                     "--period", "1991-1994", "--input", str(inp), "--output", str(out),
                     "--quiet", *extra])


@pytest.fixture(scope="module")
def classical(ensemble):
    """qdm of the 2-member file (calibrated member by member on the 2-member historical run,
    in chunks of 3 series, so that chunks cut across members) and of each member's file."""
    d, files = ensemble["dir"], ensemble["files"]
    outs = {key: d / f"qdm_{key}.nc" for key in ("both", "r1", "r2")}
    assert _qdm(ensemble, files["both"], files["both"], outs["both"], "--chunk-points", "3") == 0
    for key in ("r1", "r2"):
        assert _qdm(ensemble, files[key], files[key], outs[key]) == 0
    return outs


def test_classical_corrects_each_member_as_its_own_file(ensemble, classical):
    both = _load(classical["both"])["tas"]
    assert both.dims == ("member_id", "time", "lat", "lon")  # the input's order kept
    assert both["member_id"].values.tolist() == MEMBERS
    assert both.sizes["time"] == 4 * 365 + 1  # 1991-1994
    for k in (1, 2):
        alone = _load(classical[f"r{k}"])["tas"]
        np.testing.assert_array_equal(both.isel(member_id=k - 1).values, alone.values)
    # each member calibrated on its own historical series: r2 is r1 a year later plus 0.3 K,
    # so its correction differs from r1's
    raw = _load(ensemble["files"]["both"])["tas"].sel(
        time=slice("1991", "1994"))
    change = (both - raw).mean(["time", "lat", "lon"]).values
    assert abs(change[0] - change[1]) > 0.05, change
    # the historical run holds more members than the input: matched by label
    d = ensemble["dir"]
    _load(ensemble["files"]["both"]).isel(member_id=[1]).to_netcdf(d / "tas_only_r2.nc")
    assert _qdm(ensemble, ensemble["files"]["both"], d / "tas_only_r2.nc", d / "qdm_sub.nc") == 0
    sub = _load(d / "qdm_sub.nc")["tas"]
    assert sub["member_id"].values.tolist() == MEMBERS[1:]
    np.testing.assert_array_equal(sub.values[0], both.values[1])


def test_classical_member_mismatch_names_files_and_dim(ensemble, capsys):
    d, files = ensemble["dir"], ensemble["files"]
    relabelled = d / "tas_r3_r2.nc"
    _load(files["both"]).assign_coords(
        member_id=["r3i1p1f1", "r2i1p1f1"]).to_netcdf(relabelled)
    cases = [
        (files["both"], relabelled, ["tas_r3_r2.nc", "tas_members.nc", "'member_id'",
                                     "'r3i1p1f1'"]),
        (files["both"], files["r1"], ["tas_members.nc", "tas_r1.nc", "member_id"]),
    ]
    for historical, inp, words in cases:
        out = d / "qdm_mismatch.nc"
        assert _qdm(ensemble, historical, inp, out) == 1
        err = capsys.readouterr().err
        assert all(w in err for w in words), err
        assert "calibrates each ensemble member on the same member" in err, err
        assert not out.exists()


def test_evaluation_scores_each_member(ensemble, classical, capsys):
    d, files = ensemble["dir"], ensemble["files"]
    ds = _load(files["both"])
    late = {"both": d / "tas_members_late.nc"}
    ds.sel(time=slice("1987", "1994")).to_netcdf(late["both"])
    for k in (1, 2):
        late[f"r{k}"] = d / f"tas_r{k}_late.nc"
        ds.isel(member_id=k - 1, drop=True).sel(time=slice("1987", "1994")).to_netcdf(
            late[f"r{k}"])

    def evaluate(key: str) -> dict:
        out = d / f"report_{key}.json"
        assert cli.main(["evaluate", "offline", "--reference", str(ensemble["ref"]),
                         "--period", "1991-1994", "--baseline-period", "1979-1984",
                         "--method", f"raw={files[key]}", "--method", f"qdm={classical[key]}",
                         "--signal", f"raw={files[key]}:{late[key]}",
                         "--signal", f"qdm={files[key]}:{classical[key]}",
                         "--json", str(out)]) == 0
        return json.loads(out.read_text())

    both, singles = evaluate("both"), [evaluate("r1"), evaluate("r2")]
    out = capsys.readouterr().out
    assert "raw, qdm: means over 2 ensemble members (member_id)" in out, out
    assert "members" not in singles[0] and "members" not in singles[0]["meta"]
    assert both["meta"]["members"]["qdm"] == {"dims": ["member_id"], "count": 2,
                                              "labels": MEMBERS}
    for method in ("raw", "qdm"):
        row = both["methods"][method]
        assert set(row) == set(singles[0]["methods"][method])
        assert "climate_change_signal_change" in row and "frost_days_bias_per_year" in row
        for key, value in row.items():
            per = [both["members"][method][m][key] for m in MEMBERS]
            assert per == [s["methods"][method][key] for s in singles], (method, key)
            assert value == pytest.approx(np.mean(per), abs=1e-12), (method, key)
    # the members differ (r2 is r1 a year later plus 0.3 K), so the mean is not either one
    raw_bias = [both["members"]["raw"][m]["mean_bias"] for m in MEMBERS]
    assert abs(raw_bias[0] - raw_bias[1]) > 0.01, raw_bias
    # a signal future whose members the baseline lacks: an error naming both files and the dim
    rc = cli.main(["evaluate", "offline", "--reference", str(ensemble["ref"]), "--period",
                   "1991-1994", "--baseline-period", "1979-1984", "--method",
                   f"raw={files['both']}", "--signal", f"raw={files['r1']}:{late['both']}"])
    err = capsys.readouterr().err
    assert rc == 1 and "tas_r1.nc" in err and "tas_members_late.nc" in err, err
    assert "member_id" in err, err


def test_bootstrap_draws_the_same_years_for_every_member(ensemble, monkeypatch):
    """``--bootstrap`` with members: each resample draws years once for all members, and a
    method's metric in it is the mean over its members of each member's own metric for those
    years. Two different members (r2 is r1 a year later plus 0.3 K), so that scoring one of
    them only gives other values: every resample's metrics are checked against the
    single-member metrics of the rows it drew, and the result against their means."""
    from atmocorrect.offline import metrics

    ds = _load(ensemble["files"]["both"]).sel(time=slice("1991", "1994"))
    ref = load_pair([ensemble["files"]["r1"]], [ensemble["ref"]], PairConfig(("tas",))).ref
    ref = ref.sel(time=slice("1991", "1994"))
    r, t, tr = ref["tas"].values.reshape(-1, 4), ds["time"].values, ref["time"].values
    a = ds["tas"].transpose("time", "member_id", ...).values.reshape(t.size, 2, 4)
    a = a.astype(float)
    b = a * 0.9 + 27.0  # another "correction" of the same two members
    original, calls = metrics._metrics_of, []

    def spy(x, ref_rows, ts, tr_rows, *args):
        out = original(x, ref_rows, ts, tr_rows, *args)
        calls.append((np.array(x), np.array(ref_rows), ts, tr_rows, args, out))
        return out

    monkeypatch.setattr(metrics, "_metrics_of", spy)
    n = 6
    result = metrics.bootstrap_comparison(a, b, r, t, tr, n=n, frost_threshold=273.15)
    assert len(calls) == 2 * n  # per resample: a, then b
    years = metrics.TimeInfo.of(t, "day").years
    rows = {y: np.flatnonzero(years == y) for y in np.unique(years)}
    hows = {k: how for k, _, how in metrics.METRICS}
    diffs: dict[str, list[float]] = {}
    drawn_sets = set()
    for call_a, call_b in zip(calls[::2], calls[1::2], strict=True):
        ts = call_a[2]
        # the years this resample drew (sorted, with repeats), as rows of the held-out period
        drawn = [y for y in np.unique(ts.years)
                 for _ in range((ts.years == y).sum() // rows[y].size)]
        drawn_sets.add(tuple(drawn))
        pick = np.concatenate([rows[y] for y in drawn])
        np.testing.assert_array_equal(ts.years, years[pick])
        np.testing.assert_array_equal(call_b[2].years, ts.years)  # a and b: the same years
        np.testing.assert_array_equal(call_b[1], call_a[1])  # and the same reference draw
        means = []
        for full, (x, ref_rows, ts_x, tr_x, args, got) in ((a, call_a), (b, call_b)):
            # both members, each at the drawn rows: the same years for every member
            assert x.shape == (pick.size, 2, 4)
            np.testing.assert_array_equal(x, full[pick])
            single = [metrics.marginal_metrics(full[pick][:, k], ref_rows, ts_x, tr_x, *args)
                      for k in range(2)]
            # the members' metrics differ, so one member's alone is not their mean
            assert max(abs(single[0][k] - single[1][k]) for k in single[0]) > 0.01, single
            mean = {k: (single[0][k] + single[1][k]) / 2 for k in single[0]}
            assert got == pytest.approx(mean, rel=1e-9, abs=1e-12)
            means.append(mean)
        for k in means[0]:
            diffs.setdefault(k, []).append(metrics.score(means[0][k], hows[k])
                                           - metrics.score(means[1][k], hows[k]))
    assert len(drawn_sets) > 1, drawn_sets  # the resamples drew different years
    assert set(result) == set(diffs)
    for k, d in diffs.items():
        arr = np.asarray(d)
        assert result[k] == pytest.approx({
            "share_at_least_as_good": float(np.mean(arr <= 0)),
            "score_diff_p05": float(np.percentile(arr, 5)),
            "score_diff_p95": float(np.percentile(arr, 95))}, rel=1e-9, abs=1e-12), k


@pytest.fixture(scope="module")
def layouts(ensemble):
    """The 2-member file in other member layouts: without labels (no ``member_id``
    coordinate), without labels and 3 members, one member, other labels."""
    d, files = ensemble["dir"], ensemble["files"]
    ds = _load(files["both"])
    out = {"labels": files["both"], "r1": files["r1"]}
    variants = {
        "no_labels": ds.drop_vars("member_id"),
        "no_labels_3": ds.isel(member_id=[0, 1, 0]).drop_vars("member_id"),
        "only_r2": ds.isel(member_id=[1]),
        "r3_r2": ds.assign_coords(member_id=["r3i1p1f1", "r2i1p1f1"]),
    }
    for key, v in variants.items():
        out[key] = d / f"tas_layout_{key}.nc"
        v.to_netcdf(out[key])
    return out


# (historical of `correct` = baseline of a signal, input of `correct` = the signal's future,
#  accepted, words of both errors)
LAYOUTS = {
    "labels on both": ("labels", "labels", True, []),
    "labels on both, more in the historical run": ("labels", "only_r2", True, []),
    "labels on neither, same count": ("no_labels", "no_labels", True, []),
    "labels on the historical run only": ("labels", "no_labels", False,
                                          ["labels its members along 'member_id'"]),
    "labels on the input only": ("no_labels", "labels", False,
                                 ["labels its members along 'member_id'"]),
    "labels on neither, other counts": ("no_labels_3", "no_labels", False,
                                        ["without labels to match them"]),
    "an input member the historical run lacks": ("labels", "r3_r2", False, ["'r3i1p1f1'"]),
    "members in the input only": ("r1", "labels", False, ["has no member dim"]),
    "members in the historical run only": ("labels", "r1", False, ["has no member dim"]),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_correct_and_evaluate_pair_members_alike(ensemble, classical, layouts, layout,
                                                 capsys):
    """`correct` (classical: input member <- its historical member) and `evaluate offline`
    (signal: future member <- its baseline member) pair two files' members by the one rule
    (coords.match_members), so they accept and refuse the same layouts, naming the same."""
    hist_key, inp_key, accepted, words = LAYOUTS[layout]
    hist, inp = layouts[hist_key], layouts[inp_key]
    out = ensemble["dir"] / f"qdm_layout_{hist_key}_{inp_key}.nc"
    rc_correct = _qdm(ensemble, hist, inp, out)
    err_correct = capsys.readouterr().err
    rc_evaluate = cli.main(["evaluate", "offline", "--reference", str(ensemble["ref"]),
                            "--period", "1991-1994", "--baseline-period", "1979-1984",
                            "--method", f"raw={inp}", "--signal", f"raw={hist}:{inp}"])
    err_evaluate = capsys.readouterr().err
    assert (rc_correct, rc_evaluate) == ((0, 0) if accepted else (1, 1)), (err_correct,
                                                                          err_evaluate)
    if accepted:
        if layout == "labels on neither, same count":  # by position: as by label here
            np.testing.assert_array_equal(_load(out)["tas"].values,
                                          _load(classical["both"])["tas"].values)
        return
    assert not out.exists()
    for err in (err_correct, err_evaluate):
        assert all(w in err for w in [hist.name, inp.name, "member_id", *words]), err
