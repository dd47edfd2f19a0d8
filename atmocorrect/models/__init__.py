"""Models behind one interface: a :class:`Predictor` maps the (halo-extended) state to tendencies.

Each model class registers a builder under the name stored in a checkpoint's manifest
(``model.class``), so loading a checkpoint never imports or executes anything else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np

from ..checkpoint import Manifest
from ..errors import CheckpointError


class Predictor(Protocol):
    """What the coupling runtime calls.

    ``halo`` is the context the model needs around each point, per leading (horizontal)
    dimension. ``tendency`` receives, per field, the local block extended by ``halo`` points on
    each side (filled from neighbouring ranks, or periodically) and returns, per corrected field,
    tendencies in field units per second over the interior block.
    """

    halo: tuple[int, ...]

    def tendency(
        self, inputs: Mapping[str, np.ndarray], time: float
    ) -> dict[str, np.ndarray]: ...


Builder = Callable[[Manifest, Mapping[str, Any], Mapping[str, Any]], Predictor]
_REGISTRY: dict[str, Builder] = {}


def register(name: str) -> Callable[[Builder], Builder]:
    def deco(fn: Builder) -> Builder:
        _REGISTRY[name] = fn
        return fn

    return deco


def build_predictor(
    manifest: Manifest, tensors: Mapping[str, Any], context: Mapping[str, Any]
) -> Predictor:
    """Build the predictor a manifest names; ``context`` carries rank and thread settings."""
    _load_builtin_models()
    try:
        builder = _REGISTRY[manifest.model_class]
    except KeyError:
        raise CheckpointError(
            f"model class {manifest.model_class!r} is unknown; known: {', '.join(sorted(_REGISTRY))}"
        ) from None
    return builder(manifest, tensors, context)


def known_model_classes() -> list[str]:
    _load_builtin_models()
    return sorted(_REGISTRY)


def _load_builtin_models() -> None:
    """Import every module of this package once; each registers its model classes."""
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(__path__):
        try:
            importlib.import_module(f"{__name__}.{info.name}")
        except ModuleNotFoundError as exc:  # torch missing: analytic checkpoints still work
            if exc.name != "torch":
                raise
