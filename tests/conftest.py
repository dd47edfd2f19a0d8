"""Shared fixtures: the installed bridge, compiled Fortran hosts, mpirun, sample data."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / "tests" / "_build"
VENV_BIN = Path(sys.executable).parent


def hourly_times(days) -> np.ndarray:
    """The 24 hourly stamps 00:00..23:00 of each day (cftime days), in time order."""
    return np.array([d + np.timedelta64(h, "h").item() for d in days for h in range(24)])


def diurnal_anomaly(days, rng) -> np.ndarray:
    """(days, 24) a synthetic diurnal cycle with zero daily mean for hourly test references
    built from real daily means: two harmonics of 24 h peaking mid-afternoon, an amplitude
    larger in summer (3 +- 2 K) and varying from day to day (clouds; one ``rng`` draw a day)."""
    doy = np.array([t.dayofyr for t in days])
    hours = np.arange(24)
    amp = (3.0 + 2.0 * np.cos(2 * np.pi * (doy - 180) / 365))[:, None] * rng.uniform(
        0.4, 1.3, (len(days), 1))
    shape = np.cos(2 * np.pi * (hours - 15) / 24) + 0.3 * np.cos(4 * np.pi * (hours - 3) / 24)
    return amp * shape[None, :]


def open_cftime(path: Path):
    """A netCDF file opened with its times decoded to cftime (as the package reads them)."""
    import xarray as xr

    return xr.open_dataset(path, decode_times=xr.coders.CFDatetimeCoder(use_cftime=True))


def era5_daily_t2m(sample_data: Path, years: slice):
    """The shipped ERA5 daily ``t2m`` over 9-11E in ``years``, loaded, times as cftime: the
    real daily means around which the hourly test references are built."""
    from atmocorrect.data import samples

    return open_cftime(sample_data / samples.DAILY_REFERENCE)["t2m"].sel(
        time=years, lon=slice(9, 11)).load()


def write_cftime(ds, path: Path, units: str) -> Path:
    """``ds`` written to ``path`` with integer times in ``units`` of the proleptic Gregorian
    calendar (exact stamps, whatever the step)."""
    ds["time"].encoding = {"units": units, "calendar": "proleptic_gregorian", "dtype": "int64"}
    ds.to_netcdf(path)
    return path


def stamps_at(days, hours, minutes: int = 0) -> np.ndarray:
    """The stamps at ``hours`` (+ ``minutes``) UTC of each of ``days`` (cftime, the date
    only), in time order, proleptic Gregorian."""
    import cftime

    return np.array([cftime.DatetimeProlepticGregorian(t.year, t.month, t.day, int(h), minutes,
                                                       has_year_zero=True)
                     for t in days for h in hours])


def perfect_three_hour_model(t2m, like, days, minutes: int, bounds: bool):
    """A perfect 3-hourly model of ``tas``: the exact 3-hour means of the hourly reference
    ``t2m`` interpolated to the points of ``like`` (the model's ``tas``), each stamped
    ``minutes`` after the start of its step (90: mid-step, 180: at its end, as CF allows),
    with CF time bounds or without; an ``xarray.Dataset`` to write."""
    import xarray as xr

    means = t2m.coarsen(time=3).mean().interp(lat=like["lat"].astype("f8"),
                                              lon=like["lon"].astype("f8"))
    start = stamps_at(days, np.arange(0, 24, 3))
    ds = xr.DataArray(means.values, dims=like.dims, name="tas",
                      coords={"time": start + np.timedelta64(minutes, "m").item(),
                              "lat": like["lat"], "lon": like["lon"]},
                      attrs={"units": "K", "standard_name": "air_temperature",
                             "cell_methods": "area: time: mean"}).to_dataset()
    if bounds:
        ds["time_bnds"] = xr.DataArray(
            np.stack([start, start + np.timedelta64(3, "h").item()], axis=1), dims=("time", "bnds"))
        ds["time"].attrs["bounds"] = "time_bnds"
    return ds


MPI_ENV = {
    "OMPI_ALLOW_RUN_AS_ROOT": "1",
    "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
    "OMPI_MCA_rmaps_base_oversubscribe": "1",
    "OMPI_MCA_btl_vader_single_copy_mechanism": "none",
}


@pytest.fixture(scope="session")
def sample_data() -> Path:
    """The real ERA5/CMIP6 samples (``$ATMOCORRECT_SAMPLE_DATA`` or ``../shared/data``),
    found as the package finds them; the test is skipped with the reason when absent."""
    from atmocorrect.data import samples

    path = samples.sample_data_dir()
    if path is None:
        pytest.skip(samples.missing_reason())
    return path


def atmocorrect_cli() -> str:
    exe = VENV_BIN / "atmocorrect"
    return str(exe) if exe.exists() else "atmocorrect"


def bridge_flags() -> tuple[list[str], list[str]]:
    """(fflags, libs) from the installed package, as a Makefile-built host gets them."""
    run = lambda opt: subprocess.run(  # noqa: E731
        [atmocorrect_cli(), "config", opt], check=True, capture_output=True, text=True
    ).stdout.split()
    return run("--fflags"), run("--libs")


def require_toolchain() -> None:
    for tool in ("mpif90", "mpirun"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not found: install Open MPI (make setup does)")


def compile_fortran(sources: list[Path], exe: Path, extra: list[str] | None = None) -> Path:
    """Compile a host with mpif90 against the installed bridge, with FP traps on."""
    require_toolchain()
    fflags, libs = bridge_flags()
    exe.parent.mkdir(parents=True, exist_ok=True)
    newest = max(p.stat().st_mtime for p in sources)
    lib = Path(libs[0][2:]) / "libatmocorrect.so"
    if exe.exists() and exe.stat().st_mtime > max(newest, lib.stat().st_mtime):
        return exe
    moddir = exe.parent / f"{exe.name}.mod"
    moddir.mkdir(exist_ok=True)
    cmd = [
        "mpif90", "-O1", "-g", "-ffpe-trap=invalid,zero,overflow", f"-J{moddir}",
        *fflags, *map(str, sources), *libs, *(extra or []), "-o", str(exe),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"compilation failed: {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")
    return exe


def mpirun(np_: int, args: list[str], timeout: float = 120, cwd: Path | None = None,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    require_toolchain()
    full_env = {**os.environ, **MPI_ENV, **(env or {})}
    # The embedded interpreter must find the installed package on its own: no PYTHONPATH.
    if "PYTHONPATH" not in (env or {}):
        full_env.pop("PYTHONPATH", None)
    cmd = ["mpirun", "--oversubscribe", "-np", str(np_), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=full_env)


@pytest.fixture(scope="session")
def gridded_host() -> Path:
    src = REPO / "examples" / "01_gridded"
    return compile_fortran(
        [src / "gridded_model.f90", src / "gridded_halo.f90", src / "gridded_host.f90"],
        BUILD / "gridded_host",
    )


@pytest.fixture(scope="session")
def error_paths_host() -> Path:
    return compile_fortran([REPO / "tests" / "fortran" / "error_paths.f90"], BUILD / "error_paths")
