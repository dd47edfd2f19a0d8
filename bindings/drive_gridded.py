"""Example 01's time loop driven from Python: the Fortran model through f90wrap, the correction
through the same :class:`atmocorrect.Corrector` the Fortran bridge uses.

usage: python bindings/drive_gridded.py CKPT [--nx 32 --ny 16 --nz 5 --steps 10 --dt 600] [--out PREFIX]

The result equals ``mpirun -np 1 gridded_host ckpt=CKPT ...`` bit for bit: the model's arrays
are numpy views of the Fortran memory and are corrected in place.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import atmocorrect

sys.path.insert(0, str(Path(__file__).resolve().parent))


def run(ckpt: str, nx: int, ny: int, nz: int, steps: int, dt: float, physics: bool = True):
    from build_gridded import build

    sys.path.insert(0, str(build()))
    import gridded  # noqa: PLC0415  (built above)

    model = gridded.gridded_model
    model.model_init(nx, ny, nz, nx, ny, 0, 0)
    h = int(model.halo)
    # Interior views of the Fortran arrays (which carry halo points): no copies.
    t, q, ps = model.t, model.q, model.ps
    state = {"t": t[h:-h, h:-h, :], "q": q[h:-h, h:-h, :], "ps": ps[h:-h, h:-h]}
    corrector = atmocorrect.load(ckpt)
    time = 0.0
    for _ in range(steps):
        model.fill_halo_periodic()
        if physics:
            model.model_physics_step(dt)
        time += dt
        corrector.apply(state, time=time, dt=dt)
    shares_memory = np.shares_memory(state["t"], model.t)
    return {k: np.array(v) for k, v in state.items()}, shares_memory


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("ckpt")
    p.add_argument("--nx", type=int, default=32)
    p.add_argument("--ny", type=int, default=16)
    p.add_argument("--nz", type=int, default=5)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--dt", type=float, default=600.0)
    p.add_argument("--out", help="write the final fields to PREFIX.npz")
    a = p.parse_args()
    fields, shared = run(a.ckpt, a.nx, a.ny, a.nz, a.steps, a.dt)
    print(f"zero-copy views of the Fortran arrays: {shared}")
    for name, v in fields.items():
        print(f"{name}: mean {v.mean():.6f} min {v.min():.6f} max {v.max():.6f}")
    if a.out:
        np.savez(a.out, **fields)


if __name__ == "__main__":
    main()
