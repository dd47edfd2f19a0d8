"""Evaluation of corrections.

- :mod:`.metrics`: RMSE by lead, skill horizon, Hellinger distance of distributions.
- :mod:`.twin`: the Lorenz-96 twin experiment (forecasts from held-out truth states, long
  free runs, stability), writing ``report.json``, ``report.md`` and plots.
- :mod:`.plots`: RMSE vs lead, PDFs, Hovmoeller diagrams.
"""
