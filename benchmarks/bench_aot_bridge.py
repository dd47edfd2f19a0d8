"""The bridge's two backends side by side: embedded Python vs AOTInductor run by libtorch.

The same Fortran host (hosts/bench_host.f90) under ``mpirun -np 2``, the same checkpoint
(exported once with ``atmocorrect checkpoint export-aot``), the same state; runs with
``ATMOCORRECT_BACKEND=python`` and ``=aot`` alternate (python aot, aot python, ...). Each run
dumps its block before the first and after the last timed step, so the increments of the two
backends are compared point by point.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import bench_common as bc
import bench_coupling as cp
import numpy as np


def export(ckpt: Path) -> tuple[Path, float]:
    """A copy of ``ckpt`` with its AOTInductor package (cached beside it under build/bench)."""
    target = ckpt.parent / (ckpt.name + "-aot")
    if (target / "model.pt2").is_file():
        return target, 0.0
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(ckpt, target)
    cli = Path(sys.executable).parent / "atmocorrect"
    t0 = time.perf_counter()
    proc = subprocess.run([str(cli), "checkpoint", "export-aot", str(target)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"atmocorrect checkpoint export-aot failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return target, time.perf_counter() - t0


def _increments(prefix: Path, nprocs: int) -> np.ndarray:
    parts = []
    for r in range(nprocs):
        before = np.fromfile(f"{prefix}.rank{r}.before", dtype=np.float64)
        after = np.fromfile(f"{prefix}.rank{r}.after", dtype=np.float64)
        parts.append(after - before)
    return np.concatenate(parts)


def compare(exe: Path, ckpt: Path, nx: int, ny: int, nz: int, reps: int = 3, pairs: int = 2,
            nprocs: int = 2) -> dict:
    aot_ckpt, export_s = export(ckpt)
    steps: dict[str, list[float]] = {"python": [], "aot": []}
    cpu: dict[str, list[float]] = {"python": [], "aot": []}
    inits: dict[str, list[float]] = {"python": [], "aot": []}
    per_pair = []
    incs: dict[str, np.ndarray] = {}
    for i in range(pairs):
        order = ("python", "aot") if i % 2 == 0 else ("aot", "python")
        med = {}
        for backend in order:
            dump = bc.scratch(f"dump-{backend}-") / "state"
            r = cp.run_host(exe, aot_ckpt, nprocs, nx, ny, nz, reps, ref=False, backend=backend, dump=dump)
            steps[backend] += r["step_wall"]
            cpu[backend] += r["step_cpu"]
            inits[backend].append(max(v for _r, v in r["init_seconds"]))
            med[backend] = bc.median(r["step_wall"])
            incs.setdefault(backend, _increments(dump, nprocs))
        per_pair.append(med["aot"] / med["python"])
    diff = np.abs(incs["aot"] - incs["python"])
    scale = float(np.abs(incs["python"]).max())
    return {
        "aot_vs_embedded_ratio": bc.median(per_pair),
        "ratio_per_pair": per_pair,
        "ratio_cpu": bc.median(cpu["aot"]) / bc.median(cpu["python"]),
        "step_seconds": {k: bc.median(v) for k, v in steps.items()},
        "init_seconds": {k: bc.median(v) for k, v in inits.items()},
        "max_abs_increment_difference": float(diff.max()),
        "max_abs_increment": scale,
        "relative_difference": float(diff.max() / scale) if scale else 0.0,
        "equal_to_float_tolerance": bool(diff.max() <= 1e-5 * scale + 1e-12),
        "export_seconds": round(export_s, 1),
        "block_per_rank": f"{nx // 2}x{ny}x{nz} x {len(bc.FIELDS)} fields",
        "nprocs": nprocs,
        "pairs": pairs,
        "reps": reps,
    }
