"""Resumable training state, written atomically and without pickle.

A state directory holds ``model.safetensors`` (the network's weights), ``optimizer.safetensors``
(Adam's moment tensors, flattened to ``state.<param>.<name>``) and ``state.json`` (stage,
epoch, optimizer hyperparameters, metrics so far, config). It is written to a temporary
sibling and renamed into place, so an interruption at any point leaves either the previous
epoch's state or the new one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..atomic import atomic_directory, write_json
from ..errors import CheckpointError


def save_state(
    directory: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    info: dict[str, Any],
) -> None:
    """Write the state of ``model`` and ``optimizer`` plus ``info`` atomically."""
    with atomic_directory(directory) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp / "model.safetensors"))
        sd = optimizer.state_dict()
        tensors: dict[str, torch.Tensor] = {}
        for pid, st in sd["state"].items():
            for key, value in st.items():
                t = value if torch.is_tensor(value) else torch.tensor(value)
                tensors[f"state.{pid}.{key}"] = t.detach().cpu().contiguous()
        if tensors:
            save_file(tensors, str(tmp / "optimizer.safetensors"))
        write_json(tmp / "state.json", {**info, "param_groups": sd["param_groups"]}, indent=1)


def load_state(
    directory: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None
) -> dict[str, Any]:
    """Restore ``model`` (and ``optimizer``) from a state directory; return its info."""
    directory = Path(directory)
    try:
        info = json.loads((directory / "state.json").read_text())
        model.load_state_dict(load_file(str(directory / "model.safetensors")))
    except (OSError, json.JSONDecodeError, RuntimeError) as exc:
        raise CheckpointError(f"cannot resume from {directory}: {exc}") from exc
    if optimizer is not None:
        groups = info.pop("param_groups")
        state: dict[int, dict[str, torch.Tensor]] = {}
        opt_file = directory / "optimizer.safetensors"
        if opt_file.is_file():
            for key, value in load_file(str(opt_file)).items():
                _, pid, name = key.split(".", 2)
                state.setdefault(int(pid), {})[name] = value
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    return info
