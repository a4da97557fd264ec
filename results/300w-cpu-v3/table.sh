#!/bin/bash
# One table and one CED plot for every model of the staged CPU campaign that has been scored on LFPW test
# (teachers of each stage, students): results/300w-cpu-v3/comparison/{table.md,ced.png,ced.csv}.
# Run from the repository root after run.sh / students.sh; the README's results table quotes it.
set -euo pipefail
HERE=${HERE:-results/300w-cpu-v3}
evals=()
for d in "$HERE"/*/eval-gt; do
  evals+=(--eval "$(basename "$(dirname "$d")")=$d")
done
# the plain-L1 MobileNetV2-0.5 of the campaign's budget was trained before it (students.sh says why)
[ -d "$HERE/student-l1-lite" ] || evals+=(--eval "student-l1-lite=results/300w-cpu-v2/eval-gt")
kdlandmarks report "${evals[@]}" --out "$HERE/comparison" \
    --title "300-W LFPW test (224 faces), ground-truth crop, inter-ocular NME"
