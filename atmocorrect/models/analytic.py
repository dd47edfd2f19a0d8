"""Weightless models for smoke tests: a constant tendency, or relaxation towards a value."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..checkpoint import Manifest
from ..errors import CheckpointError, ModelError
from . import register


class AnalyticPredictor:
    """``constant``: tendency = c; ``relax``: tendency = (relax_to - x) / timescale.

    ``fault`` (testing only): ``{"raise_on_rank": r, "at_call": n}`` raises on rank r at its
    n-th call, so the failure paths of a coupled run can be exercised end to end.
    """

    halo: tuple[int, ...] = ()

    def __init__(self, fields: tuple[str, ...], params: Mapping[str, Any], rank: int) -> None:
        self.fields = fields
        self.kind = params.get("kind")
        if self.kind == "constant":
            self.value = float(params["tendency"])
        elif self.kind == "relax":
            self.value = float(params["relax_to"])
            self.timescale = float(params["timescale"])
            if self.timescale <= 0:
                raise CheckpointError(f"relax timescale must be positive, got {self.timescale}")
        else:
            raise CheckpointError(f"analytic kind {self.kind!r} is not 'constant' or 'relax'")
        fault = params.get("fault") or {}
        self.fail_here = fault.get("raise_on_rank") == rank
        self.fail_at = int(fault.get("at_call", 1))
        self.calls = 0

    def tendency(self, inputs: Mapping[str, np.ndarray], time: float) -> dict[str, np.ndarray]:
        self.calls += 1
        if self.fail_here and self.calls >= self.fail_at:
            raise ModelError(f"injected fault at call {self.calls} (analytic checkpoint 'fault')")
        out = {}
        for name in self.fields:
            x = inputs[name]
            if self.kind == "constant":
                out[name] = np.full(x.shape, self.value, dtype=np.float64)
            else:
                out[name] = (self.value - x.astype(np.float64)) / self.timescale
        return out


@register("analytic")
def _build(manifest: Manifest, tensors: Mapping[str, Any], context: Mapping[str, Any]):
    corrected = tuple(f.name for f in manifest.fields if f.corrected)
    return AnalyticPredictor(corrected, manifest.hyperparameters, int(context.get("rank", 0)))
