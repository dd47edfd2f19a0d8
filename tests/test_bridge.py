"""The Fortran bridge end to end: compiled hosts under mpirun with analytic checkpoints.

Everything here is real: gfortran with FP traps on, Open MPI's mpirun, the embedded interpreter
of the installed package. Only the checkpoints are analytic (no trained weights needed).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import mpirun

from atmocorrect.checkpoint import FieldSpec, Manifest, write_analytic_checkpoint, write_checkpoint

pytestmark = pytest.mark.mpi

FIELDS = ["t", "q", "ps"]
UNITS = ["K", "kg kg-1", "Pa"]


def read_blocks(prefix: Path, nranks: int) -> dict[str, np.ndarray]:
    """Assemble the per-rank interior blocks written by gridded_host into global arrays."""
    t: dict[tuple, float] = {}
    q: dict[tuple, float] = {}
    ps: dict[tuple, float] = {}
    for r in range(nranks):
        for line in Path(f"{prefix}.rank{r}.txt").read_text().splitlines()[1:]:
            kind, *rest = line.split()
            if kind == "tq":
                key = tuple(int(v) for v in rest[:3])
                t[key], q[key] = float(rest[3]), float(rest[4])
            else:
                ps[(int(rest[0]), int(rest[1]))] = float(rest[2])
    shape = tuple(max(k[d] for k in t) + 1 for d in range(3))
    out = {"t": np.full(shape, np.nan), "q": np.full(shape, np.nan), "ps": np.full(shape[:2], np.nan)}
    for name, values in (("t", t), ("q", q), ("ps", ps)):
        for key, v in values.items():
            out[name][key] = v
    assert not any(np.isnan(a).any() for a in out.values()), "a block is missing from the output"
    return out


def run_host(host: Path, tmp: Path, ckpt: Path, nranks: int, name: str, **opts) -> dict[str, np.ndarray]:
    args = [str(host), f"ckpt={ckpt}", f"out={tmp / name}"] + [f"{k}={v}" for k, v in opts.items()]
    proc = mpirun(nranks, args, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_host.last_stdout = proc.stdout
    return read_blocks(tmp / name, nranks)


@pytest.fixture(scope="module")
def constant_ckpt(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("ckpt") / "constant"
    return write_analytic_checkpoint(d, field=FIELDS, units=UNITS, tendency=0.5)


@pytest.fixture(scope="module")
def relax_ckpt(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("ckpt") / "relax"
    return write_analytic_checkpoint(d, field=FIELDS, units=UNITS, relax_to=300.0, timescale=3600.0)


def test_constant_tendency_gives_exact_increments(gridded_host, constant_ckpt, tmp_path):
    off = run_host(gridded_host, tmp_path, constant_ckpt, 2, "off", physics=0, steps=4, dt=2, mode="off")
    on = run_host(gridded_host, tmp_path, constant_ckpt, 2, "on", physics=0, steps=4, dt=2)
    # Each step adds dt 2 s x 0.5 per second = 1.0, in the field's own precision.
    t_expected, ps_expected, q_expected = off["t"].copy(), off["ps"].copy(), off["q"].astype(np.float32)
    for _ in range(4):
        t_expected += 1.0
        ps_expected += 1.0
        q_expected = q_expected + np.float32(1.0)
    np.testing.assert_array_equal(on["t"], t_expected)
    np.testing.assert_array_equal(on["ps"], ps_expected)
    np.testing.assert_array_equal(on["q"].astype(np.float32), q_expected)


def test_relaxation_follows_its_formula(gridded_host, relax_ckpt, tmp_path):
    off = run_host(gridded_host, tmp_path, relax_ckpt, 1, "off", physics=0, steps=1, dt=600, mode="off")
    on = run_host(gridded_host, tmp_path, relax_ckpt, 1, "on", physics=0, steps=1, dt=600)
    expected = off["t"] + 600.0 * (300.0 - off["t"]) / 3600.0
    np.testing.assert_allclose(on["t"], expected, rtol=1e-15, atol=0)
    assert np.abs(on["t"] - off["t"]).max() > 1.0  # the correction did something


def test_diagnose_mode_leaves_state_alone(gridded_host, relax_ckpt, tmp_path):
    off = run_host(gridded_host, tmp_path, relax_ckpt, 2, "off", steps=3, mode="off")
    diag = run_host(gridded_host, tmp_path, relax_ckpt, 2, "diag", steps=3, mode="diagnose")
    for name in FIELDS:
        np.testing.assert_array_equal(diag[name], off[name])
    # The increment it recorded at the last step, fetched with atmocorrect_get_increment.
    recorded = float(re.search(r"INCREMENT t sum=\s*(\S+)", run_host.last_stdout).group(1))
    expected = (600.0 * (300.0 - off["t"]) / 3600.0).sum()
    assert recorded == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("nranks", [2, 4])
def test_rank_count_does_not_change_the_result(gridded_host, relax_ckpt, tmp_path, nranks):
    one = run_host(gridded_host, tmp_path, relax_ckpt, 1, "np1", steps=5, nx=12, ny=8)
    many = run_host(gridded_host, tmp_path, relax_ckpt, nranks, f"np{nranks}", steps=5, nx=12, ny=8)
    for name in FIELDS:
        np.testing.assert_array_equal(many[name], one[name])


def test_registered_arrays_are_used_in_place_and_halos_untouched(gridded_host, relax_ckpt, tmp_path):
    run_host(gridded_host, tmp_path, relax_ckpt, 2, "addr", steps=3)
    out = run_host.last_stdout
    addresses = re.findall(r"ADDRESS rank=(\d+) library=(\d+) host=(\d+)", out)
    assert len(addresses) == 2, out
    for _rank, library, host in addresses:
        assert int(library) == int(host) != 0
    halos = re.findall(r"HALO rank=(\d+) untouched=([TF])", out)
    assert sorted(halos) == [("0", "T"), ("1", "T")], out


# ---------------------------------------------------------------- error paths


@pytest.fixture(scope="module")
def level_ckpt(tmp_path_factory) -> Path:
    manifest = Manifest(
        fields=(FieldSpec("t", units="K", dims=("lon", "lat", "lev"), levels=5),),
        model_class="analytic",
        hyperparameters={"kind": "constant", "tendency": 1.0},
    )
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "levels", manifest)


@pytest.fixture(scope="module")
def fault_ckpt(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("ckpt") / "fault"
    return write_analytic_checkpoint(
        d, field="t", units="K", tendency=1.0, fault={"raise_on_rank": 1, "at_call": 2}
    )


def results(stdout: str) -> dict[int, dict[str, str]]:
    out = {}
    for m in re.finditer(r"RESULT case=(\S+) rank=(\d+) stat=(-?\d+) untouched=([TF]) msg=(.*)", stdout):
        out[int(m.group(2))] = {"stat": int(m.group(3)), "untouched": m.group(4) == "T", "msg": m.group(5)}
    return out


ERROR_CASES = [
    # (case, checkpoint fixture, expected stat, words the message must contain)
    ("missing_checkpoint", "level_ckpt", 1, ["/nonexistent/atmocorrect/ckpt", "does not exist"]),
    ("bad_mode", "level_ckpt", 9, ["sometimes", "apply"]),
    ("unknown_field", "level_ckpt", 2, ["'nope'", "expects t"]),
    ("wrong_units", "level_ckpt", 2, ["'degC'", "'K'"]),
    ("wrong_levels", "level_ckpt", 2, ["3 level", "trained on 5"]),
    ("wrong_rank", "level_ckpt", 2, ["rank 1 to 3", "rank 4"]),
    ("step_before_add", "level_ckpt", 9, ["before any atmocorrect_add_field"]),
    ("nan_one_rank", "level_ckpt", None, ["NaN"]),
    ("fault_one_rank", "fault_ckpt", None, ["injected fault"]),
    ("after_finalize", "level_ckpt", 9, ["not initialised"]),
    ("bad_dt", "level_ckpt", 9, ["dt must be a positive"]),
]


@pytest.mark.reliability
@pytest.mark.parametrize("case,ckpt_fixture,expected_stat,words", ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_error_paths_return_status_and_leave_state_untouched(
    error_paths_host, request, case, ckpt_fixture, expected_stat, words
):
    ckpt = request.getfixturevalue(ckpt_fixture)
    start = time.monotonic()
    proc = mpirun(2, [str(error_paths_host), f"case={case}", f"ckpt={ckpt}"], timeout=60)
    assert time.monotonic() - start < 60
    assert proc.returncode == 0, proc.stdout + proc.stderr
    res = results(proc.stdout)
    assert sorted(res) == [0, 1], proc.stdout + proc.stderr
    for rank, r in res.items():
        assert r["stat"] != 0, f"rank {rank}: {r}"
        if expected_stat is not None:
            assert r["stat"] == expected_stat, f"rank {rank}: {r}"
        assert r["untouched"], f"rank {rank} state changed: {r}"
    if case in ("nan_one_rank", "fault_one_rank"):
        _check_one_rank_failure(res, failing=1, words=words)
    else:
        for rank, r in res.items():
            assert all(w in r["msg"] for w in words), f"rank {rank}: {r['msg']!r} lacks {words}"


@pytest.mark.reliability
@pytest.mark.parametrize("nranks", [2, 4])
def test_exception_without_stat_aborts_every_rank_quickly(error_paths_host, fault_ckpt, nranks):
    start = time.monotonic()
    proc = mpirun(nranks, [str(error_paths_host), "case=nostat_fault", f"ckpt={fault_ckpt}"], timeout=60)
    elapsed = time.monotonic() - start
    assert proc.returncode != 0
    assert "[atmocorrect rank 1]" in proc.stderr and "injected fault" in proc.stderr, proc.stderr
    assert "UNREACHED" not in proc.stdout
    assert elapsed < 60


def _check_one_rank_failure(res: dict, failing: int, words: list[str]) -> None:
    """The failing rank reports its own error; every other rank names the failing rank."""
    assert all(w in res[failing]["msg"] for w in words), res
    for rank, r in res.items():
        if rank != failing:
            assert r["stat"] == 8 and f"rank {failing}" in r["msg"], res


@pytest.mark.reliability
@pytest.mark.parametrize("case,failing", [("fault_one_rank", 1), ("nan_one_rank", 3)])
def test_one_rank_failure_at_four_ranks(error_paths_host, fault_ckpt, level_ckpt, case, failing):
    ckpt = fault_ckpt if case == "fault_one_rank" else level_ckpt
    proc = mpirun(4, [str(error_paths_host), f"case={case}", f"ckpt={ckpt}"], timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    res = results(proc.stdout)
    assert sorted(res) == [0, 1, 2, 3], proc.stdout
    assert all(r["stat"] != 0 and r["untouched"] for r in res.values()), res
    _check_one_rank_failure(res, failing, ["injected fault" if case == "fault_one_rank" else "NaN"])


@pytest.mark.reliability
def test_a_field_the_checkpoint_needs_but_the_host_never_registered(gridded_host, relax_ckpt, tmp_path):
    proc = mpirun(2, [str(gridded_host), f"ckpt={relax_ckpt}", "fields=t", "steps=1"], timeout=60)
    assert proc.returncode != 0
    assert proc.stdout.count("call=step stat=2") == 2, proc.stdout
    assert "q, ps not registered" in proc.stdout
