"""Where the compiled bridge lives, and the flags a host model needs to use it.

>>> flags = fortran_flags()  # doctest: +SKIP
'-I/.../site-packages/atmocorrect/include'
"""

from __future__ import annotations

import sys
from pathlib import Path

from .errors import UsageError

LIBRARY = "libatmocorrect.so"


def package_root() -> Path:
    """The installed package directory holding ``lib/libatmocorrect.so``.

    The package imported may be a source checkout on PYTHONPATH (no compiled bridge); then the
    installed copy on sys.path is used.
    """
    here = Path(__file__).resolve().parent
    candidates = [here] + [Path(p) / "atmocorrect" for p in sys.path if p]
    for root in candidates:
        if (root / "lib" / LIBRARY).is_file():
            return root
    raise UsageError(
        f"the compiled bridge ({LIBRARY}) was not found next to {here} nor on sys.path; "
        "install the package with `pip install .` (or `make install`) first"
    )


def include_dir() -> Path:
    return package_root() / "include"


def library_dir() -> Path:
    return package_root() / "lib"


def cmake_prefix() -> Path:
    """A directory for CMAKE_PREFIX_PATH; holds lib/cmake/atmocorrect/atmocorrectConfig.cmake."""
    return package_root()


def fortran_flags() -> str:
    return f"-I{include_dir()}"


def link_flags() -> str:
    lib = library_dir()
    return f"-L{lib} -latmocorrect -Wl,-rpath,{lib}"
