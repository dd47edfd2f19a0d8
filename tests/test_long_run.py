"""A long coupled run: 100,000 steps of the Fortran Lorenz-96 model under mpirun -np 2 with a
transformer correction every step. No NaN, no blow-up, and resident memory flat after warm-up.

The transformer has random weights (its correction is small but not zero): what this checks is
the coupling machinery over a long run, not the skill of a trained model (see docs/lorenz96.md).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import MPI_ENV, REPO, atmocorrect_cli, require_toolchain

from atmocorrect.checkpoint import FieldSpec, Manifest, write_checkpoint
from atmocorrect.models.neural import build_net

pytestmark = [pytest.mark.reliability, pytest.mark.slow, pytest.mark.mpi]
STEPS = 100_000
K = 40


def _rss_kb(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def _ranks_of(marker: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmd and cmd[0].endswith(b"l96_model") and any(marker.encode() in c for c in cmd):
                pids.append(int(entry.name))
    return pids


@pytest.fixture(scope="module")
def coupled_model() -> Path:
    require_toolchain()
    build = REPO / "tests" / "_build" / "lorenz96_ac"
    cmd = ["make", "-C", str(REPO / "examples" / "lorenz96"), f"BUILD={build}", "WITH_ATMOCORRECT=1",
           f"ATMOCORRECT={atmocorrect_cli()}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        pytest.skip(f"coupled Lorenz-96 build failed: {proc.stderr[-500:]}")
    return build


def test_hundred_thousand_coupled_steps(coupled_model, tmp_path):
    torch.manual_seed(3)
    hyper = {"d_model": 16, "heads": 2, "layers": 1, "ff": 32, "patch": 1, "n_levels": 1}
    net = build_net("transformer", 1, 1, [0], (2,), hyper)
    ckpt = write_checkpoint(tmp_path / "ck", Manifest(
        fields=(FieldSpec("x", "1", ("k",)),), model_class="transformer", hyperparameters=hyper,
        halo=(2,), periodic=(True,),
        normalization={"inputs": {"x": {"mean": 2.5, "std": 5.0}}, "targets": {"x": {"mean": 0.0, "std": 2e-7}}},
    ), net.state_dict())
    env = {**os.environ, **MPI_ENV}
    env.pop("PYTHONPATH", None)
    out = tmp_path / "long.nc"
    cmd = ["mpirun", "-np", "2", str(coupled_model / "l96_model"), f"K={K}", "seed=5", f"nsteps={STEPS}",
           "out_every=5.0", f"checkpoint={ckpt}", f"output={out}"]
    samples: list[tuple[float, int]] = []
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    done = threading.Event()

    def watch():
        while not done.is_set():
            pids = _ranks_of(str(out))
            if pids:
                samples.append((time.monotonic(), _rss_kb(pids)))
            done.wait(0.5)

    watcher = threading.Thread(target=watch, daemon=True)
    start = time.monotonic()
    watcher.start()
    try:
        stdout, stderr = proc.communicate(timeout=1200)
    finally:
        done.set()
        watcher.join()
    assert proc.returncode == 0, stdout + stderr
    import xarray as xr

    with xr.open_dataset(out) as ds:
        x = ds["X"].values
        corr = ds["correction_tendency"].values
    assert x.shape == (STEPS // 1000, K)
    assert np.isfinite(x).all() and np.abs(x).max() < 30, "the corrected run blew up"
    assert np.abs(corr).max() > 0, "the correction was applied"
    # Resident memory of both ranks: flat from warm-up (a fifth of the run) to the end.
    elapsed = time.monotonic() - start
    live = [rss for t, rss in samples if rss > 0]
    assert len(live) > 10, samples
    warm = [rss for t, rss in samples if t - start > 0.2 * elapsed and rss > 0]
    assert warm[-1] <= 1.05 * warm[0], f"RSS grew from {warm[0]} kB to {warm[-1]} kB"
