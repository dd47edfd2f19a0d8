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
