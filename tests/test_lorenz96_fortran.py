"""The Fortran Lorenz-96 programs in examples/lorenz96 (l96_truth, l96_model).

Builds them with the example's Makefile, runs them under mpirun and checks:
bitwise rank-count independence, the RK4 steps against independent numpy
implementations (two-scale truth, one-scale model, Wilks 2005 quartic,
nudging, one-step residuals) and the CF metadata / time decoding.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

xr = pytest.importorskip("xarray")
pytest.importorskip("netCDF4")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "lorenz96"
# the tests build into their own (gitignored) folder so that they never replace
# the example's build/ (which `make demo` may have built WITH_ATMOCORRECT=1)
BUILD = ROOT / "tests" / "_build" / "lorenz96"
BUILD_AC = ROOT / "tests" / "_build" / "lorenz96_ac"
ATMOCORRECT = ROOT / ".venv" / "bin" / "atmocorrect"

MISSING = [t for t in ("mpif90", "mpirun", "nf-config", "make") if shutil.which(t) is None]
pytestmark = pytest.mark.skipif(
    bool(MISSING),
    reason=f"needs {', '.join(MISSING)} (Open MPI Fortran compiler and netCDF-Fortran: "
    "apt-get install libopenmpi-dev libnetcdff-dev)",
)

K = 40
DT_TRUTH = 0.001
DT_MODEL = 0.005
WILKS = (0.000707, -0.0130, -0.0190, 1.59, 0.275)  # X^4 .. X^0


def _env():
    env = dict(os.environ)
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1")
    return env


def mpirun(np_, exe, *args, check=True, build=BUILD):
    cmd = ["mpirun", "--oversubscribe", "-np", str(np_), str(build / exe), *map(str, args)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=120)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


@pytest.fixture(scope="module")
def built():
    cmd = ["make", "-C", str(EXAMPLE), f"BUILD={BUILD}", "WITH_ATMOCORRECT=0"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"{' '.join(cmd)} failed:\n{p.stdout}\n{p.stderr}"
    return BUILD


@pytest.fixture(scope="module")
def truth(built, tmp_path_factory):
    """K=40 truth (with Y) on 1, 2 and 3 ranks."""
    d = tmp_path_factory.mktemp("l96")
    files = {}
    for n in (1, 2, 3):
        f = d / f"truth_np{n}.nc"
        mpirun(n, "l96_truth", f"K={K}", "spinup=0.2", "length=0.1", "write_y=1", "seed=7",
               "buffer=7", f"output={f}")
        files[n] = f
    return files


def load(path):
    with xr.open_dataset(path) as ds:
        return ds.load()


# --------------------------------------------------------------- references

def l96_two_scale(x, y, F=18.0, h=1.0, b=10.0, c=10.0):
    J = y.size // x.size
    dx = -np.roll(x, 1) * (np.roll(x, 2) - np.roll(x, -1)) - x + F - h * c / b * y.reshape(-1, J).sum(1)
    dy = (-c * b * np.roll(y, -1) * (np.roll(y, -2) - np.roll(y, 1)) - c * y
          + h * c / b * np.repeat(x, J))
    return dx, dy


def l96(x, F=18.0, param=False):
    d = -np.roll(x, 1) * (np.roll(x, 2) - np.roll(x, -1)) - x + F
    if param:
        d = d - np.polyval(WILKS, x)
    return d


def rk4(f, x, dt):
    k1 = f(x, 0)
    k2 = f(x + dt / 2 * k1, 1)
    k3 = f(x + dt / 2 * k2, 1)
    k4 = f(x + dt * k3, 2)
    return x + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4), (k1, k2, k3, k4)


# --------------------------------------------------------------- truth

def test_truth_bitwise_independent_of_rank_count(truth):
    ref = load(truth[1])
    assert ref.X.shape == (21, K) and ref.Y.shape == (21, K, 32)
    for n in (2, 3):
        other = load(truth[n])
        assert np.array_equal(ref.X.values, other.X.values), f"X differs between 1 and {n} ranks"
        assert np.array_equal(ref.Y.values, other.Y.values), f"Y differs between 1 and {n} ranks"
        assert np.array_equal(ref.time.values, other.time.values)


def test_truth_step_matches_numpy(truth):
    ds = load(truth[2])
    x = ds.X.values[0].copy()
    y = ds.Y.values[0].ravel().copy()          # (k, j) -> k*J + j: the Y ring
    for _ in range(5):                          # 5 steps of 0.001 = one output interval
        k = []
        xs, ys = x, y
        for a in (0.0, 0.5, 0.5, 1.0):
            if k:
                xs, ys = x + a * DT_TRUTH * k[-1][0], y + a * DT_TRUTH * k[-1][1]
            k.append(l96_two_scale(xs, ys))
        x = x + DT_TRUTH / 6 * (k[0][0] + 2 * k[1][0] + 2 * k[2][0] + k[3][0])
        y = y + DT_TRUTH / 6 * (k[0][1] + 2 * k[1][1] + 2 * k[2][1] + k[3][1])
    np.testing.assert_allclose(ds.X.values[1], x, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ds.Y.values[1].ravel(), y, rtol=0, atol=1e-12)


def test_cf_metadata_and_cftime_decoding(truth):
    import cftime

    try:
        coder = xr.coders.CFDatetimeCoder(use_cftime=True)
        ds = xr.open_dataset(truth[1], decode_times=coder)
    except AttributeError:  # older xarray
        ds = xr.open_dataset(truth[1], use_cftime=True)
    with ds:
        t = ds.time.values
        assert isinstance(t[0], cftime.datetime)
        assert t[0] == cftime.DatetimeProlepticGregorian(2000, 1, 1)
        assert (t[1] - t[0]).total_seconds() == pytest.approx(0.005 * 432000)  # 0.005 MTU = 36 min
        assert ds.time.encoding["units"] == "days since 2000-01-01 00:00:00"
        assert ds.time.encoding["calendar"] == "proleptic_gregorian"
        assert list(ds.X.dims) == ["time", "k"] and ds.X.dtype == np.float64
        assert ds.X.attrs["units"] == "1" and ds.X.attrs["long_name"]
        assert list(ds.k.values) == list(range(1, K + 1))
        a = ds.attrs
        assert a["Conventions"] == "CF-1.8"
        for key in ("title", "history", "source"):
            assert a[key]
        assert (a["K"], a["J"], a["F"], a["h"], a["b"], a["c"], a["dt"]) == (K, 32, 18.0, 1.0, 10.0, 10.0, 0.001)
    assert not Path(str(truth[1]) + ".tmp").exists()


# --------------------------------------------------------------- model

def run_model(tmp_path, name, np_=2, **kw):
    out = tmp_path / f"{name}.nc"
    mpirun(np_, "l96_model", *[f"{k}={v}" for k, v in kw.items()], f"output={out}")
    return load(out)


@pytest.mark.parametrize("param", ["none", "wilks2005"])
def test_model_rk4_matches_numpy(truth, tmp_path, param):
    ds = run_model(tmp_path, "m2", init_file=truth[1], init_index=3, nsteps=6, param=param)
    ds1 = run_model(tmp_path, "m1", np_=1, init_file=truth[1], init_index=3, nsteps=6, param=param)
    assert np.array_equal(ds.X.values, ds1.X.values), "model differs between 1 and 2 ranks"
    tr = load(truth[1])
    x = tr.X.values[3]
    assert np.array_equal(ds.X.values[0], x)
    assert ds.time.values[0] == tr.time.values[3]
    for i in range(1, 7):
        x, _ = rk4(lambda s, _i: l96(s, param=(param == "wilks2005")), x, DT_MODEL)
        np.testing.assert_allclose(ds.X.values[i], x, rtol=0, atol=1e-12)
    assert ds.attrs["param"] == param


def test_wilks_quartic_formula(truth, tmp_path):
    # dX/dt(param) - dX/dt(none) over one tiny step isolates -U(X)
    kw = dict(init_file=truth[1], init_index=0, nsteps=1, dt=1e-7)
    a = run_model(tmp_path, "w", param="wilks2005", **kw).X.values
    b = run_model(tmp_path, "n", param="none", **kw).X.values
    x = a[0]
    u = 0.000707 * x**4 - 0.0130 * x**3 - 0.0190 * x**2 + 1.59 * x + 0.275
    np.testing.assert_allclose((a[1] - b[1]) / 1e-7, -u, rtol=1e-6, atol=1e-6)


def test_nudging_matches_numpy(truth, tmp_path):
    tau = 0.05
    ds = run_model(tmp_path, "nudge", init_file=truth[1], init_index=2, nsteps=8,
                   nudge_file=truth[1], tau=tau)
    tr = load(truth[1]).X.values
    # the truth sampled every 0.005 MTU = dt: stage times t, t+dt/2, t+dt -> samples
    # i, midpoint of i and i+1 (linear interpolation), i+1
    x = tr[2].copy()
    for n in range(8):
        i = 2 + n
        xt = (tr[i], 0.5 * (tr[i] + tr[i + 1]), tr[i + 1])
        f = lambda s, j, xt=xt: l96(s) + (xt[j] - s) / tau  # noqa: E731
        xnew, ks = rk4(f, x, DT_MODEL)
        # the nudging part of each stage: (xt - stage state)/tau
        stages = (x, x + DT_MODEL / 2 * ks[0], x + DT_MODEL / 2 * ks[1], x + DT_MODEL * ks[2])
        nud = [(xt[j] - s) / tau for j, s in zip((0, 1, 1, 2), stages, strict=True)]
        ntend = (nud[0] + 2 * nud[1] + 2 * nud[2] + nud[3]) / 6
        np.testing.assert_allclose(ds.nudging_tendency.values[n], ntend, rtol=0, atol=1e-9)
        x = xnew
        if n + 1 < 8:
            np.testing.assert_allclose(ds.X.values[n + 1], x, rtol=0, atol=1e-12)
    # every record is complete: state at t, tendency over [t, t+dt]; the final state is not written
    assert ds.sizes["time"] == 8 and np.isfinite(ds.nudging_tendency.values).all()
    assert ds.nudging_tendency.attrs["units"] == "MTU-1"
    # started on the truth, the first tendency is small but not zero; it scales with 1/tau
    assert np.abs(ds.nudging_tendency.values[:-1]).max() > 0


def test_one_step_residuals_match_numpy(truth, tmp_path):
    ds = run_model(tmp_path, "res", mode="residual", truth_file=truth[1], param="wilks2005")
    tr = load(truth[1])
    x = tr.X.values
    assert ds.residual_tendency.shape == (x.shape[0] - 1, K)
    assert np.array_equal(ds.time.values, tr.time.values[:-1])
    assert np.array_equal(ds.X.values, x[:-1])
    fc = np.array([rk4(lambda s, _i: l96(s, param=True), xi, DT_MODEL)[0] for xi in x[:-1]])
    np.testing.assert_allclose(ds.X_forecast.values, fc, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ds.residual_tendency.values, (x[1:] - fc) / DT_MODEL, rtol=0, atol=1e-9)


def test_errors_name_the_problem(built, tmp_path):
    # one rank without mpirun (an MPI singleton): Open MPI's mpirun adds ~2 s to a failed exit
    def run(*args):
        return subprocess.run([str(BUILD / "l96_model"), *map(str, args)], capture_output=True,
                              text=True, env=_env(), timeout=60)

    p = run("bogus=1")
    assert p.returncode != 0 and "unknown argument 'bogus'" in p.stderr
    missing = tmp_path / "nope.nc"
    p = run(f"init_file={missing}")
    assert p.returncode != 0 and str(missing) in p.stderr
    p = run("nudge_file=x.nc")
    assert p.returncode != 0 and "tau" in p.stderr
    p = run("nsteps=ten")
    assert p.returncode != 0 and "nsteps=ten" in p.stderr
    p = run("--help")
    assert p.returncode == 0 and "nudge_file" in p.stdout


# --------------------------------------------------------------- coupling

def _bridge_available():
    if not ATMOCORRECT.exists():
        return False
    p = subprocess.run([str(ATMOCORRECT), "config", "--libs"], capture_output=True, text=True)
    return p.returncode == 0 and "-latmocorrect" in p.stdout


@pytest.mark.skipif(not _bridge_available(),
                    reason="atmocorrect with its Fortran bridge is not installed in .venv (make setup)")
def test_coupled_constant_tendency(truth, tmp_path):
    """l96_model WITH_ATMOCORRECT=1 on 2 ranks with an analytic checkpoint:
    a constant tendency of 1e-6 per second is 0.432 per MTU, added after each step."""
    cmd = ["make", "-C", str(EXAMPLE), f"BUILD={BUILD_AC}", "WITH_ATMOCORRECT=1",
           f"ATMOCORRECT={ATMOCORRECT}"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"{' '.join(cmd)} failed:\n{p.stdout}\n{p.stderr}"
    ck = tmp_path / "ck"
    p = subprocess.run([str(ATMOCORRECT), "checkpoint", "analytic", "--field", "x", "--units", "1",
                        "--tendency", "1e-6", "--out", str(ck)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    out = tmp_path / "coupled.nc"
    mpirun(2, "l96_model", f"init_file={truth[1]}", "init_index=1", "nsteps=4", f"checkpoint={ck}",
           f"output={out}", build=BUILD_AC)
    ds = load(out)
    x = load(truth[1]).X.values[1]
    assert ds.sizes["time"] == 4        # t0 .. t0+3dt: each record with its step's correction
    for i in range(1, 4):
        x = rk4(lambda s, _i: l96(s), x, DT_MODEL)[0] + DT_MODEL * 0.432
        np.testing.assert_allclose(ds.X.values[i], x, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ds.correction_tendency.values, 0.432, rtol=1e-12)
