#!/bin/bash
# MobileNetV2-0.5 with the new 300w-cpu recipe and no KD (L1), on the 2-core CPU (2026-12-02); run from the
# repository root. One stage: 160 epochs of the 1911 training faces (101 held out for validation),
# fresh augmentation every step, AdamW + one-cycle; the run was pinned to one core (the other ran the
# recipe study), so wall-clock figures in summary.json are those of one core.
set -euo pipefail
RUNS=${RUNS:-$HOME/kdl-runs}
kdlandmarks prepare --dataset 300w --root ../shared/data/300w --split train --size 128 --copies 1 \
    --out "$RUNS/stores/300w-train-128x1"
OMP_NUM_THREADS=1 taskset -c 0 kdlandmarks train student --config 300w-cpu --loss l1 \
    --store "$RUNS/stores/300w-train-128x1" --out "$RUNS/v2/lite-l1" --set student.arch=mobilenetv2_050 \
    --set student.epochs=160
# keep the final weights in fp16 (no optimiser state)
python3 -c "from kdlandmarks.models.backbones import load_model, save_model; m, i = load_model('$RUNS/v2/lite-l1/model.pt'); save_model('results/300w-cpu-v2/lite-l1-fp16.pt', m, i, half=True)"
# LFPW test: ground-truth crop, flip test, and the detector protocol
for extra in "" "--flip-test" "--protocol detector"; do
  tag=$(echo "$extra" | tr -d '-' | tr ' ' '-'); tag=${tag:-gt}
  kdlandmarks evaluate --model results/300w-cpu-v2/lite-l1-fp16.pt --dataset 300w --root ../shared/data/300w \
      --split lfpw/testset --out "results/300w-cpu-v2/eval-$tag" $extra
done
