"""Training: prepare (split, targets, stats), closed-form and SGD training, resume, configs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import xarray as xr
from safetensors.torch import load_file

import atmocorrect
from atmocorrect import lorenz96 as l96
from atmocorrect.errors import UsageError
from atmocorrect.training import distributed
from atmocorrect.training.config import ExperimentConfig
from atmocorrect.training.prepare import PrepareConfig, prepare, split_flags
from atmocorrect.training.trainer import train


def synthetic_truth(members: int = 2, samples: int = 600, seed: int = 0) -> np.ndarray:
    """A cheap stand-in for the two-scale truth: the one-scale model plus Wilks's quartic."""
    x0 = np.random.default_rng(seed).standard_normal((members, 8)) * 4 + 3
    spun = l96.forecast(x0, 200, 18.0, 0.005, forcing=l96.wilks2005_tendency)[-1]
    traj = l96.forecast(spun, samples - 1, 18.0, 0.005, forcing=l96.wilks2005_tendency)
    return traj.transpose(1, 0, 2)  # (member, time, K)


@pytest.fixture(scope="module")
def training_set(tmp_path_factory):
    d = tmp_path_factory.mktemp("train")
    l96.to_dataset(synthetic_truth(), 0.005).to_netcdf(d / "truth.nc")
    return prepare(PrepareConfig(truth=str(d / "truth.nc"), out=str(d / "train.nc"), gap_samples=10))


def test_split_is_time_ordered_with_gaps():
    flags = split_flags(100, (0.7, 0.1, 0.2), gap=5)
    train, val, test = (np.nonzero(flags == i)[0] for i in range(3))
    assert train.max() < val.min() and val.max() < test.min()
    assert val.min() - train.max() == 6 and test.min() - val.max() == 6
    assert len(train) == 63 and len(test) == 18


def test_prepare_residual_targets_split_and_stats(training_set):
    ds = xr.open_dataset(training_set)
    assert ds.attrs["Conventions"] == "CF-1.8" and ds.attrs["placement"] == "after"
    assert ds["target"].attrs["units"] == "1 s-1"
    truth = ds["truth"].values
    # target = (truth(t+dt) - M(truth(t))) / dt, input = M(truth(t)) (corrected after the step)
    m = l96.one_scale_step(truth[:, :-1], 18.0, 0.005)
    assert np.allclose(ds["x"].values[:, :-1], m)
    assert np.allclose(ds["target"].values[:, :-1], (truth[:, 1:] - m) / 2160.0)
    flags = ds["split"].values
    norm = json.loads(ds.attrs["normalization"])
    train = ds["x"].values[:, flags == 0]
    assert norm["inputs"]["x"]["mean"][0] == pytest.approx(train.mean())
    assert norm["inputs"]["x"]["std"][0] == pytest.approx(train.std())
    assert set(np.unique(flags)) == {-1, 0, 1, 2}


def test_prepare_nudging_targets(tmp_path):
    truth = synthetic_truth(members=1, samples=300)[0]
    xs, nudge = l96.nudged_run(truth, 18.0, 0.005, tau=0.05)
    l96.to_dataset(truth, 0.005).to_netcdf(tmp_path / "truth.nc")
    l96.to_dataset(xs, 0.005, extra={"nudging_tendency": nudge}).to_netcdf(tmp_path / "nudged.nc")
    out = prepare(PrepareConfig(truth=str(tmp_path / "truth.nc"), simulation=str(tmp_path / "nudged.nc"),
                                kind="nudging", out=str(tmp_path / "t.nc"), gap_samples=5))
    ds = xr.open_dataset(out)
    assert np.allclose(ds["target"].values[0], nudge / 432000.0)
    assert np.allclose(ds["x"].values[0], xs)


def test_quartic_trained_on_residuals_recovers_the_missing_quartic(training_set, tmp_path):
    cfg = ExperimentConfig.from_mapping({"data": {"path": str(training_set)}, "model": {"class": "quartic"}})
    out = train(cfg, tmp_path / "q", progress=False, log=lambda s: None)
    man = json.loads((out / "manifest.json").read_text())
    got = man["metrics"]["coefficients_per_mtu"]
    expected = [-c for c in l96.WILKS2005_COEFFS]  # the truth adds -U(X)
    # up to the O(dt) terms of a one-step residual (they shift the constant most)
    assert abs(got[0] - expected[0]) < 0.1
    assert np.allclose(got[1:], expected[1:], rtol=0.05, atol=1e-3)
    # and it is a working checkpoint: per-second tendencies of -U(X)
    x = np.linspace(-5, 12, 8)
    tend = atmocorrect.load(out).tendency({"x": x})["x"] * 432000.0
    assert np.allclose(tend, l96.wilks2005_tendency(x), atol=0.15)


def _mlp_cfg(path, finetune: int = 0) -> ExperimentConfig:
    return ExperimentConfig.from_mapping({
        "data": {"path": str(path)},
        "model": {"class": "mlp", "halo": 2, "hidden": [16]},
        "train": {"epochs": 2, "batch_size": 32, "warmup_steps": 5, "max_samples": 400, "threads": 1},
        "finetune": {"epochs": finetune, "rollout_steps": 2, "batch_size": 32, "stride": 8},
    })


def test_resume_reproduces_the_uninterrupted_run(training_set, tmp_path):
    cfg = _mlp_cfg(training_set, finetune=1)
    quiet = {"progress": False, "log": lambda s: None}
    train(cfg, tmp_path / "full", **quiet)
    train(cfg, tmp_path / "cut", max_epochs_this_run=2, **quiet)  # interrupted after 2 of 3 epochs
    train(cfg, tmp_path / "cut", resume=True, **quiet)
    a = load_file(str(tmp_path / "full" / "weights.safetensors"))
    b = load_file(str(tmp_path / "cut" / "weights.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    rows = [json.loads(line) for line in (tmp_path / "cut.work" / "metrics.jsonl").read_text().splitlines()]
    assert [(r["stage"], r["epoch"]) for r in rows] == [("onestep", 1), ("onestep", 2), ("rollout", 1)]
    assert all(np.isfinite(r["val_loss"]) for r in rows) and "val_rollout_loss" in rows[-1]
    man = json.loads((tmp_path / "cut" / "manifest.json").read_text())
    assert man["model"]["hyperparameters"]["placement"] == "after" and man["grid"]["halo"] == [2]


def test_training_lowers_the_validation_loss(training_set, tmp_path):
    cfg = _mlp_cfg(training_set).replace(train={"epochs": 6, "batch_size": 16, "max_samples": 0, "lr": 5e-3})
    train(cfg, tmp_path / "m", progress=False, log=lambda s: None)
    rows = [json.loads(line) for line in (tmp_path / "m.work" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["val_loss"] < 0.05  # normalised MSE: the target is a smooth function here
    assert rows[-1]["val_loss"] < rows[0]["val_loss"]


def test_bf16_autocast_training_matches_fp32(training_set, tmp_path):
    """precision = "bf16" runs the forward under bfloat16 autocast (here on the CPU: no GPU on
    these machines; on a GPU the same code runs on its tensor cores) and learns as fp32 does."""
    base = _mlp_cfg(training_set).replace(train={"epochs": 4, "batch_size": 16, "lr": 5e-3, "device": "cpu"})
    quiet = {"progress": False, "log": lambda s: None}
    train(base, tmp_path / "fp32", **quiet)
    train(base.replace(train={"precision": "bf16"}), tmp_path / "bf16", **quiet)
    last = {}
    for name in ("fp32", "bf16"):
        rows = (tmp_path / f"{name}.work" / "metrics.jsonl").read_text().splitlines()
        last[name] = json.loads(rows[-1])["val_loss"]
    assert last["bf16"] < 0.1 and abs(last["bf16"] - last["fp32"]) < 0.5 * last["fp32"] + 0.01
    a = load_file(str(tmp_path / "fp32" / "weights.safetensors"))
    b = load_file(str(tmp_path / "bf16" / "weights.safetensors"))
    assert all(b[k].dtype == torch.float32 for k in b)  # weights stay fp32 under autocast
    assert any(not torch.equal(a[k], b[k]) for k in a)  # and bf16 did change the arithmetic


def test_training_on_a_missing_gpu_is_refused(training_set, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the refusal needs a machine without one")
    cfg = _mlp_cfg(training_set).replace(train={"device": "cuda"})
    with pytest.raises(UsageError, match=r"rank 0: device 'cuda' requested but no GPU is visible"):
        train(cfg, tmp_path / "g", progress=False, log=lambda s: None)
    assert not (tmp_path / "g").exists()


def test_training_config_refuses_unknown_device_and_precision():
    with pytest.raises(UsageError, match=r"\[train\] device 'gpu' is not one of cpu, auto, cuda"):
        ExperimentConfig.from_mapping({"train": {"device": "gpu"}})
    with pytest.raises(UsageError, match=r"\[train\] precision 'fp16' is not one of fp32, bf16"):
        ExperimentConfig.from_mapping({"train": {"precision": "fp16"}})


def test_resume_without_state_is_a_usage_error(training_set, tmp_path):
    with pytest.raises(UsageError, match="no training state"):
        train(_mlp_cfg(training_set), tmp_path / "x", resume=True, progress=False, log=lambda s: None)


def test_config_refuses_unknown_keys():
    with pytest.raises(UsageError, match="d_modle"):
        ExperimentConfig.from_mapping({"model": {"d_modle": 3}})
    with pytest.raises(UsageError, match="optimiser"):
        ExperimentConfig.from_mapping({"optimiser": {}})


def test_repository_configs_parse():
    from pathlib import Path

    for path in sorted(Path(__file__).resolve().parents[1].glob("training/lorenz96_*.toml")):
        cfg = ExperimentConfig.from_toml(path)
        assert cfg.model.model_class in ("transformer", "mlp", "quartic", "zero")


def test_launcher_detection(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "PMI_SIZE",
                "PMI_RANK", "PMIX_SIZE", "PMIX_RANK", "SLURM_NTASKS", "SLURM_PROCID"):
        monkeypatch.delenv(var, raising=False)
    assert distributed.detect() == (0, 1, "none")
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "4")
    monkeypatch.setenv("OMPI_COMM_WORLD_RANK", "2")
    assert distributed.detect() == (2, 4, "mpi")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert distributed.detect() == (1, 2, "torchrun")


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_data_parallel_training_under_torchrun(training_set, tmp_path):
    """Two gloo ranks under torchrun: each takes half of every epoch, gradients averaged."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
           "-m", "atmocorrect.cli", "train", "--config", str(repo / "training/lorenz96_mlp.toml"),
           "--data", str(training_set), "--out", str(tmp_path / "ddp"), "--no-progress",
           "--set", "train.epochs=1", "--set", "train.batch_size=16", "--set", "model.hidden=[8]"]
    subprocess.run(cmd, check=True, env=env, cwd=tmp_path, capture_output=True, timeout=110)
    rows = [json.loads(line) for line in (tmp_path / "ddp.work" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["world_size"] == 2
    assert atmocorrect.load(tmp_path / "ddp").tendency({"x": np.zeros(8)})["x"].shape == (8,)
