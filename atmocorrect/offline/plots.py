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
