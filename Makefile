# atmocorrect: `make demo` and `make test` set everything up on a fresh Debian/Ubuntu machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
APT_PACKAGES := gfortran libopenmpi-dev openmpi-bin libnetcdff-dev libnetcdf-dev cmake make pkg-config
TORCH_SPEC ?= torch==2.13.0
export OMPI_ALLOW_RUN_AS_ROOT := 1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM := 1
export OMPI_MCA_rmaps_base_oversubscribe := 1
# Open MPI's shared-memory transport complains in containers without this.
export OMPI_MCA_btl_vader_single_copy_mechanism := none

BRIDGE_SOURCES := CMakeLists.txt pyproject.toml $(wildcard fortran_bridge/src/* fortran_bridge/include/* fortran_bridge/cmake/*)
PY_SOURCES := $(shell find atmocorrect -name '*.py' 2>/dev/null)

.PHONY: all setup install demo test test-fast bench offline-demo lint clean help

help:
	@echo "make demo          set up, then run the Lorenz-96 twin experiment end to end (runs/demo/)"
	@echo "make test          set up, then run every test"
	@echo "make bench         run the benchmarks, write benchmarks/results.json"
	@echo "make offline-demo  correct real CMIP6 output against ERA5 (runs/offline/);"
	@echo "                   another pair: make offline-demo OFFLINE_ARGS='--historical H.nc --reference R.nc ...'"
	@echo "make lint          ruff"

setup: .stamp-system .stamp-venv

# System packages: compilers, Open MPI, netCDF-Fortran (installed only when missing).
.stamp-system:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
	@touch $@

# The Python environment: torch (CPU build) first, mpi4py compiled against the system MPI.
.stamp-venv: .stamp-system pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q -c constraints.txt --no-binary=mpi4py "mpi4py>=3.1"
	$(PIP) install -q -c constraints.txt "scikit-build-core>=0.10" numpy safetensors xarray netCDF4 cftime tqdm \
	    matplotlib scipy pytest pytest-timeout ruff "f90wrap>=0.2.14" meson ninja dask zarr cfgrib eccodes ibicus
	@touch $@

# The package with its compiled bridge (rebuilt when a source changes).
install: .stamp-install
.stamp-install: .stamp-venv $(BRIDGE_SOURCES) $(PY_SOURCES)
	$(PIP) install -q --no-build-isolation --no-deps .
	@touch $@

# The Fortran Lorenz-96 programs, l96_model coupled to the bridge.
examples/lorenz96/build/l96_model: install $(wildcard examples/lorenz96/*.f90 examples/lorenz96/*.F90)
	$(MAKE) -C examples/lorenz96 WITH_ATMOCORRECT=1 ATMOCORRECT=$(abspath $(VENV)/bin/atmocorrect)

demo: install examples/lorenz96/build/l96_model
	$(VENV)/bin/atmocorrect demo

test: install examples/lorenz96/build/l96_model
	$(PY) -m pytest -q -ra

test-fast: install
	$(PY) -m pytest -q -ra -m "not slow"

bench: install
	$(PY) benchmarks/run.py

offline-demo: install
	OMP_NUM_THREADS=1 $(PY) examples/offline/run_offline_demo.py $(OFFLINE_ARGS)

lint: .stamp-venv
	$(VENV)/bin/ruff check atmocorrect tests benchmarks examples bindings training

clean:
	rm -rf build tests/_build examples/*/build bindings/build .stamp-install
