"""Configuration of offline correction: the learned model, its training and its application.

Everything here has defaults that were chosen for any daily or monthly reference/simulation
pair, not tuned to the shipped sample; see docs/offline.md for the reasons.

Example
-------
>>> cfg = TrainConfig()
>>> cfg.calibration, cfg.network.hidden
((1979, 2004), 64)
>>> ApplyConfig(window_days=30).window_fraction("day")
0.0821...
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

from ..errors import UsageError

METHODS = ("ml", "linear-scaling", "quantile-mapping", "qdm")
Method = Literal["ml", "linear-scaling", "quantile-mapping", "qdm"]
Transform = Literal["identity", "log"]

#: Variables corrected multiplicatively (in log space, changes preserved as ratios).
RATIO_VARIABLES = {"pr", "prc", "prsn", "tp", "sfcWind", "si10", "evspsbl", "mrro", "rsds"}


def default_transform(variable: str) -> Transform:
    """``log`` for precipitation-like (positive, skewed) variables, else ``identity``."""
    return "log" if variable in RATIO_VARIABLES else "identity"


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """The quantile network: an MLP from (season, point, neighbourhood, variable) features to
    the coefficients of a monotone quantile function in the standard-normal score z.

    harmonics:
        Seasonal harmonics (sin/cos of 2 pi k f, k = 1..harmonics) in the input.
    ramps:
        Number of tanh ramps in the quantile function (shape beyond mean and spread).
    neighbourhood:
        Radius, in grid cells, of the neighbourhood whose climatology is an input.
    """

    hidden: int = 64
    layers: int = 2
    harmonics: int = 6
    ramps: int = 8
    neighbourhood: int = 1

    def __post_init__(self) -> None:
        for name in ("hidden", "layers", "harmonics", "ramps"):
            if getattr(self, name) < 1:
                raise UsageError(f"network {name} must be >= 1, got {getattr(self, name)}")
        if self.neighbourhood < 0:
            raise UsageError(f"neighbourhood must be >= 0, got {self.neighbourhood}")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Training of the learned correction on a calibration period.

    steps, lr:
        Adam steps on the exact pinball (quantile) loss over all calibration values.
    quantile_levels:
        Number of equally spaced quantile levels the loss is evaluated at.
    points_per_step:
        Larger grids are visited in random subsets of this many points per step.
    threads:
        Torch threads (keep small on shared machines).
    """

    calibration: tuple[int, int] = (1979, 2004)
    network: NetworkConfig = dataclasses.field(default_factory=NetworkConfig)
    steps: int = 1500
    lr: float = 1e-2
    quantile_levels: int = 64
    points_per_step: int = 256
    weight_decay: float = 1e-5
    seed: int = 0
    threads: int = 1
    transforms: Mapping[str, Transform] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.steps < 1 or self.quantile_levels < 2 or self.points_per_step < 1:
            raise UsageError("steps, points_per_step must be >= 1 and quantile_levels >= 2")
        if self.lr <= 0:
            raise UsageError(f"learning rate must be positive, got {self.lr}")
        for v, t in self.transforms.items():
            if t not in ("identity", "log"):
                raise UsageError(f"transform for {v!r} must be identity or log, got {t!r}")

    def transform(self, variable: str) -> Transform:
        return self.transforms.get(variable, default_transform(variable))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["calibration"] = list(self.calibration)
        d["transforms"] = dict(self.transforms)
        return d


@dataclasses.dataclass(frozen=True)
class ApplyConfig:
    """How a correction is applied to a simulation.

    window_days:
        Half-width of the seasonal window in which the quantile level of each value is
        estimated from the simulation being corrected (QDM-style trend preservation).
    window_months:
        The same for monthly data.
    window_years:
        Length of the running window over years for that estimate (31, as in ibicus QDM):
        in a long scenario run each value is ranked among its own era.
    chunk_points:
        Grid points per dask chunk (memory ~ chunk_points x time steps x 8 bytes x a few).
    threads:
        Dask threads (and torch threads in each); 1 keeps memory and cores bounded.
    """

    window_days: float = 45.0
    window_months: float = 1.5
    window_years: int = 31
    chunk_points: int = 256
    threads: int = 1

    def __post_init__(self) -> None:
        if self.window_days <= 0 or self.window_months <= 0 or self.window_years < 1:
            raise UsageError("windows must be positive")
        if self.chunk_points < 1 or self.threads < 1:
            raise UsageError("chunk_points and threads must be >= 1")

    def window_fraction(self, frequency: str) -> float:
        """Half-width of the seasonal window as a fraction of the year."""
        if frequency in ("month", "year"):
            return self.window_months / 12.0
        return self.window_days / 365.25
