"""Offline correction of simulation output: the learned distribution correction (``ml``) and,
for comparison, classical methods from ibicus (linear scaling, quantile mapping, QDM).

Modules, one concern each:

* :mod:`~atmocorrect.offline.config`    dataclass configurations
* :mod:`~atmocorrect.offline.features`  season, point and neighbourhood inputs of the network
* :mod:`~atmocorrect.offline.climatology` seasonal mean/spread fits, eras of a long run
* :mod:`~atmocorrect.offline.diurnal`   sub-daily data: one series per time of day
* :mod:`~atmocorrect.offline.train`     training on a calibration period -> checkpoint
* :mod:`~atmocorrect.offline.classical` ibicus linear scaling / quantile mapping / QDM
* :mod:`~atmocorrect.offline.apply`     chunked (dask) correction of files, CF output
* :mod:`~atmocorrect.offline.metrics`   held-out marginal metrics and climate-change signal
* :mod:`~atmocorrect.offline.evaluate`  ``atmocorrect evaluate offline``: table, JSON, plots
* :mod:`~atmocorrect.offline.plots`     seasonal-cycle and quantile-quantile plots
"""

from __future__ import annotations

from .config import METHODS, ApplyConfig, NetworkConfig, TrainConfig

__all__ = ["METHODS", "ApplyConfig", "NetworkConfig", "TrainConfig"]
