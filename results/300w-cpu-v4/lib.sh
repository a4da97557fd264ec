# Shared by ship.sh and keep.sh (sourced, from the repository root): a finished run's fp16 copy and its record.
RUNS=${RUNS:-$HOME/kdl-runs/v4}
DATA=${DATA:-../shared/data/300w}

fp16_copy() {  # RUN -> $RUNS/RUN/model-fp16.pt (no optimiser state: what ships, and what a later stage starts from)
  python3 - "$RUNS/$1/model.pt" "$RUNS/$1/model-fp16.pt" <<'PY'
import sys
from kdlandmarks.models.backbones import load_model, save_model
model, info = load_model(sys.argv[1])
save_model(sys.argv[2], model, info, half=True)
PY
}

keep_record() {  # RUN -> its config, summary and training logs into results/300w-cpu-v4/RUN/
  local here="results/300w-cpu-v4/$1"
  mkdir -p "$here/logs"
  cp "$RUNS/$1/config.yaml" "$RUNS/$1/summary.json" "$here/"
  cp "$RUNS/$1"/logs/metrics*.csv "$here/logs/"  # metrics.K.csv: the invocations before a resume
}

lfpw_eval() {  # MODEL OUT [evaluate options...] -> LFPW test scores in OUT/metrics.json, per-face predictions dropped
  local model=$1 out=$2; shift 2
  kdlandmarks evaluate --model "$model" --dataset 300w --root "$DATA" --split lfpw/testset --out "$out" "$@"
  rm -rf "$out/pts"
}

run_role() {  # RUN -> teacher | student
  python3 -c "import sys; from kdlandmarks.models.backbones import load_model; print(load_model(sys.argv[1])[1].metadata.get('role'))" "$RUNS/$1/model-fp16.pt"
}
