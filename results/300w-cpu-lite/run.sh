#!/bin/bash
# How kd-student-300w-lite was trained and measured on the 2-core CPU (2026-11-26); run from the repository root.
# The store and its ASM come from the "Train" section of the README (6 copies of the 2012 training faces).
set -euo pipefail
TEACHERS="--tough results/300w-gpu-128/models/tough-teacher-fp16.pt --tolerant results/300w-gpu-128/models/tolerant-teacher-fp16.pt"
# phase 1: 30 epochs at lr 1e-3 (69 min, plus 19 min to cache both teachers' outputs on the 12072 stored samples)
kdlandmarks train student --config 300w-cpu --store stores/300w-train-128x6 --out runs/cpu050/kd $TEACHERS \
  --set student.arch=mobilenetv2_050 --set student.epochs=30
# phase 2: 12 epochs at lr 1e-4 from phase 1's final weights (25 min)
kdlandmarks train student --config 300w-cpu --store stores/300w-train-128x6 --out runs/cpu050/kd-ft $TEACHERS \
  --set student.arch=mobilenetv2_050 --set student.epochs=12 --set student.lr=1e-4 --init runs/cpu050/kd
# ship (validation NME: 6.30 after phase 1, 5.76 after phase 2)
python3 -c "from kdlandmarks.models.backbones import load_model, save_model; m, i = load_model('runs/cpu050/kd-ft/model.pt'); save_model('src/kdlandmarks/weights/kd-student-300w-lite.pt', m, i, half=True)"
kdlandmarks export --model src/kdlandmarks/weights/kd-student-300w-lite.pt --format onnx --out src/kdlandmarks/weights/kd-student-300w-lite.onnx
# measure
kdlandmarks evaluate --model kd-student-300w-lite --dataset 300w --root ../shared/data/300w --split lfpw/testset --out runs/cpu050/eval-lite
kdlandmarks evaluate --model runs/cpu050/kd/model.pt --dataset 300w --root ../shared/data/300w --split lfpw/testset --out runs/cpu050/eval-phase1
kdlandmarks bench > results/300w-cpu-lite/bench-kd-student-300w-lite.txt
kdlandmarks bench --model kd-student-300w --teacher-arch none --no-detector --input-size 128 > results/300w-cpu-lite/bench-kd-student-300w.txt
