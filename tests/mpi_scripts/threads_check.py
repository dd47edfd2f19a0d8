"""Run under mpirun: the corrector sets torch threads to the cores per rank on this node."""

import os
import sys

import torch
from mpi4py import MPI

import atmocorrect

comm = MPI.COMM_WORLD
atmocorrect.load(sys.argv[1], comm=comm)
cores = len(os.sched_getaffinity(0))
print(f"THREADS rank={comm.Get_rank()} torch={torch.get_num_threads()} cores={cores} "
      f"node_cores={os.cpu_count()} ranks={comm.Get_size()}")
