"""The transformer trunk of the offline quantile network: monotone quantiles, masking of cells
outside the grid, a short training on the real daily pair with a checkpoint round trip, and
checkpoints written before the trunk was selectable (no ``trunk`` key) loading as MLPs.

The tests on real data are skipped, with the reason, when the sample data are absent (set
ATMOCORRECT_SAMPLE_DATA).
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from atmocorrect.checkpoint import read_manifest, read_weights
from atmocorrect.data import samples
from atmocorrect.data.pairs import PairConfig, load_pair
from atmocorrect.data.readers import open_dataset
from atmocorrect.data.timeaxis import season_position, select_years, years
from atmocorrect.errors import UsageError
from atmocorrect.models.offline_quantile import (
    OfflineQuantileModel,
    QuantileNet,
    TokenLayout,
    token_inputs,
)
from atmocorrect.offline.apply import load_offline_model, ml_correct_points
from atmocorrect.offline.config import ApplyConfig, NetworkConfig, TrainConfig
from atmocorrect.offline.features import climatology_patches, neighbourhood_offsets
from atmocorrect.offline.train import fit, prepare, train_offline

warnings.filterwarnings("ignore", category=FutureWarning)
TRANSFORMER = NetworkConfig(trunk="transformer")
STEPS = 100


def _random_net(layout: TokenLayout, seed: int = 0) -> QuantileNet:
    torch.manual_seed(seed)
    net = QuantileNet(layout.n_inputs, 64, 2, 8, trunk="transformer", layout=layout)
    with torch.no_grad():  # a non-trivial head, far from the initial standard normal
        net.head.weight.normal_(0.0, 1.0)
        net.head.bias.normal_(0.0, 2.0)
    return net.eval()


def _grid_inputs(layout: TokenLayout, grid_shape=(4, 1), radius=1, seed=0):
    """Inputs of every point of a small grid at a few seasons, from synthetic climatology."""
    rng = np.random.default_rng(seed)
    n_points = grid_shape[0] * grid_shape[1]
    season = (np.arange(730) % 365) / 365.0
    values = [rng.normal(size=(season.size, n_points)) + np.arange(n_points)
              for _ in range(layout.n_vars)]
    patches, mask = climatology_patches(values, [season] * layout.n_vars, grid_shape, radius)
    pts = np.repeat(np.arange(n_points), 5)
    seasons = np.tile(np.linspace(0.05, 0.95, 5), n_points)
    feats = rng.normal(size=(n_points, 3))
    x = token_inputs(seasons, feats[pts], patches[pts], mask[pts], 0, layout)
    return x, mask[pts]


def test_transformer_quantiles_are_monotone():
    layout = TokenLayout(harmonics=6, n_vars=2, tokens_per_var=9, patch_dim=48)
    x, _ = _grid_inputs(layout)
    z = torch.linspace(-6.0, 6.0, 241).expand(x.shape[0], -1)
    for seed in range(3):
        net = _random_net(layout, seed)
        with torch.no_grad():
            for source in (0, 1):
                q = net.quantiles(torch.from_numpy(x), z, source)
                assert torch.isfinite(q).all()
                assert (q[:, 1:] > q[:, :-1]).all(), f"seed {seed} source {source} crosses"


def test_tokens_outside_the_grid_are_masked_out_of_attention():
    # 4 x 1 grid, radius 1: of the 3 x 3 offsets of the first point only (0, 0) and (+1, 0)
    # are inside the grid
    offs = neighbourhood_offsets((4, 1), 1)
    assert offs[0].tolist() == [-1, -1, -1, -1, 0, -1, -1, 1, -1]
    assert offs[1].tolist() == [-1, 0, -1, -1, 1, -1, -1, 2, -1]
    layout = TokenLayout(harmonics=6, n_vars=1, tokens_per_var=9, patch_dim=48)
    x, mask = _grid_inputs(layout)
    assert mask.shape == (20, 9) and mask[:5, [4, 7]].sum() == 0 and mask[:5, 1].all()
    assert not mask[5:10, 1].any()  # the second point has a cell at (-1, 0): mixed batch
    net = _random_net(layout)
    patches_at = layout.n_cond + layout.tokens  # flat offset of the patches in a row
    with torch.no_grad():
        before = net.coeffs(torch.from_numpy(x)).numpy()
        # garbage in every padding token (offset (-1, 0) of point 0, and the lon offsets of all)
        y = x.copy()
        rng = np.random.default_rng(1)
        for row in range(x.shape[0]):
            for tok in np.flatnonzero(mask[row]):
                sl = slice(patches_at + tok * 48, patches_at + (tok + 1) * 48)
                y[row, sl] = rng.normal(0.0, 100.0, 48)
        after = net.coeffs(torch.from_numpy(y)).numpy()
        np.testing.assert_allclose(after, before, rtol=0, atol=1e-6)
        # a real token does reach the output (the test above has power)
        z = x.copy()
        z[:5, patches_at + 7 * 48:patches_at + 8 * 48] += 1.0
        changed = net.coeffs(torch.from_numpy(z)).numpy()
    assert np.abs(changed[:5] - before[:5]).max() > 1e-3
    np.testing.assert_array_equal(changed[5:], before[5:])


def test_network_config_validation():
    with pytest.raises(UsageError, match="trunk must be one of mlp, transformer"):
        NetworkConfig(trunk="cnn")
    with pytest.raises(UsageError, match="d_model .* multiple of heads"):
        NetworkConfig(trunk="transformer", d_model=30, heads=4)
    with pytest.raises(UsageError, match="transformer_layers must be >= 1"):
        NetworkConfig(transformer_layers=0)
    with pytest.raises(UsageError, match="unknown network setting"):
        NetworkConfig.from_mapping({"trunck": "transformer"})
    assert NetworkConfig.from_mapping({"trunk": "transformer", "d_model": 16}).d_model == 16


def test_train_offline_cli_takes_the_trunk():
    import argparse

    from atmocorrect.offline import train

    parser = argparse.ArgumentParser()
    train.add_arguments(parser)
    base = ["--simulation", "s.nc", "--reference", "r.nc", "--variables", "tas", "--out", "o"]
    assert parser.parse_args(base).trunk == "transformer"
    assert parser.parse_args(base + ["--trunk", "mlp"]).trunk == "mlp"
    with pytest.raises(SystemExit):
        parser.parse_args(base + ["--trunk", "cnn"])


@pytest.fixture(scope="module")
def daily(sample_data):
    return [sample_data / samples.DAILY_HISTORICAL], [sample_data / samples.DAILY_REFERENCE]


def _correct_heldout(model, sim_paths):
    """``ml`` correction of 2005-2009 of the simulation at its 4 points."""
    sim = select_years(open_dataset(sim_paths[0]), (2005, 2009), "the simulation")
    x = np.asarray(sim["tas"].values, dtype=np.float64).reshape(sim.sizes["time"], -1)
    t = sim["time"].values
    return ml_correct_points(model, "tas", x, np.arange(x.shape[1]), season_position(t, "day"),
                             years(t), ApplyConfig(), "day")


def test_short_transformer_training_lowers_the_loss_and_round_trips(daily, tmp_path):
    sim, ref = daily
    cfg = TrainConfig(steps=STEPS, network=TRANSFORMER)
    ckpt = train_offline(sim, ref, tmp_path / "ck", PairConfig(("tas",)), cfg)
    manifest = read_manifest(ckpt)
    hyper = manifest.hyperparameters
    assert hyper["network"]["trunk"] == "transformer"
    assert (hyper["network"]["d_model"], hyper["network"]["heads"],
            hyper["network"]["transformer_layers"]) == (32, 2, 2)
    assert hyper["tokens"] == {"harmonics": 6, "n_vars": 1, "tokens_per_var": 9,
                               "patch_dim": 48}
    tensors = read_weights(ckpt, manifest)
    assert tuple(tensors["grid.patches"].shape) == (4, 9, 48)
    assert int(tensors["grid.patch_mask"].sum()) == 4 * 9 - 10  # 4 x 1 grid, 3 x 3 offsets

    # the same training in memory (deterministic): the loss falls from the untrained net's
    data = prepare(load_pair(sim, ref, PairConfig(("tas",))), cfg)
    net, history = fit(data, cfg)
    assert history[0] > 0 and np.mean(history[-10:]) < 0.8 * history[0], history[::10]
    assert manifest.metrics["final_pinball_loss"] == pytest.approx(np.mean(history[-10:]))
    # grids larger than points_per_step are visited in subsets of points: same path works
    sub = TrainConfig(steps=30, points_per_step=2, network=TRANSFORMER)
    _, sub_history = fit(data, sub)
    assert np.mean(sub_history[-5:]) < 0.8 * sub_history[0]

    # save/load round trip: same weights, same corrected values as the in-memory network
    loaded = load_offline_model(ckpt)[1]
    assert loaded.trunk == "transformer"
    state = loaded.net.state_dict()
    for k, v in net.state_dict().items():
        assert torch.equal(state[k], v), k
    from atmocorrect.offline.train import checkpoint_tensors

    mem_tensors, _ = checkpoint_tensors(net, data, cfg)
    in_memory = OfflineQuantileModel(manifest, mem_tensors)
    a, b = _correct_heldout(loaded, sim), _correct_heldout(in_memory, sim)
    assert np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)


def test_checkpoint_without_trunk_key_loads_as_mlp(daily, tmp_path):
    sim, ref = daily
    ckpt = train_offline(sim, ref, tmp_path / "ck", PairConfig(("tas",)),
                         TrainConfig(steps=20, network=NetworkConfig(trunk="mlp")))
    new = load_offline_model(ckpt)[1]
    path = ckpt / "manifest.json"
    doc = json.loads(path.read_text())
    network = doc["model"]["hyperparameters"]["network"]
    assert network.pop("trunk") == "mlp"
    for key in ("d_model", "heads", "transformer_layers"):  # as written before the change
        network.pop(key)
    path.write_text(json.dumps(doc, indent=1))
    old = load_offline_model(ckpt)[1]
    assert old.trunk == "mlp" and isinstance(old.net.trunk, torch.nn.Sequential)
    np.testing.assert_array_equal(_correct_heldout(old, sim), _correct_heldout(new, sim))
