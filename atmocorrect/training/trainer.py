"""Data-parallel training of a correction model, with resumable per-epoch state.

Stages:

1. ``onestep``: regression of the (normalised) correction target on the state, one window per
   grid point, mean squared error;
2. ``rollout`` (optional, ``[finetune] epochs > 0``): fine-tuning on short rollouts of the
   corrected model (its built-in dynamics, e.g. the one-scale Lorenz-96 in torch, with the
   correction entering the step as in the coupled host) against the reference states, the
   error normalised by the state's standard deviation.

The quartic baseline is fitted in closed form (least squares), the zero baseline needs no fit.

Under ``torchrun``/``mpirun`` every rank holds the (small) training set and takes its share of
each epoch's permutation (``batch_size`` is the global batch: each rank takes
``batch_size / world_size`` samples a step, so the rank count changes the arithmetic only by
rounding); gradients are averaged by :class:`~torch.nn.parallel.DistributedDataParallel`
(gloo). Every random choice derives from ``seed`` and the epoch number, so a run resumed from
the state of epoch e reproduces, bit for bit on the same machine and thread count, the run that
was never interrupted. Rank 0 writes, after every epoch: ``<work>/state`` (resumable, atomic),
``<work>/metrics.jsonl`` (one JSON line per epoch) and the checkpoint ``<out>`` (atomic).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..checkpoint import FieldSpec, Manifest, sha256_file, write_checkpoint
from ..config import RunConfig
from ..devices import gpu_count, select_device
from ..errors import UsageError
from ..lorenz96 import SECONDS_PER_MTU, one_scale_step
from ..models.neural import CorrectionModel, Normalizer, build_net, pad, windows
from . import distributed
from .config import ExperimentConfig
from .dataset import Split, TrainingSet, load_training_set
from .state import load_state, save_state


class OneStepLoss(nn.Module):
    """MSE between the normalised prediction and the normalised target, per window."""

    def __init__(self, model: CorrectionModel, halo: tuple[int, ...], periodic: tuple[bool, ...]):
        super().__init__()
        self.model = model
        self.halo = halo
        self.periodic = periodic

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        pred = self.model.forward_normalised(windows(pad(x, self.halo, self.periodic), self.halo))
        target = windows(y, (0,) * len(self.halo)).reshape(pred.shape[0], y.shape[1], y.shape[2])
        if not self.model.raw:
            norm = self.model.norm
            target = (target - norm.out_mean.to(y.dtype)) / norm.out_std.to(y.dtype)
        return torch.mean((pred - target) ** 2)


class RolloutLoss(nn.Module):
    """Mean squared error of an n-step corrected forecast against the reference states.

    ``step(x)`` is the host model's dynamics step (per sample ``(B, F, L, *S)``); the
    correction (field units per second) enters after or before it, times ``dt`` seconds.
    """

    def __init__(
        self,
        model: CorrectionModel,
        step: Callable[[torch.Tensor], torch.Tensor],
        dt_seconds: float,
        halo: tuple[int, ...],
        periodic: tuple[bool, ...],
        placement: str,
        x_std: float,
    ) -> None:
        super().__init__()
        self.model = model
        self.step = step
        self.dt = dt_seconds
        self.halo = halo
        self.periodic = periodic
        self.placement = placement
        self.x_std = x_std

    def correction(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(windows(pad(x, self.halo, self.periodic), self.halo))  # (N, Fc, L)
        spatial = x.shape[3:]
        out = out.reshape(x.shape[0], *spatial, out.shape[1], out.shape[2])
        nd = len(spatial)
        return out.permute(0, nd + 1, nd + 2, *range(1, nd + 1))

    def forward(self, x0: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
        x = x0
        loss = x0.new_zeros(())
        n = truth.shape[1]
        for j in range(n):
            if self.placement == "before":
                x = x + self.dt * self.correction(x)
            x = self.step(x)
            if self.placement == "after":
                x = x + self.dt * self.correction(x)
            loss = loss + torch.mean(((x - truth[:, j]) / self.x_std) ** 2)
        return loss / n


def _dynamics(data: TrainingSet) -> Callable[[torch.Tensor], torch.Tensor]:
    name = str(data.attrs.get("dynamics", ""))
    if name != "lorenz96":
        raise UsageError(
            f"rollout fine-tuning needs the host's dynamics; the training set names {name!r} "
            "(only 'lorenz96' is built in): set [finetune] epochs = 0"
        )
    forcing = float(data.attrs.get("forcing", 18.0))
    dt_mtu = data.timestep_seconds / SECONDS_PER_MTU
    return lambda x: one_scale_step(x, forcing, dt_mtu)


def _lr(step: int, total: int, base: float, floor: float, warmup: int) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    frac = (step - warmup) / max(1, total - warmup)
    return floor + 0.5 * (base - floor) * (1.0 + math.cos(math.pi * min(1.0, frac)))


def build_model(cfg: ExperimentConfig, data: TrainingSet) -> CorrectionModel:
    """The untrained model of ``cfg`` with the training set's normalisation."""
    nd = len(data.spatial_dims)
    net = build_net(
        cfg.model.model_class, 1, 1, [0], (cfg.model.halo,) * nd, cfg.model.hyperparameters()
    )
    norm = Normalizer.from_manifest(data.normalization, ["x"], ["x"], 1)
    return CorrectionModel(net, norm)


def _periodic(data: TrainingSet) -> tuple[bool, ...]:
    raw = data.attrs.get("periodic")
    if raw is None:
        return (True,) * len(data.spatial_dims)
    return tuple(bool(int(v)) for v in json.loads(str(raw)))


def _manifest(
    cfg: ExperimentConfig,
    data: TrainingSet,
    model: CorrectionModel,
    metrics: dict[str, Any],
) -> Manifest:
    hyper = {
        **cfg.model.hyperparameters(),
        "n_levels": 1,
        "placement": data.placement,
        "target": str(data.attrs.get("target_kind", "residual")),
    }
    return Manifest(
        fields=(FieldSpec(name="x", units="1", dims=data.spatial_dims),),
        model_class=cfg.model.model_class,
        hyperparameters=hyper,
        halo=model.net.halo,
        periodic=_periodic(data),
        time_window=1,
        timestep_seconds=data.timestep_seconds,
        normalization=data.normalization,
        run=RunConfig(),
        provenance={
            "training_set": {"path": str(data.path), "sha256": sha256_file(data.path)},
            "sources": json.loads(str(data.attrs.get("sources", "{}"))),
            "config": cfg.to_dict(),
            "placement": data.placement,
            "how_applied": (
                "x <- M(x); x <- x + dt * tendency(x)"
                if data.placement == "after"
                else "x <- x + dt * tendency(x); x <- M(x)"
            ),
        },
        metrics=metrics,
    )


def _batches(n: int, batch: int, seed: int, world: distributed.World) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=g)
    per_rank = n // world.size  # equal shares: every rank runs the same number of steps
    mine = perm[world.rank * per_rank : (world.rank + 1) * per_rank]
    return [mine[i : i + batch] for i in range(0, len(mine) - batch + 1, batch)] or [mine]


@torch.no_grad()
def _eval_onestep(loss: OneStepLoss, split: Split, batch: int = 512) -> float:
    if len(split) == 0:
        return float("nan")
    total, count = 0.0, 0
    for i in range(0, len(split), batch):
        x, y = split.x[i : i + batch], split.target[i : i + batch]
        total += float(loss(x, y)) * x.shape[0]
        count += x.shape[0]
    return total / count


def _rollout_batch(split: Split, idx: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    m, t = split.starts[idx, 0], split.starts[idx, 1]  # index bookkeeping stays on the CPU
    tt = t[:, None] + torch.arange(1, steps + 1)[None, :]
    dev = split.truth.device
    m, t, tt = m.to(dev), t.to(dev), tt.to(dev)
    return split.truth[m, t], split.truth[m[:, None], tt]


def optimizer_step(
    runner: nn.Module,
    inputs: tuple[torch.Tensor, ...],
    opt: torch.optim.Optimizer,
    lr: float,
    grad_clip: float,
    amp: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> float:
    """One training step: the loss of ``runner(*inputs)`` (under ``amp``), backward, gradient
    clipping, the optimizer's step at learning rate ``lr``; returns the loss."""
    for group in opt.param_groups:
        group["lr"] = lr
    with amp():
        loss = runner(*inputs)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], grad_clip)
    opt.step()
    return float(loss.detach())


def _on_device(data: TrainingSet, device: torch.device) -> TrainingSet:
    """The training set with its sample tensors on ``device`` (indices and masks stay on the
    CPU): a GPU then gathers its batches from its own memory, with no copy per step."""
    if device.type == "cpu":
        return data

    def move(split: Split) -> Split:
        return dataclasses.replace(split, x=split.x.to(device), target=split.target.to(device),
                                   truth=split.truth.to(device))

    return dataclasses.replace(data, train=move(data.train), validation=move(data.validation),
                               test=move(data.test))


def _autocast(device: torch.device, precision: str) -> Callable[[], contextlib.AbstractContextManager]:
    """A context factory: bfloat16 autocast for ``precision == "bf16"``, else nothing."""
    if precision == "bf16":
        return lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


def training_device(cfg: ExperimentConfig) -> torch.device:
    """The device this process trains on: its local rank's GPU, or the CPU (see devices)."""
    rank, _size, _launcher = distributed.detect()
    name = select_device(cfg.train.device, distributed.local_rank(), gpu_count(), rank=rank)
    return torch.device(name)


@torch.no_grad()
def _eval_rollout(loss: RolloutLoss, split: Split, steps: int, limit: int = 2048) -> float:
    starts = split.rollout_starts(steps, stride=1)
    if len(starts) == 0:
        return float("nan")
    starts = starts[:: max(1, len(starts) // limit)]
    total = 0.0
    for i in range(0, len(starts), 512):
        x0, tr = _rollout_batch(split, starts[i : i + 512], steps)
        total += float(loss(x0, tr)) * len(x0)
    return total / len(starts)


def train(
    cfg: ExperimentConfig,
    out: str | Path,
    work: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    max_epochs_this_run: int | None = None,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Train ``cfg`` and write the checkpoint ``out``; return its path.

    ``work`` (default ``<out>.work``) receives the resumable state and ``metrics.jsonl``.
    ``resume`` continues from ``<work>/state``. ``max_epochs_this_run`` stops early (as an
    interruption would), for tests and for time-sliced jobs.
    """
    out = Path(out)
    work = Path(work) if work else out.with_name(out.name + ".work")
    if log is None:
        def log(text: str) -> None:
            print(text, flush=True)

    if not cfg.data:
        raise UsageError("the experiment config names no training set: set [data] path or --data")
    device = training_device(cfg)
    world = distributed.init("nccl" if device.type == "cuda" else "gloo")
    try:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        torch.set_num_threads(max(1, cfg.train.threads))
        torch.manual_seed(cfg.train.seed)
        np.random.seed(cfg.train.seed)
        data = _on_device(load_training_set(cfg.data, cfg.train.max_samples), device)
        model = build_model(cfg, data).to(device)
        amp = _autocast(device, cfg.train.precision)
        if world.main and device.type != "cpu":
            log(f"training on {device} ({cfg.train.precision})")
        halo = model.net.halo
        periodic = _periodic(data)
        started = time.time()
        if world.main:
            work.mkdir(parents=True, exist_ok=True)
        cls = cfg.model.model_class
        if cls in ("zero", "quartic"):
            metrics: dict[str, Any] = {}
            if cls == "quartic":
                flat = (0,) * len(halo)
                xs = windows(data.train.x, flat).reshape(-1, 1, 1)
                ys = windows(data.train.target, flat).reshape(-1, 1, 1)
                model.net.fit(xs, ys)
                coeffs = model.net.coeffs[0, 0].double() * SECONDS_PER_MTU
                metrics["coefficients_per_mtu"] = [float(c) for c in coeffs]
            loss = OneStepLoss(model, halo, periodic)
            val = _eval_onestep(loss, data.validation)
            metrics.update({"val_loss_raw_mse": val, "train_seconds": time.time() - started})
            if world.main:
                _rewrite_log(work, [{"stage": "fit", "epoch": 0, "val_loss": val, "model": cls}])
                tensors = dict(model.net.state_dict()) or None
                write_checkpoint(out, _manifest(cfg, data, model, metrics), tensors)
                log(f"{cls}: wrote {out} (validation MSE {val:.4g})")
            distributed.barrier(world)
            return out

        model.train()
        onestep = OneStepLoss(model, halo, periodic)
        stages: list[tuple[str, int]] = [("onestep", cfg.train.epochs)]
        if cfg.finetune.epochs > 0:
            stages.append(("rollout", cfg.finetune.epochs))
        opt = torch.optim.AdamW(model.net.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
        done = {"stage": 0, "epoch": 0}
        history: list[dict[str, Any]] = []
        state_dir = work / "state"
        if resume:
            if not (state_dir / "state.json").is_file():
                raise UsageError(f"--resume: no training state in {state_dir}")
            info = load_state(state_dir, model.net, opt)
            done = {"stage": int(info["stage"]), "epoch": int(info["epoch"])}
            history = list(info.get("history", []))
            if world.main:
                # the log holds exactly the epochs of the state resumed from (an epoch logged
                # but killed before its state was saved runs again, and is logged once)
                _rewrite_log(work, history)
                log(f"resuming at stage {stages[done['stage']][0] if done['stage'] < len(stages) else 'end'}, epoch {done['epoch']}")
        elif world.main:
            _rewrite_log(work, [])  # a fresh run starts a fresh log
        ddp_kwargs: dict[str, Any] = {}
        epochs_run = 0
        for si, (stage, n_epochs) in enumerate(stages):
            if si < done["stage"]:
                continue
            if stage == "onestep":
                module: nn.Module = onestep
                split = data.train
                n_items = len(split)
                batch = max(1, cfg.train.batch_size // world.size)
                base_lr, floor_lr, warm = cfg.train.lr, cfg.train.min_lr, cfg.train.warmup_steps
                items = None
            else:
                module = RolloutLoss(
                    model, _dynamics(data), data.timestep_seconds, halo, periodic, data.placement,
                    float(data.normalization["inputs"]["x"]["std"][0]),
                )
                split = data.train
                items = split.rollout_starts(cfg.finetune.rollout_steps, cfg.finetune.stride)
                n_items = len(items)
                batch = max(1, cfg.finetune.batch_size // world.size)
                base_lr, floor_lr, warm = cfg.finetune.lr, cfg.finetune.min_lr, 0
            runner = module
            # size-1 dims (one field, one level) give einsum grads other strides than DDP's
            # buckets: a harmless copy for a model this small, not worth a warning per step
            warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
            if world.initialised:
                if device.type == "cuda":
                    ddp_kwargs["device_ids"] = [device.index]
                runner = nn.parallel.DistributedDataParallel(module, **ddp_kwargs)
            steps_per_epoch = len(_batches(n_items, batch, 0, world))
            total_steps = steps_per_epoch * n_epochs
            first = done["epoch"] if si == done["stage"] else 0
            for epoch in range(first, n_epochs):
                if max_epochs_this_run is not None and epochs_run >= max_epochs_this_run:
                    return out
                t0 = time.time()
                model.train()
                batches = _batches(n_items, batch, cfg.train.seed * 100003 + si * 1009 + epoch, world)
                bar = batches
                if progress and world.main:
                    from tqdm import tqdm

                    bar = tqdm(batches, desc=f"{cls} {stage} {epoch + 1}/{n_epochs}", unit="batch",
                               leave=False, mininterval=1.0)
                running = 0.0
                for bi, idx in enumerate(bar):
                    lr = _lr(epoch * steps_per_epoch + bi, total_steps, base_lr, floor_lr, warm)
                    if stage == "onestep":
                        di = idx.to(device)
                        inputs = (split.x[di], split.target[di])
                    else:
                        inputs = _rollout_batch(split, items[idx], cfg.finetune.rollout_steps)
                    running += optimizer_step(runner, inputs, opt, lr, cfg.train.grad_clip, amp)
                train_loss = distributed.all_mean(running / max(1, len(batches)), world)
                model.eval()
                val = _eval_onestep(onestep, data.validation)
                row: dict[str, Any] = {
                    "stage": stage, "epoch": epoch + 1, "train_loss": train_loss,
                    "val_loss": val, "lr": lr, "seconds": round(time.time() - t0, 2),
                    "world_size": world.size,
                }
                if stage == "rollout":
                    row["val_rollout_loss"] = _eval_rollout(module, data.validation, cfg.finetune.rollout_steps)
                history.append(row)
                epochs_run += 1
                if world.main:
                    _log_line(work, row)
                    nxt = {"stage": si, "epoch": epoch + 1} if epoch + 1 < n_epochs else {"stage": si + 1, "epoch": 0}
                    save_state(state_dir, model.net, opt, {**nxt, "history": history, "config": cfg.to_dict()})
                    metrics = {"history": history, "val_loss": val, "train_loss": train_loss}
                    write_checkpoint(out, _manifest(cfg, data, model, metrics), model.net.state_dict())
                    if epoch + 1 == n_epochs and si + 1 < len(stages):  # keep each stage's result
                        write_checkpoint(work / f"after_{stage}", _manifest(cfg, data, model, metrics),
                                         model.net.state_dict())
                    extra = f" val_rollout={row['val_rollout_loss']:.4g}" if "val_rollout_loss" in row else ""
                    log(f"{cls} {stage} epoch {epoch + 1}/{n_epochs}: train={train_loss:.4g} "
                        f"val={val:.4g}{extra} ({row['seconds']:.1f}s)")
                distributed.barrier(world)
        return out
    finally:
        distributed.finish(world)


def _rewrite_log(work: Path, rows: list[dict[str, Any]]) -> None:
    tmp = work / ".metrics.jsonl.tmp"
    with open(tmp, "w") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    tmp.replace(work / "metrics.jsonl")


def _log_line(work: Path, row: dict[str, Any]) -> None:
    with open(work / "metrics.jsonl", "a") as fh:
        fh.write(json.dumps(row) + "\n")
