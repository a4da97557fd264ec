"""Models compared face by face on the validation faces that training holds out (never the test set).

The faces are the store's face-grouped validation split (the recipe's val_fraction and seed), their plain
input crops, batch 32; NME is inter-ocular, percent.

--precision (default): each model once in fp32, once under bf16 autocast. Prints validation NME in each, the
  paired difference over the faces (mean and the largest), and the wall-clock of each. This backs `models.backbones.bf16_pays`, which the teacher cache and the
  online KD teachers follow.
--pair A B: model A against model B (both fp32), paired face by face as `kdlandmarks report --baseline` does
  (mean difference A - B with a bootstrap 95 % interval, faces won, sign-flip p): e.g. the same-seed fp32 and
  bf16-mixed training runs of results/300w-cpu-v4/run.sh (prec-r18-fp32, prec-r18-bf16). --store-b gives B a
  store of its own, for models of different input sizes (px128-seed0 against px160-seed0, which trained on a 160 px
  store): each model is scored on its own store's crops of the same validation faces (checked by name).

Usage: python3 benchmarks/validation_pairs.py [--store ~/kdl-runs/stores/300w-train-128x1]
       [--model kd-teacher-300w-tough --model kd-student-300w-lite ...] [--threads 2]
       python3 benchmarks/validation_pairs.py --pair RUNS/prec-r18-bf16/model.pt RUNS/prec-r18-fp32/model.pt
       python3 benchmarks/validation_pairs.py --pair RUNS/px160-seed0/model.pt RUNS/px128-seed0/model.pt \
           --store ~/kdl-runs/stores/300w-train-160x1 --store-b ~/kdl-runs/stores/300w-train-128x1
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from kdlandmarks.data.augment import AugmentConfig, BatchAugmenter
from kdlandmarks.data.codec import LandmarkCodec
from kdlandmarks.data.store import FaceStore
from kdlandmarks.evaluation.metrics import normalised_error, normalizing_distance
from kdlandmarks.evaluation.report import paired_difference
from kdlandmarks.models.backbones import load_model
from kdlandmarks.models.zoo import resolve_model
from kdlandmarks.training.data import split_faces


def run(model: torch.nn.Module, x: torch.Tensor, bf16: bool, batch: int = 32) -> tuple[np.ndarray, float]:
    outs, start = [], time.perf_counter()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for i in range(0, len(x), batch):
            outs.append(model(x[i:i + batch]).float())
    return torch.cat(outs).numpy(), time.perf_counter() - start


def validation_nme(name: str, store: FaceStore, val: np.ndarray, bf16: bool = False) -> tuple[np.ndarray, float, str]:
    """Per-face validation NME (%) of model `name`, the seconds its forward passes took, and its arch."""
    model, info = load_model(resolve_model(name))
    model.eval().to(memory_format=torch.channels_last)
    warp = BatchAugmenter(AugmentConfig.disabled(), None, info.input_size, store.store_size, store.window)
    x, gt, _ = warp(torch.from_numpy(np.array(store.images[val])), torch.from_numpy(store.landmarks[val]).float())
    x = x.contiguous(memory_format=torch.channels_last)
    run(model, x[:32], bf16)  # warm-up
    y, seconds = run(model, x, bf16)
    pred = LandmarkCodec(info.input_size, info.space).decode(torch.from_numpy(y)).numpy()
    g = gt.numpy()
    return normalised_error(pred, g, normalizing_distance(g, store.scheme)) * 100, seconds, info.arch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", default=str(Path.home() / "kdl-runs/stores/300w-train-128x1"))
    ap.add_argument("--val-fraction", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", action="append")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pair", nargs=2, metavar=("A", "B"), help="compare model A with model B face by face")
    ap.add_argument("--store-b", help="--pair: model B's store (default: --store), the same faces at another size")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    store = FaceStore(args.store)
    _, val = split_faces(store, args.val_fraction, args.seed)
    print(f"{len(val)} validation faces, {args.threads} threads, batch 32")
    if args.pair:
        store_b, val_b = store, val
        if args.store_b:
            store_b = FaceStore(args.store_b)
            _, val_b = split_faces(store_b, args.val_fraction, args.seed)
            def names(st: FaceStore, idx: np.ndarray) -> list[str]:
                records = st.records()
                return [records[int(st.face_index[i])]["name"] for i in idx]
            if names(store, val) != names(store_b, val_b):
                raise SystemExit(f"{args.store} and {args.store_b} hold out different validation faces")
        a, _, _ = validation_nme(args.pair[0], store, val)
        b, _, _ = validation_nme(args.pair[1], store_b, val_b)
        d = paired_difference(a / 100, b / 100)
        print(f"A {args.pair[0]}: {a.mean():.3f}; B {args.pair[1]}: {b.mean():.3f}; A - B {d['mean_difference']:+.3f} "
              f"[{d['ci95_low']:+.3f}, {d['ci95_high']:+.3f}], A better on {d['model_better']} faces, B on "
              f"{d['baseline_better']}, sign-flip p = {d['p_value']:.3f}")
        return
    print("| model | arch | NME fp32 | NME bf16 | paired diff mean / max | fp32 s | bf16 s |")
    print("|---|---|---|---|---|---|---|")
    for name in args.model or ["kd-teacher-300w-tough", "kd-teacher-300w-tolerant", "kd-student-300w-lite"]:
        n32, t32, arch = validation_nme(name, store, val, bf16=False)
        n16, t16, _ = validation_nme(name, store, val, bf16=True)
        diff = n16 - n32
        print(f"| {name} | {arch} | {n32.mean():.3f} | {n16.mean():.3f} | {diff.mean():+.3f} / "
              f"{np.abs(diff).max():.3f} | {t32:.2f} | {t16:.2f} |")


if __name__ == "__main__":
    main()
