"""Resumable training state, written atomically and without pickle.

A state directory holds ``model.safetensors`` (the network's weights), ``optimizer.safetensors``
(Adam's moment tensors, flattened to ``state.<param>.<name>``) and ``state.json`` (stage,
epoch, optimizer hyperparameters, metrics so far, config). It is written to a temporary
sibling and renamed into place, so an interruption at any point leaves either the previous
epoch's state or the new one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..errors import CheckpointError


def save_state(
    directory: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    info: dict[str, Any],
) -> None:
    """Write the state of ``model`` and ``optimizer`` plus ``info`` atomically."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
    try:
        save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(tmp / "model.safetensors"))
        sd = optimizer.state_dict()
        tensors: dict[str, torch.Tensor] = {}
        for pid, st in sd["state"].items():
            for key, value in st.items():
                t = value if torch.is_tensor(value) else torch.tensor(value)
                tensors[f"state.{pid}.{key}"] = t.detach().contiguous()
        if tensors:
            save_file(tensors, str(tmp / "optimizer.safetensors"))
        meta = {**info, "param_groups": sd["param_groups"]}
        with open(tmp / "state.json", "w") as fh:
            json.dump(meta, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        if directory.exists():
            old = directory.with_name(f".{directory.name}.old-{os.getpid()}")
            os.replace(directory, old)
            os.replace(tmp, directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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
