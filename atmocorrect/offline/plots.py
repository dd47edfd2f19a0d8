"""Plots of an offline evaluation: seasonal cycle and quantile-quantile, one line per method.

Example
-------
>>> import numpy as np, tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> cyc = {"reference": np.arange(12.0), "raw": np.arange(12.0) + 1}
>>> seasonal_cycle_plot(cyc, "tas", "K", d / "s.png").exists()
True
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

_STYLE = {"reference": dict(color="black", lw=2.5), "raw": dict(color="grey", ls="--")}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def seasonal_cycle_plot(cycles: Mapping[str, np.ndarray], variable: str, units: str,
                        path: str | Path, title: str | None = None) -> Path:
    """Monthly means (12 values per method), the reference in black."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, values in cycles.items():
        ax.plot(np.arange(1, 13), values, marker="o", ms=3, label=name, **_STYLE.get(name, {}))
    ax.set_xticks(range(1, 13))
    ax.set_xticklabels(list("JFMAMJJASOND"))
    ax.set_ylabel(f"{variable} [{units}]")
    ax.set_title(title or f"Seasonal cycle of {variable}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def qq_plot(quantiles: Mapping[str, np.ndarray], reference: np.ndarray, variable: str,
            units: str, path: str | Path, title: str | None = None) -> Path:
    """Each method's quantiles against the reference's (1st to 99th percentile)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 5))
    lo, hi = float(np.min(reference)), float(np.max(reference))
    ax.plot([lo, hi], [lo, hi], color="black", lw=1, label="1:1")
    for name, q in quantiles.items():
        ax.plot(reference, q, marker=".", ms=3, lw=1, label=name, **_STYLE.get(name, {}))
    ax.set_xlabel(f"reference {variable} quantiles [{units}]")
    ax.set_ylabel(f"simulation {variable} quantiles [{units}]")
    ax.set_title(title or f"Quantile-quantile, {variable}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def bias_map_plot(biases: Mapping[str, np.ndarray], lat: np.ndarray, lon: np.ndarray,
                  variable: str, units: str, path: str | Path,
                  title: str | None = None) -> Path:
    """One panel per method of the time-mean bias (method minus reference) per cell, on one
    symmetric colour scale. ``lat``/``lon`` have the shape of each bias field: a 2-D grid
    (regular or curvilinear) is drawn cell by cell, anything else (points, stations, a single
    row) as markers.

    >>> import tempfile, pathlib
    >>> lat, lon = np.meshgrid([48.0, 49.0, 50.0], [8.0, 9.0], indexing="ij")
    >>> b = {"raw": lat - 49.0, "ml": 0.1 * (lat - 49.0)}
    >>> p = bias_map_plot(b, lat, lon, "tas", "K", pathlib.Path(tempfile.mkdtemp()) / "m.png")
    >>> p.exists()
    True
    """
    plt = _plt()
    lat, lon = np.asarray(lat, float), np.asarray(lon, float)
    fields = {name: np.asarray(b, float) for name, b in biases.items()}
    for name, b in fields.items():
        if b.shape != lat.shape:
            raise ValueError(f"bias of {name!r} has shape {b.shape}, lat/lon {lat.shape}")
    finite = np.concatenate([b[np.isfinite(b)] for b in fields.values()] + [np.zeros(1)])
    limit = float(np.max(np.abs(finite))) or 1.0
    n = len(fields)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n + 1.0, 3.6), squeeze=False,
                             sharex=True, sharey=True, layout="constrained")
    cell_by_cell = lat.ndim == 2 and min(lat.shape) > 1
    image = None
    for ax, (name, b) in zip(axes[0], fields.items(), strict=True):
        style = dict(cmap="RdBu_r", vmin=-limit, vmax=limit)
        if cell_by_cell:
            image = ax.pcolormesh(lon, lat, np.ma.masked_invalid(b), shading="nearest", **style)
        else:
            image = ax.scatter(lon.ravel(), lat.ravel(), c=b.ravel(), s=120, marker="s",
                               edgecolors="k", linewidths=0.5, **style)
        mean = float(np.nanmean(b)) if np.isfinite(b).any() else float("nan")
        ax.set_title(f"{name} (mean {mean:+.2f})", fontsize=9)
        ax.set_xlabel("longitude")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("latitude")
    fig.colorbar(image, ax=list(axes[0]), label=f"{variable} bias [{units}]", shrink=0.9)
    fig.suptitle(title or f"Time-mean bias of {variable} against the reference", fontsize=10)
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
