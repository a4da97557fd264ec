"""Teacher inference in bf16 against fp32 on this CPU: speed and whether the outputs are equal.

Each model runs on the validation faces that training holds out (the store's face-grouped split with the
recipe's val_fraction and seed), their plain input crops, batch 32: once in fp32, once under bf16 autocast.
Prints per model: validation NME (inter-ocular, %) in each precision, the paired difference over the faces
(mean and the largest), the largest point shift between the two in input pixels, and the wall-clock of each.
This decides `models.backbones.bf16_pays`, which the teacher cache and online KD teachers follow.

Usage: python3 benchmarks/teacher_bf16.py [--store ~/kdl-runs/stores/300w-train-128x1]
       [--model kd-teacher-300w-tough --model kd-student-300w-lite ...] [--threads 2]
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
from kdlandmarks.evaluation.metrics import nme_per_image, normalizing_distance
from kdlandmarks.models.backbones import load_model
from kdlandmarks.models.zoo import resolve_model
from kdlandmarks.training.data import split_faces


def run(model: torch.nn.Module, x: torch.Tensor, bf16: bool, batch: int = 32) -> tuple[np.ndarray, float]:
    outs, start = [], time.perf_counter()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for i in range(0, len(x), batch):
            outs.append(model(x[i:i + batch]).float())
    return torch.cat(outs).numpy(), time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", default=str(Path.home() / "kdl-runs/stores/300w-train-128x1"))
    ap.add_argument("--val-fraction", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", action="append")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    store = FaceStore(args.store)
    _, val = split_faces(store, args.val_fraction, args.seed)
    print(f"{len(val)} validation faces, {args.threads} threads, batch 32")
    print("| model | arch | NME fp32 | NME bf16 | paired diff mean / max | max shift (px) | fp32 s | bf16 s |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.model or ["kd-teacher-300w-tough", "kd-teacher-300w-tolerant", "kd-student-300w-lite"]:
        model, info = load_model(resolve_model(name))
        model.eval().to(memory_format=torch.channels_last)
        warp = BatchAugmenter(AugmentConfig.disabled(), None, info.input_size, store.store_size, store.window)
        images = torch.from_numpy(np.array(store.images[val]))
        gt_src = torch.from_numpy(store.landmarks[val]).float()
        x, gt, _ = warp(images, gt_src)
        x = x.contiguous(memory_format=torch.channels_last)
        codec = LandmarkCodec(info.input_size, info.space)
        run(model, x[:32], False)  # warm-up, both paths
        run(model, x[:32], True)
        y32, t32 = run(model, x, False)
        y16, t16 = run(model, x, True)
        p32 = codec.decode(torch.from_numpy(y32)).numpy()
        p16 = codec.decode(torch.from_numpy(y16)).numpy()
        g = gt.numpy()
        d = normalizing_distance(g, store.scheme)
        n32, n16 = nme_per_image(p32, g, d) * 100, nme_per_image(p16, g, d) * 100
        diff = n16 - n32
        shift = float(np.abs(p16 - p32).max())
        print(f"| {name} | {info.arch} | {n32.mean():.3f} | {n16.mean():.3f} | {diff.mean():+.3f} / "
              f"{np.abs(diff).max():.3f} | {shift:.2f} | {t32:.2f} | {t16:.2f} |")


if __name__ == "__main__":
    main()
