"""Figures of the twin experiment (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .metrics import HELLINGER_BINS, HELLINGER_RANGE, histogram


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def rmse_vs_lead(leads: np.ndarray, curves: Mapping[str, np.ndarray], threshold: float, path: Path) -> None:
    """RMSE against lead time for every row, with the horizon threshold."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, rmse in curves.items():
        ax.plot(leads, np.where(np.isfinite(rmse), rmse, np.nan), label=name)
    ax.axhline(threshold, color="k", ls="--", lw=0.8, label="0.5 x truth std")
    ax.set_xlabel("lead (MTU)")
    ax.set_ylabel("RMSE")
    ax.set_ylim(0, 2.5 * threshold)
    ax.set_title("Forecast error vs lead (held-out initial states)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def pdfs(samples: Mapping[str, np.ndarray], path: Path) -> None:
    """Distributions of X in the free runs against the truth."""
    plt = _pyplot()
    lo, hi = HELLINGER_RANGE
    centres = lo + (np.arange(HELLINGER_BINS) + 0.5) * (hi - lo) / HELLINGER_BINS
    width = (hi - lo) / HELLINGER_BINS
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, values in samples.items():
        p = histogram(values) / width
        ax.plot(centres, p, label=name, lw=2.0 if name == "truth" else 1.0, color="k" if name == "truth" else None)
    ax.set_xlabel("X")
    ax.set_ylabel("probability density")
    ax.set_title("Free-run climate: distribution of X")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def hovmoeller(leads: np.ndarray, fields: Mapping[str, np.ndarray], path: Path) -> None:
    """Hovmoeller diagrams (site vs lead) of one forecast per row and the truth."""
    plt = _pyplot()
    n = len(fields)
    fig, axes = plt.subplots(n, 1, figsize=(8, 1.4 * n + 0.8), sharex=True, squeeze=False)
    for ax, (name, f) in zip(axes[:, 0], fields.items(), strict=True):
        k = f.shape[1]
        im = ax.pcolormesh(leads, np.arange(1, k + 1), np.asarray(f).T, vmin=-12, vmax=18, cmap="RdBu_r", shading="auto")
        ax.set_ylabel(name, fontsize=8)
    axes[-1, 0].set_xlabel("lead (MTU)")
    fig.colorbar(im, ax=axes[:, 0].tolist(), label="X", shrink=0.8)
    fig.suptitle("Hovmoeller: one forecast from a held-out state (sites vs lead)")
    fig.savefig(path, dpi=110)
    plt.close(fig)
