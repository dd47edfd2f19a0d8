#!/usr/bin/env bash
# Data-parallel training under mpirun: the ranks find each other through mpi4py (rank 0 picks
# a free TCP port), then train with torch.distributed (gloo).
#   training/train_mpirun.sh [NPROC] [CONFIG] [DATA] [OUT] [extra `atmocorrect train` args...]
set -euo pipefail
NPROC=${1:-2}
CONFIG=${2:-training/lorenz96_transformer.toml}
DATA=${3:-runs/demo/train.nc}
OUT=${4:-runs/train/corrector}
shift $(( $# < 4 ? $# : 4 ))
PY=${PYTHON:-.venv/bin/python}
export OMP_NUM_THREADS=1
# as root in a container Open MPI needs these; more ranks than cores need --oversubscribe
export OMPI_ALLOW_RUN_AS_ROOT=${OMPI_ALLOW_RUN_AS_ROOT:-1} OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=${OMPI_ALLOW_RUN_AS_ROOT_CONFIRM:-1}
exec mpirun -np "$NPROC" "$PY" -m atmocorrect.cli train --config "$CONFIG" --data "$DATA" --out "$OUT" "$@"
