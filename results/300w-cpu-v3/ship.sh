#!/bin/bash
# Ship the staged CPU campaign's models under the package's names (issue "Accuracy, part 2"), from the
# repository root once run.sh and students.sh have made them:
#   teachers  TOUGH / TOLERANT (the final stage of each, fp16, kept here by run.sh) -> kd-teacher-300w-tough /
#             -tolerant (.pt only); the file moves, so the repository holds one copy of it
#   students  $RUNS/student-kd-full/model-fp16.pt / student-kd-lite/... -> kd-student-300w / kd-student-300w-lite
#             (.pt, plus the ONNX export and its runtime description, .json, that onnxruntime and the web app load)
# and score each shipped student end to end (RetinaFace crop, `--protocol detector`) beside the ground-truth rows.
# The model cards (src/kdlandmarks/weights/*.md) and zoo.SHIPPED's one-liners are edited by hand from the
# scores this writes; the timings come from `kdlandmarks bench` on an idle machine.
#   TOUGH=results/300w-cpu-v3/tough-r18-s3-fp16.pt TOLERANT=results/300w-cpu-v3/tolerant-r18-s2-fp16.pt \
#     results/300w-cpu-v3/ship.sh                       # as shipped 2026-12-03
#   ONLY="kd-full kd-lite" results/300w-cpu-v3/ship.sh  # the students alone, from this machine's runs
#   ONLY="kd-lite-s2" results/300w-cpu-v3/ship.sh       # the lite's second stage, as kd-student-300w-lite
set -euo pipefail
HERE=${HERE:-results/300w-cpu-v3}
RUNS=${RUNS:-$HOME/kdl-runs/v3}
DATA=${DATA:-../shared/data/300w}
WEIGHTS=src/kdlandmarks/weights
ONLY=${ONLY:-teachers kd-full kd-lite}
install_file() {  # src dst: copy, then rename, so a cut-off copy never replaces a shipped file
  cp "$1" "$2.part" && mv "$2.part" "$2"
}
move_file() {  # src dst: install, then drop the source, so the repository keeps one copy
  install_file "$1" "$2" && rm "$1"
}
for what in $ONLY; do
  case $what in
    teachers)  # TOUGH and/or TOLERANT: the final stage's fp16 file of each teacher to ship
      [ -n "${TOUGH:-}${TOLERANT:-}" ] || { echo "teachers: set TOUGH and/or TOLERANT (fp16 files)" >&2; exit 2; }
      if [ -n "${TOUGH:-}" ]; then move_file "$TOUGH" "$WEIGHTS/kd-teacher-300w-tough.pt"; fi
      if [ -n "${TOLERANT:-}" ]; then move_file "$TOLERANT" "$WEIGHTS/kd-teacher-300w-tolerant.pt"; fi ;;
    kd-full|kd-lite|kd-full-s[0-9]*|kd-lite-s[0-9]*)  # a later stage (students.sh RUN-sK) ships under its name too
      name=kd-student-300w; [ "${what%-s[0-9]*}" = kd-lite ] && name=kd-student-300w-lite
      install_file "$RUNS/student-$what/model-fp16.pt" "$WEIGHTS/$name.pt"
      kdlandmarks export --model "$WEIGHTS/$name.pt" --format onnx --out "$WEIGHTS/$name.onnx"
      kdlandmarks evaluate --model "$name" --dataset 300w --root "$DATA" --split lfpw/testset \
          --protocol detector --out "$HERE/student-$what/eval-detector"
      rm -r "$HERE/student-$what/eval-detector/pts" ;;
    *) echo "unknown item $what (teachers, kd-full, kd-lite, or a later stage: kd-lite-s2 ...)" >&2; exit 2 ;;
  esac
done
