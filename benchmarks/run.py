"""`make bench`: every figure of the benchmarks issue, measured side by side in one run.

    .venv/bin/python benchmarks/run.py [--size full|tiny] [--only GROUP,...] [--out PATH]

Groups: coupling (coupling_overhead_ratio, state_bytes_copied_per_step, init_seconds), scaling
(mpi_weak_scaling_efficiency), roofline, train, aot, offline, reference
(offline_reference_rss_ratio). Prints a table and writes
benchmarks/results.json atomically (a temporary file renamed into place). Every figure is a
ratio of two things measured in this run, interleaved (A B B A ...) and reduced with medians,
because the machines this runs on are shared. docs/performance.md explains each figure.

The compiled Fortran host and its embedded interpreter use the INSTALLED package (`make install`
first; `make bench` does); the Python-side figures use the package this interpreter imports.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import math
import os
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_common as bc  # noqa: E402

KEYS = (
    "coupling_overhead_ratio",
    "state_bytes_copied_per_step",
    "init_seconds",
    "roofline_fraction",
    "mpi_weak_scaling_efficiency",
    "train_samples_per_second",
    "data_loading_fraction",
    "gpu_mfu_bf16",
    "offline_time_ratio_vs_ibicus_qdm",
    "offline_peak_rss_mb",
    "offline_reference_rss_ratio",
    "aot_vs_embedded_ratio",
)

TARGETS = {
    "coupling_overhead_ratio": {"max": 1.05},
    "state_bytes_copied_per_step": {"max": 0},
    "init_seconds": {"max": 3.0},
    "roofline_fraction": {"min": 0.5},
    "mpi_weak_scaling_efficiency": {"min": 0.9},
    "train_samples_per_second": {"report": "higher is better"},
    "data_loading_fraction": {"max": 0.1},
    "gpu_mfu_bf16": {"min": 0.4},
    "offline_time_ratio_vs_ibicus_qdm": {"max": 1.0},
    "offline_peak_rss_mb": {"max_growth_1x_to_20x": 1.1},
    "offline_reference_rss_ratio": {"max": 2.0},
    "aot_vs_embedded_ratio": {"report": "lower is faster; increments equal to float tolerance"},
}

GROUPS = ("coupling", "scaling", "roofline", "train", "aot", "offline", "reference")

SIZES = {
    "full": {
        "small": {"nx": 256, "ny": 64, "nz": 5, "nprocs": 2, "reps": 5},     # 128 x 64 x 5 per rank
        "large": {"nx": 360, "ny": 180, "nz": 10, "nprocs": 2, "reps": 5},   # 360 x 180 x 10 global
        "scaling": {"nx": 128, "ny": 64, "nz": 5, "reps": 2, "pairs": 3},    # one rank's block
        "roofline": {"n_windows": 8192, "reps": 5, "mm_size": 2048, "profile": True},
        "train": {"steps": 40, "warmup": 5},
        "aot": {"nx": 256, "ny": 64, "nz": 5, "reps": 3, "pairs": 2, "cpp": True},
        "offline": {"reps": 2, "scale": 20, "chunk_points": 4},
        "reference": {"resolution": 0.25, "year": "1979", "reps": 2},  # ~30 s, 1.5 GB scratch
        "timeout": 900,
    },
    "tiny": {
        "small": {"nx": 16, "ny": 8, "nz": 2, "nprocs": 2, "reps": 2},
        "large": None,
        "scaling": {"nx": 8, "ny": 8, "nz": 2, "reps": 1, "pairs": 1},
        "roofline": {"n_windows": 64, "reps": 2, "mm_size": 256, "profile": False},
        "train": {"steps": 3, "warmup": 1},
        "aot": None,
        "offline": None,
        "reference": None,
        "timeout": 120,
    },
}


class Results:
    def __init__(self, size: str) -> None:
        self.values: dict = {k: None for k in KEYS}
        self.notes: dict = {}
        self.details: dict = {}
        self.errors: dict = {}
        self.size = size

    def set(self, key: str, value, note: str) -> None:
        self.values[key] = value
        self.notes[key] = note

    def skip(self, keys, reason: str) -> None:
        for k in keys:
            self.values[k] = None
            self.notes[k] = reason


def _fmt(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if v == 0 or 0.01 <= abs(v) < 1e5:
            return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
        return f"{v:.3e}"
    return str(v)


def _target_text(t: dict) -> str:
    if "max" in t:
        return f"<= {t['max']}"
    if "min" in t:
        return f">= {t['min']}"
    if "max_growth_1x_to_20x" in t:
        return f"20x/1x <= {t['max_growth_1x_to_20x']}"
    return "(report)"


def met(key: str, value, details: dict):
    t = TARGETS[key]
    if value is None:
        return None
    if "max" in t:
        return bool(value <= t["max"])
    if "min" in t:
        return bool(value >= t["min"])
    if "max_growth_1x_to_20x" in t:
        growth = details.get("offline", {}).get("rss_growth_1x_to_20x")
        return None if growth is None else bool(growth <= t["max_growth_1x_to_20x"])
    return None


# ---------------------------------------------------------------------- the groups
def run_online(res: Results, cfg: dict, groups: set[str], log) -> None:
    import bench_coupling as cp

    want_coupling = "coupling" in groups
    want_scaling = "scaling" in groups
    exe = bc.build_host()
    small = cfg["small"]
    ck_small = bc.transformer_checkpoint(bc.BUILD / f"ckpt-l{small['nz']}", small["nz"])
    timeout = cfg["timeout"]
    sc = cfg["scaling"]
    if want_coupling:
        log(f"coupling: {small['nx']}x{small['ny']}x{small['nz']} over {small['nprocs']} ranks")
        s = cp.run_host(exe, ck_small, small["nprocs"], small["nx"], small["ny"], small["nz"],
                        small["reps"], probe=True, timeout=timeout)
        res.details["coupling_small"] = {k: v for k, v in s.items() if k not in ("probe", "profile")}
    if want_scaling:
        # weak scaling: the same block per rank on 1 and on 2 ranks, runs alternating 1 2 1 2 ...
        # so that a change of the machine's load hits both; paired per alternation
        pairs = []
        for i in range(sc["pairs"]):
            log(f"scaling: 1 and 2 ranks, pair {i + 1}/{sc['pairs']}")
            runs = {}
            for n in ((1, 2) if i % 2 == 0 else (2, 1)):  # 1 2, 2 1, 1 2 ...
                runs[n] = cp.run_host(exe, ck_small, n, n * sc["nx"], sc["ny"], small["nz"],
                                      sc["reps"], ref=False, timeout=timeout)
            pairs.append((runs[1], runs[2]))
        eff_pairs = [bc.median(o["step_wall"]) / bc.median(t["step_wall"]) for o, t in pairs]
        net_pairs = [bc.median(o["network_in_step_wall"]) / bc.median(t["network_in_step_wall"])
                     for o, t in pairs if o.get("network_in_step_wall") and t.get("network_in_step_wall")]
        cpu_pairs = [bc.median(o["step_cpu"]) / bc.median(t["step_cpu"]) for o, t in pairs]
        eff = bc.median(eff_pairs)
        net_eff = bc.median(net_pairs) if net_pairs else None
        log("scaling: control, the same forward in 1 and 2 independent processes (no MPI)")
        import bench_model as bm

        control = bm.machine_scaling_control(sc["nx"] * sc["ny"], pairs=3)
        res.details["scaling"] = {
            "efficiency_per_pair": eff_pairs,
            "network_only_efficiency_per_pair": net_pairs,
            "cpu_efficiency_per_pair": cpu_pairs,
            "network_only_efficiency": net_eff,
            "cpu_efficiency": bc.median(cpu_pairs),
            "step_1rank": [o["step_wall"] for o, _t in pairs],
            "step_2ranks": [t["step_wall"] for _o, t in pairs],
            "block_per_rank": [sc["nx"], sc["ny"], small["nz"]],
            "threads_per_rank": pairs[0][0]["ref"].get("threads"),
            "machine_control": control,
        }
        res.set("mpi_weak_scaling_efficiency", eff,
                f"t(1 rank)/t(2 ranks) of atmocorrect_step (wall, median), {sc['nx']}x{sc['ny']}x"
                f"{small['nz']} x 4 fields per rank, 1 torch thread per rank, {sc['pairs']} pairs of "
                f"runs alternating 1 and 2 ranks, median of the pairs; by CPU time "
                f"{_fmt(bc.median(cpu_pairs))}; the network alone, timed inside the same steps, "
                f"scales at {_fmt(net_eff)}; control without MPI or atmocorrect (the same forward "
                f"in 1 and in 2 independent Python processes, 1 thread each): {_fmt(control['efficiency'])}")
    if not want_coupling:
        return
    sizes = {"128x64x5_per_rank": s}
    large = cfg.get("large")
    if large:
        ck_large = bc.transformer_checkpoint(bc.BUILD / f"ckpt-l{large['nz']}", large["nz"])
        log(f"coupling: {large['nx']}x{large['ny']}x{large['nz']} over {large['nprocs']} ranks")
        big = cp.run_host(exe, ck_large, large["nprocs"], large["nx"], large["ny"], large["nz"],
                          large["reps"], timeout=timeout)
        sizes["360x180x10_global"] = big
        res.details["coupling_large"] = big
    by_size = {k: v["ratio_wall"] for k, v in sizes.items()}
    worst = max(by_size, key=by_size.get)
    res.details["coupling"] = {
        "ratio_wall_by_size": by_size,
        "ratio_cpu_by_size": {k: v["ratio_cpu"] for k, v in sizes.items()},
        "ratio_in_step_by_size": {k: v.get("ratio_in_step_wall") for k, v in sizes.items()},
        "threads": s["ref"].get("threads"),
        "denominator": s["ref"],
    }
    res.set("coupling_overhead_ratio", by_size[worst],
            f"atmocorrect_step from a Fortran host under mpirun -np {small['nprocs']} / the same "
            f"network forward on the same captured inputs in plain Python, same process and "
            f"threads ({s['ref'].get('threads')}/rank); median of {s['reps']} interleaved pairs, wall "
            f"time, max over ranks; worst size ({worst}) shown; per size: "
            + ", ".join(f"{k} {_fmt(v)}" for k, v in by_size.items())
            + "; against the network's time inside the same step: "
            + ", ".join(f"{k} {_fmt(v.get('ratio_in_step_wall'))}" for k, v in sizes.items()))
    # the allocation probe and the profile of one step
    copies = cp.state_copies(s["probe"])
    res.details["state_copies"] = copies
    res.details["step_profile"] = cp.profile_summary(s.get("profile", []))
    sites = ", ".join(f"{c['site']} {c['bytes']:,} B" for c in copies["copies_by_site"]) or "none"
    handed = copies["handed_batch_bytes"]
    res.set("state_bytes_copied_per_step", copies["state_bytes_copied_per_step"],
            f"bytes of new buffers holding the host state that the coupling layer makes per step "
            f"before the model sees it (rank {copies['rank']}, host state {copies['host_state_bytes']:,} B), "
            f"measured with tracemalloc inside the embedded interpreter: alive when the predictor is "
            f"entered ({copies['predictor_entry']}): {sites}"
            + (f", less the float32 batch handed over as the model input ({handed:,} B)" if handed else "")
            + f"; plus what the halo exchange packed into temporary buffers, counted by the exchange "
            f"({copies['halo_send_bytes']:,} B; the strips go through MPI derived datatypes, read "
            f"and written in place). Not counted: "
            f"the model input ({copies['model_input_bytes_per_step']:,} B: the float32 batch and the "
            f"3x3 windows cut from it). Registration is zero-copy (library address == loc(): "
            f"{s['zero_copy_registration']}; addresses unchanged after the steps: "
            f"{copies['registered_addresses_unchanged']})")
    inits = [v for _r, v in s["init_seconds"]]
    res.details["init"] = {"per_rank": s["init_seconds"], "ranks": small["nprocs"]}
    note = (f"atmocorrect_init timed inside the Fortran host (MPI_Wtime), max over "
            f"{small['nprocs']} ranks starting together: interpreter start, imports, model load")
    if cfg is SIZES["full"]:
        try:
            bd = cp.init_breakdown(ck_small)
            res.details["init"]["breakdown_one_process"] = bd
            note += "; one process: " + ", ".join(f"{k} {v:.2f}s" for k, v in bd.items())
        except Exception as exc:  # pragma: no cover - informative only
            res.details["init"]["breakdown_error"] = str(exc)
    res.set("init_seconds", max(inits), note)


def run_roofline(res: Results, cfg: dict, log) -> None:
    import bench_model as bm

    log("roofline: transformer forward vs matmul")
    r = bm.roofline(**cfg["roofline"])
    res.details["roofline"] = r
    m = r["model"]
    res.set("roofline_fraction", r["roofline_fraction"],
            f"transformer at its default size (d_model {m['d_model']}, {m['layers']} layers, "
            f"{m['heads']} heads, ff {m['ff']}, {m['tokens']} tokens = 4 fields x 3x3 window, 5 levels) "
            f"on {r['n_windows']} windows fed in chunks of {r['chunk_windows']} as the coupling does: "
            f"{r['forward_gflops']:.1f} GFLOP/s (FLOPs from "
            f"torch.utils.flop_counter: {r['flops_per_window']/1e6:.2f} MFLOP/window) vs float32 "
            f"matmul {r['matmul_gflops']:.1f} GFLOP/s, {r['threads']} thread, thread CPU time, "
            f"median of {r['reps']} interleaved pairs (wall-time ratio {_fmt(r['roofline_fraction_wall'])})")


def run_train(res: Results, cfg: dict, log) -> None:
    import bench_train as bt

    log("train: the trainer's one-step loop")
    r = bt.train_throughput(**cfg["train"])
    res.details["train"] = r
    res.set("train_samples_per_second", r["train_samples_per_second"],
            f"samples (whole Lorenz-96 rings of {r['sites_per_sample']} sites = "
            f"{r['train_windows_per_second']:.0f} windows/s) per second, {r['config']}, batch "
            f"{r['batch_samples']}, {r['threads']} thread, median of {r['steps']} steps of the "
            f"trainer's loop (forward, backward, clip, AdamW), wall time; per second of CPU time "
            f"{r['train_samples_per_cpu_second']:.0f} (the gap is other load on the machine)")
    res.set("data_loading_fraction", r["data_loading_fraction"],
            "time in the batch gather from the in-memory training set (what the trainer's data "
            "loading is) over the whole step, summed over the steps")
    g = bt.gpu_mfu_bf16()
    if g is None:
        res.skip(["gpu_mfu_bf16"], "no GPU on this machine (torch.cuda.is_available() is False): "
                 "not measured; a machine with a GPU measures it with the same command")
        return
    res.details["gpu"] = g
    res.set("gpu_mfu_bf16", g["gpu_mfu_bf16"],
            f"bf16 training step (autocast, AdamW) of the default transformer on {g['windows_per_step']} "
            f"windows on {g['device']} ({g['gpu']}, local rank {g['local_rank']} of "
            f"{g['visible_gpus']} visible): {g['step_tflops']:.1f} TFLOP/s (flop_counter, forward + "
            f"backward) over a bf16 matmul measured on the same GPU, {g['matmul_bf16_tflops']:.1f} TFLOP/s")


def run_aot(res: Results, cfg: dict, log) -> None:
    import bench_aot_bridge as ab
    import bench_model as bm

    a = cfg["aot"]
    ck = bc.transformer_checkpoint(bc.BUILD / "ckpt-l5", 5)
    exe = bc.build_host()
    log("aot: the bridge with ATMOCORRECT_BACKEND=python and =aot, same host, same state")
    r = ab.compare(exe, ck, a["nx"], a["ny"], a["nz"], reps=a["reps"], pairs=a["pairs"])
    res.details["aot_bridge"] = r
    log("aot: the package against the eager model inside Python (Corrector.tendency)")
    try:
        res.details["aot_python"] = bm.aot_vs_embedded(ck, 64, 64, reps=3)
    except Exception:
        res.errors["aot_python"] = traceback.format_exc()[-3000:]
    cpp_note = ""
    if a.get("cpp"):
        log("aot: the same package from a stand-alone C++ program (libtorch only)")
        try:
            c = bm.aot_cpp(ck, n_windows=4096, reps=3)
            res.details["aot_cpp"] = c
            cpp_note = (f"; a stand-alone C++ program (benchmarks/hosts/aoti_runner.cpp) runs the package's "
                        f"forward in {c['cpp_vs_eager_forward_cpu']:.2f}x the eager forward's CPU time")
        except bc.Skip as exc:
            cpp_note = f"; C++ runner not run: {exc}"
        except Exception as exc:
            res.errors["aot_cpp"] = traceback.format_exc()[-3000:]
            cpp_note = f"; C++ runner failed: {type(exc).__name__}"
    res.set("aot_vs_embedded_ratio", r["aot_vs_embedded_ratio"],
            f"atmocorrect_step from the Fortran host under mpirun -np {r['nprocs']} ({r['block_per_rank']} "
            f"per rank) with run.backend aot (AOTInductor package run by libtorch from C++, no Python "
            f"in the step) over the same host with the embedded-Python backend; median over "
            f"{r['pairs']} alternating pairs of runs of the median of {r['reps']} steps, wall; by CPU "
            f"time {_fmt(r['ratio_cpu'])}; increments equal to float tolerance: "
            f"{r['equal_to_float_tolerance']} (max |diff| {r['max_abs_increment_difference']:.1e} for "
            f"increments up to {r['max_abs_increment']:.1e}); atmocorrect_init "
            f"{r['init_seconds']['aot']:.2f} s (aot) vs {r['init_seconds']['python']:.2f} s (python); "
            f"export {r['export_seconds']} s{cpp_note}")


def run_offline(res: Results, cfg: dict, log) -> None:
    import bench_offline as bo

    log("offline: atmocorrect correct vs ibicus QDM")
    o = cfg["offline"]
    r = bo.offline(reps=o["reps"], scale=o["scale"], chunk_points=o["chunk_points"])
    res.details["offline"] = r
    q1, qn = r["qdm_script"]["1x"], r["qdm_script"][f"{o['scale']}x"]
    ref = (f"stand-alone ibicus QDM script: 1x {q1['wall']:.1f} s, {q1['peak_rss_mb']:.0f} MB; "
           f"{o['scale']}x {qn['wall']:.1f} s, {qn['peak_rss_mb']:.0f} MB")
    if "skip" in r:
        res.skip(["offline_time_ratio_vs_ibicus_qdm", "offline_peak_rss_mb"], f"{r['skip']}. {ref}")
        return
    res.set("offline_time_ratio_vs_ibicus_qdm", r["offline_time_ratio_vs_ibicus_qdm"],
            f"`atmocorrect correct --method ml` / `atmocorrect correct --method qdm` (ibicus QDM "
            f"through the same command: same reading, chunking, writing), file in and out, "
            f"imports included, held-out 2005-2014 of the shared daily simulation (4 points), "
            f"median of {o['reps']} interleaved pairs; vs the {ref.split(':')[0]}: "
            f"{r['ratio_vs_qdm_script']:.2f}; {ref}")
    res.set("offline_peak_rss_mb", r["offline_peak_rss_mb"],
            f"peak RSS of `atmocorrect correct --method ml` on the {o['scale']}x input (the 4 points "
            f"repeated {o['scale']} times), {r['chunk_option']}; 1x: "
            f"{r['ml']['1x']['peak_rss_mb']:.0f} MB, growth {r['rss_growth_1x_to_20x']:.2f}x. "
            f"The data are small (20x = {o['scale'] * 4} points x 10 years) next to the interpreter "
            f"and torch, so this shows no growth with input size, not a memory ceiling")


def run_reference(res: Results, cfg: dict, log) -> None:
    import bench_reference as br

    c = cfg["reference"]
    log(f"reference: load_pair with the shipped ERA5 and a global {c['resolution']:g}-degree one")
    r = br.reference_memory(resolution=c["resolution"], year=c["year"], reps=c["reps"])
    res.details["reference"] = r
    small, large = (bc.median(r["peak_rss_mb"][k]) for k in ("small", "large"))
    size = r["reference_bytes"]["large"] / 2**30
    res.set("offline_reference_rss_ratio", r["offline_reference_rss_ratio"],
            f"peak RSS of `load_pair` (the daily IPSL-CM6A-LR pair, its own process, imports "
            f"included) with a global {c['resolution']:g}-degree daily ERA5-like reference of "
            f"{c['year']} ({size:.2f} GiB, generated from the shipped one) over the same with the "
            f"shipped 5 x 5 reference: {large:.0f} MB / {small:.0f} MB, median of {c['reps']} "
            f"interleaved runs each; same values at the points: {r['same_values_in_the_box']}. "
            "Only the window around the simulation's points is read; reading the whole grid, "
            "before, took 7791 MB on the 2-core machine of docs/offline.md (ratio 42)")


# ---------------------------------------------------------------------- driver
def run(size: str = "full", only: set[str] | None = None, out: Path | None = None,
        log=print) -> dict:
    cfg = SIZES[size]
    groups = set(only or GROUPS)
    res = Results(size)
    started = time.perf_counter()
    machine = bc.machine()
    bc.clean_scratch()

    def guarded(keys: list[str], fn, *args) -> None:
        try:
            fn(*args)
        except bc.Skip as exc:
            res.skip(keys, str(exc))
        except Exception as exc:
            res.errors[",".join(keys)] = traceback.format_exc()[-4000:]
            for k in keys:
                if res.values.get(k) is None:
                    res.notes[k] = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            log(f"  error in {keys}: {type(exc).__name__}: {exc}")

    online_keys = []
    if "coupling" in groups:
        online_keys += ["coupling_overhead_ratio", "state_bytes_copied_per_step", "init_seconds"]
    if "scaling" in groups:
        online_keys += ["mpi_weak_scaling_efficiency"]
    if online_keys:
        guarded(online_keys, run_online, res, cfg, groups, log)
    if "roofline" in groups:
        guarded(["roofline_fraction"], run_roofline, res, cfg, log)
    if "train" in groups:
        guarded(["train_samples_per_second", "data_loading_fraction", "gpu_mfu_bf16"], run_train, res, cfg, log)
    if "aot" in groups:
        if cfg.get("aot"):
            guarded(["aot_vs_embedded_ratio"], run_aot, res, cfg, log)
        else:
            res.skip(["aot_vs_embedded_ratio"], f"not run at --size {size} (the AOTInductor compile takes ~1 min)")
    if "offline" in groups:
        if cfg.get("offline"):
            guarded(["offline_time_ratio_vs_ibicus_qdm", "offline_peak_rss_mb"], run_offline, res, cfg, log)
        else:
            res.skip(["offline_time_ratio_vs_ibicus_qdm", "offline_peak_rss_mb"], f"not run at --size {size}")
    if "reference" in groups:
        if cfg.get("reference"):
            guarded(["offline_reference_rss_ratio"], run_reference, res, cfg, log)
        else:
            res.skip(["offline_reference_rss_ratio"], f"not run at --size {size} (writes a 1.5 GB "
                     "reference)")
    for k in KEYS:
        res.notes.setdefault(k, "not run (--only)")
    machine["load_average_at_end"] = list(os.getloadavg())
    data = {
        **{k: _clean(res.values[k]) for k in KEYS},
        "targets": TARGETS,
        "met": {k: met(k, res.values[k], res.details) for k in KEYS},
        "machine": machine,
        "notes": res.notes,
        "details": _clean(res.details),
        "errors": res.errors,
        "size": size,
        "groups": sorted(groups),
        "generated": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "command": " ".join([Path(sys.executable).name, *sys.argv]) if sys.argv else "",
        "source": bc.SOURCE or "installed package",
    }
    if out is not None:
        bc.atomic_write_json(out, data)
    return data


def _clean(obj):
    """JSON-safe: NaN/inf -> None, tuples -> lists."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def table(data: dict, width: int = 100) -> str:
    rows = [("figure", "value", "target", "met")]
    for k in KEYS:
        m = data["met"].get(k)
        rows.append((k, _fmt(data[k]), _target_text(data["targets"][k]),
                     "-" if m is None else ("yes" if m else "NO")))
    w = [max(len(r[i]) for r in rows) for i in range(4)]
    line = lambda r: "  ".join(c.ljust(w[i]) for i, c in enumerate(r)).rstrip()  # noqa: E731
    out = [line(rows[0]), "  ".join("-" * x for x in w)]
    out += [line(r) for r in rows[1:]]
    m = data["machine"]
    out.append("")
    out.append(f"machine: {m.get('cpu')}, {m.get('cores')} cores, torch {m.get('torch')}, numpy "
               f"{m.get('numpy')}; load average {m.get('load_average_at_start')} -> "
               f"{m.get('load_average_at_end')}; {data['wall_seconds']} s")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Run the atmocorrect benchmarks (make bench).")
    ap.add_argument("--size", choices=sorted(SIZES), default="full",
                    help="full: the figures (~8 min on 2 cores); tiny: a smoke run of the machinery")
    ap.add_argument("--only", default="", help=f"comma-separated groups of {', '.join(GROUPS)}")
    ap.add_argument("--out", default=str(bc.BENCH / "results.json"), help="results JSON (default: %(default)s)")
    ap.add_argument("--notes", action="store_true", help="print the note of every figure too")
    ap.add_argument("--source", default="",
                    help="measure this source tree instead of the installed package (e.g. a patched "
                         "checkout; the C bridge stays the installed one)")
    args = ap.parse_args(argv)
    if args.source:
        bc.use_source(args.source)
    only = {g.strip() for g in args.only.split(",") if g.strip()} or None
    if only and not only <= set(GROUPS):
        ap.error(f"unknown group(s) {', '.join(sorted(only - set(GROUPS)))}; choose from {', '.join(GROUPS)}")
    t0 = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[bench {time.perf_counter() - t0:5.0f}s] {msg}", flush=True)

    data = run(args.size, only, Path(args.out), log)
    print()
    print(table(data))
    if args.notes:
        print()
        for k in KEYS:
            print(f"- {k}: {data['notes'][k]}")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
