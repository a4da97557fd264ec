#!/bin/bash
# The students of the staged CPU campaign (issue "Accuracy, part 2"), all at one budget, seed and data:
# KD (both widths), plain L2 and L1 (both widths), and the two single-teacher ablations of the full student.
# Run from the repository root once the teachers are final; ONLY="kd-lite l1-lite" picks runs, CORE picks the
# core (run two invocations side by side, CORE=0 and CORE=1, with disjoint ONLY lists). Each run is one
# stage of at most ~150 minutes on one core: the budget is set per width, EPOCHS_FULL (80) for MobileNetV2-1.0
# and EPOCHS_LITE (160) for MobileNetV2-0.5, the same for every loss of that width. A run already kept here is
# skipped; one cut off mid-way resumes from its last.ckpt in $RUNS when rerun. Each finished run is scored on
# LFPW test (plain and flip test) into results/300w-cpu-v3/student-RUN/ with its config, summary and training
# log; the fp16 weights stay in $RUNS (RUN/model-fp16.pt), from where ship.sh moves the two KD students into the
# package (git holds one copy of each shipped model).
# The plain-L1 MobileNetV2-0.5 at this budget is results/300w-cpu-v2/ (the same 300w-cpu student recipe, seed,
# store and 160 epochs, trained 2026-12-02), so the default list leaves l1-lite out; table.sh takes its scores.
#   CORE=0 ONLY="kd-full l2-full" results/300w-cpu-v3/students.sh
# TOUGH / TOLERANT (default: the shipped teachers) take a shipped name, a model file or a run folder.
# A run named RUN-sK (K >= 2) is a next stage of RUN: it starts from the previous stage's fp16 weights (--init;
# for kd-full, the shipped student where this machine lost them), with a fresh one-cycle at lr $STAGE_LR
# (1e-3, as the teachers' next stages) for $STAGE_EPOCHS epochs (default: the width's budget); its folder is
# student-RUN-sK, and the table adds a row for the model with its stages beside the one-stage row.
#   CORE=1 ONLY="kd-lite-s2" STAGE_EPOCHS=120 results/300w-cpu-v3/students.sh   # ran 2026-12-03; shipped
set -euo pipefail
RUNS=${RUNS:-$HOME/kdl-runs/v3}
DATA=${DATA:-../shared/data/300w}
HERE=${HERE:-results/300w-cpu-v3}
STORE=${STORE:-$HOME/kdl-runs/stores/300w-train-128x1}
TOUGH=${TOUGH:-kd-teacher-300w-tough}
TOLERANT=${TOLERANT:-kd-teacher-300w-tolerant}
EPOCHS_FULL=${EPOCHS_FULL:-80}
EPOCHS_LITE=${EPOCHS_LITE:-160}
STAGE_LR=${STAGE_LR:-1e-3}
CACHE=${CACHE:-warp}   # how KD gets the teachers' outputs: warp | false (online); see benchmarks/kd_teacher_outputs
CORE=${CORE:-0}
mkdir -p "$RUNS"
# the one-copy store and its soft-landmarks, as run.sh builds them (a few seconds), if this machine lost them
[ -f "$STORE/meta.json" ] || kdlandmarks prepare --dataset 300w --root "$DATA" --split train --size 128 --copies 1 --out "$STORE"
[ -f "$STORE/soft_landmarks.npy" ] || kdlandmarks asm --store "$STORE"
ONLY=${ONLY:-kd-full kd-lite l2-full l2-lite l1-full kd-tough-full kd-tolerant-full}
kd=(--loss kd --tough "$TOUGH" --tolerant "$TOLERANT" --set student.teacher_cache="$CACHE")
for run in $ONLY; do
  base=${run%-s[0-9]*}  # kd-lite-s2 -> kd-lite; a one-stage run is its own base
  case $base in
    *-full) arch=mobilenetv2_100; epochs=$EPOCHS_FULL ;;
    *-lite) arch=mobilenetv2_050; epochs=$EPOCHS_LITE ;;
    *) echo "unknown run $run" >&2; exit 2 ;;
  esac
  stage=(); [ "$base" = "$run" ] || {
    k=${run##*-s}; prev="$RUNS/student-$base/model-fp16.pt"
    [ "$k" -gt 2 ] && prev="$RUNS/student-$base-s$((k - 1))/model-fp16.pt"
    if [ ! -f "$prev" ] && [ "$k" -eq 2 ] && [ "$base" = kd-full ]; then
      prev=kd-student-300w  # the shipped full-width student is its stage 1
    fi
    # the shipped kd-student-300w-lite is stage 2; its stage 1 is in git: git show
    # 3eafb53:src/kdlandmarks/weights/kd-student-300w-lite.pt > $RUNS/student-kd-lite/model-fp16.pt
    [ -f "$prev" ] || [ "$prev" = kd-student-300w ] || { echo "$run: no previous stage at $prev" >&2; exit 2; }
    epochs=${STAGE_EPOCHS:-$epochs}; stage=(--init "$prev" --set student.lr="$STAGE_LR")
  }
  case $base in
    kd-tough-*) loss=("${kd[@]}" --set "student.kd.teachers=[tough]") ;;
    kd-tolerant-*) loss=("${kd[@]}" --set "student.kd.teachers=[tolerant]") ;;
    kd-*) loss=("${kd[@]}") ;;
    l2-*) loss=(--loss l2) ;;
    l1-*) loss=(--loss l1) ;;
  esac
  keep="$HERE/student-$run"
  if [ -f "$keep/summary.json" ]; then echo "student-$run: kept in $keep, skipped"; continue; fi
  OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 taskset -c "$CORE" kdlandmarks train student --config 300w-cpu \
      --store "$STORE" --out "$RUNS/student-$run" --set student.arch=$arch --set student.epochs="$epochs" \
      "${loss[@]}" "${stage[@]}" --quiet >> "$RUNS/student-$run.log" 2>&1
  run_dir="$RUNS/student-$run"
  mkdir -p "$keep/logs"; cp "$run_dir/config.yaml" "$run_dir/summary.json" "$keep/"; cp "$run_dir"/logs/metrics*.csv "$keep/logs/"  # metrics.K.csv: invocations before a resume
  model="$run_dir/model-fp16.pt"  # every row scores the fp16 weights, the form that ships
  python3 -c "from kdlandmarks.models.backbones import load_model, save_model; m, i = load_model('$run_dir/model.pt'); save_model('$model', m, i, half=True)"
  for extra in "" "--flip-test"; do
    tag=$(echo "$extra" | tr -d '-'); tag=${tag:-gt}
    OMP_NUM_THREADS=1 taskset -c "$CORE" kdlandmarks evaluate --model "$model" --dataset 300w --root "$DATA" \
        --split lfpw/testset --out "$keep/eval-$tag" $extra
    rm -r "$keep/eval-$tag/pts"  # per-face predictions stay out of the repository
  done
done
