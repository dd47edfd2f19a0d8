"""Ensemble members in one file (a ``member_id`` dim, as intake-esm/Pangeo stack them): the
training pools the members (more samples of the model's climate), the learned correction
corrects every member on its own with the one checkpoint, and the classical methods and the
evaluation, which take one member at a time, say so.

Built in tmp_path from the shared real files (skipped, with the reason, when absent): the
real IPSL-CM6A-LR run and a second "member" made of the same run shifted by a year plus 0.3 K
(a stand-in for another realisation: only one is shipped).
"""

from __future__ import annotations

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
