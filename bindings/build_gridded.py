"""Wrap example 01's model module (examples/01_gridded/gridded_model.f90) for Python with f90wrap.

The kind map tells f90wrap that ``real(dp)`` is a C double, so the module's real64 arrays
reach Python as numpy views of the Fortran memory (no copy) instead of being misread.

usage: python bindings/build_gridded.py [BUILD_DIR]   (default: bindings/build)
Produces BUILD_DIR/gridded.py and BUILD_DIR/_gridded*.so; import with sys.path += [BUILD_DIR].
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent / "examples" / "01_gridded" / "gridded_model.f90"


def _run(cmd: list[str], cwd: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed in {cwd}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


def build(build_dir: Path = HERE / "build") -> Path:
    """Build the wrapper module; returns the directory to put on sys.path."""
    build_dir.mkdir(parents=True, exist_ok=True)
    built = list(build_dir.glob("_gridded*.so"))
    if built and built[0].stat().st_mtime > SOURCE.stat().st_mtime:
        return build_dir
    shutil.copy(SOURCE, build_dir / SOURCE.name)
    bindir = Path(sys.executable).parent
    _run(["gfortran", "-fPIC", "-O2", "-c", SOURCE.name], build_dir)
    _run([str(bindir / "f90wrap"), "-m", "gridded", SOURCE.name, "-k", str(HERE / "kind_map")], build_dir)
    wrappers = sorted(p.name for p in build_dir.glob("f90wrap_*.f90"))
    # f2py's meson build needs -I at the directory holding gridded_model.mod.
    _run([str(bindir / "f2py-f90wrap"), "-c", "-m", "_gridded", f"-I{build_dir}", *wrappers, "gridded_model.o"], build_dir)
    return build_dir


if __name__ == "__main__":
    out = build(Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else HERE / "build")
    print(f"built the gridded module in {out}")
