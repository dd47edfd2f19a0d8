"""Checkpoint directories: ``manifest.json`` + ``weights.safetensors``.

A checkpoint never executes code when loaded: weights are read with safetensors only, after
their sha256 has been checked against the manifest, and a file that looks like a pickle (what
``torch.save`` writes) is refused before anything reads it.

Example
-------
>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp()) / "ckpt"
>>> write_analytic_checkpoint(d, field="t", units="K", tendency=0.5)  # doctest: +ELLIPSIS
PosixPath('...ckpt')
>>> read_manifest(d).fields[0].name
't'
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import os
import platform
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .atomic import atomic_directory, write_json
from .config import RunConfig
from .errors import CheckpointError, UsageError

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
WEIGHTS_NAME = "weights.safetensors"
# The first bytes of the formats torch.save and pickle.dump write.
_PICKLE_MAGICS = (b"PK\x03\x04", b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")


@dataclasses.dataclass(frozen=True)
class FieldSpec:
    """One field the model reads and corrects.

    dims are named in the host's (Fortran) declaration order, fastest-varying first, e.g.
    ``("lon", "lat", "lev")`` for ``t(nlon, nlat, nlev)``. ``dims=None`` accepts any rank;
    ``levels=None`` accepts any number of levels (the size of a dim named ``lev``).
    """

    name: str
    units: str = "1"
    dims: tuple[str, ...] | None = None
    levels: int | None = None
    corrected: bool = True

    @classmethod
    def from_mapping(cls, m: Mapping[str, Any]) -> FieldSpec:
        try:
            dims = m.get("dims")
            return cls(
                name=str(m["name"]),
                units=str(m.get("units", "1")),
                dims=tuple(dims) if dims is not None else None,
                levels=int(m["levels"]) if m.get("levels") is not None else None,
                corrected=bool(m.get("corrected", True)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"invalid field entry {dict(m)!r} in manifest: {exc}") from exc


@dataclasses.dataclass(frozen=True)
class Manifest:
    fields: tuple[FieldSpec, ...]
    model_class: str
    hyperparameters: dict[str, Any]
    halo: tuple[int, ...] = ()
    periodic: tuple[bool, ...] = ()
    time_window: int = 1
    timestep_seconds: float | None = None
    normalization: dict[str, Any] = dataclasses.field(default_factory=dict)
    run: RunConfig = dataclasses.field(default_factory=RunConfig)
    provenance: dict[str, Any] = dataclasses.field(default_factory=dict)
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
    weights_sha256: str | None = None
    versions: dict[str, str] = dataclasses.field(default_factory=dict)
    #: The AOTInductor package of the network (``atmocorrect checkpoint export-aot``):
    #: ``{"file", "sha256", "torch", "platform": {...}}``, or None (older checkpoints).
    aot: dict[str, Any] | None = None
    schema_version: int = SCHEMA_VERSION

    def field(self, name: str) -> FieldSpec:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "schema_version": self.schema_version,
            "format": "atmocorrect-checkpoint",
            "fields": [
                {
                    "name": f.name,
                    "units": f.units,
                    "dims": list(f.dims) if f.dims is not None else None,
                    "levels": f.levels,
                    "corrected": f.corrected,
                }
                for f in self.fields
            ],
            "grid": {"halo": list(self.halo), "periodic": list(self.periodic)},
            "time_window": self.time_window,
            "timestep_seconds": self.timestep_seconds,
            "normalization": self.normalization,
            "model": {"class": self.model_class, "hyperparameters": self.hyperparameters},
            "run": self.run.to_dict(),
            "provenance": self.provenance,
            "metrics": self.metrics,
            "weights": (
                {"file": WEIGHTS_NAME, "sha256": self.weights_sha256}
                if self.weights_sha256
                else None
            ),
            "versions": self.versions,
        }
        if self.aot is not None:
            out["aot"] = dict(self.aot)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "manifest") -> Manifest:
        if not isinstance(d, Mapping):
            raise CheckpointError(f"{source}: expected a JSON object, got {type(d).__name__}")
        version = d.get("schema_version")
        if version != SCHEMA_VERSION:
            raise CheckpointError(
                f"{source}: schema_version {version!r} is not supported (expected {SCHEMA_VERSION})"
            )
        try:
            fields = tuple(FieldSpec.from_mapping(f) for f in d["fields"])
            if not fields:
                raise CheckpointError(f"{source}: the manifest lists no fields")
            model = d["model"]
            grid = d.get("grid") or {}
            weights = d.get("weights")
            aot = d.get("aot")
            if aot is not None and not (
                isinstance(aot, Mapping) and isinstance(aot.get("file"), str) and isinstance(aot.get("sha256"), str)
            ):
                raise CheckpointError(f"{source}: the aot entry must name a file and its sha256, got {aot!r}")
            return cls(
                fields=fields,
                model_class=str(model["class"]),
                hyperparameters=dict(model.get("hyperparameters") or {}),
                halo=tuple(int(h) for h in grid.get("halo", ())),
                periodic=tuple(bool(p) for p in grid.get("periodic", ())),
                time_window=int(d.get("time_window", 1)),
                timestep_seconds=d.get("timestep_seconds"),
                normalization=dict(d.get("normalization") or {}),
                run=RunConfig.from_mapping(d.get("run") or {}),
                provenance=dict(d.get("provenance") or {}),
                metrics=dict(d.get("metrics") or {}),
                weights_sha256=(weights or {}).get("sha256"),
                versions=dict(d.get("versions") or {}),
                aot=dict(aot) if aot is not None else None,
            )
        except CheckpointError:
            raise
        except (KeyError, TypeError, ValueError, UsageError) as exc:
            raise CheckpointError(f"{source}: invalid manifest ({type(exc).__name__}: {exc})") from exc


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file, or of a directory (a zarr store): every file below it in sorted
    order, each preceded by its relative path, so a renamed or changed chunk changes it."""
    path = Path(path)
    h = hashlib.sha256()
    store = path.is_dir()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if store else [path]
    for file in files:
        if store:
            h.update(file.relative_to(path).as_posix().encode() + b"\0")
        with open(file, "rb") as fh:
            while block := fh.read(chunk):
                h.update(block)
    return h.hexdigest()


def read_manifest(directory: str | Path) -> Manifest:
    """Read and validate ``manifest.json`` of a checkpoint directory."""
    directory = Path(directory)
    if not directory.exists():
        raise CheckpointError(f"checkpoint directory {directory} does not exist")
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint path {directory} is not a directory")
    path = directory / MANIFEST_NAME
    if not path.is_file():
        raise CheckpointError(f"checkpoint {directory} has no {MANIFEST_NAME}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from exc
    return Manifest.from_dict(data, source=str(path))


def _check_safetensors_header(path: Path) -> None:
    """Accept only the safetensors layout (8-byte little-endian header length, then a JSON
    object); say so when the file is a pickle or a torch.save zip instead."""
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        head = fh.read(9)
    if len(head) == 9:
        (header_len,) = struct.unpack("<Q", head[:8])
        if head[8:9] == b"{" and 2 <= header_len <= size - 8:
            return
    if any(head.startswith(m) for m in _PICKLE_MAGICS):
        raise CheckpointError(
            f"{path} is a pickle/torch.save file, not safetensors; atmocorrect never unpickles "
            "weights. Re-export the weights with safetensors from a trusted environment."
        )
    raise CheckpointError(f"{path} is not a safetensors file (bad header, {size} bytes)")


def read_weights(directory: str | Path, manifest: Manifest) -> dict[str, Any]:
    """Return the torch tensors of a checkpoint, after checking format and sha256."""
    directory = Path(directory)
    if manifest.weights_sha256 is None:
        return {}
    path = directory / WEIGHTS_NAME
    if not path.is_file():
        raise CheckpointError(f"checkpoint {directory} lists weights but has no {WEIGHTS_NAME}")
    _check_safetensors_header(path)
    actual = sha256_file(path)
    if actual != manifest.weights_sha256:
        raise CheckpointError(
            f"{path}: sha256 {actual[:16]}... does not match the manifest's "
            f"{manifest.weights_sha256[:16]}...; the weights were changed or corrupted"
        )
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f"{path}: cannot read safetensors weights: {exc}") from exc


def _versions() -> dict[str, str]:
    out = {"atmocorrect": __version__, "python": platform.python_version()}
    try:
        import torch

        out["torch"] = torch.__version__
    except ImportError:  # pragma: no cover
        pass
    return out


def write_checkpoint(
    directory: str | Path,
    manifest: Manifest,
    tensors: Mapping[str, Any] | None = None,
    overwrite: bool = True,
) -> Path:
    """Write a checkpoint atomically: a temporary sibling directory renamed into place.

    A reader never sees a half-written checkpoint: either the old one or the new one.
    """
    directory = Path(directory)
    if directory.exists() and not overwrite:
        raise UsageError(f"checkpoint {directory} exists; pass overwrite=True (--overwrite)")
    with atomic_directory(directory) as tmp:
        sha = None
        if tensors:
            from safetensors.torch import save_file

            contiguous = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
            save_file(contiguous, str(tmp / WEIGHTS_NAME))
            sha = sha256_file(tmp / WEIGHTS_NAME)
        full = dataclasses.replace(
            manifest,
            weights_sha256=sha,
            aot=None,  # new weights: an AOTInductor package of the old ones no longer applies
            versions={**_versions(), **manifest.versions},
            provenance={
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                **manifest.provenance,
            },
        )
        write_json(tmp / MANIFEST_NAME, full.to_dict())
    return directory


def write_analytic_checkpoint(
    directory: str | Path,
    field: str | Sequence[str],
    units: str | Sequence[str] = "1",
    tendency: float | None = None,
    relax_to: float | None = None,
    timescale: float | None = None,
    mode: str = "apply",
    overwrite: bool = True,
    fault: Mapping[str, int] | None = None,
) -> Path:
    """A weightless checkpoint to smoke-test a coupling: a constant tendency, or relaxation.

    ``tendency`` is in field units per second. ``relax_to``/``timescale`` give the tendency
    ``(relax_to - x) / timescale``. ``fault`` (testing only) makes rank ``raise_on_rank`` raise
    at its ``at_call``-th step, to exercise the failure paths.
    """
    names = [field] if isinstance(field, str) else list(field)
    unit_list = [units] * len(names) if isinstance(units, str) else list(units)
    if len(unit_list) == 1:
        unit_list = unit_list * len(names)
    if len(unit_list) != len(names):
        raise UsageError(f"{len(unit_list)} units given for {len(names)} fields; give one, or one per field")
    if (tendency is None) == (relax_to is None):
        raise UsageError("give exactly one of tendency, or relax_to with timescale")
    if relax_to is not None and (timescale is None or timescale <= 0):
        raise UsageError("relax_to needs a positive timescale in seconds")
    params: dict[str, Any] = (
        {"kind": "constant", "tendency": float(tendency)}
        if tendency is not None
        else {"kind": "relax", "relax_to": float(relax_to), "timescale": float(timescale)}
    )
    if fault:
        params["fault"] = dict(fault)
    manifest = Manifest(
        fields=tuple(FieldSpec(name=n, units=u) for n, u in zip(names, unit_list, strict=True)),
        model_class="analytic",
        hyperparameters=params,
        run=RunConfig(mode=mode),
        provenance={"config": {"analytic": params}},
    )
    return write_checkpoint(directory, manifest, overwrite=overwrite)
