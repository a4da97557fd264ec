"""The LightningModule shared by teachers and students: warp/augment on device, regress, log NME.

Teachers learn hard (Tough) or soft (Tolerant) landmarks with L2; students learn with L2, L1 or
KD-Loss, taking the teachers' outputs from the cache in the batch (moved with each step's augmentation
under `teacher_cache: warp`) or running frozen teachers online.
"""
from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch

from kdlandmarks.data.augment import AugmentConfig, BatchAugmenter, batch_generator
from kdlandmarks.data.codec import LandmarkCodec
from kdlandmarks.errors import KDLandmarksError
from kdlandmarks.models.losses import REGRESSION_LOSSES, KDLoss
from kdlandmarks.evaluation.metrics import nme_per_image
from kdlandmarks.models.backbones import ModelInfo, create_model, load_model
from kdlandmarks.data.schemes import get_scheme
from kdlandmarks.training.teacher_cache import flip_tested


class TrainingDiverged(KDLandmarksError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class LandmarkModule(L.LightningModule):
    def __init__(self, kdlandmarks: dict[str, Any], target: str = "hard", loss: str = "l2",
                 kd: dict[str, Any] | None = None, lr: float = 1e-3, lr_decay: float = 1e-4,
                 weight_decay: float = 0.0, optimizer: str = "adam", schedule: str = "keras",
                 warmup: float = 0.3, augment: dict[str, float] | None = None, source_size: int = 160,
                 window: float = 128.0, seed: int = 0, channels_last: bool = False,
                 online_teachers: dict[str, str] | None = None, backbone_weights: str | None = None,
                 warp_cached_teachers: bool = False, teacher_flip_test: bool = False) -> None:
        super().__init__()
        # The argument name "kdlandmarks" (ModelInfo) and the attribute `model` are the checkpoint layout that
        # models.read_training_checkpoint reads (CHECKPOINT_INFO_KEY, CHECKPOINT_MODEL_PREFIX): keep them.
        self.save_hyperparameters()
        self.info = ModelInfo(**kdlandmarks)
        self.model = create_model(self.info.arch, self.info.num_points, self.info.dropout,
                                  backbone_weights=backbone_weights)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.codec = LandmarkCodec(self.info.input_size, self.info.space)
        scheme = get_scheme(self.info.scheme)
        self.scheme = scheme
        self.augmenter = BatchAugmenter(AugmentConfig.from_dict(augment), torch.as_tensor(scheme.flip_index),
                                        self.info.input_size, source_size, window)
        self.kd_loss = KDLoss(**(kd or {})) if loss == "kd" else None
        self._online: dict[str, torch.nn.Module] = {}  # a plain dict: frozen teachers stay out of checkpoints
        self._resident: dict[str, torch.Tensor] | None = None  # data.resident: the store on this device
        self._val_nme: list[torch.Tensor] = []
        self.validated_at_step = -1  # global step of the last validation (a mid-epoch stop leaves it behind)

    def setup(self, stage: str) -> None:
        for name, path in (self.hparams.online_teachers or {}).items():
            if name not in self._online:
                # building the network draws random initial weights; keep them off the global RNG so a run
                # with online teachers shuffles and drops out exactly as the same run with cached ones
                with torch.random.fork_rng(devices=[]):
                    teacher, _ = load_model(path)
                self._online[name] = teacher.eval().requires_grad_(False)

    def on_fit_start(self) -> None:
        for teacher in self._online.values():
            teacher.to(self.device)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.hparams.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.model(images)

    def _gather_resident(self, batch: dict) -> dict:
        """An index-only batch (data.resident) filled from the store kept on this module's device."""
        if self._resident is None:
            self._resident = self.trainer.datamodule.resident_tensors(self.device)
        index = batch["index"].to(self.device)
        return {**batch, **{k: v[index] for k, v in self._resident.items()}}

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        if "image" not in batch:
            batch = self._gather_resident(batch)
        train = self.trainer is not None and self.trainer.training
        # each DDP rank draws its own augmentations; rank 0 draws what a single-process run draws
        seed = self.hparams.seed + 7919 * self.global_rank
        generator = batch_generator(seed, self.global_step) if train else None
        extra = [batch["soft"].float()] if "soft" in batch else []
        cached = [n for n in ("tough", "tolerant") if n in batch]
        augmenting = generator is not None and self.augmenter.config.enabled
        if augmenting and cached:
            if not self.hparams.warp_cached_teachers:
                raise KDLandmarksError("cached teacher outputs need a fixed input: set data.augment to null "
                                       "(offline copies), student.teacher_cache=warp, or train with online teachers")
            extra += [self.augmenter.plain_to_source(self.codec.decode(batch[n].float())) for n in cached]
        x, pts, moved = self.augmenter(batch["image"], batch["landmarks"].float(), generator, extra)
        batch["input"], batch["points"] = x, pts
        if "soft" in batch:
            batch["soft_points"] = moved.pop(0)
        if augmenting and cached:
            # the teachers saw the plain crop; their points follow this step's warp (and flip swap) like the labels
            for name, points in zip(cached, moved):
                batch[name] = self.codec.encode(points)
        return batch

    def _teacher(self, batch: dict, name: str) -> torch.Tensor | None:
        if name in batch:
            return batch[name].float()
        if name in self._online:
            with torch.no_grad():
                if self.hparams.teacher_flip_test:
                    return flip_tested(self._online[name], batch["input"], self.codec, self.scheme)
                return self._online[name](batch["input"]).float()
        return None

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        pred = self(batch["input"]).float()
        hard = self.codec.encode(batch["points"])
        target = self.codec.encode(batch["soft_points"]) if self.hparams.target == "soft" else hard
        if self.kd_loss is not None:
            terms = self.kd_loss.terms(pred, hard, self._teacher(batch, "tough"), self._teacher(batch, "tolerant"))
            loss = sum(terms.values())
            for k, v in terms.items():
                self.log(f"train_{k}", v, on_step=False, on_epoch=True)
        else:
            loss = REGRESSION_LOSSES[self.hparams.loss](pred, target)
        if not torch.isfinite(loss):
            raise TrainingDiverged(f"loss became {loss.item()} at step {self.global_step}; "
                                   "the last good checkpoint is kept")
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=True)
        self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=True, on_epoch=False)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        pred = self.codec.decode(self(batch["input"]).float())
        gt = batch["points"]
        a, b = self.scheme.inter_ocular
        d = (gt[:, a] - gt[:, b]).norm(dim=-1).clamp_min(1e-6)
        self._val_nme.append(nme_per_image(pred, gt, d).detach())

    def on_validation_epoch_end(self) -> None:
        if self._val_nme:
            nme = torch.cat(self._val_nme)
            # gather across DDP ranks through sync_dist on the mean
            self.log("val_nme", nme.mean() * 100, prog_bar=True, sync_dist=True)
            self.validated_at_step = self.global_step
        self._val_nme.clear()

    def configure_optimizers(self):
        hp = self.hparams
        optimizer_class = torch.optim.AdamW if hp.get("optimizer", "adam") == "adamw" else torch.optim.Adam
        opt = optimizer_class(self.model.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        schedule = hp.get("schedule", "keras")
        if schedule == "keras":
            decay = hp.lr_decay
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 / (1.0 + decay * step))
        else:
            total = max(int(self.trainer.estimated_stepping_batches), 1)
            warm = float(hp.get("warmup", 0.3))
            if schedule == "onecycle":
                sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=hp.lr, total_steps=total + 1,
                                                            pct_start=max(warm, 1e-3))
            else:  # linear warm-up, then cosine to zero
                sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine_with_warmup(total, warm))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def cosine_with_warmup(total_steps: int, warmup: float):
    """lr factor per step: linear from ~0 to 1 over the warm-up fraction, then a half cosine down to 0."""
    warm_steps = int(round(warmup * total_steps))

    def factor(step: int) -> float:
        if step < warm_steps:
            return (step + 1) / warm_steps
        progress = min((step - warm_steps) / max(total_steps - warm_steps, 1), 1.0)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor
