#!/bin/bash
# The staged CPU campaign for the 300-W teachers (issue "Accuracy, part 2"), run from the repository root.
# A stage is one run of at most ~150 minutes; the two teachers train side by side, one per core
# (OMP_NUM_THREADS=1, taskset). In-progress runs live in $RUNS (outside the repository); a stage that was
# lost with the machine is rerun with the same command (or resumed from its last.ckpt if still there).
# Each finished stage is kept here in fp16 (no optimiser state), so the next stage can start from it on a
# fresh machine with --init.
#
# Backbone: ResNet-18 (timm; 300w-cpu's teacher) instead of the paper's EfficientNet-B3: measured here
# (benchmarks/teacher_backbones.py, 128 px, batch 32, two threads, idle machine) it trains 1.9x as many samples per
# CPU-second as B3, and B3 from scratch at this budget fails on a quarter of the test faces.
#
#   STAGE=1 results/300w-cpu-v3/run.sh     # 40 epochs from scratch (one-cycle, AdamW 2e-3, L1); ran 2026-12-02
#                                            as `--set teacher.arch=resnet18`, before that became the default
#   STAGE=2 results/300w-cpu-v3/run.sh     # from stage 1's weights, a fresh one-cycle at lr 1e-3 (ran 2026-12-02/03)
#   STAGE=3 KINDS=tough results/300w-cpu-v3/run.sh   # the same from stage 2's (ran 2026-12-03)
# Shipped: Tough stage 3 and Tolerant stage 2 (ship.sh moves their fp16 into the package, so git holds one copy).
# The repository keeps the fp16 weights of stage 1 here, the shipped stages in src/kdlandmarks/weights/, and of
# every stage its config, summary, log and scores. A next stage of a shipped teacher starts from the package:
#   STAGE=4 KINDS=tough results/300w-cpu-v3/run.sh   # --init kd-teacher-300w-tough (stage 3)
set -euo pipefail
RUNS=${RUNS:-$HOME/kdl-runs/v3}
DATA=${DATA:-../shared/data/300w}
STORE=${STORE:-$HOME/kdl-runs/stores/300w-train-128x1}
STAGE=${STAGE:-1}
EPOCHS=${EPOCHS:-40}
KINDS=${KINDS:-tough tolerant}  # e.g. KINDS=tough CORE=0 to train one teacher and leave the other core free
core=${CORE:-0}
HERE=results/300w-cpu-v3
[ -f "$STORE/meta.json" ] || kdlandmarks prepare --dataset 300w --root "$DATA" --split train --size 128 --copies 1 --out "$STORE"
[ -f "$STORE/soft_landmarks.npy" ] || kdlandmarks asm --store "$STORE"
for kind in $KINDS; do
  init=()
  if [ "$STAGE" -gt 1 ]; then
    prev="$HERE/$kind-r18-s$((STAGE - 1))-fp16.pt"
    [ -f "$prev" ] || prev=kd-teacher-300w-$kind  # the previous stage shipped: its one copy is the package's
    init=(--init "$prev" --set teacher.lr=${LR:-1e-3})
  fi
  OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 taskset -c $core kdlandmarks train teacher --kind $kind --config 300w-cpu \
      --store "$STORE" --out "$RUNS/$kind-r18-s$STAGE" --set teacher.epochs="$EPOCHS" \
      "${init[@]}" --quiet > "$RUNS/$kind-r18-s$STAGE.log" 2>&1 &
  core=$((core + 1))
done
wait
# keep each stage in fp16 with its config, summary and training log; score it on validation and LFPW test
for kind in $KINDS; do
  run="$RUNS/$kind-r18-s$STAGE"; keep="$HERE/$kind-r18-s$STAGE"
  mkdir -p "$keep"
  python3 -c "from kdlandmarks.models.backbones import load_model, save_model; m, i = load_model('$run/model.pt'); save_model('$keep-fp16.pt', m, i, half=True)"
  mkdir -p "$keep/logs"; cp "$run/config.yaml" "$run/summary.json" "$keep/"; cp "$run"/logs/metrics*.csv "$keep/logs/"  # metrics.K.csv: invocations before a resume
  for extra in "" "--flip-test"; do
    tag=$(echo "$extra" | tr -d '-'); tag=${tag:-gt}
    kdlandmarks evaluate --model "$keep-fp16.pt" --dataset 300w --root "$DATA" --split lfpw/testset \
        --out "$keep/eval-$tag" $extra
    rm -r "$keep/eval-$tag/pts"  # per-face predictions stay out of the repository
  done
done
