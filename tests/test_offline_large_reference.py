"""A large reference (ERA5 over a continent or the globe, in one file or split into yearly
files) is read only around the simulation's points: lazily (dask), the window cut before
anything is loaded, values bit for bit those of reading the whole reference.

* Unit level (no data needed): :func:`reference_window` then ``interpolate_to(...,
  frame=...)`` equals ``interpolate_to`` on the whole grid, bit for bit, for global grids in
  0..360 and -180..180, regional grids across 0 deg E (stored in either convention), regular
  grids, stations and curvilinear targets across the seam, linear and nearest.
* On files built in tmp_path from the real daily pair (skipped, with the reason, when the
  shared data are absent): a global 1-degree ERA5-like reference (north to south, 0..359 E,
  the real ERA5 values on the cells of the shipped 48-52N, 8-12E box) in one file and split
  into yearly files gives the IPSL-CM6A-LR points the same values as the shipped reference
  and as reading it whole; what is read is a dask-backed window of a few cells; cells far
  from the simulation never enter the checks; and the peak memory of ``load_pair`` does not
  grow with the reference (in a subprocess: 1 and 2 years of the global grid, 91 and 182 MiB,
  and the 2 years as 2 files).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr
from conftest import REPO

from atmocorrect.data import pairs, samples
from atmocorrect.data.pairs import PairConfig, load_pair
from atmocorrect.data.regrid import interpolate_to, reference_window, subset_inside
from atmocorrect.errors import DataError

CODER = xr.coders.CFDatetimeCoder(use_cftime=True)


# ------------------------------------------------------------------ unit level, no data
def _grid(lon: np.ndarray, seed: int = 0) -> xr.DataArray:
    """A (time, lat, lon) field on 1.5-degree latitudes 30..69 and the given longitudes,
    with a few missing values."""
    rng = np.random.default_rng(seed)
    lat = np.arange(30.0, 70.0, 1.5)
    v = rng.normal(280.0, 8.0, (3, lat.size, lon.size)).astype(np.float32)
    v[:, 3, 5] = np.nan
    return xr.DataArray(v, dims=("time", "lat", "lon"), name="t2m",
                        coords={"time": [0, 1, 2], "lat": lat, "lon": lon},
                        attrs={"units": "K"})


REFERENCES = {
    "global 0..360": np.arange(0.0, 360.0, 2.5),
    "global -180..180": np.arange(-180.0, 180.0, 2.5),
    "regional -30..50": np.arange(-30.0, 50.1, 2.5),
    "regional 0..360 across 0E": np.r_[np.arange(0.0, 50.1, 2.5), np.arange(330.0, 359.0, 2.5)],
}


def _targets() -> dict[str, xr.Dataset]:
    la2, lo2 = np.meshgrid(np.linspace(44.1, 47.3, 3), np.linspace(-6.2, 5.3, 4), indexing="ij")
    return {
        "grid across 0E": xr.Dataset(coords={"lat": [40.2, 41.7, 45.0, 51.3],
                                             "lon": [-7.3, -1.1, 0.0, 2.6, 7.5]}),
        "grid in 0..360": xr.Dataset(coords={"lat": [55.5, 56.0], "lon": [352.1, 357.5, 3.2]}),
        "stations": xr.Dataset(coords={"lat": ("station", [41.0, 52.25, 60.4, 33.0]),
                                       "lon": ("station", [-0.4, 359.9, 10.0, 45.0 - 90.0])}),
        "curvilinear": xr.Dataset(coords={"lat": (("y", "x"), la2), "lon": (("y", "x"), lo2)}),
    }


@pytest.mark.parametrize("method", ["linear", "nearest"])
@pytest.mark.parametrize("kind", list(REFERENCES))
def test_window_interpolates_as_the_whole_grid(kind, method):
    ref = _grid(REFERENCES[kind])
    for name, target in _targets().items():
        try:
            whole = interpolate_to(ref, target, method=method)
        except DataError:  # a target outside this reference: the window says the same
            with pytest.raises(DataError) as from_whole:
                interpolate_to(ref, target, method=method)
            with pytest.raises(DataError) as from_window:
                reference_window(ref, target)
            assert str(from_window.value) == str(from_whole.value), (kind, name)
            continue
        window, frame = reference_window(ref, target)
        assert window.size <= 0.12 * ref.size, (kind, name, dict(window.sizes))
        cut = interpolate_to(window, target, method=method, frame=frame)
        np.testing.assert_array_equal(cut.values, whole.values, err_msg=f"{kind}, {name}")
        assert cut.dims == whole.dims and cut.attrs == whole.attrs


def test_window_is_lazy_indexing_only():
    """On a dask-backed reference, cutting the window computes nothing, and the window's
    graph holds only the chunks that overlap it."""
    da = pytest.importorskip("dask.array", reason="dask is not installed (pip install dask)")
    ref = _grid(REFERENCES["global 0..360"]).chunk({"time": 1, "lat": 9, "lon": 48})
    target = _targets()["grid across 0E"]
    window, frame = reference_window(ref, target)
    assert isinstance(window.data, da.Array) and frame.periodic
    assert window.nbytes < ref.nbytes / 10
    np.testing.assert_array_equal(
        interpolate_to(window.compute(), target, frame=frame).values,
        interpolate_to(ref.compute(), target).values)


@pytest.mark.parametrize("kind", ["regional -30..50", "regional 0..360 across 0E"])
def test_window_drops_what_the_whole_grid_drops(kind):
    """outside='drop' in the frame of the whole grid: the stations and the curvilinear block
    outside a regional reference are dropped as they are with the whole grid."""
    ref = _grid(REFERENCES[kind])
    for name in ("stations", "curvilinear"):
        target = _targets()[name]
        if name == "curvilinear":  # reaching west of the box
            target = target.assign_coords(lon=target["lon"] - 26.0)
        whole = interpolate_to(ref, target, outside="drop")
        window, frame = reference_window(ref, subset_inside(target, ref))
        cut = interpolate_to(window, target, outside="drop", frame=frame)
        assert cut.sizes == whole.sizes, (kind, name)
        assert whole.isel(time=0).size < target["lat"].size, (kind, name)
        np.testing.assert_array_equal(cut.values, whole.values, err_msg=f"{kind}, {name}")


def test_outside_error_names_the_whole_box():
    ref = _grid(REFERENCES["regional -30..50"])
    target = xr.Dataset(coords={"lat": [45.0], "lon": [60.0]})
    with pytest.raises(DataError, match=r"1 simulation point\(s\) lie outside the reference "
                                        r"domain \(lat 30\.\.69, lon -30\.\.50 from reference\)"):
        reference_window(ref, target)


# ------------------------------------------------------------- on the real daily pair
def _global_reference(era5: xr.DataArray) -> xr.Dataset:
    """ERA5-like global 1-degree daily t2m, latitudes north to south, longitudes 0..359: the
    real values on the cells of the shipped box (48-52N, 8-12E), elsewhere the nearest box
    cell plus 0.1 K per degree away from it."""
    lat, lon = np.arange(90.0, -90.5, -1.0), np.arange(0.0, 360.0, 1.0)
    rows = np.clip(lat - 48.0, 0, 4).astype(int)
    cols = np.clip(lon - 8.0, 0, 4).astype(int)
    away = (np.maximum(np.abs(lat - 50.0) - 2.0, 0.0)[:, None]
            + np.maximum(np.abs((lon - 10.0 + 180.0) % 360.0 - 180.0) - 2.0, 0.0)[None, :])
    values = era5.values[:, rows][:, :, cols] + (0.1 * away).astype(np.float32)
    t2m = xr.DataArray(values.astype(np.float32), dims=("time", "latitude", "longitude"),
                       coords={"time": era5["time"], "latitude": lat, "longitude": lon},
                       attrs={"units": "K", "long_name": "2 metre temperature"})
    return xr.Dataset({"t2m": t2m})


def _write(ds: xr.Dataset, path) -> str:
    ds.to_netcdf(path, encoding={"t2m": {"chunksizes": (1, ds.sizes["latitude"],
                                                       ds.sizes["longitude"])}})
    return str(path)


@pytest.fixture(scope="module")
def large(sample_data, tmp_path_factory):
    """The global reference for 1979 and 1979-1980 in one file each, and 1979-1980 split into
    two yearly files (91, 182 and 2 x 91 MiB of float32)."""
    root = tmp_path_factory.mktemp("large_reference")
    era5 = xr.open_dataset(sample_data / samples.DAILY_REFERENCE, decode_times=CODER)["t2m"]
    ds = _global_reference(era5.sel(time=slice("1979", "1980")).load())
    return {
        "sim": str(sample_data / samples.DAILY_HISTORICAL),
        "small": str(sample_data / samples.DAILY_REFERENCE),
        "one_year": _write(ds.sel(time="1979"), root / "t2m_1979.nc"),
        "two_years": _write(ds, root / "t2m_1979-1980.nc"),
        "split": [_write(ds.sel(time=y), root / f"t2m_{y}_part.nc") for y in ("1979", "1980")],
    }


def _values(pair) -> np.ndarray:
    return np.asarray(pair.ref["tas"].values)


def test_shipped_pair_is_unchanged(sample_data):
    """The shipped daily pair: the window gives what reading the whole reference gives."""
    sim, ref = sample_data / samples.DAILY_HISTORICAL, sample_data / samples.DAILY_REFERENCE
    cut = load_pair([sim], [ref], PairConfig(("tas",)))
    whole = load_pair([sim], [ref], PairConfig(("tas",)), window=False)
    np.testing.assert_array_equal(_values(cut), _values(whole))
    assert cut.ref["tas"].dims == whole.ref["tas"].dims
    assert cut.ref["tas"].attrs == whole.ref["tas"].attrs


@pytest.mark.parametrize("which", ["two_years", "split"])
def test_large_reference_values(large, which):
    """One file or yearly files: the values of reading the whole reference, and (the real
    ERA5 values on the same cells) those of the shipped 5 x 5 reference."""
    refs = large[which] if which == "split" else [large[which]]
    cut = load_pair([large["sim"]], refs, PairConfig(("tas",)))
    whole = load_pair([large["sim"]], refs, PairConfig(("tas",)), window=False)
    small = load_pair([large["sim"]], [large["small"]], PairConfig(("tas",)))
    np.testing.assert_array_equal(_values(cut), _values(whole))
    n = cut.ref.sizes["time"]
    assert n == 731
    np.testing.assert_array_equal(_values(cut), _values(small)[:n])


def test_only_a_lazy_window_is_read(large, monkeypatch):
    """What load_pair reads is a dask-backed window of a few cells around the 4 points
    (10E, 48.2-52.0N), not the 181 x 360 grid."""
    pytest.importorskip("dask", reason="dask is not installed (pip install dask)")
    seen = []
    original = pairs.read_reference

    def spy(ref: xr.Dataset) -> xr.Dataset:
        seen.append({"sizes": dict(ref.sizes), "lazy": ref["tas"].chunks is not None,
                     "lat": ref["lat"].values.tolist(), "lon": ref["lon"].values.tolist()})
        return original(ref)

    monkeypatch.setattr(pairs, "read_reference", spy)
    load_pair([large["sim"]], large["split"], PairConfig(("tas",)))
    assert len(seen) == 1 and seen[0]["lazy"]
    assert seen[0]["sizes"] == {"time": 731, "lat": 7, "lon": 4}
    assert seen[0]["lat"] == [47.0, 48.0, 49.0, 50.0, 51.0, 52.0, 53.0]
    assert seen[0]["lon"] == [8.0, 9.0, 10.0, 11.0]


def test_far_cells_never_enter_the_checks(large, tmp_path):
    """Cells far from the simulation holding implausible values (999 K) are not read into
    the chain: the pair is read as before; reading the whole reference refuses them."""
    ds = xr.open_dataset(large["one_year"], decode_times=CODER).load()
    far = np.abs(ds["latitude"] - 50.0) > 20.0
    ds["t2m"] = ds["t2m"].where(~far, np.float32(999.0))
    path = _write(ds, tmp_path / "t2m_far_implausible.nc")
    cut = load_pair([large["sim"]], [path], PairConfig(("tas",)))
    good = load_pair([large["sim"]], [large["one_year"]], PairConfig(("tas",)))
    np.testing.assert_array_equal(_values(cut), _values(good))
    with pytest.raises(DataError, match="outside the plausible range"):
        load_pair([large["sim"]], [path], PairConfig(("tas",)), window=False)


# The peak RSS of the child's own memory (VmHWM: ru_maxrss would start from the parent's peak,
# which a forked child inherits), after the imports and after load_pair.
_CHILD = """
import json, sys
import dask.array, netCDF4, scipy.interpolate, xarray  # imported before the baseline
from atmocorrect.data.pairs import PairConfig, load_pair

def peak_kib():
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))

before = peak_kib()
pair = load_pair([sys.argv[1]], sys.argv[2:], PairConfig(("tas",)))
pair.ref["tas"].values.sum()
print(json.dumps({"growth_mb": (peak_kib() - before) / 1024, "before_mb": before / 1024}))
"""


def _peak_growth_mb(sim: str, refs: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", _CHILD, sim, *refs], capture_output=True,
                          text=True, env=env, cwd=str(REPO), timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["growth_mb"])


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux's /proc")
def test_peak_memory_does_not_grow_with_the_reference(large):
    """Twice the reference (91 -> 182 MiB, or two yearly files) does not raise load_pair's
    peak memory, well below the reference's size. Measured (growth of the peak over the
    imports, 1 year / 2 years / 2 yearly files): reading the whole grid +572 / +648 / +1255 MB;
    the window +127 / +128 / +151 MB (a 32 MiB dask chunk of the grid and netCDF's 64 MiB
    chunk cache of the file being read, whatever the reference's size)."""
    pytest.importorskip("dask", reason="dask is not installed (pip install dask)")
    year = 181 * 360 * 365 * 4 / 2**20
    one = _peak_growth_mb(large["sim"], [large["one_year"]])
    two = _peak_growth_mb(large["sim"], [large["two_years"]])
    split = _peak_growth_mb(large["sim"], large["split"])
    assert two - one < 0.25 * year, (one, two)
    assert split - one < 0.5 * year, (one, split)
    assert two < 1.25 * 2 * year, (one, two)
