"""A torch transformer behind the Fortran bridge: FP traps on, halo context across ranks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import mpirun
from test_bridge import read_blocks

import atmocorrect
from atmocorrect.checkpoint import FieldSpec, Manifest, write_checkpoint
from atmocorrect.models.neural import build_net

pytestmark = pytest.mark.mpi
NZ = 4


@pytest.fixture(scope="module")
def transformer_ckpt(tmp_path_factory):
    """A randomly initialised transformer over a 3x3 neighbourhood of t and q (5 levels)."""
    torch.manual_seed(0)
    halo = (1, 1)
    hyper = {"d_model": 16, "heads": 2, "layers": 1, "ff": 32, "patch": 1, "n_levels": NZ}
    net = build_net("transformer", 2, NZ, [0, 1], halo, hyper)
    norm = {
        "inputs": {"t": {"mean": 260.0, "std": 20.0}, "q": {"mean": 0.004, "std": 0.004}},
        "targets": {"t": {"mean": 0.0, "std": 1e-4}, "q": {"mean": 0.0, "std": 1e-8}},
    }
    manifest = Manifest(
        fields=(FieldSpec("t", "K", ("lon", "lat", "lev"), NZ), FieldSpec("q", "kg kg-1", ("lon", "lat", "lev"), NZ)),
        model_class="transformer", hyperparameters=hyper, halo=halo, periodic=(True, False),
        normalization=norm,
    )
    return write_checkpoint(tmp_path_factory.mktemp("tf") / "transformer", manifest, net.state_dict())


def test_transformer_online_is_independent_of_rank_count(gridded_host, transformer_ckpt, tmp_path):
    # gridded_host is compiled with -ffpe-trap=invalid,zero,overflow: torch must not trip them.
    runs = {}
    for n in (1, 2, 4):
        proc = mpirun(n, [str(gridded_host), f"ckpt={transformer_ckpt}", "fields=t,q", "nx=12", "ny=8",
                          f"nz={NZ}", "steps=3", "dt=600", f"out={tmp_path / f'np{n}'}"], timeout=240)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        runs[n] = read_blocks(tmp_path / f"np{n}", n)
    off = mpirun(1, [str(gridded_host), f"ckpt={transformer_ckpt}", "fields=t,q", "nx=12", "ny=8", f"nz={NZ}",
                     "steps=3", "dt=600", "mode=off", f"out={tmp_path / 'off'}"], timeout=240)
    assert off.returncode == 0, off.stderr
    base = read_blocks(tmp_path / "off", 1)
    assert np.abs(runs[1]["t"] - base["t"]).max() > 1e-3  # the network did correct the state
    for n in (2, 4):
        # float32 network: the same windows in batches of another size agree to rounding
        np.testing.assert_allclose(runs[n]["t"], runs[1]["t"], rtol=1e-6)
        np.testing.assert_allclose(runs[n]["q"], runs[1]["q"], rtol=1e-5, atol=1e-9)


def test_python_corrector_gives_the_bridge_increments(transformer_ckpt):
    c = atmocorrect.load(transformer_ckpt)
    rng = np.random.default_rng(1)
    t = np.asfortranarray(260 + 10 * rng.standard_normal((12, 8, NZ)))
    q = np.asfortranarray(0.004 + 0.001 * rng.standard_normal((12, 8, NZ)))
    tend = c.tendency({"t": t, "q": q})
    assert tend["t"].shape == t.shape and np.isfinite(tend["t"]).all()
    # C-ordered copies of the same values give the same answer: layout never matters.
    tend_c = c.tendency({"t": np.ascontiguousarray(t), "q": np.ascontiguousarray(q)})
    np.testing.assert_array_equal(tend["t"], tend_c["t"])


@pytest.mark.parametrize("nranks", [1, 2])
def test_torch_threads_follow_cores_per_rank(transformer_ckpt, nranks):
    import re
    import sys

    from conftest import REPO

    proc = mpirun(nranks, [sys.executable, str(REPO / "tests" / "mpi_scripts" / "threads_check.py"),
                           str(transformer_ckpt)], env={"PYTHONPATH": str(REPO)}, timeout=120)
    rows = re.findall(r"THREADS rank=\d+ torch=(\d+) cores=(\d+) node_cores=(\d+) ranks=(\d+)", proc.stdout)
    assert len(rows) == nranks, proc.stdout + proc.stderr
    total_threads = sum(int(r[0]) for r in rows)
    node_cores = int(rows[0][2])
    # every rank gets at least one thread, and together they never oversubscribe the node
    assert all(int(r[0]) >= 1 for r in rows)
    assert total_threads <= max(node_cores, nranks), rows
