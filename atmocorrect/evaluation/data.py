"""Truth runs of the twin experiment, from the Fortran programs or the numpy reference.

The Fortran ``examples/lorenz96/l96_truth`` writes ``X(time, k)`` (CF, time in days since
2000-01-01, 1 MTU = 5 days); :func:`numpy_truth` writes the same layout with an extra leading
``member`` dimension: ``members`` independent runs, each spun up for ``spinup_mtu`` (dropped),
integrated in one vectorised call. Long runs as ensembles of shorter members are how the
numpy path fits the demo's time budget; the statistics of a run of ``members x length`` MTU
after spin-up are those of one long run (the system is ergodic), with more independent samples.
"""

from __future__ import annotations

from pathlib import Path

from ..lorenz96 import L96Params, run_two_scale, to_dataset


def numpy_truth(
    path: str | Path,
    members: int,
    mtu_per_member: float,
    seed: int,
    params: L96Params | None = None,
    dt: float = 0.001,
    sample_mtu: float = 0.005,
    spinup_mtu: float = 5.0,
    progress: bool = False,
) -> Path:
    """Integrate the two-scale truth with numpy and write it as netCDF."""
    p = params or L96Params()
    every = int(round(sample_mtu / dt))
    n = int(round(mtu_per_member / sample_mtu))
    x = run_two_scale(p, n, dt=dt, sample_every=every, spinup_mtu=spinup_mtu, members=members,
                      seed=seed, progress=progress)
    ds = to_dataset(
        x if members > 1 else x[0],
        sample_mtu,
        attrs={
            "K": p.K, "J": p.J, "F": p.F, "h": p.h, "b": p.b, "c": p.c, "dt_mtu": dt,
            "spinup_mtu": spinup_mtu, "seed": seed, "members": members,
        },
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    ds.to_netcdf(tmp)
    tmp.replace(path)
    return path
