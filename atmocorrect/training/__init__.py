"""Training: the prepared data set, the experiment config, data-parallel training and its state.

Modules:

- :mod:`.config`: :class:`ExperimentConfig` (dataclasses) read from ``training/*.toml``.
- :mod:`.dataset`: :class:`TrainingSet`, the netCDF file ``atmocorrect prepare`` writes.
- :mod:`.distributed`: process-group set-up under ``torchrun``, ``mpirun`` or ``srun`` (gloo).
- :mod:`.state`: atomic, pickle-free resumable training state.
- :mod:`.trainer`: :func:`train`, one-step then rollout training, checkpoints, metrics log.
"""
