"""How well a teacher follows the warp: the assumption behind `student.teacher_cache=warp`.

For validation faces of a store (the split training uses, never a test set), each augmented R times
with the recipe's augmentation, compare the teacher's prediction on the augmented input (what an
online teacher gives) with its cached prediction on the plain crop moved by the same warp (what the
warped cache gives). Prints both against the moved ground truth, and the gap between the two, as
inter-ocular NME (%):
    python3 benchmarks/warp_equivariance.py --teacher TEACHER.pt --store STORE [--config 300w-cpu]
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from kdlandmarks.data.augment import AugmentConfig, BatchAugmenter, batch_generator
from kdlandmarks.data.codec import LandmarkCodec
from kdlandmarks.models.backbones import load_model
from kdlandmarks.data.store import FaceStore
from kdlandmarks.training.config import load_recipe
from kdlandmarks.training.data import split_faces


def nme(a: torch.Tensor, b: torch.Tensor, inter_ocular: tuple[int, int]) -> np.ndarray:
    d = (b[:, inter_ocular[0]] - b[:, inter_ocular[1]]).norm(dim=-1)
    return ((a - b).norm(dim=-1).mean(-1) / d * 100).numpy()


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", required=True)
    parser.add_argument("--store", required=True)
    parser.add_argument("--config", default="300w-cpu")
    parser.add_argument("--repeats", type=int, default=4)
    args = parser.parse_args()
    recipe = load_recipe(args.config)
    store = FaceStore(args.store)
    model, info = load_model(args.teacher)
    model.eval()
    codec = LandmarkCodec(info.input_size, info.space)
    scheme = store.scheme
    augmenter = BatchAugmenter(AugmentConfig.from_dict(recipe.data.augment), torch.as_tensor(scheme.flip_index),
                               info.input_size, store.store_size, store.window)
    _, val = split_faces(store, recipe.data.val_fraction, recipe.trainer.seed)
    images = torch.from_numpy(np.asarray(store.images)[val])
    landmarks = torch.from_numpy(np.asarray(store.landmarks)[val]).float()
    plain_x, _, _ = augmenter(images, landmarks)
    plain_pts = codec.decode(model(plain_x).float())
    cached_src = augmenter.plain_to_source(plain_pts)
    online_err, warped_err, gap = [], [], []
    for r in range(args.repeats):
        x, gt, (moved,) = augmenter(images, landmarks, batch_generator(1234, r), [cached_src])
        online = codec.decode(model(x).float())
        online_err.append(nme(online, gt, scheme.inter_ocular))
        warped_err.append(nme(moved, gt, scheme.inter_ocular))
        gap.append(nme(online, moved, scheme.inter_ocular))
    print(f"{len(val)} validation faces x {args.repeats} augmentations ({args.config} augmentation)")
    for name, values in (("online teacher vs ground truth", online_err), ("warped cache vs ground truth", warped_err),
                         ("online teacher vs warped cache", gap)):
        v = np.concatenate(values)
        print(f"{name:32s} NME mean {v.mean():6.2f}  median {np.median(v):6.2f}")


if __name__ == "__main__":
    main()
