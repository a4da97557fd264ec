#!/bin/bash
# How KD fits fresh augmentation (issue "Accuracy, part 1", item 2): the same KD student trained for the same
# wall-clock minutes with its teachers' outputs taken three ways, scored on the validation faces carved from
# train (never LFPW test):
#   online  fresh augmentation every step, both teachers run on every batch (exact, ~4x the cost per step)
#   fixed   K fixed augmented copies per face (prepare --copies K), outputs cached once; the cache build
#           counts against the arm's minutes
#   warp    fresh augmentation every step, outputs cached on each plain crop and moved with the step's warp
#           (student.teacher_cache=warp)
# Each arm first runs PROBE steps to measure its speed, then gets the steps that fill MINUTES. Run from the
# repository root, one arm per core (CORE=0|1), e.g.
#   TOUGH=kd-teacher-300w-tough TOLERANT=kd-teacher-300w-tolerant MINUTES=40 benchmarks/kd_teacher_outputs/run.sh
# then `python3 benchmarks/kd_teacher_outputs/table.py` writes results/kd-teacher-outputs/table.md.
set -euo pipefail
RUNS=${RUNS:-$HOME/kdl-runs/kd-outputs}
DATA=${DATA:-../shared/data/300w}
STORES=${STORES:-$HOME/kdl-runs/stores}
TOUGH=${TOUGH:?the Tough-Teacher (model file, run folder or shipped name)}
TOLERANT=${TOLERANT:?the Tolerant-Teacher}
ARCH=${ARCH:-mobilenetv2_050}
MINUTES=${MINUTES:-40}
PROBE=${PROBE:-40}
K=${K:-20}
CORE=${CORE:-0}
ARMS=${ARMS:-online fixed warp}
mkdir -p "$RUNS" "$STORES"
store() {  # copies
  local s="$STORES/300w-train-128x$1"
  [ -f "$s/meta.json" ] || kdlandmarks prepare --dataset 300w --root "$DATA" --split train --size 128 \
      --copies "$1" --out "$s" --quiet >&2
  echo "$s"
}
train() {  # out store [--set ...]
  local out=$1 st=$2; shift 2
  OMP_NUM_THREADS=1 taskset -c "$CORE" kdlandmarks train student --config 300w-cpu --loss kd \
      --tough "$TOUGH" --tolerant "$TOLERANT" --store "$st" --out "$out" --quiet \
      --set student.arch="$ARCH" "$@"
}
for arm in $ARMS; do
  [ -f "$RUNS/$arm/summary.json" ] && continue
  case $arm in
    online) st=$(store 1); opts=(--set student.teacher_cache=false) ;;
    warp) st=$(store 1); opts=(--set student.teacher_cache=warp) ;;
    fixed) st=$(store "$K"); opts=(--set student.teacher_cache=true --set data.augment=null) ;;
    *) echo "unknown arm $arm" >&2; exit 2 ;;
  esac
  # the probe builds the arm's teacher cache (kept in the store) and measures steps per second
  start=$(date +%s)
  train "$RUNS/probe-$arm" "$st" "${opts[@]}" --set trainer.max_steps="$PROBE" --restart
  wall=$(( $(date +%s) - start ))
  read -r steps <<<"$(python3 - "$RUNS/probe-$arm/summary.json" "$wall" "$MINUTES" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
overhead = float(sys.argv[2]) - s["seconds"]  # start-up and, for the cached arms, building the cache
budget = float(sys.argv[3]) * 60 - max(overhead, 0.0)
print(max(int(budget * s["steps"] / s["seconds"]), 1))
PY
)"
  echo "== $arm: $steps steps (probe wall $wall s)"
  echo "{\"arm\": \"$arm\", \"probe_wall_s\": $wall, \"steps\": $steps, \"minutes\": $MINUTES, \"copies\": $([ "$arm" = fixed ] && echo "$K" || echo 1)}" \
      > "$RUNS/$arm.plan.json"
  train "$RUNS/$arm" "$st" "${opts[@]}" --set trainer.max_steps="$steps" --set student.epochs=100000
done
