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
    from torch import nn

    from atmocorrect.training import distributed
    from atmocorrect.training.config import ExperimentConfig
    from atmocorrect.training.dataset import Split, TrainingSet
    from atmocorrect.training.trainer import OneStepLoss, _batches, _lr, _periodic, build_model

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
        for grp in opt.param_groups:
            grp["lr"] = lr
        xb, yb = split.x[idx], split.target[idx]  # the trainer's data loading
        t1 = time.perf_counter()
        loss = loss_fn(xb, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.train.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.net.parameters(), cfg.train.grad_clip)
        opt.step()
        float(loss.detach())
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
