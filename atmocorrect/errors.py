"""Error types of atmocorrect, each carrying the status code the Fortran and C APIs return.

The codes are part of the public API: they are mirrored as ``ATMOCORRECT_E*`` parameters in
the Fortran module and ``#define`` s in ``atmocorrect.h``.
"""

from __future__ import annotations

SUCCESS = 0


class AtmocorrectError(Exception):
    """Base class; ``code`` is the status a Fortran/C caller receives."""

    code = 1


class CheckpointError(AtmocorrectError):
    """The checkpoint directory, manifest or weights are missing, invalid or tampered with."""

    code = 1


class FieldError(AtmocorrectError):
    """A registered field does not match what the checkpoint expects (name, shape, units...)."""

    code = 2


class GridError(AtmocorrectError):
    """The grid or the domain decomposition is inconsistent."""

    code = 3


class StateError(AtmocorrectError):
    """The host state holds values the correction refuses (NaN, Inf)."""

    code = 4


class ModelError(AtmocorrectError):
    """The model raised while computing a correction."""

    code = 5


class RemoteRankError(AtmocorrectError):
    """Another rank failed during a collective call; this rank's state was left untouched."""

    code = 8


class UsageError(AtmocorrectError):
    """The API was called out of order or with an invalid argument."""

    code = 9


class DataError(AtmocorrectError):
    """An input data file is missing, corrupted or inconsistent (offline and training paths)."""

    code = 10
