"""The AOTInductor backend: a checkpoint's network compiled ahead of time, run by libtorch.

``atmocorrect checkpoint export-aot DIR`` exports the checkpoint's :class:`CorrectionModel`
(network + normalisation: raw windows ``(N, F, L, *W)`` float32 -> raw tendencies
``(N, Fc, L)``) with ``torch.export`` and a dynamic batch dimension, compiles it with
AOTInductor and writes ``DIR/model.pt2``; the manifest records the file, its sha256, the torch
version and the platform (machine, CPU ISA) it was compiled for.

With ``run.backend = "aot"`` (or ``ATMOCORRECT_BACKEND=aot``) the Fortran/C bridge checks the
package here at ``atmocorrect_init`` (:func:`check_package`), and at the first step hands the C++
side everything it needs to run each step without Python (:func:`bridge_plan`): the fields in
model order (address, shape, byte strides), the halo exchange plan, the run configuration and
the package path.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import struct
import time
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_file, write_json
from .checkpoint import MANIFEST_NAME, Manifest, read_manifest, read_weights, sha256_file
from .errors import AtmocorrectError, CheckpointError, FieldError, GridError, UsageError

PACKAGE_NAME = "model.pt2"
#: Window networks that map (N, F, L, *W) to (N, Fc, L): the ones the backend can run.
AOT_MODEL_CLASSES = ("transformer", "mlp")
#: Windows per call of the compiled model when the predictor does not say
#: (WindowPredictor.chunk_windows, which the plan hands over).
CHUNK_WINDOWS = 256
PLAN_VERSION = 1
# x86 vector ISAs, each a superset of the previous (torch.backends.cpu.get_cpu_capability()).
_X86_ISA_ORDER = ("DEFAULT", "AVX2", "AVX512")


def platform_info() -> dict[str, str]:
    """What a package is specific to besides the torch version."""
    import torch

    return {
        "system": platform.system(),
        "machine": platform.machine(),
        "cpu_capability": str(torch.backends.cpu.get_cpu_capability()),
    }


def export_aot(directory: str | os.PathLike, example_windows: int = 2 * CHUNK_WINDOWS) -> dict[str, Any]:
    """Export and compile the checkpoint's network into ``directory/model.pt2``; returns the
    manifest's new ``aot`` entry (with ``compile_seconds``, not stored)."""
    import torch

    from .models.neural import model_from_manifest

    directory = Path(directory)
    manifest = read_manifest(directory)
    if manifest.model_class not in AOT_MODEL_CLASSES:
        raise UsageError(
            f"checkpoint {directory}: model class {manifest.model_class!r} cannot be exported for the "
            f"aot backend; only the window networks {', '.join(AOT_MODEL_CLASSES)} can"
        )
    model = model_from_manifest(manifest, read_weights(directory, manifest)).eval().float()
    nf = len(manifest.fields)
    nl = int(manifest.hyperparameters.get("n_levels", 1))
    win = model.net.window
    example = torch.randn(example_windows, nf, nl, *win, generator=torch.Generator().manual_seed(0))
    t0 = time.perf_counter()
    batch = torch.export.Dim("windows", min=2, max=1 << 24)
    with torch.inference_mode():
        ep = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    target = directory / PACKAGE_NAME
    with atomic_file(target) as tmp:
        staged = tmp.with_name(tmp.name + ".pt2")  # AOTInductor wants a .pt2 name
        try:
            torch._inductor.aoti_compile_and_package(ep, package_path=str(staged))
            os.replace(staged, tmp)
        finally:
            staged.unlink(missing_ok=True)
    seconds = time.perf_counter() - t0
    entry = {
        "file": PACKAGE_NAME,
        "sha256": sha256_file(target),
        "torch": torch.__version__,
        "platform": platform_info(),
        "input": {"fields": nf, "levels": nl, "window": list(win), "dtype": "float32"},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    updated = dataclasses.replace(manifest, aot=entry)
    with atomic_file(directory / MANIFEST_NAME) as tmp:
        write_json(tmp, updated.to_dict())
    return {**entry, "compile_seconds": round(seconds, 1)}


def _isa_ok(built: str, here: str) -> bool:
    if built == here:
        return True
    if built in _X86_ISA_ORDER and here in _X86_ISA_ORDER:
        return _X86_ISA_ORDER.index(built) <= _X86_ISA_ORDER.index(here)
    return False


def check_package(directory: str | os.PathLike, manifest: Manifest) -> Path:
    """The package path, after checking it exists, its sha256, torch version and platform;
    raises :class:`CheckpointError` naming the file and what was expected."""
    import torch

    directory = Path(directory)
    fix = f"create it with `atmocorrect checkpoint export-aot {directory}`"
    entry = manifest.aot
    if entry is None:
        raise CheckpointError(
            f"backend 'aot': checkpoint {directory} has no AOTInductor package "
            f"({directory / PACKAGE_NAME} expected, and an 'aot' entry in its {MANIFEST_NAME}); {fix}"
        )
    name = str(entry.get("file", ""))
    if not name or Path(name).name != name:
        raise CheckpointError(f"backend 'aot': {directory / MANIFEST_NAME}: invalid package file name {name!r}")
    path = directory / name
    if not path.is_file():
        raise CheckpointError(
            f"backend 'aot': {path} does not exist (the manifest lists it with sha256 "
            f"{str(entry.get('sha256'))[:16]}...); {fix}"
        )
    actual = sha256_file(path)
    if actual != entry.get("sha256"):
        raise CheckpointError(
            f"backend 'aot': {path}: sha256 {actual[:16]}... does not match the manifest's "
            f"{str(entry.get('sha256'))[:16]}...; the package was changed or corrupted, {fix.replace('create', 're-create')}"
        )
    if entry.get("torch") != torch.__version__:
        raise CheckpointError(
            f"backend 'aot': {path} was compiled with torch {entry.get('torch')}, but this environment "
            f"has torch {torch.__version__}; {fix.replace('create', 're-create')} with this torch"
        )
    built = entry.get("platform") or {}
    here = platform_info()
    if built.get("machine") not in (None, here["machine"]) or not _isa_ok(
        str(built.get("cpu_capability", here["cpu_capability"])), here["cpu_capability"]
    ):
        raise CheckpointError(
            f"backend 'aot': {path} was compiled for {built.get('machine')} "
            f"{built.get('cpu_capability')}, but this CPU is {here['machine']} {here['cpu_capability']}; "
            f"{fix.replace('create', 're-create')} on this machine"
        )
    return path


# ---------------------------------------------------------------------- the bridge's plan
_MODES = {"off": 0, "apply": 1, "diagnose": 2}


def _full_levels(box, shape, nd: int, what: str, rank: int) -> None:
    for d in range(nd, len(box)):
        if tuple(box[d]) != (0, shape[d]):
            raise GridError(
                f"backend 'aot' on rank {rank}: the {what} box {box} splits dimension {d + 1} "
                f"(not a halo dimension) across ranks; only the halo dimensions may be split"
            )


def bridge_plan(corrector, package: Path) -> tuple[bytes, bytes, str, str]:
    """What the C++ step needs, as ``(int64 words, float64 words, field names, package)``.

    Collective (it builds the domain decomposition on first use). Layout of the int64 words,
    read by ``atmocorrect_aot.cpp`` in this order:

    ``version, mode, nonfinite_skip, threads, has_max_increment, F, L, nd, Fc, chunk, rank,
    size``; ``halo[nd]``, ``periodic[nd]``, ``offset[nd]``, ``global[nd]``, ``interior[nd]``;
    per field in model order: ``address, itemsize, corrected_index, ndim, shape[ndim],
    byte_strides[ndim]``; ``n_recv``, per receive ``src, tag, src_lo_hi[2 nd],
    dst_lo_hi[2 nd]``; ``n_send``, per send ``dst, tag, src_lo_hi[2 nd]`` (boxes over the
    spatial dims: receive destinations in extended coordinates, sources in interior ones).
    Float64 words: ``taper, max_increment``. Names: model order, one per line.
    """
    from .coupling import _default_threads

    run = corrector.run
    manifest = corrector.manifest
    predictor = corrector.predictor
    rank = corrector.rank
    error: AtmocorrectError | None = None
    if not corrector.fields:
        raise UsageError("atmocorrect_step called before any atmocorrect_add_field")
    missing = corrector.missing_fields()
    names = list(manifest.field_names)
    if missing:
        error = FieldError(f"field(s) {', '.join(missing)} not registered (the checkpoint needs them)")
    else:
        ref = corrector.fields[names[0]]
        for n in names[1:]:
            if corrector.fields[n].shape != ref.shape:
                error = FieldError(
                    f"backend 'aot': field {n!r} has shape {corrector.fields[n].shape} but "
                    f"{names[0]!r} has {ref.shape}; the aot backend needs fields of one shape"
                )
                break
    corrector._agree(error, "atmocorrect_step")
    ref = corrector.fields[names[0]]
    halo = tuple(int(h) for h in predictor.halo)
    nd = len(halo)
    if ref.ndim < nd:
        raise FieldError(f"field {names[0]!r}: rank {ref.ndim} array, but the model's halo {halo} needs {nd} dims")
    periodic = tuple(bool(p) for p in manifest.periodic) + (False,) * nd
    periodic = periodic[:nd]
    interior = tuple(int(s) for s in ref.shape[:nd])
    levels = int(np.prod(ref.shape[nd:])) if ref.ndim > nd else 1
    recvs: list = []
    sends: list = []
    offset = (0,) * nd
    global_shape = interior
    error = None
    try:
        if any(halo):
            decomp = corrector._decomp(corrector.fields)
            if len(decomp.global_shape) < nd:
                raise GridError(
                    f"global_shape {decomp.global_shape} has fewer dimensions than the model's halo {halo}"
                )
            offset = tuple(decomp.offset[:nd])
            global_shape = tuple(decomp.global_shape[:nd])
            recv_plan, send_plan = decomp._plan(halo, tuple(manifest.periodic))
            block = tuple(decomp.shape)
            for src, tag, src_box, dst_box in recv_plan:
                _full_levels(src_box, decomp.blocks[src][1], nd, "source", rank)
                _full_levels(dst_box, block, nd, "destination", rank)
                recvs.append((src, tag, src_box[:nd], dst_box[:nd]))
            for dst, tag, src_box in send_plan:
                _full_levels(src_box, block, nd, "send", rank)
                sends.append((dst, tag, src_box[:nd]))
    except AtmocorrectError as exc:
        error = exc
    corrector._agree(error, "atmocorrect_step")

    words: list[int] = [
        PLAN_VERSION,
        _MODES[run.mode],
        1 if run.nonfinite == "skip" else 0,
        int(run.num_threads or _default_threads(corrector.comm)),
        0 if run.max_increment is None else 1,
        len(names),
        levels,
        nd,
        sum(1 for f in manifest.fields if f.corrected),
        int(getattr(predictor, "chunk_windows", CHUNK_WINDOWS) or 1 << 40),  # 0: one call
        rank,
        corrector.comm.Get_size() if corrector.comm is not None else 1,
        *halo,
        *(1 if p else 0 for p in periodic),
        *offset,
        *global_shape,
        *interior,
    ]
    corrected = [f.name for f in manifest.fields if f.corrected]
    for name in names:
        a = corrector.fields[name]
        words += [
            int(a.__array_interface__["data"][0]),
            int(a.itemsize),
            corrected.index(name) if name in corrected else -1,
            a.ndim,
            *a.shape,
            *a.strides,
        ]
    words.append(len(recvs))
    for src, tag, src_box, dst_box in recvs:
        words += [src, tag, *(v for lohi in src_box for v in lohi), *(v for lohi in dst_box for v in lohi)]
    words.append(len(sends))
    for dst, tag, src_box in sends:
        words += [dst, tag, *(v for lohi in src_box for v in lohi)]
    floats = [float(run.taper), float(run.max_increment or 0.0)]
    return (
        struct.pack(f"<{len(words)}q", *words),
        struct.pack(f"<{len(floats)}d", *floats),
        "\n".join(names),
        str(package),
    )
