#!/bin/bash
# One table and one CED plot for every model of the staged CPU campaign that has been scored on LFPW test
# (teachers of each stage, students): results/300w-cpu-v3/comparison/{table.md,ced.png,ced.csv}; and, per
# student width, every student paired face by face with the plain-L2 baseline of that width (the paper's
# comparison) and with the plain-L1 one (this recipe's): comparison/paired-{full,lite}-vs-{l2,l1}/table.md
# (mean NME difference, bootstrap 95 % CI, faces won, paired p-value), and the single-teacher ablations
# with KD from both teachers (comparison/paired-full-ablations); a KD student's further stages
# (student-kd-WIDTH-sK) join its width's pairings.
# Run from the repository root after run.sh / students.sh; the README's results tables quote them.
set -euo pipefail
HERE=${HERE:-results/300w-cpu-v3}
# the plain-L1 MobileNetV2-0.5 of the campaign's budget was trained before it (students.sh says why)
l1_lite="$HERE/student-l1-lite/eval-gt"
[ -d "$l1_lite" ] || l1_lite=results/300w-cpu-v2/eval-gt
student_eval() {  # run width: the student's ground-truth-crop evaluation folder
  if [ "$1-$2" = l1-lite ]; then echo "$l1_lite"; else echo "$HERE/student-$1-$2/eval-gt"; fi
}
evals=()
for d in "$HERE"/*/eval-gt; do
  evals+=(--eval "$(basename "$(dirname "$d")")=$d")
done
[ -d "$HERE/student-l1-lite" ] || evals+=(--eval "student-l1-lite=$l1_lite")
title="300-W LFPW test (224 faces), ground-truth crop, inter-ocular NME"
kdlandmarks report "${evals[@]}" --out "$HERE/comparison" --title "$title"
for width in full lite; do
  for base in l2 l1; do
    b=$(student_eval $base $width)
    [ -d "$b" ] || { echo "paired-$width-vs-$base: no plain-$base baseline scored yet"; continue; }
    evals=()
    for run in kd l2 l1 kd-tough kd-tolerant; do
      d=$(student_eval $run $width)
      [ -d "$d" ] && evals+=(--eval "student-$run-$width=$d")
    done
    for d in "$HERE"/student-kd-$width-s*/eval-gt; do  # the KD student's further stages (students.sh RUN-sK)
      [ -d "$d" ] && evals+=(--eval "$(basename "$(dirname "$d")")=$d")
    done
    kdlandmarks report "${evals[@]}" --baseline "student-$base-$width" --out "$HERE/comparison/paired-$width-vs-$base" \
        --title "$title, MobileNetV2 $width width"
  done
done
# the single-teacher ablations paired with KD from both teachers (the paper's † rows against its 3.56)
evals=(--eval "student-kd-full=$HERE/student-kd-full/eval-gt")
for run in kd-tough kd-tolerant; do
  d=$(student_eval $run full)
  [ -d "$d" ] && evals+=(--eval "student-$run-full=$d")
done
kdlandmarks report "${evals[@]}" --baseline student-kd-full --out "$HERE/comparison/paired-full-ablations" \
    --title "$title, MobileNetV2 full width, single-teacher ablations"
