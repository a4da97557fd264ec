#!/bin/bash
# Ship a finished v4 stage under a package name, from the repository root (issue "Accuracy, part 3"):
#   RUN=lite-occ-s3 NAME=kd-student-300w-lite results/300w-cpu-v4/ship.sh
#   RUN=tough-r34-s2 NAME=kd-teacher-300w-tough results/300w-cpu-v4/ship.sh
# 1. $RUNS/$RUN/model.pt -> fp16 $WEIGHTS/$NAME.pt (and $RUNS/$RUN/model-fp16.pt, what a later stage starts from),
#    and the run's config, summary and training logs into results/300w-cpu-v4/$RUN/
# A teacher ships as PyTorch weights only (source checkout): 2. its LFPW test scores, ground-truth crop, plain and
# with flip test (eval-gt, eval-fliptest; bf16 autocast where evaluate uses it). A student also ships as ONNX:
# 2. its fp32 ONNX export and runtime description ($NAME.onnx, $NAME.json)
# 3. its int8 ONNX ($NAME.int8.onnx): the setting results/int8/quantize.py chose on validation for the shipped
#    students (QDQ, per-channel int8 weights with reduce_range, u8 activations, fp32 head), calibrated on 256
#    training faces that are not validation faces
# 4. LFPW test scores (ground-truth crop and `--protocol detector`) of both exports into results/300w-cpu-v4/$RUN/,
#    and the validation NME of both (int8 ships as the default only within +0.10 of fp32 on validation and test)
# The model card (src/kdlandmarks/weights/$NAME.md) and zoo.SHIPPED's one-liner are edited by hand from these.
set -euo pipefail
RUN=${RUN:?set RUN, e.g. lite-occ-s3}
NAME=${NAME:?set NAME, e.g. kd-student-300w-lite}
source results/300w-cpu-v4/lib.sh
[ -f "$RUNS/$RUN/model.pt" ] || { echo "$RUN: not finished (no $RUNS/$RUN/model.pt)" >&2; exit 2; }
HERE=results/300w-cpu-v4/$RUN
WEIGHTS=src/kdlandmarks/weights
fp16_copy "$RUN"
cp "$RUNS/$RUN/model-fp16.pt" "$WEIGHTS/$NAME.pt.part" && mv "$WEIGHTS/$NAME.pt.part" "$WEIGHTS/$NAME.pt"
keep_record "$RUN"
if [ "$(run_role "$RUN")" = teacher ]; then
  lfpw_eval "$NAME" "$HERE/eval-gt" --backend torch
  lfpw_eval "$NAME" "$HERE/eval-fliptest" --backend torch --flip-test
  exit 0
fi
kdlandmarks export --model "$WEIGHTS/$NAME.pt" --format onnx --out "$WEIGHTS/$NAME.onnx"
python3 - "$WEIGHTS/$NAME.onnx" "$WEIGHTS/$NAME.int8.onnx" > "$HERE/int8-validation.json" <<'PY'
import json, sys
from pathlib import Path
import numpy as np
sys.path.insert(0, "results/int8")
from quantize import STORE, VARIANTS, nme, quantize, store_inputs
from kdlandmarks.data.store import FaceStore
from kdlandmarks.inference.runtime import OnnxRegressor
from kdlandmarks.training.data import split_faces
fp32, out = Path(sys.argv[1]), Path(sys.argv[2])
store = FaceStore(STORE)
train_idx, val_idx = split_faces(store, 0.05, 0)
calib, _ = store_inputs(store, np.sort(np.random.default_rng(0).choice(train_idx, 256, replace=False)))
part = out.with_name(out.name + ".part.onnx")
quantize(fp32, part, calib, VARIANTS["qdq-u8s8-pc-rr"])
part.replace(out)
xv, gv = store_inputs(store, val_idx)
print(json.dumps({"val_faces": len(val_idx), "fp32": round(nme(OnnxRegressor(fp32), xv, gv), 3),
                  "int8": round(nme(OnnxRegressor(out), xv, gv), 3)}))
PY
cat "$HERE/int8-validation.json"
for export in fp32 int8; do
  for protocol in gt detector; do
    lfpw_eval "$NAME:$export" "$HERE/eval-$protocol-$export" --protocol $protocol
  done
done
