"""Halo exchange: the extended blocks equal slices of the serially extended global field."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from conftest import REPO, mpirun

from atmocorrect.decomposition import Decomposition
from atmocorrect.errors import GridError


def test_serial_periodic_and_edge_padding():
    a = np.arange(12.0).reshape(4, 3, order="F")
    ext = Decomposition(None, (4, 3), (0, 0), (4, 3)).extend({"a": a}, (1, 1), (True, False))["a"]
    assert ext.shape == (6, 5)
    np.testing.assert_array_equal(ext[1:-1, 1:-1], a)
    np.testing.assert_array_equal(ext[0, 1:-1], a[-1, :])  # periodic in x
    np.testing.assert_array_equal(ext[1:-1, 0], a[:, 0])  # edge-replicated in y


def test_blocks_that_do_not_tile_are_refused():
    with pytest.raises(GridError, match="leaves the global domain"):
        Decomposition(None, (4,), (2,), (4,))


@pytest.mark.mpi
@pytest.mark.parametrize("nranks", [1, 2, 4])
def test_decomposed_halo_exchange_matches_serial(nranks):
    proc = mpirun(nranks, [sys.executable, str(REPO / "tests" / "mpi_scripts" / "decomposition_check.py")],
                  env={"PYTHONPATH": str(REPO)})
    assert "DECOMPOSITION_OK" in proc.stdout, proc.stdout + proc.stderr
