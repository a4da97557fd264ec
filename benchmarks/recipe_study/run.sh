#!/bin/bash
# The recipe study (issue "Accuracy, part 1"): every arm trains MobileNetV2-0.5 from scratch for the same
# number of training samples (STEPS x 32, the fixed-copies arms STEPS x 32 too) and is scored on the
# validation faces carved from train (5 %, copy 0), never on LFPW test. One arm changes one setting of
# base.yaml. Run from the repository root; runs go to $RUNS (default ~/kdl-runs/study), re-running
# skips finished arms. Then `python3 benchmarks/recipe_study/table.py` writes results/recipe-study/.
set -euo pipefail
RUNS=${RUNS:-$HOME/kdl-runs/study}
DATA=${DATA:-../shared/data/300w}
STEPS=${STEPS:-900}
STORES=${STORES:-$HOME/kdl-runs/stores}
BASE=benchmarks/recipe_study/base.yaml
mkdir -p "$RUNS" "$STORES"
store() {  # size copies
  local s="$STORES/300w-train-$1x$2"
  [ -f "$s/meta.json" ] || kdlandmarks prepare --dataset 300w --root "$DATA" --split train --size "$1" \
      --copies "$2" --out "$s" >&2
  echo "$s"
}
arm() {  # name store [--set ...]
  local name=$1 st=$2; shift 2
  [ -f "$RUNS/$name/summary.json" ] && return 0
  echo "== $name"
  kdlandmarks train student --config $BASE --store "$st" --out "$RUNS/$name" --quiet \
      --set trainer.max_steps=$STEPS "$@"
}
S1=$(store 128 1); S6=$(store 128 6)
ONLY=${ONLY:-}
want() { [ -z "$ONLY" ] || [[ " $ONLY " == *" $1 "* ]]; }
# the old 300w-cpu recipe's student settings (paper: 6 fixed copies, Adam, Keras decay, L2, batch 70)
want paper && arm paper "$S6" --set data.augment=null --set student.optimizer=adam --set student.weight_decay=0 \
    --set student.schedule=keras --set student.lr=1e-3 --set student.loss=l2 --set data.batch_size=70 \
    --set trainer.max_steps=$((STEPS * 32 / 70))
want fresh && arm fresh "$S1"
want sched-keras && arm sched-keras "$S1" --set student.schedule=keras --set student.lr=1e-3
want sched-cosine && arm sched-cosine "$S1" --set student.schedule=cosine --set student.warmup=0.05
want opt-adam && arm opt-adam "$S1" --set student.optimizer=adam --set student.weight_decay=0
want fixed-copies && arm fixed-copies "$S6" --set data.augment=null
want loss-l2 && arm loss-l2 "$S1" --set student.loss=l2
want loss-wing && arm loss-wing "$S1" --set student.loss=wing
want loss-smooth-l1 && arm loss-smooth-l1 "$S1" --set student.loss=smooth_l1
want box-jitter && arm box-jitter "$S1" --set data.augment.scale=0.2 --set data.augment.translate=0.1
want rot-small && arm rot-small "$S1" --set data.augment.rotation=0.17
want cutout && arm cutout "$S1" --set data.augment.cutout=0.3
want no-photometric && arm no-photometric "$S1" --set data.augment.gamma=0 --set data.augment.contrast=0 \
    --set data.augment.noise=0 --set data.augment.blur=0 --set data.augment.grayscale=0
if want size-160; then S160=$(store 160 1); arm size-160 "$S160" --set input_size=160; fi
