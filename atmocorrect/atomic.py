"""Atomic outputs: write to a temporary sibling, then rename into place.

A reader (or a job restarted after a crash) sees either the previous file or directory or the
complete new one, never a partial one; a failed write removes its temporary.

>>> import tempfile, pathlib
>>> out = pathlib.Path(tempfile.mkdtemp()) / "result.txt"
>>> with atomic_file(out) as tmp:
...     _ = tmp.write_text("done")
>>> out.read_text()
'done'
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _apply_umask(path: Path, directory: bool) -> None:
    """mkdtemp/mkstemp create private (0700/0600) entries; give the final ones the usual mode."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, (0o777 if directory else 0o666) & ~mask)


@contextlib.contextmanager
def atomic_file(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it replaces ``target``."""
    target = Path(target)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.tmp-", dir=target.parent)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write {target}: {exc.strerror}") from exc
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        _apply_umask(tmp, directory=False)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_directory(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory beside ``target``; on success it replaces ``target``."""
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write {target}: {exc.strerror}") from exc
    try:
        yield tmp
        _apply_umask(tmp, directory=True)
        for child in tmp.iterdir():
            _apply_umask(child, directory=child.is_dir())
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_json(path: Path, data, indent: int = 2) -> None:
    """Write JSON and fsync it (the caller renames the directory or file holding it)."""
    import json

    with open(path, "w") as fh:
        json.dump(data, fh, indent=indent)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
