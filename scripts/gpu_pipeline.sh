#!/usr/bin/env bash
# The whole method on one GPU at the paper's input size: store with offline copies, ASM soft-landmarks,
# both teachers (in parallel), the plain-L2 baseline and the KD student (in parallel, same data and seed),
# then evaluation of all four on 300-W LFPW test with the ground-truth crop protocol.
# Usage: scripts/gpu_pipeline.sh DATA_ROOT RUN_DIR [TEACHER_MAX_TIME] [STUDENT_MAX_TIME]
# The max-time caps (DD:HH:MM:SS) bound a run on a time-limited machine; summary.json records the epochs reached.
set -euo pipefail
DATA=${1:?data root}; RUN=${2:?run dir}
T_TIME=${3:-}; S_TIME=${4:-}
SIZE=${SIZE:-224}; COPIES=${COPIES:-6}; CONFIG=${CONFIG:-300w-paper}
K="python3 -m kdlandmarks"
mkdir -p "$RUN"
$K prepare --dataset 300w --root "$DATA" --split train --size "$SIZE" --copies "$COPIES" --out "$RUN/store" --workers 16 --quiet
$K asm --store "$RUN/store" --variance 0.95
tcap=(); scap=()
[ -n "$T_TIME" ] && tcap=(--set "trainer.max_time=$T_TIME")
[ -n "$S_TIME" ] && scap=(--set "trainer.max_time=$S_TIME")
[ -n "${STUDENT_EPOCHS:-}" ] && scap+=(--set "student.epochs=$STUDENT_EPOCHS")
common=(--config "$CONFIG" --store "$RUN/store" --set "input_size=$SIZE" --quiet)
$K train teacher --kind tough "${common[@]}" "${tcap[@]}" --out "$RUN/tough" > "$RUN/tough.log" 2>&1 & p1=$!
$K train teacher --kind tolerant "${common[@]}" "${tcap[@]}" --out "$RUN/tolerant" > "$RUN/tolerant.log" 2>&1 & p2=$!
fail=0; wait $p1 || fail=1; wait $p2 || fail=1
tail -n 3 "$RUN/tough.log" "$RUN/tolerant.log"; [ $fail = 0 ] || exit 1
$K train student --loss l2 "${common[@]}" "${scap[@]}" --out "$RUN/baseline" > "$RUN/baseline.log" 2>&1 & p3=$!
$K train student --loss kd --tough "$RUN/tough" --tolerant "$RUN/tolerant" "${common[@]}" "${scap[@]}" --out "$RUN/student" > "$RUN/student.log" 2>&1 & p4=$!
wait $p3 || fail=1; wait $p4 || fail=1
tail -n 3 "$RUN/baseline.log" "$RUN/student.log"; [ $fail = 0 ] || exit 1
dev=cpu; python3 -c "import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)" && dev=cuda
for m in tough tolerant baseline student; do
  $K evaluate --model "$RUN/$m/model.pt" --dataset 300w --root "$DATA" --split lfpw/testset --out "$RUN/eval-$m" --device "$dev"
done
