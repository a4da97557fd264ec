#!/bin/bash
# The README's results table as one report and one CED plot: the four shipped models, the plain-L2 and plain-L1
# baselines at the KD full's first-stage budget, and the plain-L1 controls at exactly the shipped students' stages,
# each from its kept LFPW test evaluation (ground-truth crop; the students in fp32, as their cards' headline rows),
# every model paired face by face with the shipped lite (the default):
#   results/300w-cpu-v4/shipped.sh   # -> results/300w-cpu-v4/comparison/shipped/{table.md,ced.png,ced.csv}
# Run from the repository root, after ship.sh / keep.sh wrote the evaluations.
set -euo pipefail
V=results/300w-cpu-v4
V3=results/300w-cpu-v3
kdlandmarks report \
    --eval kd-student-300w-lite=$V/lite-occ-s3/eval-gt-fp32 \
    --eval kd-student-300w=$V/full-occ-s5/eval-gt-fp32 \
    --eval kd-teacher-300w-tough=$V/tough-r34-s4-px160/eval-gt \
    --eval kd-teacher-300w-tolerant=$V/tolerant-r34-s2-px160/eval-gt \
    --eval plain-l2-full-1-stage=$V3/student-l2-full/eval-gt \
    --eval plain-l1-full-1-stage=$V3/student-l1-full/eval-gt \
    --eval plain-l1-lite-3-stages=$V/lite-l1-s3/eval-gt \
    --eval plain-l1-full-5-stages=$V/full-l1-s5/eval-gt \
    --baseline kd-student-300w-lite --out $V/comparison/shipped \
    --title "300-W LFPW test (224 faces), ground-truth crop, inter-ocular NME: the shipped models"
