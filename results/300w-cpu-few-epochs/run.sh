#!/usr/bin/env bash
# CPU recipe (300w-cpu) on the real 300-W train faces, store with 1 copy per face so that a few
# epochs fit this session; a kill and a resume; evaluation on LFPW test.
set -x
cd "$(dirname "$0")/../.."
D=../shared/data/300w
S=stores/300w-train-128
kdlandmarks asm --store $S --variance 0.95
C="--config 300w-cpu --store $S --quiet"
kdlandmarks train teacher --kind tough $C --set teacher.epochs=1 --out runs/cpu/tough
kdlandmarks train teacher --kind tolerant $C --set teacher.epochs=1 --out runs/cpu/tolerant
kdlandmarks train student --loss l2 $C --set student.epochs=3 --out runs/cpu/baseline &
pid=$!
while [ ! -f runs/cpu/baseline/checkpoints/last.ckpt ]; do sleep 5; done
sleep 15; kill -9 $pid; wait $pid; echo "killed baseline (exit $?)"
kdlandmarks train student --loss l2 $C --set student.epochs=3 --out runs/cpu/baseline
kdlandmarks train student --loss kd --tough runs/cpu/tough --tolerant runs/cpu/tolerant $C --set student.epochs=3 --out runs/cpu/student
for m in tough tolerant baseline student; do
  kdlandmarks evaluate --model runs/cpu/$m/model.pt --dataset 300w --root $D --split lfpw/testset --out runs/cpu/eval-$m
done
echo CHAIN DONE
