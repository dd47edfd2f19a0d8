"""Peak memory of reading the offline pair (``load_pair``) against a large reference.

The shipped daily pair (IPSL-CM6A-LR ``tas`` at 4 points, ERA5 ``t2m`` on 5 x 5 cells) is read
once with the shipped reference and once with a large one generated from it into a scratch
folder: ERA5's global 0.25-degree grid (721 x 1440, latitudes north to south, 0..359.75 E),
one year of days (1.5 GB of float32), the real ERA5 field interpolated bilinearly inside the
shipped box (so the simulation's points get the shipped reference's values, up to float32
rounding) and its nearest edge elsewhere, written a few days at a time (building it does not
need the memory it measures). Each read runs as its own process (imports included, as a user runs
it); its peak RSS is its own (RUSAGE_CHILDREN of a wrapper that runs only that command). The
figure is the ratio of the two peaks: reading the whole reference made it grow with the
reference (about 3 times the reference's size), reading the window around the simulation's
points keeps it near 1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import bench_common as bc
from bench_offline import _RSS_WRAPPER, sample_dir

ERA5 = "era5/era5_daily_mean_2m_temperature_1979_2015.nc"
SIM = "cmip6/tas_day_IPSL-CM6A-LR_historical_r1i1p1f1_gr_19790101-20141231_v20190614.nc"

_LOAD_PAIR = (
    "import json, sys, time; t = time.perf_counter(); "
    "from atmocorrect.data.pairs import PairConfig, load_pair; "
    "p = load_pair([sys.argv[1]], sys.argv[2:], PairConfig(('tas',))); "
    "v = p.ref['tas'].values; "
    "print(json.dumps({'seconds': time.perf_counter() - t, 'shape': list(v.shape), "
    "'mean': float(v[:365].mean())}))"
)


def write_large_reference(data: Path, out: Path, resolution: float = 0.25,
                          year: str = "1979", block: int = 8) -> Path:
    """A global ``resolution``-degree daily ``t2m`` for ``year`` (see the module docstring),
    written ``block`` days at a time with netCDF4 (chunks of one day, as ERA5 netCDF has)."""
    import netCDF4
    import numpy as np
    import xarray as xr

    src = xr.open_dataset(data / ERA5, decode_times=False)["t2m"]
    times = src["time"]
    cal = xr.open_dataset(data / ERA5, decode_times=xr.coders.CFDatetimeCoder(use_cftime=True))
    keep = np.flatnonzero(np.array([str(t.year) == year for t in cal["time"].values]))
    lat = np.arange(90.0, -90.0 - 1e-9, -resolution)
    lon = np.arange(0.0, 360.0 - 1e-9, resolution)
    nc = netCDF4.Dataset(out, "w", format="NETCDF4")
    try:
        nc.createDimension("time", None)
        nc.createDimension("latitude", lat.size)
        nc.createDimension("longitude", lon.size)
        t = nc.createVariable("time", "f8", ("time",))
        t.setncatts({k: v for k, v in times.attrs.items() if k in ("units", "calendar")})
        t[:] = times.values[keep]
        for name, values, units in (("latitude", lat, "degrees_north"),
                                    ("longitude", lon, "degrees_east")):
            v = nc.createVariable(name, "f8", (name,))
            v.units = units
            v[:] = values
        var = nc.createVariable("t2m", "f4", ("time", "latitude", "longitude"),
                                chunksizes=(1, lat.size, lon.size))
        var.units = "K"
        for k in range(0, keep.size, block):
            days = src.isel(time=keep[k:k + block]).values.astype(np.float64)
            var[k:k + days.shape[0]] = _refine(_refine(days, lat - 48.0, 1), lon - 8.0, 2)
    finally:
        nc.close()
    return out


def _refine(x, pos, axis: int):
    """``x`` (5 cells 1 degree apart along ``axis``) interpolated linearly at ``pos`` degrees
    from its first cell, clamped to its ends."""
    import numpy as np

    pos = np.clip(pos, 0.0, 4.0)
    i = np.minimum(np.floor(pos).astype(int), 3)
    shape = [1] * x.ndim
    shape[axis] = pos.size
    w = (pos - i).reshape(shape)
    return np.take(x, i, axis=axis) * (1.0 - w) + np.take(x, i + 1, axis=axis) * w


def load_pair_rss(sim: Path, refs: list[Path]) -> dict:
    """``load_pair`` of the pair in its own process: wall time, peak RSS, what it read."""
    env = dict(os.environ)
    if bc.SOURCE:  # --source: the child reads the pair with the same package
        env["PYTHONPATH"] = bc.SOURCE
    cmd = [sys.executable, "-c", _LOAD_PAIR, str(sim), *map(str, refs)]
    proc = subprocess.run([sys.executable, "-c", _RSS_WRAPPER, *cmd], capture_output=True,
                          text=True, env=env, timeout=900)
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    if res["rc"] != 0:
        raise RuntimeError(f"load_pair failed: {res['stderr'][-1500:]}")
    inner = json.loads(res["stdout"].strip().splitlines()[-1])
    return {"wall": res["wall"], "peak_rss_mb": res["peak_rss_mb"], **inner}


def reference_memory(resolution: float = 0.25, year: str = "1979", reps: int = 2) -> dict:
    """Peak RSS of ``load_pair`` with the shipped and with the large reference, ``reps`` runs
    each, interleaved (small large, large small, ...); medians and their ratio."""
    data = sample_dir()
    work = bc.scratch("offline-reference-")
    big = write_large_reference(data, work / f"t2m_global_{resolution:g}deg_{year}.nc",
                                resolution, year)
    try:
        runs: dict[str, list[dict]] = {"small": [], "large": []}
        refs = {"small": [data / ERA5], "large": [big]}
        for r in range(reps):
            for kind in (("small", "large") if r % 2 == 0 else ("large", "small")):
                runs[kind].append(load_pair_rss(data / SIM, refs[kind]))
        small = [x["peak_rss_mb"] for x in runs["small"]]
        large = [x["peak_rss_mb"] for x in runs["large"]]
        same = abs(runs["small"][0]["mean"] - runs["large"][0]["mean"]) < 1e-3
        return {
            "reference_bytes": {"small": (data / ERA5).stat().st_size,
                                "large": big.stat().st_size},
            "grid": {"resolution_deg": resolution, "year": year},
            "peak_rss_mb": {"small": small, "large": large},
            "seconds": {k: [x["wall"] for x in v] for k, v in runs.items()},
            "same_values_in_the_box": same,
            "offline_reference_rss_ratio": bc.median(large) / bc.median(small),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
