"""Box robustness of the shipped students: NME on 300-W LFPW test (224 faces) under different face boxes.

Rows, each the same faces for every model (inter-ocular NME, percent; FR = faces with NME > 10 %):
- the ground-truth crop (the landmark extent plus the model's margin: the paper's protocol);
- a tight landmark box, and the same box grown 1.1x, named as box_source="landmarks"; the 1.1x box also
  with the default convention (box_source=None: taken to be a RetinaFace box), which is how such boxes
  were silently treated before box sources had names;
- RetinaFace's own boxes (the best-matching detection of each face) with their calibration, and the same
  boxes perturbed: scale x0.9 / x1.1 about the centre, shifted by -/+10 % of the box width (x) or height
  (y), and a random jitter of all three at once (scale U(0.9, 1.1), shifts U(-10 %, +10 %), fixed seed).
Predictions go through LandmarkDetector.detect_batch (the ground-truth row through predict_crops, as the
evaluation does); NME is metrics.per_image_nme. Models run on onnxruntime with one thread; no timings.
Usage: python3 benchmarks/box_perturbation.py [--root ../shared/data/300w] [--split lfpw/testset]
       [--model kd-student-300w-lite --model kd-student-300w] [--out results/box-robustness] [--seed 0]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from kdlandmarks.data.crop import gt_crop, landmark_box
from kdlandmarks.data.datasets import dataset_scheme
from kdlandmarks.data.datasets.w300 import read_300w
from kdlandmarks.inference.detection import create_detector, match_detection
from kdlandmarks.export.onnx import OnnxRegressor
from kdlandmarks.inference.detector import LandmarkDetector
from kdlandmarks.evaluation.metrics import per_image_nme, summarize

MODELS = ("kd-student-300w-lite", "kd-student-300w")


def perturb(boxes: np.ndarray, scale: float | np.ndarray = 1.0, shift_x: float | np.ndarray = 0.0,
            shift_y: float | np.ndarray = 0.0) -> np.ndarray:
    """Boxes grown by `scale` about their centres, then moved by shift_x * width and shift_y * height."""
    b = np.asarray(boxes, dtype=np.float64)
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    cx = (b[:, 0] + b[:, 2]) / 2 + np.asarray(shift_x) * w
    cy = (b[:, 1] + b[:, 3]) / 2 + np.asarray(shift_y) * h
    hw, hh = np.asarray(scale) * w / 2, np.asarray(scale) * h / 2
    return np.stack([cx - hw, cy - hh, cx + hw, cy + hh], axis=1)


def conditions(tight: np.ndarray, retina: np.ndarray, seed: int) -> list[tuple[str, np.ndarray | None, str | None]]:
    """(row label, boxes (M, 4) or None for the ground-truth crop, box_source) for every row."""
    rng = np.random.default_rng(seed)
    m = len(retina)
    jitter = dict(scale=rng.uniform(0.9, 1.1, m), shift_x=rng.uniform(-0.1, 0.1, m), shift_y=rng.uniform(-0.1, 0.1, m))
    return [
        ("ground-truth crop (landmark extent + margin)", None, None),
        ("tight landmark box, box_source=landmarks", tight, "landmarks"),
        ("tight landmark box x1.1, box_source=landmarks", perturb(tight, 1.1), "landmarks"),
        ("tight landmark box x1.1, default convention (taken as RetinaFace's)", perturb(tight, 1.1), None),
        ("RetinaFace box (its own detections)", retina, "retinaface"),
        ("RetinaFace box, scale x0.9", perturb(retina, 0.9), "retinaface"),
        ("RetinaFace box, scale x1.1", perturb(retina, 1.1), "retinaface"),
        ("RetinaFace box, shift x -10 %", perturb(retina, shift_x=-0.1), "retinaface"),
        ("RetinaFace box, shift x +10 %", perturb(retina, shift_x=0.1), "retinaface"),
        ("RetinaFace box, shift y -10 %", perturb(retina, shift_y=-0.1), "retinaface"),
        ("RetinaFace box, shift y +10 %", perturb(retina, shift_y=0.1), "retinaface"),
        (f"RetinaFace box, random jitter (scale and x/y shift each +-10 %, seed {seed})", perturb(retina, **jitter),
         "retinaface"),
    ]


def load_model(name: str, threads: int) -> LandmarkDetector:
    det = LandmarkDetector(name, backend="torch" if str(name).endswith((".pt", ".ckpt")) else "onnx",
                           detector=lambda image: [])  # boxes are always given
    if det.backend == "onnx":
        det.set_network(OnnxRegressor(det.model_path, threads=threads))  # the same file, on `threads` threads
    return det


def predict(det: LandmarkDetector, images: list[np.ndarray], landmarks: np.ndarray, boxes: np.ndarray | None,
            box_source: str | None) -> np.ndarray:
    if boxes is None:
        transforms = [gt_crop(p, det.input_size, det.info.crop_margin) for p in landmarks]
        points = det.predict_crops([t.warp(im) for t, im in zip(transforms, images)])
        return np.stack([t.to_image(p) for t, p in zip(transforms, points)])
    faces = det.detect_batch(images, [b[None] for b in boxes], box_source=box_source)
    return np.stack([f[0].landmarks for f in faces])


def markdown(rows: list[dict], models: list[str], count: int, command: str) -> str:
    head = "| boxes | box_source | " + " | ".join(f"{m} NME | {m} FR" for m in models) + " |"
    lines = [f"NME (%, inter-ocular) and failure rate (FR: % of faces with NME > 10 %) on 300-W LFPW test, "
             f"{count} faces, onnxruntime. Produced by `{command}`.", "", head,
             "|" + "---|" * (2 + 2 * len(models))]
    for r in rows:
        cells = " | ".join(f"{r[m]['nme']:.2f} | {r[m]['failure_rate']:.1f}" for m in models)
        lines.append(f"| {r['label']} | {r['box_source']} | {cells} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="../shared/data/300w")
    ap.add_argument("--split", default="lfpw/testset")
    ap.add_argument("--model", action="append", help=f"model name or file (repeatable); default: {', '.join(MODELS)}")
    ap.add_argument("--out", default="results/box-robustness")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime threads (RetinaFace and the students)")
    args = ap.parse_args()
    models = args.model or list(MODELS)
    scheme = dataset_scheme("300w")

    records = read_300w(args.root, args.split)
    retinaface = create_detector("retinaface", threads=args.threads)
    images, landmarks, retina = [], [], []
    for rec in records:
        image = rec.load_image()
        dets = retinaface.detect(image)
        idx = match_detection(dets, rec.landmarks)
        if idx is None:  # RetinaFace finds every LFPW test face; should it miss one, every row drops it
            print(f"{rec.name}: RetinaFace found no matching box; left out", file=sys.stderr)
            continue
        images.append(image)
        landmarks.append(rec.landmarks)
        retina.append(dets[idx].box)
    landmarks_arr, retina_arr = np.stack(landmarks), np.stack(retina)
    tight = np.stack([landmark_box(p) for p in landmarks_arr])
    print(f"{len(images)}/{len(records)} faces ({args.split}); RetinaFace matched {len(retina)}")

    rows = [{"label": label, "box_source": "-" if boxes is None else source or "(default)"}
            for label, boxes, source in conditions(tight, retina_arr, args.seed)]
    for name in models:
        det = load_model(name, args.threads)
        for row, (label, boxes, source) in zip(rows, conditions(tight, retina_arr, args.seed)):
            pred = predict(det, images, landmarks_arr, boxes, source)
            row[name] = summarize(per_image_nme(pred, landmarks_arr, scheme))
            print(f"{name}: {label}: NME {row[name]['nme']:.2f} %, FR {row[name]['failure_rate']:.1f} %", flush=True)

    command = " ".join(["python3 benchmarks/box_perturbation.py", *sys.argv[1:]])
    table = markdown(rows, models, len(images), command)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(table)
    (out / "results.json").write_text(json.dumps({"split": args.split, "count": len(images), "seed": args.seed,
                                                  "models": models, "rows": rows}, indent=2) + "\n")
    print()
    print(table, end="")


if __name__ == "__main__":
    main()
