"""Training data from a prepared store: a face-grouped train/validation split and the batches.

Batches hold raw uint8 crops; the warp to the network input (and any online augmentation) runs on
the batch after it reaches the model's device (see module.py), so the loader only copies memory
and never starves the model. With a resident store (data.resident) even that copy goes: the whole
store is moved to the model's device once, batches carry sample indices only, and the module
gathers each batch there (on a GPU, no host-to-device traffic per step and no loader workers).
"""
from __future__ import annotations

import math

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from kdlandmarks.data.store import FaceStore


def split_faces(store: FaceStore, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sample indices for training and validation; every copy of a validation face is kept out of training."""
    faces = int(store.face_index.max()) + 1
    n_val = int(math.ceil(faces * val_fraction)) if val_fraction > 0 else 0
    val_faces = np.random.default_rng(seed).permutation(faces)[:n_val]
    is_val_face = np.zeros(faces, bool)
    is_val_face[val_faces] = True
    sample_is_val = is_val_face[store.face_index]
    # validate on the plain copy (copy 0) of each held-out face only
    first_copy = np.r_[True, store.face_index[1:] != store.face_index[:-1]]
    return np.flatnonzero(~sample_is_val), np.flatnonzero(sample_is_val & first_copy)


class StoreDataset(Dataset):
    def __init__(self, store: FaceStore, indices: np.ndarray, soft: bool = False,
                 teacher_outputs: dict[str, np.ndarray] | None = None, resident: bool = False) -> None:
        self.store = store
        self.indices = np.asarray(indices)
        self.soft = soft
        self.teacher_outputs = teacher_outputs or {}
        self.resident = resident

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        j = int(self.indices[i])
        if self.resident:  # the module gathers the sample from the store on its device
            return {"index": torch.tensor(j)}
        item = {
            "image": torch.from_numpy(np.array(self.store.images[j])),
            "landmarks": torch.from_numpy(self.store.landmarks[j]),
            "index": torch.tensor(j),
        }
        if self.soft:
            item["soft"] = torch.from_numpy(self.store.soft_landmarks[j])
        for name, outputs in self.teacher_outputs.items():
            item[name] = torch.from_numpy(outputs[j])
        return item


class StoreDataModule(L.LightningDataModule):
    def __init__(self, store: FaceStore, batch_size: int, val_fraction: float, seed: int, num_workers: int = 0,
                 soft: bool = False, teacher_outputs: dict[str, np.ndarray] | None = None,
                 resident: bool = False) -> None:
        super().__init__()
        self.store = store
        self.batch_size = batch_size
        self.resident = resident
        self.num_workers = 0 if resident else num_workers  # index batches: workers would only add overhead
        self.soft = soft
        self.teacher_outputs = teacher_outputs or {}
        self.train_idx, self.val_idx = split_faces(store, val_fraction, seed)
        self.train_set = StoreDataset(store, self.train_idx, soft, teacher_outputs, resident)
        self.val_set = StoreDataset(store, self.val_idx, soft, teacher_outputs, resident)

    def resident_tensors(self, device: torch.device | str) -> dict[str, torch.Tensor]:
        """The whole store on `device`, by the batch keys that StoreDataset would give per sample."""
        arrays = {"image": self.store.images, "landmarks": self.store.landmarks, **self.teacher_outputs}
        if self.soft:
            arrays["soft"] = self.store.soft_landmarks
        # torch.tensor copies: the store's arrays are read-only memory maps, which a tensor must not share
        return {k: torch.tensor(np.ascontiguousarray(v), device=device) for k, v in arrays.items()}

    def _loader(self, dataset: Dataset, shuffle: bool) -> DataLoader:
        # A ragged last training batch is dropped: on CPU every new batch shape costs a slow kernel warm-up.
        drop_last = shuffle and len(dataset) > self.batch_size
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers,
                          pin_memory=torch.cuda.is_available() and not self.resident,
                          persistent_workers=self.num_workers > 0, drop_last=drop_last)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        return self._loader(self.val_set, shuffle=False) if len(self.val_set) else []


def validation_records(store: FaceStore, root: str, val_fraction: float, seed: int) -> list:
    """The dataset's FaceRecords (original images and landmarks) of the faces that training on `store` holds
    out for validation (split_faces with the recipe's val_fraction and seed): for benchmarks that pick
    settings on the validation faces in whole photos, never on the test set."""
    from kdlandmarks.data.datasets import load_dataset

    _, val = split_faces(store, val_fraction, seed)
    records = store.records()
    names = {records[int(store.face_index[i])]["name"] for i in val}
    split = store.meta["params"]["split"]
    return [r for r in load_dataset(store.dataset, root, split) if r.name in names]
