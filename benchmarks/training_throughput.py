"""Training throughput: plain L2 vs KD-Loss with the teacher cache vs KD-Loss with online teachers,
and whether the data loader keeps up. Prints samples/s (median step time after warm-up), one run each.

Usage: python3 benchmarks/training_throughput.py [--store STORE] [--size 128] [--batch 70] [--steps 20]
Without --store it builds a store from the bundled sample faces (6 copies per face). Teachers are
EfficientNet-B3 with random weights: their values do not change the cost.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from kdlandmarks.data.augment import AugmentConfig, BatchAugmenter
from kdlandmarks.data.datasets import sample_root
from kdlandmarks.models.backbones import ModelInfo, create_model, save_model
from kdlandmarks.data.store import FaceStore, PrepareParams, prepare_store
from kdlandmarks.training.data import StoreDataModule
from kdlandmarks.training.module import InputPipeline, LandmarkModule, Objective, TeacherSource
from kdlandmarks.training.teacher_cache import teacher_outputs


class StepTimer(Callback):
    def __init__(self, warmup: int) -> None:
        self.warmup, self.times, self._t = warmup, [], 0.0

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self._t = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if trainer.global_step > self.warmup:
            self.times.append(time.perf_counter() - self._t)


def run(store: FaceStore, size: int, batch: int, steps: int, warmup: int, loss: str, teachers: dict,
        cached: dict, arch: str = "mobilenetv2_100", precision: str = "32-true") -> float:
    info = ModelInfo(arch=arch, num_points=store.num_points, input_size=size, scheme=store.scheme_name)
    module = LandmarkModule(info.__dict__, Objective(loss=loss),
                            inputs=InputPipeline(source_size=store.store_size, window=store.window,
                                                 channels_last=True),  # as the recipes train
                            teachers=TeacherSource(online=teachers or None))
    dm = StoreDataModule(store, batch, 0.0, 0, 0, teacher_outputs=cached)
    timer = StepTimer(warmup)
    trainer = L.Trainer(max_steps=steps + warmup, accelerator="cpu", devices=1, logger=False, precision=precision,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[timer], num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(module, datamodule=dm)
    return batch / statistics.median(timer.times)


def loader_rate(store: FaceStore, size: int, batch: int, steps: int) -> float:
    dm = StoreDataModule(store, batch, 0.0, 0, 0)
    warp = BatchAugmenter(AugmentConfig(), torch.arange(store.num_points), size, store.store_size, store.window)
    gen = torch.Generator().manual_seed(0)
    times = []
    it = iter(dm.train_dataloader())
    for _ in range(steps):
        t = time.perf_counter()
        try:
            b = next(it)
        except StopIteration:
            it = iter(dm.train_dataloader())
            b = next(it)
        warp(b["image"], b["landmarks"], gen)  # with full online augmentation: the loader's worst case
        times.append(time.perf_counter() - t)
    return batch / statistics.median(times)


def precision_table(store: FaceStore, args: argparse.Namespace) -> None:
    """Samples/s of each backbone in fp32 and under bf16 autocast (Lightning's bf16-mixed), same loop."""
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"torch {torch.__version__}; input {args.size} px, batch {args.batch}, channels-last, L1, AdamW")
    print("| backbone | fp32 samples/s | bf16-mixed samples/s | speed-up |")
    print("|---|---|---|---|")
    for arch in args.backbones.split(","):
        fp32, bf16 = (run(store, args.size, args.batch, args.steps, args.warmup, "l1", {}, {}, arch, precision)
                      for precision in ("32-true", "bf16-mixed"))
        print(f"| {arch} | {fp32:.1f} | {bf16:.1f} | {bf16 / fp32:.2f}x |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=70)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--backbones", help="comma-separated timm names: only the fp32 vs bf16-mixed table for these "
                                        "(L1 on hard landmarks, as the 300w-cpu teachers train)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="kdl-bench-"))
    if args.store:
        store = FaceStore(args.store)
    else:
        prepare_store(PrepareParams("300w", str(sample_root()), "train", input_size=args.size, copies=6),
                      tmp / "store", progress=False)
        store = FaceStore(tmp / "store")
    if args.backbones:
        precision_table(store, args)
        return
    teachers = {}
    for name in ("tough", "tolerant"):
        info = ModelInfo(arch="efficientnet_b3", num_points=store.num_points, input_size=args.size,
                         dropout=0.5, scheme=store.scheme_name)
        save_model(tmp / f"{name}.pt", create_model("efficientnet_b3", store.num_points), info)
        teachers[name] = str(tmp / f"{name}.pt")
    t = time.perf_counter()
    cached = {n: teacher_outputs(p, store, args.size, progress=False) for n, p in teachers.items()}
    cache_seconds = time.perf_counter() - t

    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"torch {torch.__version__}; store {len(store)} samples, input {args.size} px, batch {args.batch}")
    rates = {
        "data loader + warp + online augmentation (no model)": loader_rate(store, args.size, args.batch, args.steps),
        "student, L2": run(store, args.size, args.batch, args.steps, args.warmup, "l2", {}, {}),
        "student, KD-Loss, teacher cache": run(store, args.size, args.batch, args.steps, args.warmup, "kd", {}, cached),
        "student, KD-Loss, online teachers": run(store, args.size, args.batch, args.steps, args.warmup, "kd", teachers, {}),
    }
    print(f"{'mode':55s} samples/s")
    for k, v in rates.items():
        print(f"{k:55s} {v:9.1f}")
    l2 = rates["student, L2"]
    print(f"KD with cache / L2: {rates['student, KD-Loss, teacher cache'] / l2:.2f}x (target >= 0.9x); "
          f"KD online / L2: {rates['student, KD-Loss, online teachers'] / l2:.2f}x; "
          f"loader / L2: {rates['data loader + warp + online augmentation (no model)'] / l2:.1f}x")
    print(f"building the cache for both teachers took {cache_seconds:.1f} s for {len(store)} samples")


if __name__ == "__main__":
    main()
