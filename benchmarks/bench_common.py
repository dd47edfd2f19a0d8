"""Shared helpers of the benchmarks: checkpoints, compiled hosts, mpirun, statistics, machine."""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "benchmarks"
HOSTS = BENCH / "hosts"
BUILD = REPO / "build" / "bench"  # build/ is ignored by git
VENV_BIN = Path(sys.executable).parent

MPI_ENV = {
    "OMPI_ALLOW_RUN_AS_ROOT": "1",
    "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
    "OMPI_MCA_rmaps_base_oversubscribe": "1",
    "OMPI_MCA_btl_vader_single_copy_mechanism": "none",
}

FIELDS = ("f1", "f2", "f3", "f4")


class Skip(Exception):
    """A figure that cannot be measured here (the reason goes into the notes)."""


# ---------------------------------------------------------------------- statistics
def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs))


def ratio_of_medians(a: Sequence[float], b: Sequence[float]) -> float:
    return median(a) / median(b)


def median_of_ratios(a: Sequence[float], b: Sequence[float]) -> float:
    """Paired repetitions (interleaved A/B): the median of the per-pair ratios."""
    return median([x / y for x, y in zip(a, b, strict=True)])


# ---------------------------------------------------------------------- machine
def machine() -> dict:
    import numpy
    import torch

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        cores = os.cpu_count() or 1
    info = {
        "cpu": cpu,
        "cores": cores,
        "memory_gb": _mem_gb(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "torch_threads_default": torch.get_num_threads(),
        "load_average_at_start": list(os.getloadavg()),
    }
    for tool, args in (("mpirun", ["--version"]), ("gfortran", ["--version"])):
        exe = shutil.which(tool)
        if exe:
            out = subprocess.run([exe, *args], capture_output=True, text=True).stdout
            info[tool] = out.splitlines()[0].strip() if out else "?"
    try:
        import mpi4py

        info["mpi4py"] = mpi4py.__version__
    except ImportError:  # pragma: no cover
        pass
    return info


def _mem_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


# ---------------------------------------------------------------------- checkpoints
def transformer_checkpoint(directory: Path, n_levels: int, fields: Sequence[str] = FIELDS,
                           halo=(1, 1), periodic=(True, False), threads: int = 1,
                           seed: int = 0, hyper: dict | None = None) -> Path:
    """A transformer checkpoint with random weights at the class's default size.

    Fields are ``(lon, lat, lev)`` real64 host arrays; inputs are normalised with mean 0 and
    std 1 and targets (per second) with std 1e-4, so increments stay small and finite.
    """
    import torch

    from atmocorrect.checkpoint import FieldSpec, Manifest, write_checkpoint
    from atmocorrect.config import RunConfig
    from atmocorrect.models.neural import build_net

    torch.manual_seed(seed)
    hyper = {"n_levels": n_levels, **(hyper or {})}
    net = build_net("transformer", len(fields), n_levels, list(range(len(fields))), halo, hyper)
    stats_in = {f: {"mean": [0.0] * n_levels, "std": [1.0] * n_levels} for f in fields}
    stats_out = {f: {"mean": [0.0] * n_levels, "std": [1e-4] * n_levels} for f in fields}
    manifest = Manifest(
        fields=tuple(FieldSpec(name=f, units="1", dims=("lon", "lat", "lev"), levels=n_levels)
                     for f in fields),
        model_class="transformer",
        hyperparameters=hyper,
        halo=tuple(halo),
        periodic=tuple(periodic),
        normalization={"inputs": stats_in, "targets": stats_out},
        run=RunConfig(mode="apply", num_threads=threads),
        provenance={"benchmark": "random weights, default transformer size"},
    )
    return write_checkpoint(directory, manifest, net.state_dict())


def net_size(n_levels: int, fields: Sequence[str] = FIELDS, halo=(1, 1)) -> dict:
    """The transformer's actual hyperparameters (the class defaults) and parameter count."""
    from atmocorrect.models.neural import build_net

    net = build_net("transformer", len(fields), n_levels, list(range(len(fields))), halo,
                    {"n_levels": n_levels})
    blk = net.blocks[0]
    return {
        "d_model": int(net.embed_w.shape[-1]), "heads": int(blk.heads), "layers": len(net.blocks),
        "ff": int(blk.ff1.out_features), "patch": int(net.patch),
        "tokens": int(len(fields) * net.tokens_per_field),
        "parameters": int(sum(p.numel() for p in net.parameters())),
    }


# ---------------------------------------------------------------------- compiled hosts
def _cli() -> str:
    exe = VENV_BIN / "atmocorrect"
    return str(exe) if exe.exists() else "atmocorrect"


def bridge_flags() -> tuple[list[str], list[str]]:
    run = lambda opt: subprocess.run(  # noqa: E731
        [_cli(), "config", opt], check=True, capture_output=True, text=True
    ).stdout.split()
    return run("--fflags"), run("--libs")


def python_link_flags() -> tuple[list[str], list[str]]:
    inc = sysconfig.get_paths()["include"]
    libdir = sysconfig.get_config_var("LIBDIR")
    ver = sysconfig.get_config_var("LDVERSION") or sysconfig.get_python_version()
    return [f"-I{inc}"], [f"-L{libdir}", f"-lpython{ver}", f"-Wl,-rpath,{libdir}"]


def build_host() -> Path:
    """Compile benchmarks/hosts/bench_host.f90 (+ the C helper) against the installed bridge."""
    for tool in ("mpif90", "mpicc", "mpirun"):
        if shutil.which(tool) is None:
            raise Skip(f"{tool} not found (install Open MPI: make setup)")
    fflags, libs = bridge_flags()
    lib = Path(libs[0][2:]) / "libatmocorrect.so"
    exe = BUILD / "bench_host"
    sources = [HOSTS / "bench_host.f90", HOSTS / "bench_pyexec.c"]
    newest = max(p.stat().st_mtime for p in [*sources, lib])
    if exe.exists() and exe.stat().st_mtime > newest:
        return exe
    BUILD.mkdir(parents=True, exist_ok=True)
    pyinc, pylibs = python_link_flags()
    obj = BUILD / "bench_pyexec.o"
    _run(["mpicc", "-O2", "-fPIC", *pyinc, "-c", str(HOSTS / "bench_pyexec.c"), "-o", str(obj)])
    moddir = BUILD / "bench_host.mod"
    moddir.mkdir(exist_ok=True)
    _run(["mpif90", "-O2", "-ffpe-trap=invalid,zero,overflow", f"-J{moddir}", *fflags,
          str(HOSTS / "bench_host.f90"), str(obj), *libs, *pylibs, "-o", str(exe)])
    return exe


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"failed: {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")


#: A source tree to use instead of the installed package (run.py --source): prepended to
#: sys.path here and passed as PYTHONPATH to the hosts' embedded interpreters.
SOURCE: str | None = None


def use_source(path: str) -> None:
    global SOURCE
    SOURCE = str(Path(path).resolve())
    sys.path.insert(0, SOURCE)


def mpirun(nprocs: int, args: list[str], timeout: float, extra_env: dict | None = None) -> str:
    env = {**os.environ, **MPI_ENV, **(extra_env or {})}
    env.pop("PYTHONPATH", None)  # the embedded interpreter imports the INSTALLED package
    if SOURCE:
        env["PYTHONPATH"] = SOURCE
    cmd = ["mpirun", "--oversubscribe", "-np", str(nprocs), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc.stdout


_RECORD = re.compile(r"BENCH (\w+) ")


def parse_bench(stdout: str) -> dict[str, list]:
    """``BENCH key a=1 b=2`` records -> {key: [{a: 1, b: 2}, ...]}; ``BENCH key {json}`` too.

    Records are found wherever they start, not only at line starts: the ranks share one stdout
    and mpirun may put two ranks' records on one line.
    """
    out: dict[str, list] = {}
    starts = list(_RECORD.finditer(stdout))
    for i, m in enumerate(starts):
        key = m.group(1)
        end = starts[i + 1].start() if i + 1 < len(starts) else len(stdout)
        rest = stdout[m.end():end].strip()
        if rest.startswith("{"):
            obj, _n = json.JSONDecoder().raw_decode(rest)
            out.setdefault(key, []).append(obj)
            continue
        row = {}
        for tok in rest.split("\n")[0].split():
            if "=" in tok:
                k, v = tok.split("=", 1)
                try:
                    row[k] = int(v)
                except ValueError:
                    try:
                        row[k] = float(v)
                    except ValueError:
                        row[k] = v
        out.setdefault(key, []).append(row)
    if "error" in out:
        raise RuntimeError(f"benchmark host reported errors: {out['error']}")
    return out


def clean_scratch(older_than_s: float = 3 * 3600) -> None:
    """Remove the scratch folders (host outputs, offline files) of runs that ended long ago;
    a run going on beside this one (make bench during make test) keeps its own."""
    import time

    for pattern in ("host-*", "offline-*", "aoti-*"):
        for d in BUILD.glob(pattern):
            if time.time() - d.stat().st_mtime > older_than_s:
                shutil.rmtree(d, ignore_errors=True)


def scratch(prefix: str) -> Path:
    BUILD.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=BUILD))


def atomic_write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2, sort_keys=False, default=_json_default)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _json_default(o):
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
    except ImportError:  # pragma: no cover
        pass
    return str(o)
