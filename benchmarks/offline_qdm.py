"""ibicus QDM on the shared daily pair, file in, file out: the reference of the offline figures.

Run as a subprocess by benchmarks/run.py (so its peak RSS is its own):

    python benchmarks/offline_qdm.py --data DIR --input SIM.nc --output OUT.nc

Calibrates on 1979-2004 (ERA5 t2m interpolated bilinearly to the simulation's points vs the
simulation), corrects the whole ``--input`` file (held-out 2005-2014 of the historical run, or a
copy tiled along longitude for the 20x input), writes ``--output``, and prints one JSON line:
seconds (after imports: read, fit, correct, write), peak_rss_mb, points, times.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import warnings
from pathlib import Path

ERA5 = "era5/era5_daily_mean_2m_temperature_1979_2015.nc"
SIM = "cmip6/tas_day_IPSL-CM6A-LR_historical_r1i1p1f1_gr_19790101-20141231_v20190614.nc"


def open_ds(path):
    import xarray as xr

    return xr.open_dataset(path, decode_times=xr.coders.CFDatetimeCoder(use_cftime=True))


def write_input(data: Path, out: Path, scale: int, period=("2005", "2014")) -> Path:
    """The simulation's held-out period, its points tiled ``scale`` times along longitude."""
    import numpy as np
    import xarray as xr

    sim = open_ds(data / SIM)[["tas"]].sel(time=slice(*period))
    if scale > 1:
        tiles = []
        for i in range(scale):
            t = sim.copy()
            t = t.assign_coords(lon=sim.lon.values + 0.01 * i)
            tiles.append(t)
        sim = xr.concat(tiles, dim="lon")
    sim["tas"] = sim["tas"].astype(np.float32)
    sim.to_netcdf(out)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", required=True)
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    import numpy as np
    from ibicus.debias import QuantileDeltaMapping

    t0 = time.perf_counter()
    data = Path(args.data)
    era5 = open_ds(data / ERA5)["t2m"]
    sim_hist = open_ds(data / SIM)["tas"].sel(time=slice("1979", "2004"))
    fut = open_ds(args.input)
    cm_fut = fut["tas"]
    # calibration points: the distinct original points (lat x lon of the shared file)
    lat = sim_hist.lat.values
    lon = sim_hist.lon.values
    obs = era5.sel(time=slice("1979", "2004")).interp(lat=("p", np.repeat(lat, len(lon))),
                                                      lon=("p", np.tile(lon, len(lat))))
    obs_a = obs.values.reshape(obs.shape[0], len(lat), len(lon)).astype(np.float64)
    hist_a = sim_hist.values.astype(np.float64)
    fut_a = cm_fut.values.astype(np.float64)
    reps = fut_a.shape[2] // hist_a.shape[2]
    hist_t = np.tile(hist_a, (1, 1, reps))
    obs_t = np.tile(obs_a, (1, 1, reps))
    deb = QuantileDeltaMapping.from_variable("tas")
    out = deb.apply(obs_t, hist_t, fut_a, progressbar=False,
                    time_obs=obs.time.values, time_cm_hist=sim_hist.time.values,
                    time_cm_future=cm_fut.time.values)
    res = fut.copy()
    res["tas"] = (cm_fut.dims, out.astype(np.float32))
    res.to_netcdf(args.output)
    seconds = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"seconds": seconds, "peak_rss_mb": rss, "points": int(fut_a.shape[1] * fut_a.shape[2]),
                      "times": int(fut_a.shape[0])}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
