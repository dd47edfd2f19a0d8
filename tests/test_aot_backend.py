"""The AOTInductor/libtorch backend of the bridge, against the embedded Python one.

Real parts only: checkpoints exported with torch.export + AOTInductor (random weights), the
Fortran hosts of the examples and tests compiled with FP traps on, Open MPI's mpirun. Each
package is compiled once per module (tens of seconds).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import atmocorrect_cli, mpirun
from test_bridge import read_blocks, results

from atmocorrect.aot import PACKAGE_NAME, check_package, export_aot
from atmocorrect.checkpoint import (
    FieldSpec,
    Manifest,
    read_manifest,
    sha256_file,
    write_analytic_checkpoint,
    write_checkpoint,
)
from atmocorrect.config import RunConfig, backend_from_env
from atmocorrect.errors import CheckpointError, UsageError
from atmocorrect.models.neural import build_net

pytestmark = pytest.mark.mpi
NZ = 4
HOST_ARGS = ["fields=t,q", "nx=12", "ny=8", f"nz={NZ}", "dt=600"]


def _transformer(directory: Path) -> Path:
    """A randomly initialised transformer over a 3x3 neighbourhood of t and q (as in
    test_bridge_torch), periodic in x, edge-replicated in y."""
    torch.manual_seed(0)
    hyper = {"d_model": 16, "heads": 2, "layers": 1, "ff": 32, "patch": 1, "n_levels": NZ}
    net = build_net("transformer", 2, NZ, [0, 1], (1, 1), hyper)
    norm = {
        "inputs": {"t": {"mean": 260.0, "std": 20.0}, "q": {"mean": 0.004, "std": 0.004}},
        "targets": {"t": {"mean": 0.0, "std": 1e-4}, "q": {"mean": 0.0, "std": 1e-8}},
    }
    manifest = Manifest(
        fields=(FieldSpec("t", "K", ("lon", "lat", "lev"), NZ), FieldSpec("q", "kg kg-1", ("lon", "lat", "lev"), NZ)),
        model_class="transformer", hyperparameters=hyper, halo=(1, 1), periodic=(True, False),
        normalization=norm,
    )
    return write_checkpoint(directory, manifest, net.state_dict())


@pytest.fixture(scope="module")
def plain_ckpt(tmp_path_factory) -> Path:
    return _transformer(tmp_path_factory.mktemp("aot") / "plain")


@pytest.fixture(scope="module")
def aot_ckpt(tmp_path_factory) -> Path:
    """The transformer with its package, exported through the command line."""
    d = _transformer(tmp_path_factory.mktemp("aot") / "transformer")
    proc = subprocess.run([atmocorrect_cli(), "checkpoint", "export-aot", str(d)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{PACKAGE_NAME}" in proc.stdout
    return d


@pytest.fixture(scope="module")
def mlp_ckpt(tmp_path_factory) -> Path:
    """An MLP on t alone (5 levels, 3x3 windows, not periodic): the error_paths host's field."""
    torch.manual_seed(1)
    net = build_net("mlp", 1, 5, [0], (1, 1), {"hidden": [16], "n_levels": 5})
    manifest = Manifest(
        fields=(FieldSpec("t", "K", ("lon", "lat", "lev"), 5),), model_class="mlp",
        hyperparameters={"hidden": [16], "n_levels": 5}, halo=(1, 1), periodic=(False, False),
        normalization={"inputs": {"t": {"mean": 280.0, "std": 1.0}}, "targets": {"t": {"mean": 0.0, "std": 1e-3}}},
    )
    d = write_checkpoint(tmp_path_factory.mktemp("aot") / "mlp", manifest, net.state_dict())
    export_aot(d)
    return d


def _stats(prefix: Path, nranks: int) -> list[dict]:
    return [json.loads(Path(f"{prefix}.rank{r}.json").read_text()) for r in range(nranks)]


def _run(host: Path, ckpt: Path, out: Path, nranks: int, backend: str | None, *extra: str):
    env = {"ATMOCORRECT_BRIDGE_STATS": str(out) + ".stats"}
    if backend:
        env["ATMOCORRECT_BACKEND"] = backend
    proc = mpirun(nranks, [str(host), f"ckpt={ckpt}", f"out={out}", *HOST_ARGS, *extra], env=env, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return read_blocks(out, nranks), _stats(Path(str(out) + ".stats"), nranks), proc.stdout


@pytest.fixture(scope="module")
def runs(gridded_host, aot_ckpt, tmp_path_factory):
    """3 steps without physics: state after - state of the uncoupled run = the increments."""
    tmp = tmp_path_factory.mktemp("runs")
    out = {}
    for name, backend, mode in (("off", "python", "off"), ("python", "python", None), ("aot", "aot", None)):
        extra = ["steps=3", "physics=0"] + ([f"mode={mode}"] if mode else [])
        out[name] = _run(gridded_host, aot_ckpt, tmp / name, 2, backend, *extra)
    return out


def _compare(a: dict, b: dict, base: dict) -> dict:
    """max abs and relative difference of the increments a - base and b - base, per field."""
    diffs = {}
    for k in ("t", "q"):
        ia, ib = a[k] - base[k], b[k] - base[k]
        d = float(np.abs(ia - ib).max())
        diffs[k] = (d, d / float(np.abs(ia).max()))
    return diffs


def test_export_records_the_package_in_the_manifest(aot_ckpt):
    m = read_manifest(aot_ckpt)
    assert m.aot["file"] == PACKAGE_NAME
    assert m.aot["sha256"] == sha256_file(aot_ckpt / PACKAGE_NAME)
    assert m.aot["torch"] == torch.__version__
    assert m.aot["platform"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert check_package(aot_ckpt, m) == aot_ckpt / PACKAGE_NAME
    show = subprocess.run([atmocorrect_cli(), "checkpoint", "show", str(aot_ckpt)], capture_output=True, text=True)
    assert show.returncode == 0 and "aot:     model.pt2" in show.stdout, show.stdout + show.stderr


def test_aot_step_gives_the_python_increments_at_two_ranks(runs):
    (off, _, _), (py, py_stats, _), (aot, _, _) = runs["off"], runs["python"], runs["aot"]
    inc_t = aot["t"] - off["t"]
    assert np.abs(inc_t).max() > 1e-3  # the network did correct the state
    np.testing.assert_allclose(aot["t"] - off["t"], py["t"] - off["t"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(aot["q"] - off["q"], py["q"] - off["q"], rtol=1e-5, atol=1e-9)
    diffs = _compare(aot, py, off)
    print(f"AOT vs python, max abs / rel increment difference: {diffs}")
    assert diffs["t"][1] < 1e-5
    assert all(s["backend"] == "python" and s["calls"]["step"] == 3 for s in py_stats), py_stats


def test_aot_step_never_enters_python(runs):
    _, stats, stdout = runs["aot"]
    # field_address still answers, with the host's own address: nothing was copied
    addresses = re.findall(r"ADDRESS rank=(\d+) library=(\d+) host=(\d+)", stdout)
    assert len(addresses) == 2 and all(lib == host for _, lib, host in addresses), stdout
    for s in stats:
        assert s["backend"] == "aot"
        assert s["calls"].get("step", 0) == 0, s  # the counter works: the python run counts 3
        assert s["calls"].get("aot_plan") == 1, s  # the plan is handed over once


def test_backend_from_the_manifest_and_one_or_four_ranks_agree_with_two(gridded_host, aot_ckpt, runs, tmp_path):
    configured = tmp_path / "configured"
    shutil.copytree(aot_ckpt, configured)
    data = json.loads((configured / "manifest.json").read_text())
    data["run"]["backend"] = "aot"  # the run table, like mode
    (configured / "manifest.json").write_text(json.dumps(data))
    one, stats, _ = _run(gridded_host, configured, tmp_path / "np1", 1, None, "steps=3", "physics=0")
    assert stats[0]["backend"] == "aot" and stats[0]["calls"].get("step", 0) == 0
    two = runs["aot"][0]
    np.testing.assert_allclose(one["t"], two["t"], rtol=1e-6)
    np.testing.assert_allclose(one["q"], two["q"], rtol=1e-5, atol=1e-9)
    # 2 x 2 ranks: the exchange along the non-periodic y too, and edge replication
    four, _, _ = _run(gridded_host, configured, tmp_path / "np4", 4, None, "steps=3", "physics=0")
    np.testing.assert_allclose(four["t"], two["t"], rtol=1e-6)
    np.testing.assert_allclose(four["q"], two["q"], rtol=1e-5, atol=1e-9)


def test_diagnose_taper_limiter_and_get_increment_under_aot(gridded_host, aot_ckpt, runs, tmp_path):
    limited = tmp_path / "limited"
    shutil.copytree(aot_ckpt, limited)
    data = json.loads((limited / "manifest.json").read_text())
    data["run"].update(taper=0.5, max_increment=0.02)  # |increment| reaches 0.04 unclipped
    (limited / "manifest.json").write_text(json.dumps(data))
    sums = {}
    for backend in ("python", "aot"):
        state, _, stdout = _run(gridded_host, limited, tmp_path / backend, 2, backend, "steps=3", "physics=0",
                                "mode=diagnose")
        sums[backend] = float(re.search(r"INCREMENT t sum=\s*(\S+)", stdout).group(1))
        for k in ("t", "q"):  # diagnose leaves the state alone
            np.testing.assert_array_equal(state[k], runs["off"][0][k])
    assert abs(sums["python"]) > 1e-3
    assert sums["aot"] == pytest.approx(sums["python"], rel=1e-5)


def test_aot_without_a_package_fails_at_init(gridded_host, plain_ckpt, tmp_path):
    proc = mpirun(2, [str(gridded_host), f"ckpt={plain_ckpt}", *HOST_ARGS, "steps=1"],
                  env={"ATMOCORRECT_BACKEND": "aot"}, timeout=120)
    assert proc.returncode != 0
    errors = re.findall(r"ERROR rank=(\d) call=init stat=(\d+) msg=(.*)", proc.stdout)
    assert sorted(e[0] for e in errors) == ["0", "1"], proc.stdout + proc.stderr
    for _rank, stat, msg in errors:
        assert stat == "1", msg
        assert str(plain_ckpt / PACKAGE_NAME) in msg and "export-aot" in msg, msg
    assert "Segmentation" not in proc.stderr and "signal" not in proc.stderr.lower(), proc.stderr


def test_package_checks_name_the_file_and_what_was_expected(aot_ckpt, plain_ckpt, tmp_path):
    with pytest.raises(CheckpointError, match="no AOTInductor package"):
        check_package(plain_ckpt, read_manifest(plain_ckpt))
    tampered = tmp_path / "tampered"
    shutil.copytree(aot_ckpt, tampered)
    with open(tampered / PACKAGE_NAME, "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(CheckpointError, match=rf"{re.escape(str(tampered / PACKAGE_NAME))}: sha256 .* does not match"):
        check_package(tampered, read_manifest(tampered))
    other = tmp_path / "other_torch"
    shutil.copytree(aot_ckpt, other)
    data = json.loads((other / "manifest.json").read_text())
    data["aot"]["torch"] = "1.0.0"
    (other / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match=rf"compiled with torch 1.0.0, but this environment has torch {re.escape(torch.__version__)}"):
        check_package(other, read_manifest(other))


def test_only_window_networks_export(tmp_path):
    d = write_analytic_checkpoint(tmp_path / "analytic", field="t", units="K", tendency=1.0)
    with pytest.raises(UsageError, match="model class 'analytic'"):
        export_aot(d)


def test_backend_configuration():
    assert RunConfig().backend == "python"
    assert RunConfig.from_mapping({"backend": "aot"}).backend == "aot"
    with pytest.raises(UsageError, match="backend 'gpu'"):
        RunConfig(backend="gpu")
    assert backend_from_env(RunConfig(), {"ATMOCORRECT_BACKEND": "AOT"}).backend == "aot"
    assert backend_from_env(RunConfig(backend="aot"), {}).backend == "aot"
    with pytest.raises(UsageError, match="ATMOCORRECT_BACKEND"):
        backend_from_env(RunConfig(), {"ATMOCORRECT_BACKEND": "fast"})
    # manifests written before the backend existed still load
    old = Manifest(fields=(FieldSpec("t"),), model_class="analytic", hyperparameters={}).to_dict()
    old["run"].pop("backend")
    old.pop("aot", None)
    assert Manifest.from_dict(old).run.backend == "python" and Manifest.from_dict(old).aot is None


@pytest.mark.reliability
@pytest.mark.parametrize("case,nonfinite", [("nan_one_rank", "error"), ("nan_one_rank", "skip"), ("bad_dt", "error")])
def test_error_paths_under_aot(error_paths_host, mlp_ckpt, tmp_path, case, nonfinite):
    ckpt = tmp_path / "mlp"
    shutil.copytree(mlp_ckpt, ckpt)
    data = json.loads((ckpt / "manifest.json").read_text())
    data["run"]["nonfinite"] = nonfinite
    (ckpt / "manifest.json").write_text(json.dumps(data))
    proc = mpirun(2, [str(error_paths_host), f"case={case}", f"ckpt={ckpt}"],
                  env={"ATMOCORRECT_BACKEND": "aot"}, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    res = results(proc.stdout)
    assert sorted(res) == [0, 1], proc.stdout + proc.stderr
    assert all(r["untouched"] for r in res.values()), res
    if case == "bad_dt":
        assert all(r["stat"] == 9 and "dt must be a positive" in r["msg"] for r in res.values()), res
    elif nonfinite == "skip":
        assert all(r["stat"] == 0 for r in res.values()), res
    else:  # the failing rank names itself; the other one names it, from the same step
        assert res[1]["stat"] == 4 and "NaN" in res[1]["msg"] and "rank 1" in res[1]["msg"], res
        assert res[0]["stat"] == 8 and "failed on rank 1" in res[0]["msg"], res


@pytest.mark.slow
def test_core_library_builds_without_torch_and_names_what_aot_lacks(aot_ckpt, tmp_path):
    import sys

    from conftest import REPO, require_toolchain

    from atmocorrect import buildinfo

    require_toolchain()
    # the installed core library does not link libtorch; the aot library lies beside it
    lib = buildinfo.library_dir() / "libatmocorrect.so"
    needed = subprocess.run(["readelf", "-d", str(lib)], capture_output=True, text=True, check=True).stdout
    assert "NEEDED" in needed and "torch" not in needed and "c10" not in needed, needed
    assert (buildinfo.library_dir() / "libatmocorrect_aot.so").is_file()
    # a build that finds no Torch CMake config builds the core library alone
    build = tmp_path / "build"
    conf = subprocess.run(["cmake", "-S", str(REPO), "-B", str(build), f"-DPython_EXECUTABLE={sys.executable}",
                           "-DATMOCORRECT_TORCH_PREFIX=/nonexistent/torch/cmake", "-DCMAKE_BUILD_TYPE=Release"],
                          capture_output=True, text=True, timeout=300)
    assert conf.returncode == 0 and "AOTInductor backend OFF" in conf.stdout, conf.stdout + conf.stderr
    make = subprocess.run(["cmake", "--build", str(build), "-j2"], capture_output=True, text=True, timeout=300)
    assert make.returncode == 0, make.stdout + make.stderr
    assert (build / "libatmocorrect.so").is_file() and not (build / "libatmocorrect_aot.so").exists()
    src = REPO / "examples" / "01_gridded"
    exe = tmp_path / "gridded_host"
    cc = subprocess.run(["mpif90", "-O1", f"-I{build / 'mod'}", f"-J{tmp_path}",
                         *(str(src / f) for f in ("gridded_model.f90", "gridded_halo.f90", "gridded_host.f90")),
                         f"-L{build}", "-latmocorrect", f"-Wl,-rpath,{build}", "-o", str(exe)],
                        capture_output=True, text=True)
    assert cc.returncode == 0, cc.stderr
    proc = mpirun(2, [str(exe), f"ckpt={aot_ckpt}", *HOST_ARGS, "steps=1"], env={"ATMOCORRECT_BACKEND": "aot"},
                  timeout=120)
    errors = re.findall(r"ERROR rank=(\d) call=init stat=(\d+) msg=(.*)", proc.stdout)
    assert len(errors) == 2, proc.stdout + proc.stderr
    assert all(e[1] == "9" and f"{build}/libatmocorrect_aot.so" in e[2] for e in errors), errors
