"""The benchmark machinery (benchmarks/run.py) at a tiny size: keys and values are sane.

No timing assertions: this checks that `make bench` can run and what it writes, not the figures.
"""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import sys

import pytest
from conftest import REPO

BENCH = REPO / "benchmarks"
pytestmark = pytest.mark.mpi


def _load_runner():
    spec = importlib.util.spec_from_file_location("atmocorrect_bench_run", BENCH / "run.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    for tool in ("mpif90", "mpicc", "mpirun"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not found: install Open MPI (make setup does)")
    runner = _load_runner()
    out = tmp_path_factory.mktemp("bench") / "results.json"
    data = runner.run("tiny", {"coupling", "scaling", "roofline", "train"}, out, log=lambda m: None)
    return runner, data, out


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@pytest.mark.timeout(180)
def test_results_file_has_every_key(tiny):
    runner, data, out = tiny
    on_disk = json.loads(out.read_text())
    assert on_disk["size"] == "tiny"
    assert not list(out.parent.glob(".results.json.*")), "temporary file left behind"
    for key in runner.KEYS:
        assert key in on_disk, key
        assert key in on_disk["targets"], key
        assert key in on_disk["notes"] and on_disk["notes"][key], key
        assert key in on_disk["met"], key
    m = on_disk["machine"]
    for k in ("cpu", "cores", "torch", "numpy"):
        assert m.get(k), k
    assert on_disk["errors"] == {}, on_disk["errors"]


@pytest.mark.timeout(180)
def test_values_are_sane(tiny):
    _runner, data, _out = tiny
    r = data["coupling_overhead_ratio"]
    assert _finite(r) and 0.1 < r < 100
    assert isinstance(data["state_bytes_copied_per_step"], int) and data["state_bytes_copied_per_step"] >= 0
    assert _finite(data["init_seconds"]) and 0 < data["init_seconds"] < 120
    assert _finite(data["roofline_fraction"]) and 0 < data["roofline_fraction"] < 5
    assert _finite(data["mpi_weak_scaling_efficiency"]) and 0 < data["mpi_weak_scaling_efficiency"] < 10
    assert _finite(data["train_samples_per_second"]) and data["train_samples_per_second"] > 0
    assert 0 <= data["data_loading_fraction"] <= 1
    # not run at this size, or no GPU: null with a reason
    for key in ("gpu_mfu_bf16", "aot_vs_embedded_ratio", "offline_time_ratio_vs_ibicus_qdm"):
        assert data[key] is None and data["notes"][key]


@pytest.mark.timeout(180)
def test_zero_copy_registration_and_probe(tiny):
    _runner, data, _out = tiny
    d = data["details"]
    assert d["coupling_small"]["zero_copy_registration"] is True
    copies = d["state_copies"]
    assert copies["registered_addresses_unchanged"] is True
    assert copies["host_state_bytes"] == 4 * 8 * 8 * 2 * 8  # 4 fields of 8 x 8 x 2 real64 per rank
    assert copies["model_input_tensor"]["is_host_memory"] is False
    assert copies["model_input_bytes_per_step"] > 0
    # the host and the reference ran on the same threads and the same captured inputs
    assert d["coupling"]["denominator"]["calls_per_step"] >= 1
    assert d["coupling"]["threads"] >= 1


@pytest.mark.timeout(180)
def test_table_lists_every_key(tiny):
    runner, data, _out = tiny
    text = runner.table(data)
    for key in runner.KEYS:
        assert key in text
