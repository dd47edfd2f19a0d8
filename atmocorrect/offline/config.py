"""Configuration of offline correction: the learned model, its training and its application.

Everything here has defaults that were chosen for any daily or monthly reference/simulation
pair, not tuned to the shipped sample; see docs/offline.md for the reasons.

Example
-------
>>> cfg = TrainConfig()
>>> cfg.calibration, cfg.network.hidden
((1979, 2004), 64)
>>> ApplyConfig().window_years
31
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from .. import units as U
from ..errors import DataError, UsageError

METHODS = ("ml", "linear-scaling", "quantile-mapping", "qdm")
Method = Literal["ml", "linear-scaling", "quantile-mapping", "qdm"]
Transform = Literal["identity", "log", "logit"]
TRANSFORMS = ("identity", "log", "logit")

#: Variables corrected multiplicatively (in log space, changes preserved as ratios); the
#: diurnal temperature range too, as ISIMIP3BASD does (lower bound 0, "mixed" changes).
RATIO_VARIABLES = {"pr", "prc", "prsn", "tp", "sfcWind", "si10", "evspsbl", "mrro", "rsds",
                   "tasrange"}

#: Doubly bounded variables (CMIP names, then the ERA5/E-OBS names the readers map): between
#: 0 and 100 in ``%``, 0 and 1 in ``1``; corrected in logit space (``logit`` transform).
#: Relative humidity (hurs, ERA5 ``r2``/``2r``, E-OBS ``hu``), cloud cover (clt, ERA5
#: ``tcc``), sea-ice and snow cover (siconc, ERA5 ``ci``, snc), ISIMIP3BASD's tasskew
#: ((tas - tasmin) / tasrange) and prsnratio (prsn / pr). Not the relative humidity of
#: pressure levels (hur, ERA5 ``r``): with respect to ice it exceeds 100 % aloft.
FRACTION_VARIABLES = {"hurs", "hursmax", "hursmin", "r2", "2r", "hu", "clt", "tcc", "siconc",
                      "ci", "snc", "tasskew", "prsnratio"}

#: Variables that cannot be negative, whatever their units (fluxes, amounts, speeds,
#: radiation, the diurnal range): their corrected values are kept >= 0.
NON_NEGATIVE_VARIABLES = {
    "pr", "prc", "prsn", "tp", "rr", "mtpr", "avg_tprate", "mrro",
    "sfcWind", "sfcWindmax", "si10", "fg",
    "rsds", "rlds", "rsus", "rlus", "rsdt", "ssrd", "strd", "qq",
    "tasrange", "huss", "hus", "q", "prw", "clwvi", "snw", "snd",
}


def physical_bounds(variable: str, units: str | None) -> tuple[float | None, float | None]:
    """``(lower, upper)`` physical bounds of ``variable`` in ``units`` (None: unbounded).

    Temperature and pressure have none that matters; evaporation (``evspsbl``) can be
    negative (dew). A doubly bounded variable must be in ``%`` or ``1``.

    >>> physical_bounds("hurs", "%"), physical_bounds("hurs", "1"), physical_bounds("tasskew", "1")
    ((0.0, 100.0), (0.0, 1.0), (0.0, 1.0))
    >>> physical_bounds("rlds", "W m-2"), physical_bounds("tas", "K")
    ((0.0, None), (None, None))
    >>> physical_bounds("hurs", "K")
    Traceback (most recent call last):
    ...
    atmocorrect.errors.DataError: variable 'hurs' is a fraction bounded by 0 and 100 % (or 0 and 1 in units '1'), but its units are 'K'
    """
    if variable in FRACTION_VARIABLES:
        if U.same(units, "%"):
            return 0.0, 100.0
        if U.same(units, "1"):
            return 0.0, 1.0
        raise DataError(f"variable {variable!r} is a fraction bounded by 0 and 100 % (or 0 and "
                        f"1 in units '1'), but its units are {units!r}")
    if variable in NON_NEGATIVE_VARIABLES:
        return 0.0, None
    return None, None


def clip_to_bounds(x: np.ndarray, lower: float | None, upper: float | None) -> np.ndarray:
    """``x`` clipped to whichever bounds are given (None: that side unbounded); NaN stays.

    >>> clip_to_bounds(np.array([-3.0, 2.0, np.nan]), 0.0, None).tolist()
    [0.0, 2.0, nan]
    """
    if lower is not None:
        x = np.maximum(x, float(lower))
    if upper is not None:
        x = np.minimum(x, float(upper))
    return x


def default_transform(variable: str) -> Transform:
    """``log`` for precipitation-like (positive, skewed) variables, ``logit`` for fractions
    bounded on both sides (relative humidity, cloud cover), else ``identity``.

    >>> default_transform("pr"), default_transform("hurs"), default_transform("rlds")
    ('log', 'logit', 'identity')
    """
    if variable in FRACTION_VARIABLES:
        return "logit"
    return "log" if variable in RATIO_VARIABLES else "identity"


TRUNKS = ("mlp", "transformer")

#: Sub-daily data: one correction per time of day (``slots``) or over all hours (``pooled``).
DIURNAL = ("slots", "pooled")


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """The quantile network: a trunk from (season, point, neighbourhood, variable) to the
    coefficients of a monotone quantile function in the standard-normal score z.

    trunk:
        ``mlp``: an MLP on flat features (season harmonics, point lat/lon, calibration mean
        and spread of each variable at the point and averaged over its neighbourhood, variable
        one-hot). ``transformer``: one token per (variable, neighbourhood cell) carrying a
        space-time patch of that cell's calibration climatology (monthly means and standard
        deviations), attention across all of them and a query token conditioned on season,
        point and target variable (cells outside the grid are masked out of attention).
    hidden, layers:
        Width and depth of the MLP trunk.
    d_model, heads, transformer_layers:
        Sizes of the transformer trunk (token width, attention heads, pre-norm blocks).
    harmonics:
        Seasonal harmonics (sin/cos of 2 pi k f, k = 1..harmonics) in the input.
    ramps:
        Number of tanh ramps in the quantile function (shape beyond mean and spread); 0
        (default) chooses: 8, or 16 when a corrected variable has dry days (below its wet-day
        threshold on more than 1 % of the calibration steps, as daily precipitation): the step
        from its dry to its wet part needs narrower ramps (on the daily-precipitation variant
        of docs/offline.md 8 ramps left the calibration median of one point 0.30 mm/day low,
        16 ramps 0.17).
    neighbourhood:
        Radius, in grid cells, of the neighbourhood whose climatology is an input (the
        transformer has (2 radius + 1)**2 tokens per variable).
    hurdle:
        For a variable with dry days (see ``ramps``): learn its dry-day fraction explicitly,
        a logistic output per source fitted to the share of values below the wet-day
        threshold, and the quantile function of its wet values only; the two are composed
        into the quantile function of all values, whose dry part is the known distribution
        of the dry-day draws (:mod:`atmocorrect.offline.wetdays`). One smooth quantile
        function over dry and wet values cannot follow the step between them: on the
        daily-precipitation variant of docs/offline.md it missed the empirical calibration
        quantiles by 0.3-0.4 (log units) there and left 10 wet days a year too few.
        Variables without dry days are not affected.

    >>> NetworkConfig(trunk="attention")
    Traceback (most recent call last):
    ...
    atmocorrect.errors.UsageError: network trunk must be one of mlp, transformer, got 'attention'
    """

    trunk: str = "transformer"
    hidden: int = 64
    layers: int = 2
    d_model: int = 32
    heads: int = 2
    transformer_layers: int = 2
    harmonics: int = 6
    ramps: int = 0
    neighbourhood: int = 1
    hurdle: bool = True

    def __post_init__(self) -> None:
        if self.trunk not in TRUNKS:
            raise UsageError(
                f"network trunk must be one of {', '.join(TRUNKS)}, got {self.trunk!r}")
        for name in ("hidden", "layers", "harmonics", "d_model", "heads",
                     "transformer_layers"):
            if getattr(self, name) < 1:
                raise UsageError(f"network {name} must be >= 1, got {getattr(self, name)}")
        if self.ramps < 0:
            raise UsageError(f"network ramps must be >= 1 (or 0: automatic), got {self.ramps}")
        if self.d_model % self.heads:
            raise UsageError(f"network d_model ({self.d_model}) must be a multiple of heads "
                             f"({self.heads})")
        if self.neighbourhood < 0:
            raise UsageError(f"neighbourhood must be >= 0, got {self.neighbourhood}")

    def resolved(self, has_dry_days: bool) -> NetworkConfig:
        """The configuration with automatic settings chosen for the data.

        >>> NetworkConfig().resolved(has_dry_days=True).ramps, NetworkConfig(ramps=4).resolved(True).ramps
        (16, 4)
        >>> NetworkConfig().resolved(has_dry_days=False).hurdle
        False
        """
        out = self if has_dry_days or not self.hurdle else dataclasses.replace(
            self, hurdle=False)
        if out.ramps:
            return out
        return dataclasses.replace(out, ramps=16 if has_dry_days else 8)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> NetworkConfig:
        """From a TOML/JSON table; unknown keys are an error naming the known ones.

        >>> NetworkConfig.from_mapping({"trunk": "transformer"}).d_model
        32
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UsageError(f"unknown network setting(s) {', '.join(unknown)}; known: "
                             f"{', '.join(sorted(known))}")
        return cls(**dict(values))


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Training of the learned correction on a calibration period.

    steps, lr:
        Adam steps on the exact pinball (quantile) loss over all calibration values.
    quantile_levels:
        Number of equally spaced quantile levels the loss is evaluated at.
    points_per_step:
        Larger grids are visited in random subsets of this many points per step (all their
        seasonal bins and values), so a step costs the same whatever the grid size: about
        0.1 s on one thread; a grid of N points is seen N / points_per_step times less often
        per step, as in any minibatch training.
    threads:
        Torch threads (keep small on shared machines).
    detrend:
        Remove each dataset's linear trend within the calibration period (per point, fitted
        beside the seasonal harmonics, centred on the period, the mean kept) before fitting
        the quantile functions of additively corrected variables (temperature, pressure; not
        precipitation), as ISIMIP3BASD does: a pooled multi-decade sample otherwise mixes the
        trend into the spread and the tails. Chosen on the inner splits (docs/offline.md).
    diurnal:
        Sub-daily data only (daily and monthly data are not affected): ``slots`` (default)
        learns one correction per time of day -- each (variable, time-of-day slot), ``tas``
        at 00:00, 03:00, ..., is a variable of its own for the network, trained on that
        slot's daily series, and ``correct`` corrects each slot's series on its own --, so a
        wrong diurnal cycle is corrected; ``pooled``: one correction over all hours (the
        diurnal cycle is corrected only as far as it shows in the pooled distribution).

    >>> TrainConfig(diurnal="hourly")
    Traceback (most recent call last):
    ...
    atmocorrect.errors.UsageError: diurnal must be one of slots, pooled, got 'hourly'
    """

    calibration: tuple[int, int] = (1979, 2004)
    network: NetworkConfig = dataclasses.field(default_factory=NetworkConfig)
    steps: int = 1500
    lr: float = 1e-2
    quantile_levels: int = 64
    points_per_step: int = 64
    weight_decay: float = 1e-5
    seed: int = 0
    threads: int = 1
    transforms: Mapping[str, Transform] = dataclasses.field(default_factory=dict)
    detrend: bool = True
    diurnal: str = "slots"

    def __post_init__(self) -> None:
        if self.diurnal not in DIURNAL:
            raise UsageError(f"diurnal must be one of {', '.join(DIURNAL)}, got {self.diurnal!r}")
        if self.steps < 1 or self.quantile_levels < 2 or self.points_per_step < 1:
            raise UsageError("steps, points_per_step must be >= 1 and quantile_levels >= 2")
        if self.lr <= 0:
            raise UsageError(f"learning rate must be positive, got {self.lr}")
        for v, t in self.transforms.items():
            if t not in TRANSFORMS:
                raise UsageError(f"transform for {v!r} must be one of {', '.join(TRANSFORMS)}, "
                                 f"got {t!r}")

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

    window_years:
        Length of the running window over years (an "era", 31 as in ibicus QDM) whose
        seasonal mean and spread a value is measured against before its quantile level is
        read: a long scenario run is corrected era by era, keeping its trend.
    season_nodes:
        Seasonal resolution of the lookup tables of the learned quantile functions (73 =
        5 days; values in between are interpolated linearly); monthly data use 12.
    z_levels:
        Resolution of those tables in the standard-normal score (between -5 and 5).
    season_smoothing_days:
        Width of a circular moving average of the learned correction over the season (0: the
        network's own seasonal resolution).
    smoothing_space:
        Where the quantile functions are averaged over the season: ``physical`` (default;
        in the variable's units, then transformed back: the average of quantile functions
        there is the distribution whose mean is the average of the means) or
        ``transformed`` (in the space the correction is learned in; for a log-transformed
        variable a geometric average, which lowers the upper tail and the mean; the
        behaviour until 2026-12-07). The same for untransformed variables (temperature).
    rank:
        How a value's quantile level within its own era is found: ``empirical`` (the rank of
        its standardised anomaly among the era's values in a seasonal window, as QDM does) or
        ``parametric`` (from the learned simulation quantile function after matching the
        era's seasonal mean and spread to the calibration's).
    rank_window_days:
        Width of that seasonal window (91 days as ibicus's QDM; at least 3 months for monthly
        data).
    mean_adjust, mean_adjust_harmonics:
        How the mean correction of each era is pinned to the model's mean correction (which
        keeps the simulation's change of the mean exactly): ``harmonic`` (a smooth seasonal fit
        with that many harmonics; no steps in time), ``blocks`` (per 1/12 year) or ``none``.
    chunk_points:
        Grid points per dask chunk (memory ~ chunk_points x time steps x 8 bytes x a few).
    threads:
        Dask threads (and torch threads in each); 1 keeps memory and cores bounded.
    """

    window_years: int = 31
    season_nodes: int = 73
    z_levels: int = 201
    season_smoothing_days: float = 31.0
    smoothing_space: str = "physical"
    rank: str = "empirical"
    rank_window_days: float = 91.0
    mean_adjust: str = "harmonic"
    mean_adjust_harmonics: int = 3
    chunk_points: int = 256
    threads: int = 1

    def __post_init__(self) -> None:
        if self.window_years < 1 or self.season_nodes < 1 or self.z_levels < 16:
            raise UsageError("window_years, season_nodes must be >= 1 and z_levels >= 16")
        if self.smoothing_space not in ("physical", "transformed"):
            raise UsageError("smoothing_space must be physical or transformed, got "
                             f"{self.smoothing_space!r}")
        if self.rank not in ("empirical", "parametric"):
            raise UsageError(f"rank must be empirical or parametric, got {self.rank!r}")
        if self.mean_adjust not in ("harmonic", "blocks", "none"):
            raise UsageError(f"mean_adjust must be harmonic, blocks or none, got {self.mean_adjust!r}")
        if self.season_smoothing_days < 0:
            raise UsageError("season_smoothing_days must be >= 0")
        if self.rank_window_days <= 0 or self.mean_adjust_harmonics < 0:
            raise UsageError("rank_window_days must be > 0 and mean_adjust_harmonics >= 0")
        if self.chunk_points < 1 or self.threads < 1:
            raise UsageError("chunk_points and threads must be >= 1")

    def nodes(self, frequency: str) -> int:
        return 12 if frequency in ("month", "year") else self.season_nodes

    def z_grid(self) -> np.ndarray:
        """The standard-normal scores the quantile functions are tabulated at."""
        return np.linspace(-5.0, 5.0, self.z_levels)

    def rank_half_width(self, frequency: str) -> float:
        """Half the seasonal window a value is ranked in, as a fraction of a year (at least
        the month and its neighbours for monthly data).

        >>> round(ApplyConfig().rank_half_width("day") * 365.25, 1), ApplyConfig().rank_half_width("month")
        (45.5, 0.125)
        """
        half = self.rank_window_days / 365.25 / 2.0
        return max(half, 1.5 / 12.0) if frequency in ("month", "year") else half


def checkpoint_apply_config(stored: Mapping[str, Any] | None) -> ApplyConfig:
    """The apply settings a checkpoint was written with (its ``hyperparameters["apply"]``).

    Settings added after it was written take the value that reproduces its corrections:
    ``smoothing_space = "transformed"`` for checkpoints from before 2026-12-07.

    >>> checkpoint_apply_config({"window_years": 31}).smoothing_space
    'transformed'
    >>> checkpoint_apply_config({"smoothing_space": "physical"}).smoothing_space
    'physical'
    """
    settings: dict[str, Any] = {"smoothing_space": "transformed"}
    settings.update(stored or {})
    return ApplyConfig(**settings)


def parse_mapping(items: Sequence[str], what: str) -> dict[str, str]:
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}``, for repeated ``--option KEY=VALUE``.

    >>> parse_mapping(["tas=t2m"], "--reference-name")
    {'tas': 't2m'}
    """
    out = {}
    for item in items:
        if "=" not in item:
            raise UsageError(f"{what} {item!r} is not of the form KEY=VALUE")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def add_pair_arguments(parser: Any, *, from_checkpoint: bool = False) -> None:
    """The options of reading a simulation/reference pair (:class:`~atmocorrect.data.pairs.
    PairConfig`), the same for ``train offline``, ``correct``, ``evaluate offline`` and the
    demo. ``from_checkpoint``: unset options default to what the checkpoint was trained with.

    >>> import argparse
    >>> p = argparse.ArgumentParser()
    >>> add_pair_arguments(p)
    >>> a = p.parse_args(["--outside", "drop", "--reference-name", "tasmax=t2m"])
    >>> a.outside, a.reference_name, a.convert_calendar, a.accumulation_period
    ('drop', ['tasmax=t2m'], True, None)
    """
    import argparse

    default = " (default: as the checkpoint was trained, else {})" if from_checkpoint else \
        " (default: {})"
    parser.add_argument("--reference-name", action="append", default=[], metavar="VAR=NAME",
                        help="the reference's name of a variable when not the usual ERA5 one "
                        "(repeatable), e.g. tasmax=t2m")
    parser.add_argument("--outside", choices=("error", "drop"),
                        default=None if from_checkpoint else "error",
                        help="simulation cells outside the reference box, or where the "
                        "reference has no value (a land-sea mask): an error, or dropped (left "
                        "out of calibration and scores; masked cells are written as missing "
                        "values)" + default.format("error"))
    parser.add_argument("--accumulation-period", type=float, default=None, metavar="SECONDS",
                        help="period an accumulated reference amount refers to, on a daily axis "
                        "(ERA5 tp in m: 86400 daily totals, 3600 daily means of hourly values) "
                        "or a 3-/6-hourly one (3600: ERA5 hourly data downloaded every 3 or 6 "
                        "hours; the step: amounts over the whole step); hourly data: the step")
    parser.add_argument("--convert-calendar", action=argparse.BooleanOptionalAction,
                        default=None if from_checkpoint else True,
                        help="convert a daily reference (or a sub-daily one, once aggregated to "
                        "days) to the simulation's calendar (noleap, 360_day) when they differ"
                        + default.format("yes"))
