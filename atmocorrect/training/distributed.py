"""Process groups for data-parallel training under ``torchrun``, ``mpirun`` or ``srun``.

The launcher is recognised from its environment:

- ``torchrun``: ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT`` (``env://``);
- ``mpirun`` (Open MPI, MPICH, Intel MPI) and ``srun``: ``OMPI_COMM_WORLD_*``, ``PMI_*`` or
  ``SLURM_PROCID``/``SLURM_NTASKS``; rank 0 picks a free TCP port and broadcasts it with
  mpi4py, so no ``MASTER_PORT`` needs to be set by hand (``MASTER_ADDR`` defaults to the
  first host; set it for multi-node runs).

The backend is gloo on CPUs and NCCL when the ranks train on GPUs. A single process needs no
process group at all.
"""

from __future__ import annotations

import dataclasses
import os
import socket


@dataclasses.dataclass(frozen=True)
class World:
    """Where this process stands: rank, size, whether a process group was created."""

    rank: int = 0
    size: int = 1
    initialised: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0


def _env_int(*names: str) -> int | None:
    for n in names:
        v = os.environ.get(n)
        if v not in (None, ""):
            return int(v)
    return None


def detect() -> tuple[int, int, str]:
    """(rank, size, launcher) from the environment; launcher is torchrun, mpi or none."""
    if _env_int("WORLD_SIZE") is not None and _env_int("RANK") is not None:
        return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), "torchrun"
    size = _env_int("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_NTASKS")
    rank = _env_int("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "SLURM_PROCID")
    if size is not None and rank is not None and size > 1:
        return rank, size, "mpi"
    return 0, 1, "none"


def local_rank() -> int:
    """This process's index among the ranks of its node, from the launcher (0 if none says)."""
    value = _env_int(
        "LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "PMI_LOCAL_RANK", "SLURM_LOCALID"
    )
    return int(value) if value is not None else 0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def init(backend: str = "gloo") -> World:
    """Create the process group (``gloo`` or ``nccl``) if launched with several processes."""
    import torch.distributed as dist

    rank, size, launcher = detect()
    if size == 1:
        return World()
    if dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), True)
    if launcher == "torchrun":
        dist.init_process_group(backend, init_method="env://")
    else:
        from mpi4py import MPI

        comm = MPI.COMM_WORLD
        addr = os.environ.get("MASTER_ADDR") or comm.bcast(
            socket.gethostname() if comm.Get_rank() == 0 else None, root=0
        )
        port = os.environ.get("MASTER_PORT") or comm.bcast(
            _free_port() if comm.Get_rank() == 0 else None, root=0
        )
        if size > 1 and addr == socket.gethostname():
            try:
                socket.gethostbyname(addr)
            except OSError:
                addr = "127.0.0.1"
        dist.init_process_group(
            backend, init_method=f"tcp://{addr}:{port}", rank=comm.Get_rank(), world_size=comm.Get_size()
        )
    return World(dist.get_rank(), dist.get_world_size(), True)


def finish(world: World) -> None:
    if world.initialised:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()


def all_mean(value: float, world: World) -> float:
    """The mean of a float over ranks."""
    if not world.initialised:
        return value
    import torch
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t.item()) / world.size


def barrier(world: World) -> None:
    if world.initialised:
        import torch.distributed as dist

        dist.barrier()
