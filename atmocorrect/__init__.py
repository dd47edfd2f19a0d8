"""atmocorrect: learned corrections for climate models, online and offline.

>>> import atmocorrect
>>> atmocorrect.__version__  # doctest: +SKIP
'0.1.0'
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load", "Corrector"]


def __getattr__(name: str):
    # Imported lazily: `atmocorrect config --fflags` must not pay for torch and mpi4py.
    if name in ("load", "Corrector"):
        from . import coupling

        return getattr(coupling, name)
    raise AttributeError(f"module 'atmocorrect' has no attribute {name!r}")
