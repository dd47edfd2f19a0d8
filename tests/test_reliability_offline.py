"""Offline correction when the output location fails: a clear error and no partial file."""

from __future__ import annotations

import errno
import subprocess

import pytest
import xarray as xr
from conftest import atmocorrect_cli

from atmocorrect.data import samples

pytestmark = pytest.mark.reliability


def _correct(data, output, *extra):
    cmd = [atmocorrect_cli(), "correct", "--method", "linear-scaling",
           "--input", str(data / samples.DAILY_HISTORICAL),
           "--reference", str(data / samples.DAILY_REFERENCE),
           "--historical", str(data / samples.DAILY_HISTORICAL),
           "--period", "2005-2006", "--output", str(output), "--quiet", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def test_unwritable_output_location_is_a_clear_error(sample_data, tmp_path):
    pytest.importorskip("ibicus")
    blocker = tmp_path / "not_a_directory"
    blocker.write_text("a file where a directory was expected")
    proc = _correct(sample_data, blocker / "out.nc")
    assert proc.returncode != 0
    assert str(blocker) in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not_a_directory"]


def test_full_disk_leaves_no_partial_file(sample_data, tmp_path, monkeypatch):
    """A disk that fills up mid-write (faked: no full disk is at hand) loses nothing."""
    pytest.importorskip("ibicus")
    from atmocorrect.offline import apply as apply_mod

    real = xr.Dataset.to_netcdf

    def fill_up(self, path, *args, **kwargs):
        real(self.isel(time=slice(0, 10)), path, *args, **kwargs)  # part of it reached the disk
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(xr.Dataset, "to_netcdf", fill_up)
    out = tmp_path / "out.nc"
    (tmp_path / "keep.nc").write_text("an unrelated earlier result")
    request = apply_mod.CorrectionRequest(
        method="linear-scaling", inputs=(sample_data / samples.DAILY_HISTORICAL,), output=out,
        reference=(sample_data / samples.DAILY_REFERENCE,), historical=(sample_data / samples.DAILY_HISTORICAL,),
        period=(2005, 2006))
    with pytest.raises(OSError, match="No space left"):
        apply_mod.correct_file(request)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.nc"]




def test_level_dimension_is_a_clear_error_everywhere(sample_data, tmp_path, capsys):
    """A simulation with a level dim: training, every correction method and the evaluation
    refuse it naming the file, the dim and what to do, and no output is written (before: a
    numpy ValueError traceback in training, the evaluation and qdm)."""
    from atmocorrect import cli

    coder = xr.coders.CFDatetimeCoder(use_cftime=True)
    ds = xr.open_dataset(sample_data / samples.DAILY_HISTORICAL, decode_times=coder)
    ds = ds.sel(time=slice("1979", "1992"))
    levels = xr.concat([ds["tas"], ds["tas"] - 6.5], dim="plev").assign_coords(
        plev=[100000.0, 85000.0]).assign_attrs(ds["tas"].attrs)
    sim = tmp_path / "ta_levels.nc"
    ds.drop_vars("tas").assign(tas=levels.transpose("time", "plev", "lat", "lon")).to_netcdf(sim)
    ref = str(sample_data / samples.DAILY_REFERENCE)
    runs = {
        "train": ["train", "offline", "--simulation", str(sim), "--reference", ref,
                  "--variables", "tas", "--calibration", "1979-1990", "--steps", "5",
                  "--out", str(tmp_path / "ckpt"), "--quiet"],
        "qdm": ["correct", "--method", "qdm", "--historical", str(sim), "--reference", ref,
                "--calibration", "1979-1990", "--input", str(sim),
                "--output", str(tmp_path / "qdm.nc"), "--quiet"],
        "evaluate": ["evaluate", "offline", "--reference", ref, "--period", "1991-1992",
                     "--method", f"raw={sim}"],
    }
    for what, argv in runs.items():
        assert cli.main(argv) == 1, what
        err = capsys.readouterr().err
        assert "ta_levels.nc: variable 'tas' has dims plev (2: 100000.0, 85000.0) besides " \
               "time and its horizontal grid (lat, lon)" in err, err
        assert ".isel(plev=0)" in err and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ta_levels.nc"]
