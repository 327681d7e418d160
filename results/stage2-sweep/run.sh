#!/bin/bash
# Stage-2 alpha sweep: readability/accuracy on LAMBADA (first 1,000) and bAbI task 1 (zero-shot), paper protocol.
set -e
cd "$(dirname "$0")/../.."
export PIXAR_DATA=${PIXAR_DATA:-../shared/data} HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OMP_THREAD_LIMIT=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=1
for a in 0.1 0.3; do
  out=runs/reproduce/sweep/stage2-alpha$a
  [ -f $out/last ] || .venv/bin/pixar train --stage 2 --init runs/reproduce/pixar-tiny-stage1 --config pixar-tiny --set adv.alpha=$a --out $out
  .venv/bin/pixar bench lambada --checkpoint $out --protocol paper --limit 1000 --out results/stage2-sweep/lambada-alpha$a
  .venv/bin/pixar bench babi --checkpoint $out --tasks 1 --protocol paper --out results/stage2-sweep/babi-alpha$a
done
