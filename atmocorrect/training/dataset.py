"""The training set ``atmocorrect prepare`` writes, as torch tensors in the models' layout.

Samples are whole domains: ``x`` and ``target`` are ``(N, F, L, *S)`` (sample, field, level,
spatial dims); the networks see one window per grid point, cut on the fly
(:func:`atmocorrect.models.neural.windows`), so a batch of B samples is ``B * prod(S)``
training examples.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from .prepare import SPLIT_FLAGS


@dataclasses.dataclass
class Split:
    """One split: inputs, targets, and the reference states for rollouts.

    ``truth`` is ``(M, T, F, L, *S)`` per member and time, ``starts`` the (member, time) index
    of every sample in ``x``/``target``, so a rollout from sample i compares against
    ``truth[m, t + 1 : t + 1 + n]`` while those times stay in this split.
    """

    x: torch.Tensor
    target: torch.Tensor
    truth: torch.Tensor
    starts: torch.Tensor  # (N, 2): member, time
    valid: torch.Tensor  # (M, T) bool: this time belongs to the split

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def rollout_starts(self, steps: int, stride: int = 1) -> torch.Tensor:
        """Sample indices whose next ``steps`` reference states lie in this split."""
        m, t = self.starts[:, 0], self.starts[:, 1]
        ok = torch.ones(len(self), dtype=torch.bool)
        T = self.valid.shape[1]
        for j in range(1, steps + 1):
            inside = (t + j) < T
            ok &= inside
            ok[inside] &= self.valid[m[inside], (t + j)[inside]]
        idx = torch.nonzero(ok).flatten()
        return idx[::stride]


@dataclasses.dataclass
class TrainingSet:
    """A prepared training set (see :mod:`atmocorrect.training.prepare`)."""

    path: Path
    train: Split
    validation: Split
    test: Split
    attrs: dict[str, Any]
    normalization: dict[str, Any]
    spatial_dims: tuple[str, ...]

    @property
    def timestep_seconds(self) -> float:
        return float(self.attrs["timestep_seconds"])

    @property
    def placement(self) -> str:
        return str(self.attrs.get("placement", "after"))


def _to_layout(a: np.ndarray) -> torch.Tensor:
    """(member, time, *S) -> (member, time, F=1, L=1, *S) float32."""
    t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
    return t.unsqueeze(2).unsqueeze(2)


def load_training_set(path: str | Path, max_train_samples: int = 0) -> TrainingSet:
    """Read a prepared training set; ``max_train_samples`` keeps the first N training samples."""
    import xarray as xr

    path = Path(path)
    if not path.is_file():
        raise DataError(f"training set {path} does not exist (run `atmocorrect prepare` first)")
    try:
        ds = xr.open_dataset(path, decode_times=False)
    except Exception as exc:
        raise DataError(f"cannot read training set {path}: {exc}") from exc
    for v in ("x", "target", "truth", "split"):
        if v not in ds:
            raise DataError(f"{path} is not an atmocorrect training set: no variable {v!r}")
    x = _to_layout(ds["x"].values)
    y = _to_layout(ds["target"].values)
    tr = _to_layout(ds["truth"].values)
    flags = torch.from_numpy(ds["split"].values.astype(np.int64))
    members, T = x.shape[:2]
    splits = {}
    for name in ("train", "validation", "test"):
        valid_t = flags == SPLIT_FLAGS[name]
        times = torch.nonzero(valid_t).flatten()
        if name == "train" and max_train_samples:
            times = times[: max(1, max_train_samples // members)]
            valid_t = torch.zeros_like(valid_t)
            valid_t[times] = True
        mm, tt = torch.meshgrid(torch.arange(members), times, indexing="ij")
        mm, tt = mm.flatten(), tt.flatten()
        splits[name] = Split(
            x=x[mm, tt],
            target=y[mm, tt],
            truth=tr,
            starts=torch.stack([mm, tt], dim=1),
            valid=valid_t.unsqueeze(0).expand(members, T),
        )
    attrs = dict(ds.attrs)
    try:
        norm = json.loads(attrs.get("normalization", "{}"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: the 'normalization' attribute is not JSON: {exc}") from exc
    spatial = tuple(d for d in ds["x"].dims if d not in ("member", "time"))
    ds.close()
    if len(splits["train"]) == 0:
        raise DataError(f"{path} has no training samples")
    return TrainingSet(path, splits["train"], splits["validation"], splits["test"], attrs, norm, spatial)
