"""Zarr stores in and out of the offline path (CMIP6 on Pangeo-style cloud stores).

Built in tmp_path from the shared real files (skipped, with the reason, when they are absent);
needs the ``zarr`` package (installed by ``make test``; skipped with the reason otherwise).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr

from atmocorrect import cli
from atmocorrect.checkpoint import read_manifest, sha256_file
from atmocorrect.data import samples

zarr = pytest.importorskip("zarr", reason="the zarr package is not installed (pip install zarr)")
warnings.filterwarnings("ignore", category=FutureWarning)
CODER = xr.coders.CFDatetimeCoder(use_cftime=True)


def _run(argv: list[str]) -> int:
    try:
        return cli.main(argv)
    except SystemExit as exc:  # argparse errors
        return int(exc.code or 0)


@pytest.fixture(scope="module")
def stores(sample_data, tmp_path_factory):
    """The real IPSL historical run 1979-1992 as a zarr v2 store and as a netCDF file, and
    a checkpoint trained from the store."""
    root = tmp_path_factory.mktemp("zarr")
    ds = xr.open_dataset(sample_data / samples.DAILY_HISTORICAL, decode_times=CODER)
    ds = ds.sel(time=slice("1979", "1992"))
    store, nc = root / "tas_hist.zarr", root / "tas_hist.nc"
    ds.chunk({"time": 1826}).to_zarr(store, mode="w", zarr_format=2, consolidated=True)
    ds.to_netcdf(nc)
    ckpt = root / "ckpt"
    rc = _run(["train", "offline", "--simulation", str(store),
               "--reference", str(sample_data / samples.DAILY_REFERENCE),
               "--variables", "tas", "--calibration", "1979-1990", "--steps", "20",
               "--out", str(ckpt)])
    assert rc == 0
    return {"root": root, "store": store, "nc": nc, "ckpt": ckpt}


def test_checkpoint_provenance_hashes_the_store(stores):
    sources = read_manifest(stores["ckpt"]).provenance["simulation"]
    assert sources[0]["path"].endswith("tas_hist.zarr")
    assert sources[0]["sha256"] == sha256_file(stores["store"])
    # a changed chunk changes the hash of the store
    copy = stores["root"] / "copy.zarr"
    xr.open_zarr(stores["store"], decode_times=CODER).load().pipe(
        lambda d: d.assign(tas=d["tas"] + np.float32(0.5))
    ).chunk({"time": 1826}).to_zarr(copy, mode="w", zarr_format=2, consolidated=True)
    assert sha256_file(copy) != sha256_file(stores["store"])


def test_zarr_in_zarr_out_equals_netcdf(stores):
    root = stores["root"]
    for src, out in ((stores["store"], root / "ml.zarr"), (stores["nc"], root / "ml.nc")):
        assert _run(["correct", "--method", "ml", "--model", str(stores["ckpt"]),
                     "--input", str(src), "--output", str(out)]) == 0
    assert (root / "ml.zarr" / ".zmetadata").is_file()  # a consolidated store, not a file
    a = xr.open_zarr(root / "ml.zarr", decode_times=CODER)
    b = xr.open_dataset(root / "ml.nc", decode_times=CODER)
    raw = xr.open_dataset(stores["nc"], decode_times=CODER)
    assert a["tas"].dims == raw["tas"].dims and a["tas"].dtype == np.float32
    assert a["tas"].attrs["units"] == "K"
    assert "atmocorrect correct" in a.attrs["history"]
    np.testing.assert_array_equal(a["time"].values, raw["time"].values)
    np.testing.assert_array_equal(a["tas"].values, b["tas"].values)
    # it is a correction: July means move by the model's known summer warm bias (~1-2 K)
    july = a["tas"].time.dt.month == 7
    shift = float((a["tas"] - raw["tas"]).where(july).mean())
    assert shift < -0.5, shift
    # an existing store is not overwritten without --overwrite, and is left intact
    before = sha256_file(root / "ml.zarr")
    assert _run(["correct", "--method", "ml", "--model", str(stores["ckpt"]),
                 "--input", str(stores["store"]), "--output", str(root / "ml.zarr")]) != 0
    assert sha256_file(root / "ml.zarr") == before
    assert not [p for p in root.iterdir() if p.name.startswith(".ml.zarr.tmp-")]
