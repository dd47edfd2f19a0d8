#!/usr/bin/env bash
# Data-parallel training on one node with torchrun (gloo backend, CPU).
#   training/train_torchrun.sh [NPROC] [CONFIG] [DATA] [OUT] [extra `atmocorrect train` args...]
# Resume an interrupted run by passing --resume as an extra argument.
set -euo pipefail
NPROC=${1:-2}
CONFIG=${2:-training/lorenz96_transformer.toml}
DATA=${3:-runs/demo/train.nc}
OUT=${4:-runs/train/corrector}
shift $(( $# < 4 ? $# : 4 ))
PY=${PYTHON:-.venv/bin/python}
# one torch thread per rank: ranks x threads must not exceed the cores
export OMP_NUM_THREADS=1
exec "$PY" -m torch.distributed.run --standalone --nproc-per-node="$NPROC" \
  -m atmocorrect.cli train --config "$CONFIG" --data "$DATA" --out "$OUT" "$@"
