#!/bin/bash
# The third accuracy campaign (issue "Accuracy, part 3"), run from the repository root, one run after another on
# one core ($CORE, default 1), the other core left to foreground work. Each run resumes from its last.ckpt in
# $RUNS when it was cut off (a session ends after 180 minutes); a finished run (model.pt) is skipped.
# $SNAP, when set, is a copy of src/ that the runs import instead of the work tree, so that a run lasting hours
# is not broken by edits made meanwhile (`git archive HEAD src | tar -x -C $SNAP --strip-components=1`).
#   RUNS=~/kdl-runs/v4 SNAP=~/kdl-runs/snap-v4 results/300w-cpu-v4/run.sh
# Runs, in order (ONLY="a b" picks some):
#   tough-r34-s1       Tough-Teacher, ResNet-34, bf16-mixed (the 300w-cpu teacher precision), 80 epochs from scratch
#   lite-occ-s3        the shipped lite student (kd-student-300w-lite, two stages) + 40 epochs of KD with
#                      occlusion augmentation (data.augment.occlusion=0.5), fresh one-cycle at 1e-3
#   lite-noocc-s3      the same 40 epochs without occlusion: the control that says what occlusion buys
#   prec-r18-fp32      a same-seed pair that says whether bf16 changes accuracy: Tough-Teacher, ResNet-18, 12 epochs
#   prec-r18-bf16      from scratch, one in fp32, one in bf16-mixed (benchmarks/validation_pairs.py pairs them)
#   tolerant-r34-s1    Tolerant-Teacher, ResNet-34, bf16-mixed, 80 epochs from scratch
#   tough-r34-s2       the Tough-Teacher's next stage: 40 epochs from tough-r34-s1's weights, fresh one-cycle at 1e-3
#   full-occ-s2        the shipped full-width student (kd-student-300w, one 80-epoch stage) + 80 epochs of KD with
#                      occlusion augmentation 0.5 (the lite pair chose it on validation), fresh one-cycle at 1e-3
#   full-occ-s3        its next stage: 80 more epochs from full-occ-s2's weights, the same settings
# A machine can be handed over without ~/kdl-runs: a finished run's fp16 weights that a later stage needs are
# committed beside its results (tough-r34-s1/model-fp16.pt; the students' stages ship as the package's
# models: ship.sh), and a lost run is simply run again.
set -euo pipefail
RUNS=${RUNS:-$HOME/kdl-runs/v4}
DATA=${DATA:-../shared/data/300w}
STORE=${STORE:-$HOME/kdl-runs/stores/300w-train-128x1}
CORE=${CORE:-1}
ONLY=${ONLY:-tough-r34-s1 lite-occ-s3 lite-noocc-s3 prec-r18-fp32 prec-r18-bf16 tolerant-r34-s1 tough-r34-s2 full-occ-s2}
[ -n "${SNAP:-}" ] && export PYTHONPATH="$SNAP"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
kdl() { taskset -c "$CORE" python3 -m kdlandmarks "$@"; }
mkdir -p "$RUNS"
[ -f "$STORE/meta.json" ] || kdl prepare --dataset 300w --root "$DATA" --split train --size 128 --copies 1 --out "$STORE"
[ -f "$STORE/soft_landmarks.npy" ] || kdl asm --store "$STORE"
kd=(--loss kd --tough kd-teacher-300w-tough --tolerant kd-teacher-300w-tolerant --set student.teacher_cache=warp)
for run in $ONLY; do
  [ -f "$RUNS/$run/model.pt" ] && { echo "$run: done, skipped"; continue; }
  case $run in
    tough-r34-s1|tolerant-r34-s1)
      args=(train teacher --kind "${run%%-*}" --set teacher.arch=resnet34 --set teacher.epochs=80) ;;
    tough-r34-s2)  # from this machine's stage 1, else the fp16 copy kept in the repository
      init="$RUNS/tough-r34-s1/model.pt"; [ -f "$init" ] || init=results/300w-cpu-v4/tough-r34-s1/model-fp16.pt
      args=(train teacher --kind tough --set teacher.arch=resnet34 --set teacher.epochs=40
            --init "$init" --set teacher.lr=1e-3) ;;
    prec-r18-fp32|prec-r18-bf16)
      args=(train teacher --kind tough --set teacher.arch=resnet18 --set teacher.epochs=12
            --set teacher.precision=$([ "$run" = prec-r18-bf16 ] && echo bf16-mixed || echo 32-true)) ;;
    lite-occ-s3|lite-noocc-s3)
      occ=0.5; [ "$run" = lite-noocc-s3 ] && occ=0.0
      args=(train student "${kd[@]}" --set student.arch=mobilenetv2_050 --set student.epochs=40
            --init kd-student-300w-lite --set student.lr=1e-3 --set data.augment.occlusion=$occ) ;;
    full-occ-s2|full-occ-s3)
      init=kd-student-300w; [ "$run" = full-occ-s3 ] && init="$RUNS/full-occ-s2/model.pt"
      args=(train student "${kd[@]}" --set student.arch=mobilenetv2_100 --set student.epochs=80
            --init "$init" --set student.lr=1e-3 --set data.augment.occlusion=0.5) ;;
    *) echo "unknown run $run" >&2; exit 2 ;;
  esac
  echo "$(date -u +%FT%TZ) $run: start"
  kdl "${args[@]}" --config 300w-cpu --store "$STORE" --out "$RUNS/$run" --quiet >> "$RUNS/$run.log" 2>&1
  echo "$(date -u +%FT%TZ) $run: end"
done
