"""int8 variants of the shipped students, scored on the training run's validation faces (issue 24).

For each student and each onnxruntime quantisation setting (QDQ / QOperator, per-channel or per-tensor,
reduce_range, u8 or s8 activations, calibration method), this writes an int8 .onnx into --out, calibrated on
--calibration training faces of the store that are NOT validation faces, and prints the validation NME next
to fp32's (the 101 held-out faces of the store, split as training split them, val_fraction 0.05, seed 0,
cropped as validation cropped them: the centred 128-px window of each 160-px stored crop) and ms per batch
of 1 and 32 (onnxruntime, --threads). Model choice is made here, on validation, never on LFPW test.

    taskset -c 0 python3 results/int8/quantize.py --out /tmp/int8 --threads 1
"""
from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np

from kdlandmarks.data.crop import window_to_input
from kdlandmarks.data.schemes import get_scheme
from kdlandmarks.data.store import FaceStore
from kdlandmarks.evaluation.metrics import per_image_nme
from kdlandmarks.inference.runtime import OnnxRegressor
from kdlandmarks.models.zoo import resolve_model
from kdlandmarks.training.data import split_faces

STORE = Path.home() / "kdl-runs/stores/300w-train-128x1"
VARIANTS = {  # name -> quantize_static keyword arguments
    "qdq-s8s8-pc": dict(quant_format="QDQ", per_channel=True, reduce_range=False, activation_type="QInt8"),
    "qdq-u8s8-pc-rr": dict(quant_format="QDQ", per_channel=True, reduce_range=True, activation_type="QUInt8"),
    "qdq-u8s8-pc": dict(quant_format="QDQ", per_channel=True, reduce_range=False, activation_type="QUInt8"),
    "qdq-s8s8-pt": dict(quant_format="QDQ", per_channel=False, reduce_range=False, activation_type="QInt8"),
    "qop-u8s8-pc": dict(quant_format="QOperator", per_channel=True, reduce_range=False, activation_type="QUInt8"),
    "qdq-s8s8-pc-pct": dict(quant_format="QDQ", per_channel=True, reduce_range=False, activation_type="QInt8",
                            calibrate_method="Percentile"),
}


def store_inputs(store: FaceStore, indices: np.ndarray, size: int = 128, window: float = 128.0):
    """(B, 3, size, size) float32 network inputs and (B, N, 2) ground truth in input pixels."""
    s = int(store.meta["store_size"])
    lo = (s - size) // 2
    images = np.stack([np.asarray(store.images[i])[lo:lo + size, lo:lo + size] for i in indices])
    points = window_to_input(np.asarray(store.landmarks[indices], dtype=np.float64), s, size, window)
    return images.transpose(0, 3, 1, 2).astype(np.float32) / 255.0, points


def nme(runner: OnnxRegressor, x: np.ndarray, gt: np.ndarray) -> float:
    from kdlandmarks.data.codec import LandmarkCodec

    codec = LandmarkCodec(runner.info.input_size, runner.info.space)
    pred = codec.decode(np.concatenate([runner(x[i:i + 32]) for i in range(0, len(x), 32)]).astype(np.float64))
    return float(per_image_nme(pred, gt, get_scheme(runner.info.scheme)).mean() * 100)


def ms(runner: OnnxRegressor, x: np.ndarray, repeats: int) -> float:
    for _ in range(5):
        runner(x)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        runner(x)
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)


def quantize(fp32: Path, out: Path, calib: np.ndarray, options: dict) -> None:
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from kdlandmarks.export.onnx import _CropReader, _set_metadata

    pre = out.with_suffix(".pre.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=False)
        head = [n.name for n in onnx.load(str(pre)).graph.node if n.op_type in ("Gemm", "MatMul")]
        quantize_static(str(pre), str(out), _CropReader(calib), quant_format=getattr(QuantFormat, options["quant_format"]),
                        per_channel=options["per_channel"], reduce_range=options["reduce_range"],
                        activation_type=getattr(QuantType, options["activation_type"]), weight_type=QuantType.QInt8,
                        calibrate_method=getattr(CalibrationMethod, options.get("calibrate_method", "MinMax")),
                        nodes_to_exclude=head)
    pre.unlink()
    src = onnx.load(str(fp32))
    proto = onnx.load(str(out))
    meta = {p.key: p.value for p in src.metadata_props}
    meta["kdlandmarks.quantization"] = json.dumps({"method": "static", **options, "weights": "int8",
                                                   "head": "fp32", "calibration_images": len(calib),
                                                   "calibration": "300-W train faces (not validation)"})
    _set_metadata(proto, meta)
    onnx.save(proto, str(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--models", default="kd-student-300w-lite,kd-student-300w")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--calibration", type=int, default=256, help="training faces to calibrate on")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=200)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    store = FaceStore(STORE)
    train_idx, val_idx = split_faces(store, 0.05, 0)
    xv, gv = store_inputs(store, val_idx)
    calib_idx = np.random.default_rng(0).choice(train_idx, args.calibration, replace=False)
    xc, _ = store_inputs(store, np.sort(calib_idx))
    x1, x32 = xv[:1], xv[:32]
    results = []
    for model in args.models.split(","):
        fp32 = resolve_model(model, backend="onnx")
        rows = [("fp32", OnnxRegressor(fp32, threads=args.threads))]
        for name in args.variants.split(","):
            path = args.out / f"{model}-{name}.onnx"
            quantize(fp32, path, xc, VARIANTS[name])
            rows.append((name, OnnxRegressor(path, threads=args.threads)))
        for name, runner in rows:
            row = {"model": model, "variant": name, "val_faces": len(val_idx), "val_nme": round(nme(runner, xv, gv), 3),
                   "ms_b1": round(ms(runner, x1, args.repeats), 3),
                   "ms_b32_per_face": round(ms(runner, x32, max(args.repeats // 10, 5)) / 32, 3)}
            results.append(row)
            print(json.dumps(row), flush=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
