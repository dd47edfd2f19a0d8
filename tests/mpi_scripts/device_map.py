"""Run under mpirun: each rank's local rank and the GPU it would take with FAKE_GPUS GPUs.

No machine here has a GPU: the GPU count is faked (argv[1]); the local rank is real MPI.
"""

import json
import sys

from mpi4py import MPI

from atmocorrect.devices import local_rank_of, select_device

comm = MPI.COMM_WORLD
local, per_node = local_rank_of(comm)
fake_gpus = int(sys.argv[1])
row = {"rank": comm.Get_rank(), "local": local, "per_node": per_node,
       "device": select_device("auto", local, fake_gpus, rank=comm.Get_rank())}
rows = comm.gather(row)
if comm.Get_rank() == 0:
    print(json.dumps(rows))
