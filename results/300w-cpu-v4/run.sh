#!/bin/bash
# The third accuracy campaign (issue "Accuracy, part 3"), run from the repository root, one run after another on
# one core ($CORE, default 1), the other core left to foreground work. Each run resumes from its last.ckpt in
# $RUNS when it was cut off (a session ends after 180 minutes); a finished run (model.pt) is skipped.
# $SNAP, when set, is a copy of src/ that the runs import instead of the work tree, so that a run lasting hours
# is not broken by edits made meanwhile (`git archive HEAD src | tar -x -C $SNAP --strip-components=1`).
#   RUNS=~/kdl-runs/v4 SNAP=~/kdl-runs/snap-v4 results/300w-cpu-v4/run.sh
# Runs, in order (ONLY="a b" picks some):
#   tough-r34-s1       Tough-Teacher, ResNet-34, bf16-mixed (the 300w-cpu teacher precision), 80 epochs from scratch
#   lite-occ-s3        the two-stage lite student (kd-student-300w-lite as of 7d75c62) + 40 epochs of KD with
#                      occlusion augmentation (data.augment.occlusion=0.5), fresh one-cycle at 1e-3
#   lite-noocc-s3      the same 40 epochs without occlusion: the control that says what occlusion buys
#   prec-r18-fp32      a same-seed pair that says whether bf16 changes accuracy: Tough-Teacher, ResNet-18, 12 epochs
#   prec-r18-bf16      from scratch, one in fp32, one in bf16-mixed (benchmarks/validation_pairs.py pairs them)
#   tolerant-r34-s1    Tolerant-Teacher, ResNet-34, bf16-mixed, 80 epochs from scratch
#   tough-r34-s2       the Tough-Teacher's next stage: 40 epochs from tough-r34-s1's weights, fresh one-cycle at 1e-3
#   tough-r34-s3       and the next: 40 more from tough-r34-s2 (kd-teacher-300w-tough as of 6279b3c), the same settings
#   tough-r34-s3-px160 the teacher's input-size lever: tough-r34-s3 again at 160 px, 26 epochs (40 x (128/160)^2:
#                      the same convolution work), from the same tough-r34-s2 weights, lr 1e-3
#   tough-r34-s4-px160 and its next stage, the same settings, from tough-r34-s3-px160 (this machine's, else its fp16
#                      kept in git at 1f673be)
#   tolerant-r34-s2-px160  the same lever for the Tolerant-Teacher: tolerant-r34-s2 again at 160 px, 26 epochs from
#                      the same start (tolerant-r34-s1 as shipped at 45b49f9)
#   tolerant-r34-s3-px160  and its next stage, the same settings, from tolerant-r34-s2-px160 (this machine's, else as
#                      shipped at e532ba5)
#   tolerant-r34-s2    the Tolerant-Teacher's next stage: 40 epochs from tolerant-r34-s1 (kd-teacher-300w-tolerant as
#                      of 45b49f9), fresh one-cycle at 1e-3
#   full-occ-s2        the one-stage full-width student (kd-student-300w as of 07cc65a) + 80 epochs of KD with
#                      occlusion augmentation 0.5 (the lite pair chose it on validation), fresh one-cycle at 1e-3
#   full-occ-s3        its next stage: 80 more epochs from full-occ-s2's weights, the same settings
#   full-occ-s4        and the next: 80 more from full-occ-s3 (this machine's, else kd-student-300w as of d9dd485,
#   full-occ-s5        which is full-occ-s3), then 80 more from full-occ-s4 (shipped as kd-student-300w at 0447f55)
#   full-occ-s6        and 80 more from full-occ-s5
#   lite-l1-s2         the plain-L1 control of the shipped lite at exactly its stages: from the 160-epoch L1 lite
#   lite-l1-s3         (results/300w-cpu-v2, the KD lite's stage-1 control; its fp16 is in git at e8cdedd), 120
#                      epochs at lr 1e-3, then 40 with occlusion 0.5 at lr 1e-3, as kd-student-300w-lite's stages
#   lite-occ-s3-r34t   KD from the stronger Tough-Teacher: lite-occ-s3 again (the same init, 40 epochs, occlusion)
#                      with the ResNet-34 Tough-Teacher ($TOUGH_R34, default this machine's tough-r34-s2, else the
#                      shipped one as of 6279b3c) in place
#                      of the shipped ResNet-18 one; the Tolerant-Teacher unchanged
#   full-occ-s6-r34t   KD from the stronger teachers, full width: full-occ-s6 again (80 epochs from full-occ-s5, shipped
#                      as kd-student-300w at 0447f55) taught by both ResNet-34 teachers as shipped (Tough 6279b3c,
#                      Tolerant 45b49f9) in place of the ResNet-18 ones
#   lite-occ-s3-t160   KD from the 160 px Tough-Teacher (tough-r34-s4-px160, shipped at a4e7b39; it sees each 128 px
#   full-occ-s6-t160   store window at 160 px): lite-occ-s3-r34t and full-occ-s6-r34t again with it as the Tough-Teacher
#   full-l1-s1 .. s5   the plain-L1 control of the shipped full-width student (kd-student-300w = full-occ-s5) at
#                      exactly its stages: MobileNetV2-1.0 from scratch, 80 epochs at the recipe's lr 2e-3 without
#                      occlusion (as the KD full's stage 1, 07cc65a), then four stages of 80 epochs at lr 1e-3 with
#                      occlusion 0.5, each from the previous; a stage's init is this machine's previous stage, else
#                      its fp16 copy as the commit that kept it in results/300w-cpu-v4/full-l1-sN/ had it
#   px128-seed0        128 against 160 px input at equal CPU time: plain-L1 MobileNetV2-0.5 from scratch, 64 epochs
#   px160-seed0        at 128 px against 41 at 160 px (1.5625x the pixels per sample), the same recipe and seed;
#   px128-seed1        the seed-1 pair repeats it with another validation split and initialisation (the recipe
#   px160-seed1        study's 160 px lead was one seed at equal samples, not equal time)
#   scratch-l1-seed0   KD against L1 from scratch, with teachers far stronger than the student: px128-seed0 again
#   scratch-kd160-seed0 (its weights were lost with their machine), and the same 64 epochs with KD-Loss from both
#                      shipped 160 px ResNet-34 teachers (Tough 3.53 / 3.37 as of a4e7b39, Tolerant 4.27 / 3.91 as
#                      of e532ba5) in place of L1
#   scratch-kd160-seed1, scratch-l1-seed1  the same pair with seed 1 (another validation split and initialisation)
# A machine can be handed over without ~/kdl-runs: a finished stage that a later one needs is in git (shipped as
# a package model by ship.sh, or kept as fp16 until the next stage shipped: from_git below),
# and a lost run is simply run again; a stage whose previous one is neither here nor in git says so and stops.
set -euo pipefail
RUNS=${RUNS:-$HOME/kdl-runs/v4}
DATA=${DATA:-../shared/data/300w}
STORE=${STORE:-$HOME/kdl-runs/stores/300w-train-128x1}
STORE160=${STORE160:-$HOME/kdl-runs/stores/300w-train-160x1}
CORE=${CORE:-1}
ONLY=${ONLY:-tough-r34-s1 lite-occ-s3 lite-noocc-s3 prec-r18-fp32 prec-r18-bf16 tolerant-r34-s1 tough-r34-s2 full-occ-s2}
[ -n "${SNAP:-}" ] && export PYTHONPATH="$SNAP"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
kdl() { taskset -c "$CORE" python3 -m kdlandmarks "$@"; }
# A stage's starting weights as a commit kept them: the package's names move on to later stages and a
# finished stage's fp16 leaves the tree once the next one is shipped, so a rerun on a machine that lost
# $RUNS takes them from git (extracted once into $RUNS).
from_git() {  # COMMIT PATH -> prints the path of a copy of PATH as of COMMIT
  local out="$RUNS/$(basename "$2" .pt)@$1.pt"
  [ -f "$out" ] || { git show "$1:$2" > "$out.part" && mv "$out.part" "$out"; }
  echo "$out"
}
shipped_at() { from_git "$1" "src/kdlandmarks/weights/$2.pt"; }  # COMMIT NAME: a package model as of COMMIT
# Every student stage here learns from the ResNet-18 teachers that were the package's until d9dd485 (the names now
# hold the ResNet-34s), so a rerun from a later checkout teaches the same; lite-occ-s3-r34t swaps the Tough one,
# full-occ-s6-r34t both.
kd_teachers() {  # [TOUGH [TOLERANT]] -> sets teachers=(the KD options), default the ResNet-18 teachers
  teachers=(--loss kd --tough "${1:-$(shipped_at d9dd485 kd-teacher-300w-tough)}"
            --tolerant "${2:-$(shipped_at d9dd485 kd-teacher-300w-tolerant)}" --set student.teacher_cache=warp)
}
# The stores every run reads (a fresh machine has none): one plain 128 px crop per face, the ASM soft-landmarks
# beside it; the 160 px one only for the px160 runs.
prepare_store() {  # STORE SIZE
  [ -f "$1/meta.json" ] || taskset -c "$CORE" python3 -m kdlandmarks prepare --dataset 300w --root "$DATA" --split train \
      --size "$2" --copies 1 --out "$1" --quiet
  [ -f "$1/soft_landmarks.npy" ] || taskset -c "$CORE" python3 -m kdlandmarks asm --store "$1" > /dev/null
}
mkdir -p "$RUNS"
prepare_store "$STORE" 128
[[ " $ONLY " == *px160* ]] && prepare_store "$STORE160" 160
for run in $ONLY; do
  [ -f "$RUNS/$run/model.pt" ] && { echo "$run: done, skipped"; continue; }
  store=$STORE
  case $run in
    tough-r34-s1|tolerant-r34-s1)
      args=(train teacher --kind "${run%%-*}" --set teacher.arch=resnet34 --set teacher.epochs=80) ;;
    tough-r34-s3|tolerant-r34-s2)
      kind=${run%%-*}; prev=$kind-r34-s$(( ${run##*-s} - 1 )); init="$RUNS/$prev/model.pt"
      if [ ! -f "$init" ]; then  # the previous stage as shipped
        case $run in
          tough-r34-s3) init=$(shipped_at 6279b3c kd-teacher-300w-tough) ;;
          tolerant-r34-s2) init=$(shipped_at 45b49f9 kd-teacher-300w-tolerant) ;;
        esac
      fi
      args=(train teacher --kind "$kind" --set teacher.arch=resnet34 --set teacher.epochs=40
            --init "$init" --set teacher.lr=1e-3) ;;
    tough-r34-s3-px160|tough-r34-s4-px160|tolerant-r34-s2-px160|tolerant-r34-s3-px160)
      case $run in  # the first 160 px stage starts from the weights its 128 px stage did: its equal-work control
        tough-r34-s3-px160) init=$(shipped_at 6279b3c kd-teacher-300w-tough) ;;
        tough-r34-s4-px160) init="$RUNS/tough-r34-s3-px160/model.pt"
          [ -f "$init" ] || init=$(from_git 1f673be results/300w-cpu-v4/tough-r34-s3-px160/model-fp16.pt) ;;
        tolerant-r34-s2-px160) init=$(shipped_at 45b49f9 kd-teacher-300w-tolerant) ;;
        tolerant-r34-s3-px160) init="$RUNS/tolerant-r34-s2-px160/model.pt"
          [ -f "$init" ] || init=$(shipped_at e532ba5 kd-teacher-300w-tolerant) ;;
      esac
      args=(train teacher --kind "${run%%-*}" --set teacher.arch=resnet34 --set teacher.epochs=26 --set input_size=160
            --init "$init" --set teacher.lr=1e-3); store=$STORE160 ;;
    tough-r34-s2)  # from this machine's stage 1, else its fp16 copy that the repository kept
      init="$RUNS/tough-r34-s1/model.pt"
      [ -f "$init" ] || init=$(from_git 0052ef7 results/300w-cpu-v4/tough-r34-s1/model-fp16.pt)
      args=(train teacher --kind tough --set teacher.arch=resnet34 --set teacher.epochs=40
            --init "$init" --set teacher.lr=1e-3) ;;
    prec-r18-fp32|prec-r18-bf16)
      args=(train teacher --kind tough --set teacher.arch=resnet18 --set teacher.epochs=12
            --set teacher.precision=$([ "$run" = prec-r18-bf16 ] && echo bf16-mixed || echo 32-true)) ;;
    lite-occ-s3|lite-noocc-s3|lite-occ-s3-r34t|lite-occ-s3-t160)
      occ=0.5; [ "$run" = lite-noocc-s3 ] && occ=0.0
      tough=; if [ "$run" = lite-occ-s3-r34t ]; then
        tough=${TOUGH_R34:-$RUNS/tough-r34-s2/model.pt}
        [ -f "$tough" ] || tough=$(shipped_at 6279b3c kd-teacher-300w-tough)
      elif [ "$run" = lite-occ-s3-t160 ]; then tough=$(shipped_at a4e7b39 kd-teacher-300w-tough)
      fi
      kd_teachers $tough
      args=(train student "${teachers[@]}" --set student.arch=mobilenetv2_050 --set student.epochs=40
            --init "$(shipped_at 7d75c62 kd-student-300w-lite)" --set student.lr=1e-3 --set data.augment.occlusion=$occ) ;;
    full-occ-s2|full-occ-s3|full-occ-s4|full-occ-s5|full-occ-s6|full-occ-s6-r34t|full-occ-s6-t160)
      stronger=()  # the teachers, when not the ResNet-18 ones
      case $run in
        full-occ-s2) init=$(shipped_at 07cc65a kd-student-300w) ;;
        full-occ-s3) init="$RUNS/full-occ-s2/model.pt" ;;
        full-occ-s4) init="$RUNS/full-occ-s3/model.pt"; [ -f "$init" ] || init=$(shipped_at d9dd485 kd-student-300w) ;;
        full-occ-s5) init="$RUNS/full-occ-s4/model.pt" ;;
        full-occ-s6) init="$RUNS/full-occ-s5/model.pt"; [ -f "$init" ] || init=$(shipped_at 0447f55 kd-student-300w) ;;
        full-occ-s6-r34t) init=$(shipped_at 0447f55 kd-student-300w)  # = full-occ-s5, as full-occ-s6 started from it
          stronger=("$(shipped_at 6279b3c kd-teacher-300w-tough)" "$(shipped_at 45b49f9 kd-teacher-300w-tolerant)") ;;
        full-occ-s6-t160) init=$(shipped_at 0447f55 kd-student-300w)  # full-occ-s6-r34t with the 160 px Tough-Teacher
          stronger=("$(shipped_at a4e7b39 kd-teacher-300w-tough)" "$(shipped_at 45b49f9 kd-teacher-300w-tolerant)") ;;
      esac
      kd_teachers "${stronger[@]}"
      args=(train student "${teachers[@]}" --set student.arch=mobilenetv2_100 --set student.epochs=80
            --init "$init" --set student.lr=1e-3 --set data.augment.occlusion=0.5) ;;
    lite-l1-s2)
      init=$(from_git e8cdedd results/300w-cpu-v2/lite-l1-fp16.pt)  # the 160-epoch plain-L1 lite
      args=(train student --loss l1 --set student.arch=mobilenetv2_050 --set student.epochs=120
            --init "$init" --set student.lr=1e-3) ;;
    lite-l1-s3)
      init="$RUNS/lite-l1-s2/model.pt"
      args=(train student --loss l1 --set student.arch=mobilenetv2_050 --set student.epochs=40
            --init "$init" --set student.lr=1e-3 --set data.augment.occlusion=0.5) ;;
    full-l1-s1)
      args=(train student --loss l1 --set student.arch=mobilenetv2_100 --set student.epochs=80) ;;
    full-l1-s2|full-l1-s3|full-l1-s4|full-l1-s5)
      prev=full-l1-s$(( ${run##*-s} - 1 )); init="$RUNS/$prev/model.pt"
      if [ ! -f "$init" ]; then  # the commit that kept the previous stage's fp16 (it leaves the tree with the next)
        case $prev in full-l1-s1) kept=3c79780 ;; full-l1-s2) kept=ec9bd55 ;;
                      full-l1-s3) kept=e62c538 ;; full-l1-s4) kept=5cab298 ;; esac
        init=$(from_git $kept results/300w-cpu-v4/$prev/model-fp16.pt)
      fi
      args=(train student --loss l1 --set student.arch=mobilenetv2_100 --set student.epochs=80
            --init "$init" --set student.lr=1e-3 --set data.augment.occlusion=0.5) ;;
    scratch-l1-seed*|scratch-kd160-seed*)  # px128-seedN again, and the same with KD from both 160 px teachers
      teachers=(--loss l1)
      [ "${run%-seed*}" = scratch-kd160 ] &&
        kd_teachers "$(shipped_at a4e7b39 kd-teacher-300w-tough)" "$(shipped_at e532ba5 kd-teacher-300w-tolerant)"
      args=(train student "${teachers[@]}" --set student.arch=mobilenetv2_050 --set trainer.seed=${run##*-seed}
            --set student.epochs=64) ;;
    px128-seed*|px160-seed*)
      seed=${run##*-seed}
      args=(train student --loss l1 --set student.arch=mobilenetv2_050 --set trainer.seed=$seed)
      if [ "${run%%-*}" = px160 ]; then args+=(--set input_size=160 --set student.epochs=41); store=$STORE160
      else args+=(--set student.epochs=64); fi ;;
    *) echo "unknown run $run" >&2; exit 2 ;;
  esac
  for i in "${!args[@]}"; do  # a previous stage that this machine lost and git does not hold: run it first
    if [ "${args[$i]}" = --init ] && [[ "${args[$((i + 1))]}" == /* ]] && [ ! -f "${args[$((i + 1))]}" ]; then
      echo "$run: its previous stage ${args[$((i + 1))]} is missing: run that stage first" >&2; exit 2
    fi
  done
  echo "$(date -u +%FT%TZ) $run: start"
  kdl "${args[@]}" --config 300w-cpu --store "$store" --out "$RUNS/$run" --quiet >> "$RUNS/$run.log" 2>&1
  echo "$(date -u +%FT%TZ) $run: end"
done
