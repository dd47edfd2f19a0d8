"""f90wrap bindings: the gridded model driven from Python equals the Fortran-driven run."""

from __future__ import annotations

import shutil
import sys

import numpy as np
import pytest
from conftest import REPO, mpirun
from test_bridge import read_blocks

from atmocorrect.checkpoint import write_analytic_checkpoint

pytestmark = pytest.mark.mpi
sys.path.insert(0, str(REPO / "bindings"))


def test_python_driver_matches_fortran_driver(gridded_host, tmp_path):
    if shutil.which("gfortran") is None:
        pytest.skip("gfortran not found")
    pytest.importorskip("f90wrap")
    import drive_gridded

    ckpt = write_analytic_checkpoint(
        tmp_path / "relax", field=["t", "q", "ps"], units=["K", "kg kg-1", "Pa"],
        relax_to=285.0, timescale=5400.0,
    )
    fields, shared = drive_gridded.run(str(ckpt), nx=12, ny=8, nz=4, steps=6, dt=600.0)
    assert shared, "the Python driver must correct the Fortran arrays in place"
    proc = mpirun(1, [str(gridded_host), f"ckpt={ckpt}", "nx=12", "ny=8", "nz=4", "steps=6",
                      "dt=600", f"out={tmp_path / 'fortran'}"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    fortran = read_blocks(tmp_path / "fortran", 1)
    np.testing.assert_array_equal(fields["t"], fortran["t"])
    np.testing.assert_array_equal(fields["ps"], fortran["ps"])
    np.testing.assert_array_equal(fields["q"].astype(np.float64), fortran["q"])
    assert np.abs(fields["t"] - 285.0).max() < 60  # sanity: relaxed temperatures
