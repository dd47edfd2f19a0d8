"""The numpy/torch reference Lorenz-96 (atmocorrect.lorenz96): equations, integrators, files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from atmocorrect import lorenz96 as l96


def test_one_scale_tendency_matches_the_equation_site_by_site():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(8) * 5
    d = l96.one_scale_tendency(x, 18.0)
    K = len(x)
    for k in range(K):
        expected = -x[(k - 1) % K] * (x[(k - 2) % K] - x[(k + 1) % K]) - x[k] + 18.0
        assert d[k] == pytest.approx(expected, abs=1e-12)


def test_two_scale_tendency_matches_the_equations():
    p = l96.L96Params(K=4, J=3)
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal(4) * 5, rng.standard_normal(12)
    dx, dy = l96.two_scale_tendency(x, y, p)
    n = 12
    for i in range(n):
        k = i // 3
        expected = -p.c * p.b * y[(i + 1) % n] * (y[(i + 2) % n] - y[(i - 1) % n]) - p.c * y[i] + p.coupling * x[k]
        assert dy[i] == pytest.approx(expected, abs=1e-10)
    sums = y.reshape(4, 3).sum(1)
    assert np.allclose(dx, l96.one_scale_tendency(x, p.F) - p.coupling * sums)


def test_numpy_and_torch_agree():
    p = l96.L96Params()
    x, y = l96.initial_two_scale(p, members=3, seed=2)
    xn, yn = l96.two_scale_step(x, y, p, 0.001)
    xt, yt = l96.two_scale_step(torch.from_numpy(x), torch.from_numpy(y), p, 0.001)
    assert np.allclose(xn, xt.numpy(), atol=1e-12) and np.allclose(yn, yt.numpy(), atol=1e-12)
    f_np = l96.forecast(x, 10, 18.0, 0.005, forcing=l96.wilks2005_tendency)
    f_t = l96.forecast(torch.from_numpy(x), 10, 18.0, 0.005, forcing=l96.wilks2005_tendency)
    assert np.allclose(f_np, f_t.numpy(), atol=1e-12)


def test_wilks_quartic_values():
    # U(X) = 0.000707 X^4 - 0.0130 X^3 - 0.0190 X^2 + 1.59 X + 0.275, tendency = -U
    for x in (-5.0, 0.0, 3.0, 10.0):
        u = 0.000707 * x**4 - 0.0130 * x**3 - 0.0190 * x**2 + 1.59 * x + 0.275
        assert float(l96.wilks2005_tendency(np.array([x]))[0]) == pytest.approx(-u, rel=1e-12)


def test_rk4_is_fourth_order():
    # dx/dt = -x: one step's error scales as dt^5
    errs = [abs(l96.rk4(lambda s: -s, np.array([1.0]), dt)[0] - np.exp(-dt)) for dt in (0.1, 0.05)]
    assert 25 < errs[0] / errs[1] < 40


def test_forecast_placement_of_a_constant_correction():
    x0 = np.linspace(-3, 8, 8)[None, :]
    c = 2.0
    after = l96.forecast(x0, 1, 18.0, 0.005, correction=lambda x: np.full_like(x, c), placement="after")
    before = l96.forecast(x0, 1, 18.0, 0.005, correction=lambda x: np.full_like(x, c), placement="before")
    m = l96.one_scale_step(x0, 18.0, 0.005)
    assert np.allclose(after[1], m + 0.005 * c, atol=1e-14)
    assert np.allclose(before[1], l96.one_scale_step(x0 + 0.005 * c, 18.0, 0.005), atol=1e-14)
    with pytest.raises(ValueError):
        l96.forecast(x0, 1, 18.0, 0.005, correction=lambda x: x, placement="inside")


def test_coupling_off_reduces_to_the_one_scale_model():
    p = l96.L96Params(h=0.0)
    x, y = l96.initial_two_scale(p, members=2, seed=3)
    x1, _ = l96.two_scale_step(x, y, p, 0.001)
    assert np.allclose(x1, l96.one_scale_step(x, p.F, 0.001), atol=1e-13)


def test_one_step_residual_recovers_a_known_missing_term():
    # a "truth" that is the one-scale model plus a constant forcing g: residual ~ g
    g = 1.5
    x0 = np.random.default_rng(4).standard_normal((5, 8)) * 4
    truth_next = l96.one_scale_step(x0, 18.0, 0.005, forcing=lambda s: np.full_like(s, g))
    r, m = l96.one_step_residual(x0, truth_next, 18.0, 0.005)
    assert np.allclose(r, g, atol=0.05)
    assert np.allclose(m, l96.one_scale_step(x0, 18.0, 0.005))


def test_nudged_run_tracks_the_truth_and_records_its_tendency():
    p = l96.L96Params()
    truth = l96.run_two_scale(p, 200, spinup_mtu=1.0, seed=5)[0]
    xs, nudge = l96.nudged_run(truth, 18.0, 0.005, tau=0.01, x0=truth[0] + 1.0)
    assert np.abs(xs[-50:] - truth[-50:]).mean() < 0.5
    assert np.allclose(nudge, (truth - xs) / 0.01)


def test_dataset_layout_and_time_convention():
    x = np.zeros((3, 8))
    ds = l96.to_dataset(x, 0.005)
    assert ds["X"].dims == ("time", "k")
    assert ds["time"].attrs["units"].startswith("days since 2000-01-01")
    assert ds["time"].attrs["calendar"] == "proleptic_gregorian"
    # 0.005 MTU = 0.025 days (1 MTU = 5 days)
    assert np.allclose(np.diff(ds["time"].values), 0.025)
    assert ds.attrs["Conventions"] == "CF-1.8"
    assert l96.SECONDS_PER_MTU == 5 * 86400
