"""Run-time configuration of the correction step (the "run" table of a checkpoint manifest).

Configured, not hard-coded: the mode, the limiter, the taper and the NaN policy can be set in
the checkpoint's manifest, overridden by a TOML file, or by the host at ``atmocorrect_init``.

Example
-------
>>> cfg = RunConfig.from_mapping({"mode": "diagnose", "max_increment": 0.5})
>>> cfg.mode, cfg.max_increment
('diagnose', 0.5)
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .errors import UsageError

MODES = ("apply", "diagnose", "off")
NONFINITE_POLICIES = ("error", "skip")
BACKENDS = ("python", "aot")
#: Overrides ``run.backend`` for hosts coupled through the bridge (``python`` or ``aot``).
BACKEND_ENV = "ATMOCORRECT_BACKEND"


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """How the correction enters the host's time step.

    mode:
        ``apply`` nudges the registered fields in place; ``diagnose`` computes and records the
        increments but leaves the state alone; ``off`` does nothing (the host runs as if
        uncoupled, at no cost beyond the call).
    max_increment:
        Limiter: each increment (tendency x dt) is clipped to +/- this value, in field units.
        ``None`` disables the limiter.
    taper:
        A factor in [0, 1] multiplying every increment (1 = full correction).
    nonfinite:
        ``error`` (default): NaN/Inf in the host state fails the step on every rank, state
        untouched; ``skip``: the step leaves the state alone and counts the skipped steps.
    num_threads:
        Torch threads per rank; 0 means "the cores available to this rank".
    backend:
        How the bridge runs the step: ``python`` (default) through the embedded interpreter,
        or ``aot``: the checkpoint's AOTInductor package (``atmocorrect checkpoint export-aot``)
        run by libtorch from C++, without entering Python at each step. The environment
        variable ``ATMOCORRECT_BACKEND`` overrides it at run time. Python drivers
        (:func:`atmocorrect.load`) always run the Python path.
    device:
        Where the Python backend runs the network: ``auto`` (default) the GPU of this rank's
        local rank (``local_rank % visible GPUs``) when torch sees one, else the CPU; ``cpu``;
        ``cuda`` (an error naming the rank when it sees no GPU). The aot backend runs on the CPU.
    """

    mode: str = "apply"
    max_increment: float | None = None
    taper: float = 1.0
    nonfinite: str = "error"
    num_threads: int = 0
    backend: str = "python"
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise UsageError(f"run mode {self.mode!r} is not one of {', '.join(MODES)}")
        if self.nonfinite not in NONFINITE_POLICIES:
            raise UsageError(
                f"nonfinite policy {self.nonfinite!r} is not one of {', '.join(NONFINITE_POLICIES)}"
            )
        if not 0.0 <= self.taper <= 1.0:
            raise UsageError(f"taper must lie in [0, 1], got {self.taper}")
        if self.max_increment is not None and self.max_increment <= 0:
            raise UsageError(f"max_increment must be positive, got {self.max_increment}")
        if self.num_threads < 0:
            raise UsageError(f"num_threads must be >= 0, got {self.num_threads}")
        from .devices import DEVICE_POLICIES

        if self.device not in DEVICE_POLICIES:
            raise UsageError(f"device {self.device!r} is not one of {', '.join(DEVICE_POLICIES)}")
        if self.backend not in BACKENDS:
            raise UsageError(f"backend {self.backend!r} is not one of {', '.join(BACKENDS)}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> RunConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UsageError(
                f"unknown run option(s) {', '.join(unknown)}; expected some of {', '.join(sorted(known))}"
            )
        return cls(**dict(values))

    @classmethod
    def from_toml(cls, path: str | Path) -> RunConfig:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
        return cls.from_mapping(data.get("run", data))

    def replace(self, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def backend_from_env(cfg: RunConfig, environ: Mapping[str, str] | None = None) -> RunConfig:
    """``cfg`` with ``backend`` taken from ``ATMOCORRECT_BACKEND`` when that is set."""
    import os

    value = (os.environ if environ is None else environ).get(BACKEND_ENV, "").strip().lower()
    if not value:
        return cfg
    if value not in BACKENDS:
        raise UsageError(
            f"environment variable {BACKEND_ENV}={value!r} is not one of {', '.join(BACKENDS)}"
        )
    return cfg.replace(backend=value)


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file into a dict, naming the file in any error."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise UsageError(f"config file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"config file {path} is not valid TOML: {exc}") from exc
