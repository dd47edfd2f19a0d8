"""Twin-experiment evaluation: metrics, report.json shape, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from atmocorrect import cli
from atmocorrect import lorenz96 as l96
from atmocorrect.checkpoint import FieldSpec, Manifest, write_checkpoint
from atmocorrect.errors import UsageError
from atmocorrect.evaluation import metrics, twin


def test_hellinger_distance_properties():
    rng = np.random.default_rng(0)
    a = rng.normal(3, 4, 100000)
    assert metrics.hellinger(a, a) == 0.0
    assert metrics.hellinger(np.full(10, -10.0), np.full(10, 20.0)) == pytest.approx(1.0)
    small = metrics.hellinger(a, rng.normal(3, 4, 100000))
    assert 0 < small < 0.02
    # blown-up values count in the end bins instead of vanishing
    assert metrics.hellinger(a, np.full(100, np.nan)) > 0.9
    p = metrics.histogram(np.array([-15.0, -14.6, 24.9, 100.0]))
    assert len(p) == 80 and p[0] == 0.5 and p[-1] == 0.5


def test_rmse_horizon_and_leads():
    leads = np.arange(5) * 0.1
    fc = np.zeros((5, 3, 8))
    truth = np.ones((5, 3, 8)) * np.arange(5)[:, None, None]
    rmse = metrics.rmse_by_lead(fc, truth)
    assert np.allclose(rmse, np.arange(5))
    assert metrics.skill_horizon(rmse, leads, 2.5) == pytest.approx(0.3)
    assert metrics.skill_horizon(rmse, leads, 99.0) == pytest.approx(0.4)
    assert metrics.rmse_at(rmse, leads, 0.2) == 2.0
    fc[3:] = np.nan
    assert np.isinf(metrics.rmse_by_lead(fc, truth)[3])


def _truth(members: int, samples: int, seed: int) -> np.ndarray:
    x0 = np.random.default_rng(seed).standard_normal((members, 8)) * 4 + 3
    spun = l96.forecast(x0, 200, 18.0, 0.005, forcing=l96.wilks2005_tendency)[-1]
    return l96.forecast(spun, samples - 1, 18.0, 0.005, forcing=l96.wilks2005_tendency).transpose(1, 0, 2)


def _quartic_checkpoint(path):
    """The Wilks quartic as a checkpoint: coefficients of -U(X), per second."""
    import torch

    coeffs = torch.tensor([[[-c / l96.SECONDS_PER_MTU for c in l96.WILKS2005_COEFFS]]], dtype=torch.float32)
    man = Manifest(
        fields=(FieldSpec("x", "1", ("k",)),), model_class="quartic",
        hyperparameters={"degree": 4, "n_levels": 1, "placement": "after"}, halo=(0,), periodic=(True,),
        normalization={"inputs": {"x": {"mean": [0.0], "std": [1.0]}},
                       "targets": {"x": {"mean": [0.0], "std": [1.0]}}},
    )
    return write_checkpoint(path, man, {"coeffs": coeffs})


def test_report_shape_and_values(tmp_path):
    test = _truth(4, 400, 1)
    clim, floor = _truth(10, 300, 2), _truth(10, 300, 3)
    cfg = twin.TwinConfig(n_forecasts=300, max_lead_mtu=1.0, free_run_mtu=10.0, members=10, spinup_mtu=0.5,
                          stability_mtu=20.0, stability_members=10)
    ck = _quartic_checkpoint(tmp_path / "q")
    rows = twin.builtin_rows() + [twin.checkpoint_row("quartic", ck)]
    report = twin.evaluate(rows, test, clim, floor, cfg, tmp_path / "out", log=lambda s: None)
    on_disk = json.loads((tmp_path / "out" / "report.json").read_text())
    assert isinstance(on_disk["hellinger_floor"], float)
    assert set(on_disk["models"]) == {"uncorrected", "wilks2005", "quartic"}
    for row in on_disk["models"].values():
        assert {"horizon_mtu", "hellinger", "mean", "std", "rmse"} <= set(row)
        assert set(row["rmse"]) == {"0.2", "0.5", "1.0"}
        assert all(isinstance(v, float) for v in row["rmse"].values())
    # this "truth" is the Wilks-parametrised model itself: Wilks forecasts it perfectly,
    # and the quartic checkpoint (applied after the step) nearly so
    assert on_disk["models"]["wilks2005"]["rmse"]["1.0"] < 1e-9
    assert on_disk["models"]["wilks2005"]["horizon_mtu"] == pytest.approx(1.0)  # never lost skill:
    assert on_disk["models"]["wilks2005"]["horizon_censored"] is True  # reported as >= max lead
    assert on_disk["models"]["uncorrected"]["horizon_censored"] is False
    assert on_disk["models"]["quartic"]["rmse"]["0.2"] < 0.1
    assert on_disk["models"]["uncorrected"]["rmse"]["0.5"] > 1.0
    assert on_disk["models"]["quartic"]["stability"]["finite"] is True
    for name in ("report.md", "rmse_vs_lead.png", "pdfs.png", "hovmoeller.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    assert "| quartic |" in (tmp_path / "out" / "report.md").read_text()
    assert report["models"]["quartic"]["checkpoint"] == str(ck)


def test_online_check_matches_the_corrector_stepping(tmp_path):
    ck = _quartic_checkpoint(tmp_path / "q")
    x0 = _truth(1, 2, 4)[0, 0]
    assert twin.online_check(ck, x0, 20, twin.TwinConfig()) < 1e-9


def test_initial_states_need_enough_test_data():
    from atmocorrect.errors import DataError

    with pytest.raises(DataError, match="fewer than 300"):
        twin.initial_states(np.zeros((1, 250, 8)), 300, 100)


def test_cli_twin_end_to_end(tmp_path, capsys):
    for name, arr in (("test", _truth(2, 500, 5)), ("clim", _truth(5, 200, 6)), ("floor", _truth(5, 200, 7))):
        l96.to_dataset(arr, 0.005).to_netcdf(tmp_path / f"{name}.nc")
    ck = _quartic_checkpoint(tmp_path / "q")
    rc = cli.main([
        "evaluate", "twin", "--test", str(tmp_path / "test.nc"), "--climate", str(tmp_path / "clim.nc"),
        "--floor", str(tmp_path / "floor.nc"), "--model", f"quartic={ck}", "--out", str(tmp_path / "r"),
        "--max-lead", "1.0", "--free-run", "5", "--members", "5", "--spinup", "0.2", "--stability", "0",
    ])
    assert rc == 0
    assert "| wilks2005 |" in capsys.readouterr().out
    assert json.loads((tmp_path / "r" / "report.json").read_text())["models"]["quartic"]["horizon_mtu"] > 0


def test_cli_evaluate_needs_a_kind(capsys):
    parser = cli.build_parser()
    args = parser.parse_args(["evaluate"])
    with pytest.raises(UsageError, match="twin"):
        args._module.run(args)
    with pytest.raises(SystemExit):
        parser.parse_args(["evaluate", "twin", "--help"])
    assert "--stability" in capsys.readouterr().out
    # `evaluate offline` hands every argument, options included, to atmocorrect.offline.evaluate
    args = parser.parse_args(["evaluate", "offline", "--reference", "a.nc", "--help"])
    assert args.evaluate_kind == "offline" and args.rest == ["--reference", "a.nc", "--help"]


@pytest.mark.slow
def test_worker_processes_give_the_same_report(tmp_path):
    test = _truth(2, 400, 11)
    clim, floor = _truth(5, 200, 12), _truth(5, 200, 13)
    cfg = twin.TwinConfig(n_forecasts=300, max_lead_mtu=1.0, free_run_mtu=5.0, members=5, spinup_mtu=0.2,
                          stability_mtu=4.0, stability_members=4)
    rows = [twin.builtin_rows()[1], twin.checkpoint_row("quartic", _quartic_checkpoint(tmp_path / "q"))]
    one = twin.evaluate(rows, test, clim, floor, cfg, tmp_path / "a", log=lambda s: None)
    two = twin.evaluate(rows, test, clim, floor, cfg, tmp_path / "b", log=lambda s: None, workers=2)
    for name in ("wilks2005", "quartic"):
        for key in ("horizon_mtu", "hellinger", "mean", "std", "rmse"):
            assert one["models"][name][key] == two["models"][name][key]
    assert one["models"]["quartic"]["stability"]["max_abs"] == two["models"]["quartic"]["stability"]["max_abs"]


@pytest.mark.mpi
@pytest.mark.slow
@pytest.mark.timeout(180)
def test_coupled_fortran_run_matches_the_python_forecast(tmp_path):
    """l96_model under mpirun -np 2, corrected every step by a checkpoint through the bridge,
    follows the Python forecast of the same checkpoint (when the coupled build exists)."""
    import os

    from atmocorrect.evaluation import online

    truth = _truth(1, 50, 21)[0]
    l96.to_dataset(truth, 0.005).to_netcdf(tmp_path / "truth.nc")
    ck = _quartic_checkpoint(tmp_path / "q")
    try:
        res = online.fortran_check(ck, tmp_path / "truth.nc", 3, 40, tmp_path / "f", dict(os.environ))
    except online.NotAvailable as exc:
        pytest.skip(str(exc))
    assert res["steps"] == 39 and res["max_abs_diff"] < 1e-6
