"""`atmocorrect config`: what a host model's build needs."""

from __future__ import annotations

import argparse

from .. import buildinfo

DESCRIPTION = """\
Print the flags and paths a host model's build needs to use the atmocorrect Fortran/C bridge.

Makefile builds:
  mpif90 host.f90 $(atmocorrect config --fflags) $(atmocorrect config --libs) -o host

CMake builds:
  cmake -DCMAKE_PREFIX_PATH=$(atmocorrect config --cmake-dir) ..
  # CMakeLists.txt: find_package(atmocorrect REQUIRED)
  #                 target_link_libraries(host PRIVATE atmocorrect::atmocorrect)
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--fflags", action="store_true", help="compiler flags: the module/header directory")
    group.add_argument("--cflags", action="store_true", help="same as --fflags, for C hosts")
    group.add_argument("--libs", action="store_true", help="linker flags, rpath included")
    group.add_argument("--cmake-dir", action="store_true", help="a directory for CMAKE_PREFIX_PATH")
    group.add_argument("--prefix", action="store_true", help="the installed bridge's root directory")


def run(args: argparse.Namespace) -> int:
    if args.fflags or args.cflags:
        print(buildinfo.fortran_flags())
    elif args.libs:
        print(buildinfo.link_flags())
    elif args.cmake_dir:
        print(buildinfo.cmake_prefix())
    elif args.prefix:
        print(buildinfo.package_root())
    else:
        print(f"fflags:    {buildinfo.fortran_flags()}")
        print(f"libs:      {buildinfo.link_flags()}")
        print(f"cmake-dir: {buildinfo.cmake_prefix()}")
    return 0
