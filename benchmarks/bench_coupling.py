"""The online coupling, measured from a compiled Fortran host under mpirun (hosts/bench_host.f90).

One host run gives, per rank: the time of ``atmocorrect_init``; for each repetition the wall
and CPU time of ``atmocorrect_step`` (A) and of the same network on the same captured inputs in
plain Python in the same process (B), interleaved A B / B A; the network's own time inside each
step; optionally the allocation probe and a cProfile of one step.
"""

from __future__ import annotations

import json
from pathlib import Path

import bench_common as bc


def run_host(exe: Path, ckpt: Path, nprocs: int, nx: int, ny: int, nz: int, reps: int,
             warm: int = 1, ref: bool = True, probe: bool = False, timeout: float = 600,
             backend: str | None = None, dump: Path | None = None) -> dict:
    out_prefix = bc.scratch("host-") / "probe.json"
    args = [str(exe), f"ckpt={ckpt}", f"probe_dir={bc.HOSTS}", f"nx={nx}", f"ny={ny}", f"nz={nz}",
            f"nf={len(bc.FIELDS)}", f"reps={reps}", f"warm={warm}", f"ref={int(ref)}",
            f"probe={int(probe)}", f"out={out_prefix}"]
    if dump is not None:
        args.append(f"dump={dump}")
    extra = {"ATMOCORRECT_BACKEND": backend} if backend else None
    stdout = bc.mpirun(nprocs, args, timeout=timeout, extra_env=extra)
    (out_prefix.parent / "stdout.txt").write_text(stdout)  # kept under build/bench for a look
    parsed = bc.parse_bench(stdout)
    res = summarize(parsed, nprocs)
    if probe:
        res["probe"] = [json.loads(p.read_text()) for p in sorted(out_prefix.parent.glob("probe.rank*.json"))]
        res["profile"] = [json.loads(p.read_text()) for p in
                          sorted(out_prefix.parent.glob("probe.profile.rank*.json"))]
    return res


def summarize(parsed: dict, nprocs: int) -> dict:
    reps: dict[int, list[dict]] = {}
    for row in parsed.get("rep", []):
        reps.setdefault(int(row["rep"]), []).append(row)
    if not reps:
        raise RuntimeError("the benchmark host reported no timed step")
    order = sorted(reps)
    # a collective step lasts as long as its slowest rank: max over ranks, per repetition
    step = [max(r["step"] for r in reps[k]) for k in order]
    step_cpu = [max(r["step_cpu"] for r in reps[k]) for k in order]
    res: dict = {
        "nprocs": nprocs,
        "reps": len(order),
        "step_wall": step,
        "step_cpu": step_cpu,
        "init_seconds": sorted((int(r["rank"]), float(r["seconds"])) for r in parsed.get("init", [])),
        "block": parsed.get("block", [{}])[0],
        "zero_copy_registration": all(int(a["library"]) == int(a["host"]) for a in parsed.get("address", [])),
        "ref": parsed.get("ref", [{}])[0],
    }
    if all("forward" in r for k in order for r in reps[k]):
        fwd = [max(r["forward"] for r in reps[k]) for k in order]
        fwd_cpu = [max(r["forward_cpu"] for r in reps[k]) for k in order]
        res.update(
            forward_wall=fwd,
            forward_cpu=fwd_cpu,
            ratio_wall=bc.median_of_ratios(step, fwd),
            ratio_cpu=bc.median_of_ratios(step_cpu, fwd_cpu),
            ratio_wall_of_medians=bc.ratio_of_medians(step, fwd),
        )
    instep = parsed.get("instep", [])
    if instep and all(len(r["wall"]) == len(order) and any(r["wall"]) for r in instep):
        inner = [max(r["wall"][i] for r in instep) for i in range(len(order))]
        res["network_in_step_wall"] = inner
        res["ratio_in_step_wall"] = bc.median_of_ratios(step, inner)
    return res


def state_copies(probe: list[dict]) -> dict:
    """What the allocation probe saw, reduced to the figures of the results (max over ranks)."""
    worst = max(probe, key=lambda p: p.get("state_copy_bytes_alive_at_predictor", 0) + p.get("halo_send_bytes", 0))
    copied = int(worst.get("state_copy_bytes_alive_at_predictor", 0)) + int(worst.get("halo_send_bytes", 0))
    model_input = worst.get("model_input", {})
    build = sum(s["bytes"] for s in worst.get("predictor_before_model", [])) + int(worst.get("batch_bytes", 0))
    return {
        "state_bytes_copied_per_step": copied,
        "host_state_bytes": worst.get("host_bytes"),
        "copies_by_site": worst.get("before_model", []),
        "halo_send_bytes": worst.get("halo_send_bytes", 0),
        "peak_numpy_bytes_before_model": worst.get("peak_before_model"),
        "predictor_inputs": worst.get("inputs"),
        "predictor_entry": worst.get("entry"),
        "handed_batch_bytes": worst.get("batch_bytes", 0),
        "model_input_tensor": model_input,
        "model_input_build_by_site": worst.get("predictor_before_model", []),
        "model_input_bytes_per_step": int(model_input.get("nbytes", 0)) + int(build),
        "registered_addresses_unchanged": all(p.get("addresses_unchanged") for p in probe),
        "rank": worst.get("rank"),
    }


def profile_summary(profiles: list[dict], top: int = 8) -> dict:
    if not profiles:
        return {}
    p = profiles[0]
    return {"cpu_seconds": p["cpu_seconds"], "top_self": p["top_self"][:top]}


_INIT_SCRIPT = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy
t1 = time.perf_counter()
import torch
t2 = time.perf_counter()
import atmocorrect.coupling
t3 = time.perf_counter()
c = atmocorrect.coupling.load(sys.argv[1])
t4 = time.perf_counter()
print(json.dumps({"import_numpy": t1 - t0, "import_torch": t2 - t1,
                  "import_atmocorrect_coupling": t3 - t2, "load_checkpoint": t4 - t3}))
"""


def init_breakdown(ckpt: Path) -> dict:
    """Where atmocorrect_init's time goes, from a plain Python process (one rank's worth)."""
    import os
    import subprocess
    import sys
    import time

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if bc.SOURCE:
        env["PYTHONPATH"] = bc.SOURCE
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True, env=env)
    start = time.perf_counter() - t0
    proc = subprocess.run([sys.executable, "-c", _INIT_SCRIPT, str(ckpt)], capture_output=True,
                          text=True, check=True, env=env)
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["interpreter_start"] = start
    return {k: round(v, 3) for k, v in res.items()}
