"""The network alone: roofline fraction, torch.profiler breakdown, and the AOTInductor backend."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import bench_common as bc


def _timed(fn, reps: int = 1) -> tuple[float, float]:
    """(wall, CPU of this thread) of ``fn()``."""
    w0, c0 = time.perf_counter(), time.thread_time()
    for _ in range(reps):
        fn()
    return time.perf_counter() - w0, time.thread_time() - c0


def roofline(n_windows: int, n_levels: int = 5, reps: int = 5, threads: int = 1,
             mm_size: int = 2048, profile: bool = True) -> dict:
    """FLOP/s of the default transformer's forward over FLOP/s of a float32 matmul, same run.

    FLOPs are counted by torch.utils.flop_counter (matmuls, einsum/bmm, attention), i.e. the
    useful arithmetic; elementwise ops (norms, GELU, residuals) are not counted, as usual for
    MFU figures. Forward and matmul alternate, ``reps`` pairs; thread CPU time is the primary
    clock (the machine is shared), wall time is reported too.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from atmocorrect.models.neural import WindowPredictor, build_net

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    fields = len(bc.FIELDS)
    net = build_net("transformer", fields, n_levels, list(range(fields)), (1, 1), {"n_levels": n_levels}).eval()
    w = torch.randn(n_windows, fields, n_levels, 3, 3)
    with torch.inference_mode():
        with FlopCounterMode(display=False) as counter:
            net(w)
        flops = counter.get_total_flops()
        by_op = {str(k): int(v) for k, v in counter.get_flop_counts().get("Global", {}).items()}
        a, b = torch.randn(mm_size, mm_size), torch.randn(mm_size, mm_size)
        torch.mm(a, b)  # warm-up
        fwd_w, fwd_c, mm_w, mm_c = [], [], [], []
        mm_reps = 3
        # the forward as the coupling runs it: WindowPredictor feeds the network in chunks
        chunk = WindowPredictor.chunk_windows or n_windows

        def forward():
            return [net(part) for part in w.split(chunk)]

        for r in range(reps):
            pair = [("f", forward), ("m", lambda: torch.mm(a, b))]
            if r % 2:
                pair.reverse()
            for kind, fn in pair:
                wall, cpu = _timed(fn, 1 if kind == "f" else mm_reps)
                if kind == "f":
                    fwd_w.append(wall)
                    fwd_c.append(cpu)
                else:
                    mm_w.append(wall / mm_reps)
                    mm_c.append(cpu / mm_reps)
    mm_flops = 2.0 * mm_size**3
    frac_cpu = [flops / f / (mm_flops / m) for f, m in zip(fwd_c, mm_c, strict=True)]
    frac_wall = [flops / f / (mm_flops / m) for f, m in zip(fwd_w, mm_w, strict=True)]
    res = {
        "roofline_fraction": bc.median(frac_cpu),
        "roofline_fraction_wall": bc.median(frac_wall),
        "forward_gflops": flops / bc.median(fwd_c) / 1e9,
        "matmul_gflops": mm_flops / bc.median(mm_c) / 1e9,
        "flops_per_forward": int(flops),
        "flops_per_window": flops / n_windows,
        "flops_by_op": by_op,
        "n_windows": n_windows,
        "chunk_windows": chunk,
        "threads": threads,
        "matmul": f"float32 {mm_size}x{mm_size} @ {mm_size}x{mm_size}",
        "model": bc.net_size(n_levels),
        "reps": reps,
    }
    if profile:
        res["profile"] = torch_profile(net, w[: min(n_windows, 4096)])
        res["chunked"] = chunk_sweep(net, w, [n_windows, 1024, 256], flops)
        res["size_sweep"] = size_sweep(n_levels, chunk, a, b)
        res["compiled"] = compiled_fraction(net, w[: min(n_windows, 2048)], chunk, a, b)
    return res


def _fraction(fn, flops: float, a, b, reps: int = 3) -> float:
    """Median over ``reps`` alternating pairs of (FLOP/s of ``fn``) / (FLOP/s of ``a @ b``)."""
    import torch

    fn()  # warm-up
    fracs = []
    for _ in range(reps):
        _w, f_cpu = _timed(fn)
        _w, m_cpu = _timed(lambda: torch.mm(a, b))
        fracs.append((flops / f_cpu) / (2.0 * a.shape[0] ** 3 / m_cpu))
    return bc.median(fracs)


def _flops(net, w) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        net(w)
    return float(counter.get_total_flops())


def size_sweep(n_levels: int, chunk: int, a, b, n_windows: int = 1024) -> list[dict]:
    """The roofline fraction of larger transformers on the same windows: is the miss the
    model's size or the implementation? (Same chunks, thread, clock and matmul.)"""
    import torch

    from atmocorrect.models.neural import Transformer

    fields = len(bc.FIELDS)
    w = torch.randn(n_windows, fields, n_levels, 3, 3)
    rows = []
    for d_model, heads, ff in ((64, 4, 128), (128, 4, 512), (256, 8, 1024)):
        torch.manual_seed(0)
        net = Transformer(fields, n_levels, list(range(fields)), (1, 1), d_model=d_model,
                          heads=heads, layers=2, ff=ff).eval()
        flops = _flops(net, w)
        with torch.inference_mode():
            frac = _fraction(lambda net=net: [net(x) for x in w.split(chunk)], flops, a, b)
        rows.append({"d_model": d_model, "heads": heads, "ff": ff,
                     "mflop_per_window": round(flops / n_windows / 1e6, 2),
                     "roofline_fraction": round(frac, 3)})
    return rows


def compiled_fraction(net, w, chunk: int, a, b) -> dict:
    """The default transformer through ``torch.compile`` (Inductor's fused CPU kernels), not
    used by the product (compiling takes longer than init_seconds allows), measured to see
    how much of the miss fusion recovers."""
    import torch

    t0 = time.perf_counter()
    try:
        compiled = torch.compile(net, dynamic=False)
        with torch.inference_mode():
            compiled(w[:chunk])
    except Exception as err:  # no C++ compiler, unsupported op: record why
        return {"error": f"{type(err).__name__}: {err}"[:300]}
    compile_s = time.perf_counter() - t0
    flops = _flops(net, w)
    with torch.inference_mode():
        frac_c = _fraction(lambda: [compiled(x) for x in w.split(chunk)], flops, a, b)
        frac_e = _fraction(lambda: [net(x) for x in w.split(chunk)], flops, a, b)
    return {"roofline_fraction_compiled": round(frac_c, 3), "roofline_fraction_eager": round(frac_e, 3),
            "compile_seconds": round(compile_s, 1)}


def torch_profile(net, w, top: int = 8) -> list[dict]:
    """Self CPU time per aten op of one forward (torch.profiler)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    with torch.inference_mode():
        net(w)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            net(w)
    rows = []
    total = 0.0
    for evt in prof.key_averages():
        total += evt.self_cpu_time_total
        rows.append((evt.key, evt.self_cpu_time_total, evt.count))
    rows.sort(key=lambda r: -r[1])
    return [{"op": k, "self_cpu_fraction": round(t / total, 4), "calls": c} for k, t, c in rows[:top]]


def chunk_sweep(net, w, chunks: list[int], flops: float) -> dict:
    """The same forward over the batch in chunks of ``c`` windows: GFLOP/s (thread CPU time)."""
    import torch

    out = {}
    with torch.inference_mode():
        for c in chunks:
            fn = lambda c=c: [net(x) for x in w.split(c)]  # noqa: E731
            fn()
            _wall, cpu = _timed(fn)
            out[str(c)] = round(flops / cpu / 1e9, 2)
    return out


# ---------------------------------------------------------------------- AOTInductor
def _package_key(ckpt: Path) -> str:
    import json

    import torch

    import atmocorrect.models.neural as neural

    manifest = json.loads((ckpt / "manifest.json").read_text())
    what = {k: manifest.get(k) for k in ("fields", "grid", "model", "normalization", "weights")}
    h = hashlib.sha256()
    h.update(torch.__version__.encode())
    h.update(Path(neural.__file__).read_bytes())
    h.update(json.dumps(what, sort_keys=True).encode())  # not the provenance: its date changes
    return h.hexdigest()[:16]


def aot_compile(ckpt: Path, example_windows: int = 512) -> tuple[Path, float]:
    """torch.export the checkpoint's model (normalisation included) with a dynamic batch and
    compile it with AOTInductor into a .pt2 package (cached under build/bench/aoti)."""
    import torch

    from atmocorrect.checkpoint import read_manifest, read_weights
    from atmocorrect.models.neural import model_from_manifest

    key = _package_key(ckpt)
    pkg = bc.BUILD / "aoti" / f"model-{key}.pt2"
    if pkg.exists():
        return pkg, 0.0
    pkg.parent.mkdir(parents=True, exist_ok=True)
    for old in pkg.parent.glob("model-*.pt2"):  # one package per model and torch version
        old.unlink()
    manifest = read_manifest(ckpt)
    model = model_from_manifest(manifest, read_weights(ckpt, manifest)).eval().float()
    nf, nl = len(manifest.fields), int(manifest.hyperparameters.get("n_levels", 1))
    win = tuple(2 * h + 1 for h in manifest.halo)
    example = torch.randn(example_windows, nf, nl, *win)
    t0 = time.perf_counter()
    batch = torch.export.Dim("windows", min=2, max=1 << 24)
    with torch.inference_mode():
        ep = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    tmp = pkg.with_suffix(".tmp.pt2")
    torch._inductor.aoti_compile_and_package(ep, package_path=str(tmp))
    tmp.replace(pkg)
    return pkg, time.perf_counter() - t0


def aot_vs_embedded(ckpt: Path, nx: int, ny: int, reps: int = 5, threads: int = 1) -> dict:
    """The corrector's tendency with the embedded (eager torch) model and with the AOTInductor
    package swapped in, same inputs, interleaved; increments compared to float tolerance."""
    import numpy as np
    import torch

    import atmocorrect

    torch.set_num_threads(threads)
    pkg, compile_s = aot_compile(ckpt)
    runner = torch._inductor.aoti_load_package(str(pkg))

    class AOTModel(torch.nn.Module):
        def forward(self, w):
            return runner(w)

    emb = atmocorrect.load(ckpt, run={"num_threads": threads})
    aot = atmocorrect.load(ckpt, run={"num_threads": threads})
    aot.predictor.model = AOTModel()
    torch.set_num_threads(threads)
    nl = emb.manifest.fields[0].levels
    rng = np.random.default_rng(0)
    state = {f: np.asfortranarray(rng.standard_normal((nx, ny, nl))) for f in bc.FIELDS}
    ref = emb.tendency(state)
    got = aot.tendency(state)
    scale = max(float(np.abs(v).max()) for v in ref.values())
    max_diff = max(float(np.abs(ref[k] - got[k]).max()) for k in ref)
    te, ta = [], []
    for r in range(reps):
        pair = [("e", emb), ("a", aot)]
        if r % 2:
            pair.reverse()
        for kind, c in pair:
            _wall, cpu = _timed(lambda c=c: c.tendency(state))
            (te if kind == "e" else ta).append(cpu)
    return {
        "aot_vs_embedded_ratio": bc.median_of_ratios(ta, te),
        "embedded_seconds": bc.median(te),
        "aot_seconds": bc.median(ta),
        "max_abs_diff": max_diff,
        "max_abs_tendency": scale,
        "relative_diff": max_diff / scale if scale else 0.0,
        "equal_to_float_tolerance": bool(max_diff <= 1e-4 * scale + 1e-12),
        "compile_seconds": round(compile_s, 1),
        "package": str(pkg.relative_to(bc.REPO)) if pkg.is_relative_to(bc.REPO) else str(pkg),
        "block": [nx, ny, nl],
        "threads": threads,
        "reps": reps,
    }


def build_aoti_runner() -> Path:
    """Compile hosts/aoti_runner.cpp against the libtorch of the installed torch wheel."""
    import shutil
    import subprocess

    import torch

    exe = bc.BUILD / "aoti_runner"
    src = bc.HOSTS / "aoti_runner.cpp"
    if exe.exists() and exe.stat().st_mtime > src.stat().st_mtime:
        return exe
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        raise bc.Skip("no C++ compiler (g++) for the libtorch runner")
    root = Path(torch.__file__).parent
    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    bc.BUILD.mkdir(parents=True, exist_ok=True)
    cmd = [cxx, "-std=c++20", "-O2", f"-D_GLIBCXX_USE_CXX11_ABI={abi}", f"-I{root / 'include'}",
           f"-I{root / 'include' / 'torch' / 'csrc' / 'api' / 'include'}", str(src),
           f"-L{root / 'lib'}", "-ltorch", "-ltorch_cpu", "-lc10", f"-Wl,-rpath,{root / 'lib'}",
           "-o", str(exe)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"building the libtorch runner failed:\n{proc.stderr[-3000:]}")
    return exe


def aot_cpp(ckpt: Path, n_windows: int = 4096, reps: int = 3, threads: int = 1) -> dict:
    """The AOTInductor package run by a C++ program linked to libtorch only (no Python), on
    the same window batch as the eager model in Python: outputs compared, forward times."""
    import json
    import subprocess

    import numpy as np
    import torch

    from atmocorrect.checkpoint import read_manifest, read_weights
    from atmocorrect.models.neural import model_from_manifest

    t0 = time.perf_counter()
    exe = build_aoti_runner()
    build_s = time.perf_counter() - t0
    pkg, _ = aot_compile(ckpt)
    manifest = read_manifest(ckpt)
    model = model_from_manifest(manifest, read_weights(ckpt, manifest)).eval().float()
    torch.set_num_threads(threads)
    nf, nl = len(manifest.fields), int(manifest.hyperparameters.get("n_levels", 1))
    win = tuple(2 * h + 1 for h in manifest.halo)
    x = torch.randn(n_windows, nf, nl, *win, generator=torch.Generator().manual_seed(0))
    work = bc.scratch("aoti-")
    x.numpy().tofile(work / "x.f32")
    eager = []
    with torch.inference_mode():
        ref = model(x).numpy()
        for _ in range(reps):
            eager.append(_timed(lambda: model(x))[1])
    proc = subprocess.run([str(exe), str(pkg), str(work / "x.f32"), str(work / "y.f32"), str(reps),
                           str(threads), *map(str, x.shape)], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"aoti_runner failed: {proc.stderr[-2000:]}")
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    with torch.inference_mode():
        for _ in range(reps):  # eager again after: A B A brackets drift
            eager.append(_timed(lambda: model(x))[1])
    y = np.fromfile(work / "y.f32", np.float32).reshape(r["out_shape"])
    diff = float(np.abs(y - ref).max())
    scale = float(np.abs(ref).max())
    return {
        "cpp_vs_eager_forward_cpu": bc.median(r["cpu_seconds"]) / bc.median(eager),
        "cpp_forward_cpu_seconds": bc.median(r["cpu_seconds"]),
        "eager_forward_cpu_seconds": bc.median(eager),
        "cpp_load_seconds": r["load_seconds"],
        "max_abs_diff": diff,
        "relative_diff": diff / scale if scale else 0.0,
        "equal_to_float_tolerance": bool(diff <= 1e-4 * scale + 1e-12),
        "n_windows": n_windows,
        "threads": threads,
        "runner_build_seconds": round(build_s, 1),
        "runner": str(exe.relative_to(bc.REPO)),
    }


_CONTROL = r"""
import sys, time, torch
from atmocorrect.models.neural import WindowPredictor, build_net
torch.set_num_threads(1)
torch.manual_seed(0)
n, reps = int(sys.argv[1]), int(sys.argv[2])
net = build_net("transformer", 4, 5, [0, 1, 2, 3], (1, 1), {"n_levels": 5}).eval()
w = torch.randn(n, 4, 5, 3, 3)
times = []
with torch.inference_mode():
    for r in range(reps + 1):
        t0 = time.perf_counter()
        for part in w.split(WindowPredictor.chunk_windows):
            net(part)
        times.append(time.perf_counter() - t0)
times = sorted(times[1:])
print(times[len(times) // 2])
"""


def machine_scaling_control(n_windows: int = 8192, reps: int = 3, pairs: int = 2) -> dict:
    """The same forward in 1 and in 2 independent plain-Python processes (no MPI, no
    atmocorrect coupling, 1 thread each): what the machine itself allows two ranks."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if bc.SOURCE:
        env["PYTHONPATH"] = bc.SOURCE
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-c", _CONTROL, str(n_windows), str(reps)]

    def run(k: int) -> float:
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env) for _ in range(k)]
        outs = [p.communicate()[0] for p in procs]
        if any(p.returncode for p in procs):
            raise RuntimeError("the scaling control process failed")
        return max(float(o.strip().splitlines()[-1]) for o in outs)

    effs = []
    for i in range(pairs):
        t = {}
        for k in ((1, 2) if i % 2 == 0 else (2, 1)):
            t[k] = run(k)
        effs.append(t[1] / t[2])
    return {"efficiency": bc.median(effs), "per_pair": effs, "n_windows": n_windows, "reps": reps}
