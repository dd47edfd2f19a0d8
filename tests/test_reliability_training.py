"""Training killed mid-epoch (SIGTERM, SIGKILL): --resume reaches the uninterrupted result and
no checkpoint is ever half-written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import REPO, atmocorrect_cli
from safetensors.torch import load_file
from test_training import synthetic_truth

import atmocorrect
from atmocorrect import lorenz96 as l96
from atmocorrect.training.prepare import PrepareConfig, prepare

pytestmark = [pytest.mark.reliability, pytest.mark.slow]
#: enough epochs that the kill (0.3 s after the second one is logged; an epoch takes 0.1-0.3 s
#: here) lands before the last even on a loaded machine
EPOCHS = 8
SETTINGS = ["--set", f"train.epochs={EPOCHS}", "--set", "train.batch_size=8", "--set", "model.hidden=[32]",
            "--set", "train.threads=1", "--no-progress"]


@pytest.fixture(scope="module")
def training_set(tmp_path_factory):
    d = tmp_path_factory.mktemp("killtrain")
    l96.to_dataset(synthetic_truth(members=2, samples=900, seed=4), 0.005).to_netcdf(d / "truth.nc")
    return prepare(PrepareConfig(truth=str(d / "truth.nc"), out=str(d / "train.nc"), gap_samples=10))


def _train(data, out, *extra) -> subprocess.Popen:
    cmd = [atmocorrect_cli(), "train", "--config", str(REPO / "training" / "lorenz96_mlp.toml"),
           "--data", str(data), "--out", str(out), *SETTINGS, *extra]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _metrics(work):
    path = work / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture(scope="module")
def uninterrupted(training_set, tmp_path_factory):
    out = tmp_path_factory.mktemp("full") / "ckpt"
    proc = _train(training_set, out)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    return out


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_killed_training_resumes_to_the_same_result(training_set, uninterrupted, tmp_path, sig):
    out = tmp_path / "ckpt"
    work = tmp_path / "ckpt.work"
    proc = _train(training_set, out)
    deadline = time.monotonic() + 300
    while len(_metrics(work)) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "training ended before it could be interrupted"
    time.sleep(0.3)  # well inside the next epoch
    proc.send_signal(sig)
    proc.communicate(timeout=60)
    assert proc.returncode != 0
    done = len(_metrics(work))
    assert 2 <= done < EPOCHS, f"{done} epochs logged before the kill"
    # Whatever is on disk is a complete checkpoint: it loads and its weights match their hash.
    atmocorrect.load(out)
    resumed = _train(training_set, out, "--resume")
    stdout, stderr = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, stderr
    rows = _metrics(work)
    assert [r["epoch"] for r in rows if r["stage"] == "onestep"] == list(range(1, EPOCHS + 1))
    full_rows = _metrics(uninterrupted.with_name("ckpt.work"))
    assert rows[-1]["val_loss"] == pytest.approx(full_rows[-1]["val_loss"], rel=1e-6)
    a = load_file(str(uninterrupted / "weights.safetensors"))
    b = load_file(str(out / "weights.safetensors"))
    for k in a:
        np.testing.assert_allclose(b[k].numpy(), a[k].numpy(), rtol=1e-6, atol=1e-7)
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name and sig == signal.SIGTERM]
    sys.stdout.write(f"{sig.name}: killed after {done} epochs, resumed to epoch {EPOCHS}\n")
