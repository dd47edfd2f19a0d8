"""``atmocorrect evaluate offline``: score corrected simulations against a reference.

Every file is compared with the reference interpolated to its points, over a held-out period:
mean bias, seasonal-cycle MAE (12 monthly means), 5th/50th/95th percentile bias, standard
deviation ratio, frost days per year (daily temperature), wet days (>= 1 mm) per year (daily
precipitation), lag-1 autocorrelation difference (of the series, and of its anomalies from
the seasonal cycle); and, where a corrected baseline
and a corrected future are given, the climate-change signal and how much the correction
changed it relative to ``raw``. Output: a Markdown table, a JSON report
``{"methods": {name: {metric: value}}, "meta": {...}}`` and plots.

Files with ensemble members (a ``member_id``/``realization`` dim; never the reference) are
scored member by member, each member against the one reference; the table and ``methods``
hold the mean over members (as every metric is a mean over points), and the report gains
``"members": {name: {member: {metric: value}}}``. The climate-change signal likewise: per
member (the baseline's member of the same label; of the same position where neither file
labels its members: :func:`~atmocorrect.data.coords.match_members`), then averaged.

Example
-------
::

    atmocorrect evaluate offline --reference era5.nc --period 2005-2014 \\
        --method raw=tas_hist.nc --method ml=corrected.nc --method qdm=qdm.nc \\
        --signal raw=tas_hist.nc:tas_ssp585.nc --signal ml=ml_hist.nc:ml_ssp585.nc \\
        --json report.json --plots runs/offline/

>>> table = markdown_table({"methods": {"raw": {"mean_bias": 0.1}, "qdm": {"mean_bias": 0.2}}})
>>> print(table.splitlines()[0])
| method | mean bias |
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .. import units as U
from ..data.conform import TEMPERATURE_DIFFERENCES
from ..data.coords import (
    cell_latlon,
    check_time_and_grid_only,
    match_members,
    member_dims,
    member_labels,
)
from ..data.pairs import PairConfig, load_pair
from ..data.readers import open_many
from ..data.timeaxis import format_period, months, parse_period, require_period, select_years
from ..errors import DataError, UsageError
from .config import add_pair_arguments, parse_mapping
from .metrics import (
    METRICS,
    SIGNAL_METRICS,
    TimeInfo,
    at_least_as_good,
    bootstrap_comparison,
    mean_over_members,
    member_metrics,
)
from .wetdays import PRECIPITATION_VARIABLES

TEMPERATURE_NAMES = {"tas", "t2m", "tasmin", "tasmax", "ta", "t", "2t"}


@dataclasses.dataclass(frozen=True)
class EvaluationSpec:
    """What to evaluate.

    methods:
        Name -> file(s) covering the held-out ``period`` (``raw`` is the uncorrected input).
    signals:
        Name -> (corrected baseline file(s), corrected future file(s)) for the climate-change
        signal; the baseline is averaged over ``baseline_period``, the future over its whole
        span.
    """

    reference: tuple[str, ...]
    variables: tuple[str, ...]
    period: tuple[int, int]
    methods: Mapping[str, tuple[str, ...]]
    signals: Mapping[str, tuple[str | Sequence[str], str | Sequence[str]]] = dataclasses.field(
        default_factory=dict)
    baseline_period: tuple[int, int] = (1979, 2004)
    pair: PairConfig | None = None
    plots: str | None = None
    bootstrap: int = 0


def _frost_threshold(var: str, units: str | None, attrs: Mapping[str, Any]) -> float | None:
    is_temp = var in TEMPERATURE_NAMES or attrs.get("standard_name") == "air_temperature"
    if not is_temp or var.lower() in TEMPERATURE_DIFFERENCES:  # a range has no frost days
        return None
    if U.same(units, "K"):
        return 273.15
    if U.same(units, "degC"):
        return 0.0
    return None


def _wet_day_threshold(var: str, units: str | None) -> float | None:
    """1 mm/day (ETCCDI R1mm) for precipitation reported in mm day-1, else None."""
    if var in PRECIPITATION_VARIABLES and U.same(units, "mm day-1"):
        return 1.0
    return None


def event_thresholds(var: str, units: str | None, attrs: Mapping[str, Any]
                     ) -> tuple[float | None, float | None]:
    """The frost-day and wet-day thresholds of ``var`` in ``units`` (None: not counted), as
    the evaluation counts them: 273.15 K or 0 degC for temperatures, 1 mm/day for
    precipitation in mm day-1.

    >>> event_thresholds("tas", "K", {}), event_thresholds("pr", "mm day-1", {})
    ((273.15, None), (None, 1.0))
    """
    return _frost_threshold(var, units, attrs), _wet_day_threshold(var, units)


def display_units(units: str) -> tuple[float, str]:
    """Scale factor and units the metrics are reported in: precipitation fluxes in
    mm day-1 (a table of 1e-5 kg m-2 s-1 would read 0.000), everything else as stored.

    >>> display_units("kg m-2 s-1"), display_units("K")
    ((86400.0, 'mm day-1'), (1.0, 'K'))
    """
    if U.same(units, "kg m-2 s-1"):
        return 86400.0, "mm day-1"
    return 1.0, units


def _same_cells(ds, cells: xr.Dataset, source: str):
    """``ds`` cropped to the cells of ``cells`` (the evaluated simulation, inside the
    reference box): rows and columns of a regular grid, a block of a curvilinear grid, or
    points (see :func:`~atmocorrect.offline.apply.crop_to_cells`)."""
    from .apply import cells_of, crop_to_cells

    return crop_to_cells(ds, *cells_of(cells), source)


def _paths(p: str | Sequence[str]) -> str | list[str]:
    return p if isinstance(p, str) else [str(x) for x in p]


def _flat(da) -> np.ndarray:
    return np.asarray(da.values, dtype=np.float64).reshape(da.shape[0], -1)


def _by_member(da: xr.DataArray) -> tuple[list[str], np.ndarray]:
    """The labels of ``da``'s ensemble members (``[]`` for a single run; several member dims:
    ``"r1i1p1f1/0"``) and its values as (time, members, points), the points in the order of
    ``da``'s other dims (a single run: one member)."""
    dims = member_dims(da)
    rest = [d for d in da.dims if d != "time" and d not in dims]
    values = np.asarray(da.transpose("time", *dims, *rest).values, dtype=np.float64)
    n = int(np.prod([da.sizes[d] for d in dims], dtype=np.int64))
    labels = ["/".join(map(str, lab)) for lab in member_labels(da, dims)] if dims else []
    return labels, values.reshape(values.shape[0], n, -1)


def _grid_like(ref: xr.DataArray, sim: xr.DataArray) -> xr.DataArray:
    """``ref`` (time and the grid) with its dims in the order of ``sim``'s grid dims."""
    rest = [d for d in sim.dims if d != "time" and d not in member_dims(sim)]
    return ref.transpose("time", *rest) if set(ref.dims) == {"time", *rest} else ref


def _members_entry(da: xr.DataArray, labels: Sequence[str]) -> dict[str, Any]:
    """What ``meta.members`` says of a method's file: its member dims and members."""
    return {"dims": list(member_dims(da)), "count": len(labels), "labels": list(labels)}


def _record_members(report: dict[str, Any], name: str, labels: Sequence[str],
                    values: Sequence[Mapping[str, float]], prefix: str = "") -> None:
    """Per-member values of method ``name`` under ``report["members"][name][member]``."""
    per = report.setdefault("members", {}).setdefault(name, {})
    for label, vals in zip(labels, values, strict=True):
        per.setdefault(label, {}).update({f"{prefix}{k}": v for k, v in vals.items()})


def evaluate(spec: EvaluationSpec) -> dict[str, Any]:
    """Compute the report; writes plots when ``spec.plots`` is a directory."""
    if not spec.methods:
        raise UsageError("nothing to evaluate: give at least one --method NAME=FILE")
    multi = len(spec.variables) > 1
    report: dict[str, Any] = {"methods": {}, "meta": {}}
    cycles: dict[str, dict[str, np.ndarray]] = {v: {} for v in spec.variables}
    quants: dict[str, dict[str, np.ndarray]] = {v: {} for v in spec.variables}
    ref_q: dict[str, np.ndarray] = {}
    units: dict[str, str] = {}
    levels = np.arange(1, 100)
    kept: dict[str, dict[str, Any]] = {}
    maps: dict[str, dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
    members_of: dict[str, dict[str, Any]] = {}
    for name, files in spec.methods.items():
        cfg = dataclasses.replace(spec.pair, variables=spec.variables) if spec.pair else \
            PairConfig(variables=spec.variables)
        # ensemble members are scored one by one against the reference (which has none)
        pair = load_pair(list(files), list(spec.reference),
                         dataclasses.replace(cfg, pool_members=True))
        require_period(pair.sim, spec.period, f"{name} ({', '.join(files)})", "--period")
        require_period(pair.ref, spec.period, f"the reference {', '.join(spec.reference)}",
                       "--period")
        sim = select_years(pair.sim, spec.period, f"{name} ({', '.join(files)})")
        ref = select_years(pair.ref, spec.period, "the reference")
        row: dict[str, float] = {}
        cells = xr.Dataset(coords={"lat": sim["lat"], "lon": sim["lon"]})
        times_s = TimeInfo.of(sim["time"].values, pair.frequency)
        times_r = TimeInfo.of(ref["time"].values, pair.frequency)
        for var in spec.variables:
            scale, u = display_units(str(sim[var].attrs.get("units", "")))
            labels, s3 = _by_member(sim[var])
            s3, r = s3 * scale, _flat(_grid_like(ref[var], sim[var])) * scale
            units[var] = u
            thr, wet = event_thresholds(var, u, sim[var].attrs)
            per_member = member_metrics(s3, r, times_s, times_r, pair.frequency, thr, wet)
            m = mean_over_members(per_member)
            if labels:
                _record_members(report, name, labels, per_member, f"{var}:" if multi else "")
                members_of[name] = _members_entry(sim[var], labels)
            if spec.bootstrap and name in ("ml", "qdm"):
                kept.setdefault(var, {})[name] = s3 if labels else s3[:, 0]
                kept[var]["_ref"] = (r, sim["time"].values, ref["time"].values, pair.frequency, thr,
                                     wet)
            for k, v in m.items():
                row[f"{var}:{k}" if multi else k] = v
            maps.setdefault(var, {})[name] = _bias_field(sim[var], s3, r)
            # for the plots: every member's series at the scored points, as marginal_metrics
            scored = np.isfinite(s3).any(0) & np.isfinite(r).any(0)
            s = s3[:, scored]
            r = r[:, scored.any(0)]
            ms, mr = months(sim["time"].values), months(ref["time"].values)
            cycles[var][name] = np.array([np.nanmean(s[ms == k]) for k in range(1, 13)])
            cycles[var].setdefault("reference", np.array([np.nanmean(r[mr == k]) for k in range(1, 13)]))
            quants[var][name] = np.nanmean(np.nanpercentile(s, levels, axis=0), axis=1)
            ref_q.setdefault(var, np.nanmean(np.nanpercentile(r, levels, axis=0), axis=1))
        report["methods"][name] = row
    signals: dict[str, dict[str, np.ndarray]] = {}
    signal_members: dict[str, list[str]] = {}
    for name, (base_paths, fut_paths) in spec.signals.items():
        base_file, fut_file = (f if isinstance(f, str) else ", ".join(map(str, f))
                               for f in (base_paths, fut_paths))
        base = select_years(open_many(_paths(base_paths)), spec.baseline_period,
                            f"{name} baseline {base_file}")
        fut = open_many(_paths(fut_paths))
        if spec.pair is not None and spec.pair.outside == "drop":
            # the cells that were evaluated (inside the reference box), in every file alike
            base, fut = (_same_cells(d, cells, f) for d, f in ((base, base_file), (fut, fut_file)))
        for var in spec.variables:
            if var not in base or var not in fut:
                raise DataError(f"signal files for {name!r} lack {var!r} ({base_file}, {fut_file})")
            what_b, what_f = f"{name} baseline {base_file}", f"{name} future {fut_file}"
            for da, what in ((base[var], what_b), (fut[var], what_f)):
                check_time_and_grid_only(da, what, "signal file", allow_members=True)
            key = f"{var}:climate_change_signal" if multi else "climate_change_signal"
            scale, _ = display_units(str(base[var].attrs.get("units", "")))
            # each future member's own baseline member (the scenario continues its run)
            pick = match_members(fut[var], base[var], what_f, what_b,
                                 "the climate-change signal is taken member by member")
            labels, f3 = _by_member(fut[var])
            in_order = base[var].isel(pick).transpose("time", *member_dims(fut[var]), ...)
            b3 = _by_member(in_order)[1]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN (masked) points
                # (members, points): each member's future minus its own baseline
                signals.setdefault(name, {})[key] = (np.nanmean(f3 * scale, 0)
                                                     - np.nanmean(b3 * scale, 0))
            signal_members[name] = labels
            if labels:
                members_of.setdefault(name, _members_entry(fut[var], labels))
    _add_signals(report, signals, signal_members)
    report["meta"] = {
        "variables": list(spec.variables),
        "units": units,
        "period": format_period(spec.period),
        "baseline_period": format_period(spec.baseline_period),
        "reference": list(spec.reference),
        "files": {k: list(v) for k, v in spec.methods.items()},
        "signal_files": {k: list(v) for k, v in spec.signals.items()},
        "note": "biases are simulation minus reference, averaged over points; "
                "std_ratio is simulation/reference",
    }
    if members_of:
        report["meta"]["members"] = members_of
        report["meta"]["note"] += (
            "; files with ensemble members: metrics and signal per member (under 'members'), "
            "the method's value the mean over its members")
    if "ml" in report["methods"] and "qdm" in report["methods"]:
        report["meta"]["ml_vs_qdm"] = compare(report, "ml", "qdm")
    boot = {}
    for var, d in kept.items():
        if "ml" in d and "qdm" in d:
            r, st, rt, freq, thr, wet = d["_ref"]
            res = bootstrap_comparison(d["ml"], d["qdm"], r, st, rt, freq, thr, n=spec.bootstrap,
                                       wet_threshold=wet)
            boot.update({(f"{var}:{k}" if multi else k): v for k, v in res.items()})
    if boot:
        report["meta"]["ml_vs_qdm_bootstrap"] = {
            "resamples": spec.bootstrap,
            "method": "held-out years resampled with replacement (simulation and reference "
                      "independently; the same years for every ensemble member, a method's "
                      "metric the mean over its members); share of resamples where ml is at "
                      "least as good as qdm",
            "metrics": boot,
        }
    if spec.plots:
        from .plots import bias_map_plot, qq_plot, seasonal_cycle_plot

        out = Path(spec.plots)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for var in spec.variables:
            suffix = f"_{var}" if multi else ""
            written.append(str(seasonal_cycle_plot(
                cycles[var], var, units[var], out / f"seasonal_cycle{suffix}.png",
                f"{var}: monthly means, {format_period(spec.period)}")))
            written.append(str(qq_plot(
                quants[var], ref_q[var], var, units[var], out / f"qq{suffix}.png",
                f"{var}: quantiles 1-99, {format_period(spec.period)}")))
            fields = _same_shape(maps.get(var, {}))
            if fields:
                lat, lon = next(iter(fields.values()))[1:]
                written.append(str(bias_map_plot(
                    {k: v[0] for k, v in fields.items()}, lat, lon, var, units[var],
                    out / f"bias_map{suffix}.png",
                    f"{var}: time-mean bias against the reference, {format_period(spec.period)}")))
        report["meta"]["plots"] = written
    return report


def _add_signals(report: dict[str, Any], signals: Mapping[str, dict[str, np.ndarray]],
                 labels: Mapping[str, Sequence[str]]) -> None:
    """Put the climate-change signals (per method and key: an array members x points) into
    the report: per member the mean over the points that every method has (those masked in
    the reference are missing in the corrected files but present in the raw one), per method
    the mean over its members; with ``raw`` among them, the change relative to raw (per
    member where raw has that member)."""
    means: dict[str, dict[str, np.ndarray]] = {name: {} for name in signals}
    for key in {k for vals in signals.values() for k in vals}:
        per_point = [vals[key] for vals in signals.values() if key in vals]
        common = np.logical_and.reduce([np.isfinite(p).all(0) for p in per_point])
        for name, vals in signals.items():
            if key in vals:
                means[name][key] = (np.mean(vals[key][:, common], axis=1) if common.any()
                                    else np.full(vals[key].shape[0], np.nan))
    raw = means.get("raw")
    for name, vals in means.items():
        row = report["methods"].setdefault(name, {})
        row.update({key: float(np.mean(v)) for key, v in vals.items()})
        per_member: list[dict[str, float]] = [{} for _ in labels[name]]
        for key, v in vals.items():
            change = key.replace("climate_change_signal", "climate_change_signal_change")
            for k, one in enumerate(per_member):
                one[key] = float(v[k])
            if raw is None or key not in raw:
                continue
            row[change] = row[key] - float(np.mean(raw[key]))
            raw_of = dict(zip(labels["raw"], raw[key], strict=False))  # single run: none
            for label, one in zip(labels[name], per_member, strict=True):
                if label in raw_of:
                    one[change] = one[key] - float(raw_of[label])
        if labels[name]:
            _record_members(report, name, labels[name], per_member)


def _bias_field(da: xr.DataArray, sim: np.ndarray, ref: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Time-mean bias per cell (``sim`` time x points, or time x members x points: the mean
    over members of each member's; ``ref`` time x points; in display units) in the
    shape of the grid (a regular grid as (lat, lon), a curvilinear one along its dims, points
    as a row), with the latitude and longitude of every cell."""
    members = member_dims(da)
    if members:
        da = da.isel({d: 0 for d in members}, drop=True)
    la, lo = (c.values.astype(float) for c in cell_latlon(da))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # cells without values: NaN
        bias = np.nanmean(sim, 0) - np.nanmean(ref, 0)
        bias = bias if bias.ndim == 1 else np.mean(bias, axis=0)
    shape = la.shape if la.size == bias.size else (bias.size,)
    return bias.reshape(shape), la.reshape(shape), lo.reshape(shape)


def _same_shape(fields: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]]
                ) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The methods whose bias fields lie on the same cells as the first one's (all, unless a
    file was corrected on other cells), for one map with a shared colour scale."""
    if not fields:
        return {}
    first = next(iter(fields.values()))
    return {k: v for k, v in fields.items()
            if v[0].shape == first[0].shape and np.allclose(v[1], first[1], equal_nan=True)
            and np.allclose(v[2], first[2], equal_nan=True)}


def _metric_keys(report: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    present: set[str] = set()
    for row in report["methods"].values():
        present.update(row)
    keys = []
    variables = report.get("meta", {}).get("variables") or [None]
    for var in variables:
        for key, label, how in METRICS + SIGNAL_METRICS:
            full = f"{var}:{key}" if var and len(variables) > 1 else key
            if full in present:
                keys.append((full, f"{var} {label}" if len(variables) > 1 else label, how))
    return keys


def compare(report: Mapping[str, Any], a: str, b: str) -> dict[str, bool | None]:
    """Per metric: is method ``a`` at least as good as ``b``?"""
    ra, rb = report["methods"][a], report["methods"][b]
    return {k: at_least_as_good(ra.get(k), rb.get(k), how)
            for k, _, how in _metric_keys(report) if how != "none"}


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return f"{v:+.3f}" if abs(v) < 100 else f"{v:+.1f}"


def markdown_table(report: Mapping[str, Any]) -> str:
    """The side-by-side table: one row per method, one column per metric."""
    keys = _metric_keys(report)
    head = "| method | " + " | ".join(label for _, label, _ in keys) + " |"
    sep = "|---|" + "---|" * len(keys)
    rows = [head, sep]
    for name, vals in report["methods"].items():
        rows.append(f"| {name} | " + " | ".join(_fmt(vals.get(k)) for k, _, _ in keys) + " |")
    cmp_ = report.get("meta", {}).get("ml_vs_qdm")
    if cmp_:
        marks = {True: "yes", False: "**no**", None: "n/a"}
        rows.append("| ml at least as good as qdm | " + " | ".join(
            marks[cmp_.get(k)] if k in cmp_ else "" for k, _, _ in keys) + " |")
    boot = report.get("meta", {}).get("ml_vs_qdm_bootstrap")
    if boot:
        m = boot["metrics"]
        rows.append(f"| share of {boot['resamples']} year resamples where ml >= qdm | " + " | ".join(
            f"{m[k]['share_at_least_as_good']:.2f}" if k in m else "" for k, _, _ in keys) + " |")
    return "\n".join(rows)


def members_note(report: Mapping[str, Any], json_path: str | None = None) -> str | None:
    """A line under the table naming the methods whose values are means over ensemble
    members (None when there are none).

    >>> print(members_note({"meta": {"members": {"raw": {"dims": ["member_id"], "count": 2}}}},
    ...                    "report.json"))
    raw: means over 2 ensemble members (member_id); per-member values under 'members' in report.json
    """
    entries = report.get("meta", {}).get("members") or {}
    if not entries:
        return None
    groups: dict[tuple[int, str], list[str]] = {}
    for name, entry in entries.items():
        groups.setdefault((entry["count"], ", ".join(entry["dims"])), []).append(name)
    what = "; ".join(f"{', '.join(names)}: means over {n} ensemble members ({dims})"
                     for (n, dims), names in groups.items())
    where = f"under 'members' in {json_path}" if json_path else ": pass --json FILE"
    return f"{what}; per-member values{' ' if json_path else ''}{where}"


# ------------------------------------------------------------------------- command line
DESCRIPTION = "Score offline corrections against a reference on a held-out period."
EPILOG = """\
example (the held-out decade of the shipped daily pair):
  atmocorrect evaluate offline --reference era5_daily.nc --period 2005-2014 \\
      --method raw=tas_hist.nc --method ml=corrected.nc --method qdm=qdm.nc \\
      --signal raw=tas_hist.nc:tas_ssp585.nc --signal ml=ml_1979-2004.nc:ml_ssp585.nc \\
      --json report.json --plots runs/offline/
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``atmocorrect evaluate offline``."""
    parser.add_argument("--reference", nargs="+", required=True, metavar="FILE",
                        help="reference file(s), e.g. ERA5 (interpolated to each file's points)")
    parser.add_argument("--variables", nargs="+", default=["tas"], metavar="VAR",
                        help="variables to score (simulation names; default tas)")
    parser.add_argument("--period", default="2005-2014", help="held-out years (default 2005-2014)")
    parser.add_argument("--method", action="append", default=[], metavar="NAME=FILE",
                        help="a corrected file covering the period; repeat (raw=the input)")
    parser.add_argument("--signal", action="append", default=[], metavar="NAME=BASE:FUTURE",
                        help="corrected baseline and future files for the climate-change signal")
    parser.add_argument("--baseline-period", default="1979-2004",
                        help="years of the baseline for the signal (default 1979-2004)")
    add_pair_arguments(parser)
    parser.add_argument("--json", metavar="FILE", help="write the report as JSON")
    parser.add_argument("--plots", metavar="DIR", help="write seasonal-cycle, Q-Q and bias-map plots here")
    parser.add_argument("--bootstrap", type=int, default=0, metavar="N",
                        help="resample the held-out years N times to show how robust the "
                        "ml-vs-qdm comparison is to their weather (0: off)")


def run(args: argparse.Namespace) -> int:
    methods = {k: (v,) for k, v in parse_mapping(args.method, "--method").items()}
    signals = {}
    for k, v in parse_mapping(args.signal, "--signal").items():
        if ":" not in v:
            raise UsageError(f"--signal {k}={v}: expected BASELINE_FILE:FUTURE_FILE")
        b, f = v.split(":", 1)
        signals[k] = (b, f)
    spec = EvaluationSpec(
        reference=tuple(args.reference),
        variables=tuple(args.variables),
        period=parse_period(args.period),
        methods=methods,
        signals=signals,
        baseline_period=parse_period(args.baseline_period),
        pair=PairConfig(variables=tuple(args.variables),
                        reference_names=parse_mapping(args.reference_name, "--reference-name"),
                        outside=args.outside, convert_calendar=args.convert_calendar,
                        accumulation_period=args.accumulation_period),
        plots=args.plots,
        bootstrap=args.bootstrap,
    )
    report = evaluate(spec)
    print(markdown_table(report))
    note = members_note(report, args.json)
    if note:
        print(f"\n{note}")
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {path}")
    return 0
