"""Host models outside the repo build against the installed bridge, with CMake or Makefiles."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from conftest import REPO, atmocorrect_cli, mpirun, require_toolchain
from test_bridge import read_blocks

from atmocorrect.checkpoint import write_analytic_checkpoint

pytestmark = pytest.mark.mpi
EXAMPLE = REPO / "examples" / "01_gridded"


def _cli(*args: str) -> str:
    return subprocess.run([atmocorrect_cli(), *args], check=True, capture_output=True, text=True).stdout.strip()


def test_config_prints_usable_flags():
    fflags, libs, cmake_dir = _cli("config", "--fflags"), _cli("config", "--libs"), _cli("config", "--cmake-dir")
    include = fflags.removeprefix("-I")
    assert (shutil.os.path.isfile(f"{include}/atmocorrect.mod"))
    assert (shutil.os.path.isfile(f"{include}/atmocorrect.h"))
    assert "-latmocorrect" in libs and "-Wl,-rpath," in libs
    assert shutil.os.path.isfile(f"{cmake_dir}/lib/cmake/atmocorrect/atmocorrectConfig.cmake")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return write_analytic_checkpoint(
        tmp_path_factory.mktemp("ck") / "relax", field=["t", "q", "ps"], units=["K", "kg kg-1", "Pa"],
        relax_to=290.0, timescale=7200.0,
    )


def _build_cmake(tmp_path):
    require_toolchain()
    if shutil.which("cmake") is None:
        pytest.skip("cmake not found")
    src = tmp_path / "host_src"  # a copy outside the repository, as a user's model would be
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("build"))
    build = tmp_path / "host_build"
    env = {**shutil.os.environ}
    env.pop("PYTHONPATH", None)
    cfg = subprocess.run(
        ["cmake", "-S", str(src), "-B", str(build), "-DCMAKE_Fortran_COMPILER=mpif90",
         f"-DCMAKE_PREFIX_PATH={_cli('config', '--cmake-dir')}"],
        capture_output=True, text=True, env=env,
    )
    assert cfg.returncode == 0, cfg.stdout + cfg.stderr
    bld = subprocess.run(["cmake", "--build", str(build)], capture_output=True, text=True)
    assert bld.returncode == 0, bld.stdout + bld.stderr
    return build / "gridded_host"


def _build_make(tmp_path):
    require_toolchain()
    src = tmp_path / "make_src"
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("build"))
    proc = subprocess.run(["make", "-C", str(src), f"ATMOCORRECT={atmocorrect_cli()}"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return src / "build" / "gridded_host"


@pytest.mark.parametrize("builder", [_build_cmake, _build_make], ids=["find_package", "config_flags"])
def test_external_host_builds_and_runs(builder, ckpt, tmp_path):
    exe = builder(tmp_path)
    # No LD_LIBRARY_PATH, no PYTHONPATH: rpaths and the embedded interpreter find everything.
    outs = {}
    for n in (1, 2):
        proc = mpirun(n, [str(exe), f"ckpt={ckpt}", "physics=0", "steps=1", "dt=720", f"out={tmp_path / f'np{n}'}"],
                      env={"LD_LIBRARY_PATH": ""})
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stdout.count("untouched=T") == n
        outs[n] = read_blocks(tmp_path / f"np{n}", n)
    for name in ("t", "q", "ps"):
        np.testing.assert_array_equal(outs[1][name], outs[2][name])
    # One relaxation step from the model's initial state: x + 720 (290 - x) / 7200.
    off = mpirun(1, [str(exe), f"ckpt={ckpt}", "physics=0", "steps=1", "dt=720", "mode=off", f"out={tmp_path / 'off'}"])
    assert off.returncode == 0, off.stderr
    x0 = read_blocks(tmp_path / "off", 1)["t"]
    np.testing.assert_allclose(outs[1]["t"], x0 + 720.0 * (290.0 - x0) / 7200.0, rtol=1e-15)
    missing = mpirun(1, [str(exe), "ckpt=/no/such/checkpoint"])
    assert missing.returncode != 0 and "/no/such/checkpoint" in missing.stdout + missing.stderr


def test_c_host_uses_the_header_api(tmp_path):
    require_toolchain()
    if shutil.which("mpicc") is None:
        pytest.skip("mpicc not found")
    exe = tmp_path / "c_host"
    cflags, libs = _cli("config", "--cflags").split(), _cli("config", "--libs").split()
    cc = subprocess.run(["mpicc", "-Wall", "-Werror", str(REPO / "examples" / "02_c_host" / "c_host.c"),
                         *cflags, *libs, "-o", str(exe)], capture_output=True, text=True)
    assert cc.returncode == 0, cc.stderr
    ck = write_analytic_checkpoint(tmp_path / "ck", field="x", tendency=0.25)
    proc = mpirun(2, [str(exe), str(ck)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = sorted(ln for ln in proc.stdout.splitlines() if " x:" in ln)
    # interior +0.5 (0.25/s for 2 s), halos (-1) untouched, registered in place
    assert lines[0] == "rank 0 x: -1.000000 1.500000 2.500000 3.500000 4.500000 -1.000000 inplace=1"
    assert lines[1] == "rank 1 x: -1.000000 11.500000 12.500000 13.500000 14.500000 -1.000000 inplace=1"
    assert proc.stdout.count("bad_dt status=9 msg=atmocorrect_step: dt must be a positive") == 2
