#!/usr/bin/env bash
set -x
cd "$(dirname "$0")/../.."
C="--config 300w-cpu --store stores/300w-train-128 --quiet"
rm -rf runs/cpu/baseline-resume
kdlandmarks train student --loss l2 $C --set student.epochs=2 --out runs/cpu/baseline-resume &
pid=$!
while [ ! -f runs/cpu/baseline-resume/checkpoints/last.ckpt ]; do sleep 2; done
sleep 10; kill -9 $pid; wait $pid; echo "killed (exit $?)"
python3 -c "import torch; c=torch.load('runs/cpu/baseline-resume/checkpoints/last.ckpt', weights_only=False); print('last.ckpt after the kill: epoch', c['epoch'], 'global_step', c['global_step'])"
kdlandmarks train student --loss l2 $C --set student.epochs=2 --out runs/cpu/baseline-resume
echo KR DONE
