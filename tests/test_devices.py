"""Device selection per local rank. No GPU exists on the machines that run these tests: the GPU
count is faked where it matters; the local ranks come from real Open MPI runs."""

import json
import sys

import pytest
from conftest import REPO, mpirun

from atmocorrect.devices import select_device
from atmocorrect.errors import UsageError


@pytest.mark.parametrize(
    ("policy", "local", "gpus", "expected"),
    [
        ("auto", 0, 4, "cuda:0"),
        ("auto", 3, 4, "cuda:3"),
        ("auto", 5, 4, "cuda:1"),  # more ranks than GPUs: round-robin
        ("auto", 2, 1, "cuda:0"),  # CUDA_VISIBLE_DEVICES already narrowed to one GPU per rank
        ("auto", 1, 0, "cpu"),
        ("cpu", 1, 8, "cpu"),
        ("cuda", 6, 8, "cuda:6"),
        (" CUDA ", 6, 8, "cuda:6"),
    ],
)
def test_select_device(policy, local, gpus, expected):
    assert select_device(policy, local, gpus) == expected


def test_cuda_without_gpu_names_the_rank():
    with pytest.raises(UsageError, match=r"rank 7: device 'cuda' requested but no GPU is visible"):
        select_device("cuda", 1, 0, rank=7)


def test_unknown_policy_is_refused():
    with pytest.raises(UsageError, match=r"device 'tpu' is not one of cpu, auto, cuda"):
        select_device("tpu", 0, 1)


@pytest.mark.mpi
def test_ranks_on_one_node_take_distinct_gpus():
    proc = mpirun(4, [sys.executable, str(REPO / "tests" / "mpi_scripts" / "device_map.py"), "4"],
                  env={"PYTHONPATH": str(REPO)})
    rows = json.loads(proc.stdout.strip().splitlines()[-1])
    assert sorted(r["local"] for r in rows) == [0, 1, 2, 3]
    assert all(r["per_node"] == 4 for r in rows)
    assert sorted(r["device"] for r in rows) == ["cuda:0", "cuda:1", "cuda:2", "cuda:3"]


def test_load_runs_on_the_selected_device(tmp_path):
    """device = 'cpu' (what 'auto' gives on this machine) through load() and a real network."""
    import numpy as np
    import torch

    from atmocorrect.checkpoint import FieldSpec, Manifest, write_checkpoint
    from atmocorrect.coupling import load
    from atmocorrect.devices import gpu_count
    from atmocorrect.models.neural import build_net

    torch.manual_seed(0)
    hyper = {"d_model": 16, "heads": 2, "layers": 1, "ff": 32, "patch": 1, "n_levels": 3}
    net = build_net("transformer", 1, 3, [0], (1, 1), hyper)
    manifest = Manifest(
        fields=(FieldSpec("t", "K", ("lon", "lat", "lev"), 3),), model_class="transformer",
        hyperparameters=hyper, halo=(1, 1), periodic=(True, False),
        normalization={"inputs": {"t": {"mean": 260.0, "std": 20.0}},
                       "targets": {"t": {"mean": 0.0, "std": 1e-4}}},
    )
    ckpt = write_checkpoint(tmp_path / "ck", manifest, net.state_dict())
    c = load(ckpt, run={"device": "auto"})
    expected = "cuda:0" if gpu_count() else "cpu"
    assert str(next(c.predictor.model.parameters()).device) == expected
    state = {"t": 260.0 + np.random.default_rng(0).normal(size=(6, 5, 3))}
    tend = c.tendency(state)
    assert all(np.isfinite(t).all() and t.shape == (6, 5, 3) for t in tend.values())
