"""Torch predictors (atmocorrect.models.neural): fits, checkpoints, the Corrector contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import atmocorrect
from atmocorrect.checkpoint import FieldSpec, Manifest, write_checkpoint
from atmocorrect.decomposition import Decomposition
from atmocorrect.errors import CheckpointError
from atmocorrect.models import known_model_classes
from atmocorrect.models.neural import (
    CorrectionModel,
    Normalizer,
    Quartic,
    Transformer,
    build_net,
    pad,
    windows,
)

SPM = 432000.0  # seconds per MTU


def _manifest(cls: str, hyper: dict, halo: tuple[int, ...], dims=("k",), levels=1, periodic=(True,)) -> Manifest:
    return Manifest(
        fields=(FieldSpec("x", units="1", dims=dims),),
        model_class=cls,
        hyperparameters={**hyper, "n_levels": levels},
        halo=halo,
        periodic=periodic,
        normalization={
            "inputs": {"x": {"mean": [3.0] * levels, "std": [4.5] * levels}},
            "targets": {"x": {"mean": [-1e-5] * levels, "std": [1e-5] * levels}},
        },
    )


def _checkpoint(tmp_path, cls="transformer", hyper=None, halo=(3,), seed=0, **kw):
    hyper = hyper if hyper is not None else {"d_model": 16, "heads": 2, "layers": 1, "ff": 32, "patch": 1}
    man = _manifest(cls, hyper, halo, **kw)
    torch.manual_seed(seed)
    levels = man.hyperparameters["n_levels"]
    net = build_net(cls, 1, levels, [0], halo, hyper)
    for p in net.parameters():  # not a trivial function: random weights everywhere
        torch.nn.init.normal_(p, std=0.3)
    d = write_checkpoint(tmp_path / cls, man, dict(net.state_dict()) or None)
    return d, net


def test_all_classes_are_registered():
    assert {"transformer", "mlp", "quartic", "zero", "analytic"} <= set(known_model_classes())


def test_quartic_recovers_known_coefficients():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.uniform(-10, 20, 20000))
    true = [0.3, -1.2, 0.02, 0.011, -0.0007]
    y = sum(c * x**i for i, c in enumerate(true)) + 0.01 * torch.from_numpy(rng.standard_normal(20000))
    q = Quartic(1, 1, [0], (0,))
    q.fit(x.reshape(-1, 1, 1), y.reshape(-1, 1, 1))
    assert np.allclose(q.coeffs[0, 0].numpy(), true, rtol=2e-2, atol=2e-3)
    out = q(x[:5].reshape(5, 1, 1, 1).float())
    assert np.allclose(out[:, 0, 0].numpy(), y[:5].numpy(), atol=0.05)


def test_windows_and_padding_layout():
    x = torch.arange(8.0).reshape(1, 1, 1, 8)
    ext = pad(x, (2,), (True,))
    assert ext[0, 0, 0].tolist() == [6, 7, 0, 1, 2, 3, 4, 5, 6, 7, 0, 1]
    w = windows(ext, (2,))
    assert w.shape == (8, 1, 1, 5)
    assert w[0, 0, 0].tolist() == [6, 7, 0, 1, 2] and w[7, 0, 0].tolist() == [5, 6, 7, 0, 1]
    edge = pad(torch.arange(4.0).reshape(1, 1, 1, 4), (1,), (False,))
    assert edge[0, 0, 0].tolist() == [0, 0, 1, 2, 3, 3]


def test_checkpoint_round_trip_gives_tendencies_per_second(tmp_path):
    d, net = _checkpoint(tmp_path)
    c = atmocorrect.load(d)
    x = np.random.default_rng(1).standard_normal(8) * 4 + 3
    tend = c.tendency({"x": x})["x"]
    assert tend.shape == (8,) and tend.dtype == np.float64
    # the same by hand: normalise, window, network, de-normalise
    ext = pad(torch.tensor(x, dtype=torch.float32).reshape(1, 1, 1, 8), (3,), (True,))
    with torch.no_grad():
        raw = net((windows(ext, (3,)) - 3.0) / 4.5)[:, 0, 0] * 1e-5 - 1e-5
    assert np.allclose(tend, raw.numpy(), rtol=1e-5, atol=1e-12)
    # apply: x += dt * tendency
    y = x.copy()
    c.apply({"x": y}, time=0.0, dt=2160.0)
    assert np.allclose(y, x + 2160.0 * tend)


@pytest.mark.parametrize("cls,hyper,halo", [
    ("transformer", None, (3,)),
    ("transformer", {"d_model": 16, "heads": 2, "layers": 1, "ff": 16, "patch": 3}, (4,)),
    ("mlp", {"hidden": [16]}, (2,)),
])
def test_output_at_a_site_is_invariant_to_the_domain_split(tmp_path, cls, hyper, halo):
    """Each rank's block extended by the decomposition's halo gives the whole-domain answer."""
    d, _ = _checkpoint(tmp_path, cls, hyper, halo)
    pred = atmocorrect.load(d).predictor
    K = 40
    x = np.random.default_rng(2).standard_normal(K) * 4 + 3
    whole = Decomposition(None, (K,), (0,), (K,))
    ref = pred.tendency(whole.extend({"x": x}, halo, (True,)), 0.0)["x"]
    for cuts in ([0, 20, 40], [0, 7, 19, 33, 40], [0, 13, 40]):
        got = []
        for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
            # what rank [lo, hi) receives from atmocorrect.decomposition: periodic halo
            idx = np.arange(lo - halo[0], hi + halo[0]) % K
            got.append(pred.tendency({"x": x[idx]}, 0.0)["x"])
        assert np.allclose(np.concatenate(got), ref, rtol=1e-6, atol=1e-12)


def test_two_dimensional_fields_with_levels_and_split_invariance(tmp_path):
    hyper = {"d_model": 16, "heads": 2, "layers": 1, "ff": 16, "patch": 1}
    d, _ = _checkpoint(tmp_path, "transformer", hyper, (1, 1), dims=("lon", "lat", "lev"), levels=3,
                       periodic=(True, False))
    pred = atmocorrect.load(d).predictor
    x = np.random.default_rng(3).standard_normal((6, 5, 3))
    whole = Decomposition(None, (6, 5), (0, 0), (6, 5, 3))
    ref = pred.tendency(whole.extend({"x": x}, (1, 1), (True, False)), 0.0)["x"]
    assert ref.shape == (6, 5, 3)
    # block lon 2..5, lat 1..4, built the way the decomposition fills halos
    ext = whole.extend({"x": x}, (1, 1), (True, False))["x"]
    block = ext[2 : 2 + 3 + 2, 1 : 1 + 3 + 2]
    part = pred.tendency({"x": np.asfortranarray(block)}, 0.0)["x"]
    assert np.allclose(part, ref[2:5, 1:4], rtol=1e-6, atol=1e-12)


def test_batched_path_equals_the_corrector_path(tmp_path):
    d, _ = _checkpoint(tmp_path)
    c = atmocorrect.load(d)
    xs = np.random.default_rng(4).standard_normal((5, 8)) * 4 + 3
    with torch.no_grad():
        batched = c.predictor.batch_tendency(torch.tensor(xs, dtype=torch.float32)[:, None, None, :])
    for i in range(5):
        assert np.allclose(batched[i, 0, 0].numpy(), c.tendency({"x": xs[i]})["x"], rtol=1e-5, atol=1e-12)


def test_zero_model_returns_zeros(tmp_path):
    d, _ = _checkpoint(tmp_path, "zero", {}, (0,))
    out = atmocorrect.load(d).tendency({"x": np.ones(8)})["x"]
    assert out.shape == (8,) and not out.any()


def test_weights_that_do_not_fit_fail_at_load(tmp_path):
    man = _manifest("transformer", {"d_model": 16, "heads": 2, "layers": 1, "ff": 32}, (3,))
    net = Transformer(1, 1, [0], (3,), d_model=8, heads=2, layers=2, ff=24)
    d = write_checkpoint(tmp_path / "bad", man, dict(net.state_dict()))
    with pytest.raises(CheckpointError, match="do not fit"):
        atmocorrect.load(d)


def test_normalizer_needs_stats_for_every_field():
    with pytest.raises(CheckpointError, match="no entry"):
        Normalizer.from_manifest({"inputs": {}, "targets": {}}, ["x"], ["x"], 1)


def test_correction_model_shapes():
    net = build_net("mlp", 2, 3, [1], (2,), {"hidden": [8]})
    norm = Normalizer(np.zeros((2, 3)), np.ones((2, 3)), np.zeros((1, 3)), np.ones((1, 3)))
    out = CorrectionModel(net, norm)(torch.randn(7, 2, 3, 5))
    assert out.shape == (7, 1, 3)
