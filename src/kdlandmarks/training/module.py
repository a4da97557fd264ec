"""The LightningModule shared by teachers and students: warp/augment on device, regress, log NME.

Teachers learn hard (Tough) or soft (Tolerant) landmarks with their role's regression loss (`loss`:
L2 by default, L1 in `300w-cpu`); students learn with L2, L1 or KD-Loss, taking the teachers' outputs
from the cache in the batch (moved with each step's augmentation under `teacher_cache: warp`) or running
frozen teachers online.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F

from kdlandmarks.data.augment import AugmentConfig, BatchAugmenter, batch_generator
from kdlandmarks.data.codec import LandmarkCodec
from kdlandmarks.errors import KDLandmarksError
from kdlandmarks.models.losses import REGRESSION_LOSSES, KDLoss, KDOptions
from kdlandmarks.evaluation.metrics import normalised_error
from kdlandmarks.models.backbones import ModelInfo, create_model, load_model, teacher_autocast
from kdlandmarks.data.schemes import get_scheme
from kdlandmarks.training.teacher_cache import flip_tested


class TrainingDiverged(KDLandmarksError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass(frozen=True)
class Objective:
    """What the network learns: hard (ground truth) or soft (ASM) targets, through which loss."""

    target: str = "hard"  # hard | soft
    loss: str = "l2"  # losses.REGRESSION_LOSSES, or kd
    kd: dict[str, Any] | None = None  # KDLoss options (loss kd)


@dataclass(frozen=True)
class Optimisation:
    """The optimiser and its learning-rate schedule (training.config.RoleConfig documents each value)."""

    lr: float = 1e-3
    lr_decay: float = 1e-4
    weight_decay: float = 0.0
    optimizer: str = "adam"
    schedule: str = "keras"
    warmup: float = 0.3


@dataclass(frozen=True)
class InputPipeline:
    """How stored crops become network inputs: augmentation, the stored crop's geometry, seed, layout."""

    augment: dict[str, float] | None = None  # online augmentation (AugmentConfig), None: the plain window
    source_size: int = 160  # stored crop side (pixels)
    window: float = 128.0  # the input window's side inside the stored crop
    seed: int = 0
    channels_last: bool = False


@dataclass(frozen=True)
class TeacherSource:
    """Where a KD student's teacher outputs come from: the batch (cached), or frozen teachers run online."""

    online: dict[str, str] | None = None  # teacher name -> model file, run on every batch
    warp_cached: bool = False  # cached outputs follow each step's augmentation (teacher_cache: warp)
    flip_test: bool = False  # an online teacher's output is its flip-test average


class LandmarkModule(L.LightningModule):
    def __init__(self, kdlandmarks: dict[str, Any], objective: Objective = Objective(),
                 optimisation: Optimisation = Optimisation(), inputs: InputPipeline = InputPipeline(),
                 teachers: TeacherSource = TeacherSource(), backbone_weights: str | None = None) -> None:
        super().__init__()
        # The hyper-parameter "kdlandmarks" (ModelInfo) and the attribute `model` are the checkpoint layout that
        # models.read_training_checkpoint reads (CHECKPOINT_INFO_KEY, CHECKPOINT_MODEL_PREFIX): keep them. The
        # options are saved as plain dicts: checkpoints are loaded with weights_only (no classes).
        self.save_hyperparameters({"kdlandmarks": kdlandmarks, "objective": asdict(objective),
                                   "optimisation": asdict(optimisation), "inputs": asdict(inputs),
                                   "teachers": asdict(teachers), "backbone_weights": backbone_weights})
        self.objective, self.optimisation, self.inputs, self.teachers = objective, optimisation, inputs, teachers
        self.info = ModelInfo(**kdlandmarks)
        self.model = create_model(self.info.arch, self.info.num_points, self.info.dropout,
                                  backbone_weights=backbone_weights)
        if inputs.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.codec = LandmarkCodec(self.info.input_size, self.info.space)
        scheme = get_scheme(self.info.scheme)
        self.scheme = scheme
        self.augmenter = BatchAugmenter(AugmentConfig.from_dict(inputs.augment), torch.as_tensor(scheme.flip_index),
                                        self.info.input_size, inputs.source_size, inputs.window)
        self.kd_loss = KDLoss(KDOptions(**(objective.kd or {}))) if objective.loss == "kd" else None
        self._online: dict[str, torch.nn.Module] = {}  # a plain dict: frozen teachers stay out of checkpoints
        self._online_sizes: dict[str, int] = {}  # each online teacher's input size
        self._resident: dict[str, torch.Tensor] | None = None  # data.resident: the store on this device
        self._val_nme: list[torch.Tensor] = []
        self.validated_at_step = -1  # global step of the last validation (a mid-epoch stop leaves it behind)

    def setup(self, stage: str) -> None:
        for name, path in (self.teachers.online or {}).items():
            if name not in self._online:
                # building the network draws random initial weights; keep them off the global RNG so a run
                # with online teachers shuffles and drops out exactly as the same run with cached ones
                with torch.random.fork_rng(devices=[]):
                    teacher, info = load_model(path)
                self._online[name] = teacher.eval().requires_grad_(False)
                self._online_sizes[name] = info.input_size

    def on_fit_start(self) -> None:
        for teacher in self._online.values():
            teacher.to(self.device)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.inputs.channels_last:
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
        seed = self.inputs.seed + 7919 * self.global_rank
        generator = batch_generator(seed, self.global_step) if train else None
        extra = [batch["soft"].float()] if "soft" in batch else []
        cached = [n for n in ("tough", "tolerant") if n in batch]
        augmenting = generator is not None and self.augmenter.config.enabled
        if augmenting and cached:
            if not self.teachers.warp_cached:
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
            teacher, x = self._online[name], batch["input"]
            size = self._online_sizes[name]
            if size != x.shape[-1]:
                # normalised outputs do not depend on the input size, so the teacher's answer is the student's target
                x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                                  antialias=size < x.shape[-1])
            with torch.no_grad(), teacher_autocast(teacher.arch, x.device):
                if self.teachers.flip_test:
                    return flip_tested(teacher, x, self.codec, self.scheme)
                return teacher(x).float()
        return None

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        pred = self(batch["input"]).float()
        hard = self.codec.encode(batch["points"])
        target = self.codec.encode(batch["soft_points"]) if self.objective.target == "soft" else hard
        if self.kd_loss is not None:
            terms = self.kd_loss.terms(pred, hard, self._teacher(batch, "tough"), self._teacher(batch, "tolerant"))
            loss = sum(terms.values())
            for k, v in terms.items():
                self.log(f"train_{k}", v, on_step=False, on_epoch=True)
        else:
            loss = REGRESSION_LOSSES[self.objective.loss](pred, target)
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
        self._val_nme.append(normalised_error(pred, gt, d).detach())

    def on_validation_epoch_end(self) -> None:
        if self._val_nme:
            nme = torch.cat(self._val_nme)
            # gather across DDP ranks through sync_dist on the mean
            self.log("val_nme", nme.mean() * 100, prog_bar=True, sync_dist=True)
            self.validated_at_step = self.global_step
        self._val_nme.clear()

    def configure_optimizers(self):
        hp = self.optimisation
        optimizer_class = torch.optim.AdamW if hp.optimizer == "adamw" else torch.optim.Adam
        opt = optimizer_class(self.model.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        schedule = hp.schedule
        if schedule == "keras":
            decay = hp.lr_decay
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 / (1.0 + decay * step))
        else:
            total = max(int(self.trainer.estimated_stepping_batches), 1)
            warm = float(hp.warmup)
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
