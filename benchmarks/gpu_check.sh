#!/usr/bin/env bash
# The prepared GPU check: one command, ~8 minutes on one GPU (see benchmarks/gpu_check.py for what it runs).
#   bash benchmarks/gpu_check.sh [OUT_DIR] [--no-compile] [--config pixar-113m]
#   bash benchmarks/gpu_check.sh OUT_DIR --smoke        (tiny config on CPU)
# Writes OUT_DIR/gpu_check.json and OUT_DIR/gpu_check.txt (default OUT_DIR: results/gpu_check).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-results/gpu_check}
[ $# -gt 0 ] && shift
PY=${PYTHON:-python}
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" timeout 540 "$PY" benchmarks/gpu_check.py --out "$OUT" "$@"
