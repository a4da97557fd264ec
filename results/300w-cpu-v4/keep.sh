#!/bin/bash
# Keep a finished v4 run's record in the repository, from the repository root (issue "Accuracy, part 3"):
#   results/300w-cpu-v4/keep.sh lite-l1-s2 lite-l1-s3 ...
# For each RUN that is not shipped: its config, summary and training logs into results/300w-cpu-v4/RUN/, and the
# LFPW test score of its fp16 weights (ground-truth crop, PyTorch; eval-gt/metrics.json), which table.py reports
# beside the validation NME that chose it. The weights stay in $RUNS (RUN/model-fp16.pt); ship.sh is for the
# stages that become package models.
set -euo pipefail
source results/300w-cpu-v4/lib.sh
for run in "$@"; do
  [ -f "$RUNS/$run/model.pt" ] || { echo "$run: not finished (no $RUNS/$run/model.pt), skipped" >&2; continue; }
  fp16_copy "$run"
  keep_record "$run"
  lfpw_eval "$RUNS/$run/model-fp16.pt" "results/300w-cpu-v4/$run/eval-gt" --backend torch
done
