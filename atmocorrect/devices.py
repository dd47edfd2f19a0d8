"""Which device a rank's network runs on: one GPU per local rank, or the CPU.

Climate models are launched with several ranks per node and usually fewer GPUs than ranks.
Each rank takes the GPU numbered ``local_rank % gpus`` among those it can see (so a launcher
that already restricts ``CUDA_VISIBLE_DEVICES`` to one GPU per rank gives ``cuda:0`` to each),
and ranks beyond the GPU count share them round-robin.

>>> select_device("auto", local_rank=3, device_count=2)
'cuda:1'
>>> select_device("auto", local_rank=0, device_count=0)
'cpu'
>>> select_device("cpu", local_rank=5, device_count=4)
'cpu'
"""

from __future__ import annotations

from .errors import UsageError

DEVICE_POLICIES = ("cpu", "auto", "cuda")


def select_device(policy: str, local_rank: int, device_count: int, rank: int | None = None) -> str:
    """The torch device string for a rank.

    policy:
        ``cpu`` always; ``auto`` a GPU when the rank sees one, else the CPU; ``cuda`` a GPU or
        an error naming the rank (a job that asked for GPUs should not silently run on CPUs).
    local_rank:
        The rank's index among the ranks of its node.
    device_count:
        GPUs visible to the rank (``torch.cuda.device_count()``).
    """
    policy = policy.strip().lower()
    if policy not in DEVICE_POLICIES:
        raise UsageError(f"device {policy!r} is not one of {', '.join(DEVICE_POLICIES)}")
    if local_rank < 0:
        raise UsageError(f"local rank must be >= 0, got {local_rank}")
    if policy == "cpu" or (policy == "auto" and device_count <= 0):
        return "cpu"
    if device_count <= 0:
        who = f"rank {rank}" if rank is not None else f"local rank {local_rank}"
        raise UsageError(
            f"{who}: device 'cuda' requested but no GPU is visible (torch.cuda.device_count() == 0; "
            "check CUDA_VISIBLE_DEVICES and the torch build), use device = 'auto' to fall back to the CPU"
        )
    return f"cuda:{local_rank % device_count}"


def local_rank_of(comm) -> tuple[int, int]:
    """(index of this rank among the ranks on its node, ranks on the node); (0, 1) without MPI."""
    if comm is None or comm.Get_size() == 1:
        return 0, 1
    from mpi4py import MPI

    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        return node.Get_rank(), node.Get_size()
    finally:
        node.Free()


def gpu_count() -> int:
    """GPUs torch can use here (0 on a CPU-only build or machine)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return 0
    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
