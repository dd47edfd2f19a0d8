"""Experiment configuration: dataclasses read from a TOML file in ``training/``.

Example (``training/lorenz96_transformer.toml``)::

    [model]
    class = "transformer"
    halo = 4
    d_model = 32

    [train]
    epochs = 12
    batch_size = 128

    [finetune]
    epochs = 2
    rollout_steps = 4

Unknown keys are refused, naming the table and the key, so a typo never silently trains the
default model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..config import load_toml
from ..errors import UsageError


def _from_mapping(cls: type, values: Mapping[str, Any], table: str) -> Any:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UsageError(
            f"[{table}]: unknown key(s) {', '.join(unknown)}; expected some of {', '.join(sorted(known))}"
        )
    return cls(**dict(values))


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Model class and size. ``halo`` is the neighbourhood half-width per spatial dimension."""

    model_class: str = "transformer"
    halo: int = 4
    d_model: int = 32
    heads: int = 4
    layers: int = 2
    ff: int = 64
    patch: int = 1
    hidden: tuple[int, ...] = (64, 64)
    degree: int = 4

    def hyperparameters(self) -> dict[str, Any]:
        """What goes into the manifest's ``model.hyperparameters`` for this class."""
        if self.model_class == "transformer":
            keys = ("d_model", "heads", "layers", "ff", "patch")
        elif self.model_class == "mlp":
            keys = ("hidden",)
        elif self.model_class == "quartic":
            keys = ("degree",)
        else:
            keys = ()
        out = {k: getattr(self, k) for k in keys}
        if "hidden" in out:
            out["hidden"] = list(out["hidden"])
        return out


PRECISIONS = ("fp32", "bf16")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """One-step training (regression of the correction on the state)."""

    epochs: int = 10
    batch_size: int = 128  # samples (whole domains) per step, over all ranks
    lr: float = 2e-3
    min_lr: float = 2e-5
    warmup_steps: int = 100
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    seed: int = 0
    threads: int = 1
    max_samples: int = 0  # 0: all training samples
    # "auto": the GPU of this local rank when one is visible, else the CPU; "cpu"; "cuda"
    device: str = "auto"
    # "fp32", or "bf16": forward and loss under bfloat16 autocast (weights and optimizer fp32)
    precision: str = "fp32"

    def __post_init__(self) -> None:
        from ..devices import DEVICE_POLICIES

        if self.device.strip().lower() not in DEVICE_POLICIES:
            raise UsageError(f"[train] device {self.device!r} is not one of {', '.join(DEVICE_POLICIES)}")
        if self.precision not in PRECISIONS:
            raise UsageError(f"[train] precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
    """Fine-tuning on short rollouts of the corrected model against the reference."""

    epochs: int = 0
    rollout_steps: int = 4
    batch_size: int = 64
    lr: float = 3e-4
    min_lr: float = 1e-5
    stride: int = 2  # start a rollout every `stride` samples


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """A whole training run: ``[data]``, ``[model]``, ``[train]``, ``[finetune]``."""

    data: str = ""
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    finetune: FinetuneConfig = FinetuneConfig()
    name: str = ""

    @classmethod
    def from_mapping(cls, d: Mapping[str, Any]) -> ExperimentConfig:
        top = set(d) - {"data", "model", "train", "finetune", "name"}
        if top:
            raise UsageError(f"unknown table(s) {', '.join(sorted(top))} in the experiment config")
        data = d.get("data", {})
        path = data.get("path", "") if isinstance(data, Mapping) else str(data)
        model = dict(d.get("model", {}))
        if "class" in model:
            model["model_class"] = model.pop("class")
        if "hidden" in model:
            model["hidden"] = tuple(int(h) for h in model["hidden"])
        return cls(
            data=str(path),
            model=_from_mapping(ModelConfig, model, "model"),
            train=_from_mapping(TrainConfig, d.get("train", {}), "train"),
            finetune=_from_mapping(FinetuneConfig, d.get("finetune", {}), "finetune"),
            name=str(d.get("name", "")),
        )

    @classmethod
    def from_toml(cls, path: str | Path) -> ExperimentConfig:
        return cls.from_mapping(load_toml(path))

    def replace(self, **sections: Any) -> ExperimentConfig:
        """A copy with some fields of some sections changed: ``replace(train={"epochs": 2})``."""
        changes: dict[str, Any] = {}
        for key, value in sections.items():
            if isinstance(value, Mapping):
                changes[key] = dataclasses.replace(getattr(self, key), **value)
            else:
                changes[key] = value
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["model"]["class"] = out["model"].pop("model_class")
        out["model"]["hidden"] = list(out["model"]["hidden"])
        return out
