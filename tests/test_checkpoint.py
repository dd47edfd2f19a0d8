"""Checkpoint format: round trip, atomic writes, and refusal of anything that could run code."""

from __future__ import annotations

import json
import pickle
import subprocess

import numpy as np
import pytest
import torch
from conftest import atmocorrect_cli

import atmocorrect
from atmocorrect.checkpoint import (
    WEIGHTS_NAME,
    FieldSpec,
    Manifest,
    read_manifest,
    read_weights,
    write_analytic_checkpoint,
    write_checkpoint,
)
from atmocorrect.errors import CheckpointError, FieldError, UsageError

pytestmark = pytest.mark.reliability


def _weighted(tmp_path):
    manifest = Manifest(fields=(FieldSpec("x"),), model_class="analytic",
                        hyperparameters={"kind": "constant", "tendency": 1.0})
    return write_checkpoint(tmp_path / "w", manifest, {"a": torch.arange(6.0).reshape(2, 3)})


def test_round_trip_keeps_weights_and_hash(tmp_path):
    d = _weighted(tmp_path)
    m = read_manifest(d)
    assert m.weights_sha256 and len(m.weights_sha256) == 64
    w = read_weights(d, m)
    np.testing.assert_array_equal(w["a"].numpy(), np.arange(6.0).reshape(2, 3))
    data = json.loads((d / "manifest.json").read_text())
    assert data["versions"]["torch"] == torch.__version__
    assert "created" in data["provenance"]


def test_tampered_weights_are_refused(tmp_path):
    d = _weighted(tmp_path)
    raw = bytearray((d / WEIGHTS_NAME).read_bytes())
    raw[-1] ^= 0xFF
    (d / WEIGHTS_NAME).write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="sha256"):
        atmocorrect.load(d)


def test_pickle_weights_are_refused_without_unpickling(tmp_path, monkeypatch):
    d = _weighted(tmp_path)
    torch.save({"a": torch.zeros(2)}, d / WEIGHTS_NAME)
    # Even with a matching hash, a pickle must never be loaded.
    m = json.loads((d / "manifest.json").read_text())
    from atmocorrect.checkpoint import sha256_file

    m["weights"]["sha256"] = sha256_file(d / WEIGHTS_NAME)
    (d / "manifest.json").write_text(json.dumps(m))
    calls = []
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(a))
    with pytest.raises(CheckpointError, match="never unpickles"):
        atmocorrect.load(d)
    assert calls == []


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda d: (d / "manifest.json").unlink(), "no manifest.json"),
        (lambda d: (d / "manifest.json").write_text("{not json"), "not valid JSON"),
        (lambda d: (d / "manifest.json").write_text('{"schema_version": 99}'), "schema_version 99"),
        (lambda d: (d / "manifest.json").write_text('{"schema_version": 1, "fields": []}'), "invalid manifest|no fields"),
    ],
)
def test_invalid_manifests_name_the_problem(tmp_path, mutate, match):
    d = write_analytic_checkpoint(tmp_path / "c", field="t", units="K", tendency=1.0)
    mutate(d)
    with pytest.raises(CheckpointError, match=match):
        atmocorrect.load(d)


def test_missing_directory_is_named(tmp_path):
    with pytest.raises(CheckpointError, match=str(tmp_path / "nope")):
        atmocorrect.load(tmp_path / "nope")


def test_failed_write_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    d = write_analytic_checkpoint(tmp_path / "c", field="t", units="K", tendency=1.0)
    before = (d / "manifest.json").read_text()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(json, "dump", boom)
    with pytest.raises(OSError):
        write_analytic_checkpoint(tmp_path / "c", field="t", units="K", tendency=2.0)
    assert (d / "manifest.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]  # no temporary left behind


def test_field_checks_name_field_and_expectation(tmp_path):
    manifest = Manifest(fields=(FieldSpec("t", units="K", dims=("lon", "lat", "lev"), levels=5),),
                        model_class="analytic", hyperparameters={"kind": "constant", "tendency": 1.0})
    c = atmocorrect.load(write_checkpoint(tmp_path / "c", manifest))
    with pytest.raises(FieldError, match="'t'.*4 level.*trained on 5"):
        c.tendency({"t": np.zeros((3, 2, 4))})
    with pytest.raises(FieldError, match="'t'.*rank 2"):
        c.tendency({"t": np.zeros((3, 2))})
    with pytest.raises(FieldError, match="'u' is not in checkpoint"):
        c.tendency({"u": np.zeros((3, 2, 5))})
    with pytest.raises(FieldError, match="units 'degC'.*'K'"):
        c.check_field("t", np.zeros((3, 2, 5)), units="degC")
    c.check_field("t", np.zeros((3, 2, 5)), units="kelvin")  # an alias of K is fine


def test_run_config_limiter_taper_and_modes(tmp_path):
    d = write_analytic_checkpoint(tmp_path / "c", field="x", tendency=10.0)
    x = np.zeros(4)
    atmocorrect.load(d, run={"max_increment": 0.25, "taper": 0.5}).apply({"x": x}, dt=1.0)
    np.testing.assert_array_equal(x, 0.25)  # 10 * 1 s * 0.5 = 5, clipped to 0.25
    atmocorrect.load(d, mode="diagnose").apply({"x": x}, dt=1.0)
    np.testing.assert_array_equal(x, 0.25)
    with pytest.raises(UsageError, match="not one of"):
        atmocorrect.load(d, mode="sometimes")


def test_nonfinite_policy(tmp_path):
    d = write_analytic_checkpoint(tmp_path / "c", field="x", tendency=1.0)
    x = np.array([1.0, np.nan, 3.0])
    with pytest.raises(Exception, match="NaN"):
        atmocorrect.load(d).apply({"x": x}, dt=1.0)
    c = atmocorrect.load(d, run={"nonfinite": "skip"})
    c.apply({"x": x}, dt=1.0)
    np.testing.assert_array_equal(x[[0, 2]], [1.0, 3.0])
    assert c.stats["skipped_nonfinite"] == 1


def test_cli_analytic_and_show(tmp_path):
    out = tmp_path / "ck"
    cmd = [atmocorrect_cli(), "checkpoint", "analytic", "--field", "t", "--units", "K",
           "--relax-to", "280", "--timescale", "3600", "--out", str(out)]
    assert subprocess.run(cmd, capture_output=True, text=True).returncode == 0
    again = subprocess.run(cmd, capture_output=True, text=True)
    assert again.returncode != 0 and "--overwrite" in again.stderr
    show = subprocess.run([atmocorrect_cli(), "checkpoint", "show", str(out)], capture_output=True, text=True)
    assert show.returncode == 0 and "field:   t [K]" in show.stdout
    c = atmocorrect.load(out)
    inc = c.tendency({"t": np.array([270.0, 290.0])})["t"]
    np.testing.assert_allclose(inc, [10.0 / 3600.0, -10.0 / 3600.0])


def test_cli_unknown_option_and_command_fail_with_usage(tmp_path):
    for argv in (["checkpoint", "analytic", "--field", "t", "--tendency", "1", "--out", str(tmp_path / "c"),
                  "--bogus"], ["frobnicate"]):
        proc = subprocess.run([atmocorrect_cli(), *argv], capture_output=True, text=True)
        assert proc.returncode == 2
        assert "usage: atmocorrect" in proc.stderr
        assert "--bogus" in proc.stderr or "frobnicate" in proc.stderr


def test_written_checkpoints_get_the_usual_permissions(tmp_path):
    import os
    import stat

    mask = os.umask(0o022)
    try:
        d = _weighted(tmp_path)
    finally:
        os.umask(mask)
    assert stat.S_IMODE(d.stat().st_mode) == 0o755
    assert stat.S_IMODE((d / "manifest.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((d / WEIGHTS_NAME).stat().st_mode) == 0o644


@pytest.mark.parametrize("header_len", [640, 896, 1152, 1408])
def test_safetensors_headers_that_start_like_pickle_bytes_are_accepted(tmp_path, header_len):
    """A header length of 640 begins with b'\\x80\\x02', a pickle protocol-2 magic."""
    import struct

    from atmocorrect.checkpoint import _check_safetensors_header

    header = b"{" + b" " * (header_len - 2) + b"}"
    path = tmp_path / WEIGHTS_NAME
    path.write_bytes(struct.pack("<Q", header_len) + header)
    _check_safetensors_header(path)


def test_a_second_block_shape_gets_its_own_halo_context(tmp_path):
    from atmocorrect.models.neural import build_net

    hyper = {"hidden": [8], "n_levels": 1}
    net = build_net("mlp", 1, 1, [0], (2,), hyper)
    manifest = Manifest(fields=(FieldSpec("x", "1", ("k",)),), model_class="mlp", hyperparameters=hyper,
                        halo=(2,), periodic=(True,),
                        normalization={"inputs": {"x": {"mean": 0.0, "std": 1.0}},
                                       "targets": {"x": {"mean": 0.0, "std": 1.0}}})
    c = atmocorrect.load(write_checkpoint(tmp_path / "m", manifest, net.state_dict()))
    small = c.tendency({"x": np.linspace(-1, 1, 8)})["x"]
    big = c.tendency({"x": np.tile(np.linspace(-1, 1, 8), 2)})["x"]
    assert np.isfinite(big).all() and big.shape == (16,)
    np.testing.assert_allclose(big[:8], small, rtol=1e-6)  # periodic ring of period 8
