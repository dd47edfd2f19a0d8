"""`atmocorrect prepare` (not yet implemented)."""

from __future__ import annotations

import argparse

from ..errors import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    raise UsageError("'atmocorrect prepare' is not implemented yet")
