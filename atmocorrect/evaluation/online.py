"""The coupled Fortran check: ``l96_model`` under ``mpirun -np 2`` corrected by a checkpoint.

Runs the Fortran one-scale model (examples/lorenz96) coupled through the bridge to the
checkpoint for a short forecast from a held-out truth state, and compares it with the Python
batched forecast of the same checkpoint: the same arithmetic (RK4 step, then
``x += dt * tendency(x)``), so they agree to rounding (the network runs in float32), amplified
by the chaos of the system over the lead. Raises :class:`NotAvailable` while the programs or
the coupled build are missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

MPI_ENV = {
    "OMPI_ALLOW_RUN_AS_ROOT": "1",
    "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
    "OMPI_MCA_rmaps_base_oversubscribe": "1",
}


class NotAvailable(Exception):
    """The Fortran example, its coupled build or mpirun is missing."""


def find_executable(name: str) -> Path | None:
    """The Lorenz-96 program ``name``: ``$ATMOCORRECT_L96_BUILD/<name>``, then
    ``examples/lorenz96/build/<name>`` under the working directory (``make demo`` runs from the
    source tree, with the package installed elsewhere) or under the source tree this module
    lives in, then ``name`` on the PATH."""
    roots = [Path.cwd(), Path(__file__).resolve().parents[2]]
    candidates = [Path(os.environ["ATMOCORRECT_L96_BUILD"]) / name] if os.environ.get("ATMOCORRECT_L96_BUILD") else []
    candidates += [r / "examples" / "lorenz96" / "build" / name for r in roots]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which(name)
    return Path(found) if found else None


def mpirun(nprocs: int, exe: Path, args: list[str], env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    """``mpirun -np N exe key=value...`` (root and oversubscription allowed)."""
    if shutil.which("mpirun") is None:
        raise NotAvailable("mpirun not found")
    full = {**env, **MPI_ENV}
    return subprocess.run(["mpirun", "-np", str(nprocs), str(exe), *args], env=full, capture_output=True,
                          text=True, timeout=timeout)


def fortran_truth(path: Path, length_mtu: float, seed: int, env: dict) -> Path:
    """A two-scale truth run with ``l96_truth`` (one rank: fastest at K=8)."""
    exe = find_executable("l96_truth")
    if exe is None:
        raise NotAvailable("examples/lorenz96/build/l96_truth is not built")
    path.parent.mkdir(parents=True, exist_ok=True)
    res = mpirun(1, exe, [f"length={length_mtu:g}", f"seed={seed}", f"output={path}"], env)
    if res.returncode != 0:
        raise RuntimeError(f"l96_truth failed ({res.returncode}): {res.stderr.strip()[-500:]}")
    return path


def fortran_check(
    checkpoint: Path, truth_file: Path, init_index: int, steps: int, work: Path, env: dict, dt_mtu: float = 0.005
) -> dict[str, Any]:
    """Run ``l96_model`` coupled to ``checkpoint`` on 2 ranks from ``truth_file[init_index]``
    for ``steps`` steps and compare with the Python forecast; returns the differences."""
    import xarray as xr

    from . import twin

    exe = find_executable("l96_model")
    if exe is None:
        raise NotAvailable("examples/lorenz96/build/l96_model is not built")
    checkpoint, truth_file, work = Path(checkpoint).resolve(), Path(truth_file).resolve(), Path(work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    out = work / "coupled.nc"
    args = [f"init_file={truth_file}", f"init_index={init_index}", f"nsteps={steps}",
            f"checkpoint={checkpoint}", f"output={out}"]
    res = mpirun(2, exe, args, env)
    if res.returncode != 0:
        text = (res.stderr + res.stdout).strip()
        if "WITH_ATMOCORRECT" in text or "rebuild" in text.lower():
            raise NotAvailable("l96_model is built without atmocorrect (make -C examples/lorenz96 WITH_ATMOCORRECT=1)")
        raise RuntimeError(f"coupled l96_model failed ({res.returncode}): {text[-800:]}")
    with xr.open_dataset(out, decode_times=False) as ds:
        fortran = np.asarray(ds["X"].values, dtype=np.float64)
    with xr.open_dataset(truth_file, decode_times=False) as ds:
        x0 = np.asarray(ds["X"].isel(time=init_index).values, dtype=np.float64)
    row = twin.checkpoint_row("transformer", checkpoint)
    python = twin._run(row, x0[None, :], steps, twin.TwinConfig(dt_mtu=dt_mtu))[:, 0]
    n = min(len(fortran), len(python))
    diff = np.abs(fortran[:n] - python[:n]).max(axis=1)
    return {
        "ranks": 2,
        "steps": int(n - 1),
        "max_abs_diff_first_step": float(diff[1]) if n > 1 else 0.0,
        "max_abs_diff": float(diff.max()),
        "lead_mtu": float((n - 1) * dt_mtu),
        "command": "mpirun -np 2 " + " ".join([str(exe), *args]),
    }
