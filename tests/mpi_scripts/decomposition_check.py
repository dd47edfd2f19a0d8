"""Run under mpirun: extend a decomposed 2-D field with halos and compare with one rank's."""

import sys

import numpy as np
from mpi4py import MPI

from atmocorrect.decomposition import Decomposition

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
G = (10, 7, 3)
full = np.arange(np.prod(G), dtype=np.float64).reshape(G, order="F")
px = 2 if size % 2 == 0 else 1
py = size // px
ix, iy = rank % px, rank // px
xs = np.array_split(np.arange(G[0]), px)[ix]
ys = np.array_split(np.arange(G[1]), py)[iy]
local = np.asfortranarray(full[xs[0]:xs[-1] + 1, ys[0]:ys[-1] + 1, :])
halo, periodic = (2, 1), (True, False)
ext = Decomposition(comm, G, (xs[0], ys[0], 0), local.shape).extend({"a": local}, halo, periodic)["a"]
ref = Decomposition(None, G, (0, 0, 0), G).extend({"a": full}, halo, periodic)["a"]
expected = ref[xs[0]:xs[-1] + 1 + 2 * halo[0], ys[0]:ys[-1] + 1 + 2 * halo[1], :]
ok = np.array_equal(ext, expected)
# The same exchange into a float32 batch seen through a strided view (what the model's input
# batch looks like to the halo exchange): same values, and nothing packed by hand.
dec = Decomposition(comm, G, (xs[0], ys[0], 0), local.shape)
ext_shape = expected.shape
stack = np.full((ext_shape[2], ext_shape[0], ext_shape[1]), np.nan, dtype=np.float32)
view = np.moveaxis(stack, 0, -1)
dec.extend({"a": local}, halo, periodic, out={"a": view})
ok = ok and np.array_equal(view, expected.astype(np.float32)) and dec.last_exchange_copy_bytes == 0
dec.extend({"a": local}, halo, periodic, out={"a": view})  # cached datatypes, second step
ok = ok and np.array_equal(view, expected.astype(np.float32))
oks = comm.gather(ok)
if rank == 0:
    print("DECOMPOSITION_OK" if all(oks) else f"DECOMPOSITION_FAIL {oks}")
sys.exit(0)
