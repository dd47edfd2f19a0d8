"""Training throughput on the CPU with the project's trainer (atmocorrect.training).

The loop is the body of :func:`atmocorrect.training.trainer.train`'s one-step stage, step for
step (its batches, learning-rate schedule, loss module, AdamW, gradient clipping), with a clock
around the data loading (the batch gather from the in-memory training set, as the trainer does
it) and around the whole step. The configuration is the one ``make demo`` trains
(training/lorenz96_transformer.toml); the training set is synthetic data of the demo's shape
(samples are whole Lorenz-96 rings of K sites), which does not change the arithmetic.
"""

from __future__ import annotations

import time

import bench_common as bc


def train_throughput(steps: int = 40, warmup: int = 5, n_samples: int = 4096, sites: int = 8,
                     config: str = "training/lorenz96_transformer.toml") -> dict:
    import torch

    from atmocorrect.training import distributed
    from atmocorrect.training.config import ExperimentConfig
    from atmocorrect.training.dataset import Split, TrainingSet
    from atmocorrect.training.trainer import (
        OneStepLoss,
        _batches,
        _lr,
        _periodic,
        build_model,
        optimizer_step,
    )

    cfg = ExperimentConfig.from_toml(bc.REPO / config)
    torch.set_num_threads(max(1, cfg.train.threads))
    torch.manual_seed(cfg.train.seed)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n_samples, 1, 1, sites, generator=g)
    y = 0.1 * torch.randn(n_samples, 1, 1, sites, generator=g)
    split = Split(x=x, target=y, truth=x[None], starts=torch.zeros(n_samples, 2, dtype=torch.long),
                  valid=torch.ones(1, n_samples, dtype=torch.bool))
    norm = {"inputs": {"x": {"mean": [0.0], "std": [1.0]}}, "targets": {"x": {"mean": [0.0], "std": [0.1]}}}
    data = TrainingSet(path=bc.REPO, train=split, validation=split, test=split,
                       attrs={"timestep_seconds": 1.0, "periodic": "[1]"}, normalization=norm,
                       spatial_dims=("site",))
    model = build_model(cfg, data)
    model.train()
    loss_fn = OneStepLoss(model, model.net.halo, _periodic(data))
    opt = torch.optim.AdamW(model.net.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    world = distributed.World()
    batch = cfg.train.batch_size
    batches = _batches(n_samples, batch, cfg.train.seed, world)
    total = len(batches)
    load_t, step_t, cpu_t = [], [], []
    for bi in range(warmup + steps):
        idx = batches[bi % total]
        t0 = time.perf_counter()
        c0 = time.thread_time()
        lr = _lr(bi, total, cfg.train.lr, cfg.train.min_lr, cfg.train.warmup_steps)
        xb, yb = split.x[idx], split.target[idx]  # the trainer's data loading
        t1 = time.perf_counter()
        optimizer_step(loss_fn, (xb, yb), opt, lr, cfg.train.grad_clip)  # the trainer's step
        t2 = time.perf_counter()
        if bi >= warmup:
            load_t.append(t1 - t0)
            step_t.append(t2 - t0)
            cpu_t.append(time.thread_time() - c0)
    per_step = bc.median(step_t)
    return {
        "train_samples_per_second": batch / per_step,
        "train_windows_per_second": batch * sites / per_step,
        "train_samples_per_cpu_second": batch / bc.median(cpu_t),
        "data_loading_fraction": sum(load_t) / sum(step_t),
        "step_seconds_median": per_step,
        "batch_samples": batch,
        "sites_per_sample": sites,
        "steps": steps,
        "threads": torch.get_num_threads(),
        "config": config,
        "model": {"class": cfg.model.model_class, **cfg.model.hyperparameters(), "halo": cfg.model.halo},
    }


def gpu_mfu_bf16(windows: int = 16384, steps: int = 20, warmup: int = 5, mm_size: int = 8192) -> dict | None:
    """Model FLOP utilisation of a bf16 training step on this rank's GPU (None without a GPU).

    The transformer at the coupling's default size (4 fields x 5 levels x 3x3 windows), trained
    as the trainer trains (bf16 autocast forward and loss, fp32 weights, AdamW), on a batch of
    ``windows`` windows held on the GPU. FLOPs of one step (forward + backward) from
    torch.utils.flop_counter; the peak is not a datasheet figure but a bf16 ``mm_size``^3
    matmul timed on the same GPU in the same run. Also reports which GPU the local rank took.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from atmocorrect.devices import select_device
    from atmocorrect.models.neural import build_net
    from atmocorrect.training import distributed

    if not torch.cuda.is_available():
        return None
    device = torch.device(select_device("cuda", distributed.local_rank(), torch.cuda.device_count()))
    torch.cuda.set_device(device)
    torch.manual_seed(0)
    fields, levels = len(bc.FIELDS), 5
    net = build_net("transformer", fields, levels, list(range(fields)), (1, 1), {"n_levels": levels}).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    x = torch.randn(windows, fields, levels, 3, 3, device=device)
    y = torch.randn(windows, fields, levels, device=device)

    def step() -> None:
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
            loss = torch.nn.functional.mse_loss(net(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops()
    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(steps):
        step()
    end.record()
    torch.cuda.synchronize()
    step_s = start.elapsed_time(end) / 1e3 / steps
    a = torch.randn(mm_size, mm_size, device=device, dtype=torch.bfloat16)
    b = torch.randn(mm_size, mm_size, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start.record()
    for _ in range(10):
        a @ b
    end.record()
    torch.cuda.synchronize()
    mm_s = start.elapsed_time(end) / 1e3 / 10
    peak = 2.0 * mm_size**3 / mm_s
    return {
        "gpu_mfu_bf16": flops / step_s / peak,
        "step_tflops": flops / step_s / 1e12,
        "matmul_bf16_tflops": peak / 1e12,
        "flops_per_step": int(flops),
        "windows_per_step": windows,
        "windows_per_second": windows / step_s,
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device),
        "visible_gpus": torch.cuda.device_count(),
        "local_rank": distributed.local_rank(),
    }
