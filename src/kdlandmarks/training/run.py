"""Train one model (Tough/Tolerant teacher or student) from a recipe, readable top to bottom.

Every run writes into its output folder: the resolved config (config.yaml), Lightning checkpoints
(checkpoints/last.ckpt, resumed automatically after a kill), CSV/TensorBoard logs, the selected
model as a portable file (model.pt) and a summary (summary.json). Model selection never looks at a
test split: the last epoch, or the best epoch on a validation split carved from the training store.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from ..augment import AugmentConfig
from ..errors import ConfigError, DataError
from ..fileio import atomic_write_json, atomic_write_text
from ..models import ARCH_CONFIGS, ModelInfo, load_model, save_model
from ..store import FaceStore
from .config import Recipe

TEACHER_KINDS = ("tough", "tolerant")
STUDENT_LOSSES = ("l2", "l1", "kd")


class ThroughputMeter(Callback):
    """Training samples per second over this invocation's optimisation steps (validation excluded)."""

    def __init__(self, batch_size: int) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.samples_per_second: float | None = None
        self._steps = 0
        self._seconds = 0.0
        self._t = 0.0

    def on_train_epoch_start(self, trainer, module) -> None:
        self._t, self._step0 = time.perf_counter(), trainer.global_step

    def on_train_epoch_end(self, trainer, module) -> None:
        self._seconds += time.perf_counter() - self._t
        self._steps += trainer.global_step - self._step0
        if self._seconds > 0:  # every DDP process trains its own batches
            self.samples_per_second = round(self._steps * self.batch_size * trainer.world_size / self._seconds, 1)


def _run_model_file(path: str | Path) -> Path:
    """A model given as a run folder means the model.pt that training wrote into it."""
    p = Path(path)
    return p / "model.pt" if p.is_dir() else p


def _check_teacher(path: str | None, name: str, store: FaceStore, recipe: Recipe) -> Path:
    """The teacher's model file, once it is known to see the student's inputs and speak its output space."""
    if not path:
        raise ConfigError(f"KD training needs the {name} teacher: pass --{name} MODEL")
    p = _run_model_file(path)
    _, info = load_model(p)
    if info.num_points != store.num_points:
        raise ConfigError(f"{p}: the {name} teacher predicts {info.num_points} points but the store has {store.num_points}")
    if info.input_size != recipe.input_size:
        raise ConfigError(f"{p}: the {name} teacher takes {info.input_size} px input but the student takes "
                          f"{recipe.input_size} px")
    if info.space != recipe.space:
        raise ConfigError(f"{p}: the {name} teacher regresses {info.space!r} coordinates but the student "
                          f"{recipe.space!r}")
    margin = float(store.meta["params"]["margin"])
    if abs(info.crop_margin - margin) > 1e-9:
        raise ConfigError(f"{p}: the {name} teacher was trained on crops with margin {info.crop_margin:g}, "
                          f"the store has {margin:g}")
    return p


def _check_init(name_or_path: str, arch: str, store: FaceStore) -> torch.nn.Module:
    """The network to fine-tune from, once it is known to have the run's architecture and point count."""
    from ..zoo import resolve_model

    path = resolve_model(_run_model_file(name_or_path))
    model, info = load_model(path)
    if info.arch != arch:
        raise ConfigError(f"{path}: init_weights is a {info.arch} but the run trains a {arch}")
    if info.num_points != store.num_points:
        raise ConfigError(f"{path}: init_weights predicts {info.num_points} points but the store has "
                          f"{store.num_points}")
    return model


def train_model(recipe: Recipe, role: str, out_dir: str | Path, kind: str | None = None, loss: str | None = None,
                tough: str | None = None, tolerant: str | None = None, online_teachers: bool = False,
                restart: bool = False, progress: bool = True) -> dict[str, Any]:
    import logging
    import warnings

    # Lightning's start-up tips and two harmless notices would bury the progress output
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    for pattern in (".*on_after_batch_transfer.*", ".*LeafSpec.*", ".*does not have many workers.*",
                    ".*smaller than the logging interval.*", ".*exists and is not empty.*"):
        warnings.filterwarnings("ignore", message=pattern)
    from .data import StoreDataModule
    from .module import LandmarkModule
    from .teacher_cache import teacher_outputs

    # 1. what is being trained, checked before any work starts
    if role not in ("teacher", "student"):
        raise ConfigError(f"role must be teacher or student, got {role!r}")
    cfg = recipe.teacher if role == "teacher" else recipe.student
    if role == "teacher":
        if kind not in TEACHER_KINDS:
            raise ConfigError(f"teacher kind must be one of {TEACHER_KINDS}, got {kind!r}")
        loss = cfg.loss if cfg.loss in ("l2", "l1") else "l2"
    else:
        loss = loss or cfg.loss
        if loss not in STUDENT_LOSSES:
            raise ConfigError(f"student loss must be one of {STUDENT_LOSSES}, got {loss!r}")
    if cfg.select not in ("last", "best-val"):
        raise ConfigError(f"select must be 'last' or 'best-val', got {cfg.select!r}")
    if not recipe.data.store:
        raise ConfigError("no training store: pass --store STORE (built by `kdlandmarks prepare`)")
    store = FaceStore(recipe.data.store)
    target = "soft" if kind == "tolerant" else "hard"
    if target == "soft" and store.soft_landmarks is None:
        raise DataError(f"{store.path}: store has no soft-landmarks for the Tolerant-Teacher; "
                        f"run `kdlandmarks asm --store {store.path}` first")
    augment = recipe.data.augment
    AugmentConfig.from_dict(augment)  # a bad option fails here, before anything is written
    teacher_paths: dict[str, Path] = {}
    if loss == "kd":
        from ..losses import KDLoss

        try:
            KDLoss(**cfg.kd)  # an unknown or malformed KD option fails now, before anything is written
        except TypeError as exc:
            raise ConfigError(f"student.kd: {exc}") from None
        given = {"tough": tough, "tolerant": tolerant}
        teacher_paths = {n: _check_teacher(given[n], n, store, recipe)
                         for n in tuple(cfg.kd.get("teachers", TEACHER_KINDS))}
    init = _check_init(cfg.init_weights, cfg.arch, store) if cfg.init_weights else None
    use_cache = loss == "kd" and cfg.teacher_cache and not online_teachers
    if use_cache and augment:
        raise ConfigError("the teacher cache needs fixed inputs: set data.augment to null (offline copies via "
                          "`prepare --copies`) or pass --online-teachers")

    precision = recipe.trainer.precision
    accelerator = recipe.trainer.accelerator
    if accelerator in ("auto", "gpu", "cuda") and not torch.cuda.is_available():
        if accelerator != "auto":
            raise ConfigError(f"trainer.accelerator={accelerator} but no CUDA device is available")
        accelerator = "cpu"
    if accelerator == "cpu" and precision != "32-true":
        precision = "32-true"  # mixed precision is a GPU optimisation; on CPU it only slows down

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dropout = cfg.dropout if cfg.dropout is not None else ARCH_CONFIGS.get(cfg.arch, {}).get("dropout", 0.0)
    info = ModelInfo(
        arch=cfg.arch, num_points=store.num_points, input_size=recipe.input_size, dropout=dropout,
        space=recipe.space, scheme=store.scheme_ref, crop_margin=float(store.meta["params"]["margin"]),
        metadata={"role": role, "kind": kind, "loss": loss, "recipe": recipe.name,
                  "dataset": store.meta["params"]["dataset"], "store": str(store.path),
                  "train_faces": int(store.meta["faces"]), "copies": int(store.meta["params"]["copies"]),
                  **({"init": str(cfg.init_weights)} if init is not None else {})},
    )
    resolved = {"recipe": asdict(recipe), "role": role, "kind": kind, "loss": loss,
                "teachers": {k: str(v) for k, v in teacher_paths.items()}, "online_teachers": online_teachers,
                "model_info": asdict(info)}
    atomic_write_text(out / "config.yaml", yaml.safe_dump(resolved, sort_keys=False))

    # 2. data: teacher outputs cached once per stored sample (or teachers run online)
    cached = {}
    if use_cache:
        device = "cuda" if accelerator != "cpu" else "cpu"
        cached = {n: teacher_outputs(p, store, recipe.input_size, device=device, progress=progress)
                  for n, p in teacher_paths.items()}
    datamodule = StoreDataModule(store, recipe.data.batch_size, recipe.data.val_fraction, recipe.trainer.seed,
                                 recipe.data.num_workers, soft=(target == "soft"), teacher_outputs=cached)

    # 3. model and loop
    L.seed_everything(recipe.trainer.seed, workers=True, verbose=False)
    module = LandmarkModule(
        asdict(info), target=target, loss=loss, kd=dict(cfg.kd) if loss == "kd" else None,
        lr=cfg.lr, lr_decay=cfg.lr_decay, weight_decay=cfg.weight_decay, augment=augment,
        source_size=store.store_size, window=store.window, seed=recipe.trainer.seed,
        channels_last=recipe.trainer.channels_last,
        online_teachers={n: str(p) for n, p in teacher_paths.items()} if (loss == "kd" and not use_cache) else None,
        backbone_weights=cfg.backbone_weights,
    )
    if init is not None:  # a resumed run then replaces these weights with its checkpoint's
        module.model.load_state_dict(init.state_dict())
    has_val = len(datamodule.val_set) > 0
    # Two checkpointers: last.ckpt after every epoch (for resuming), best-*.ckpt on validation NME. Lightning's
    # save_last refreshes last.ckpt only when another checkpoint is written, so "last" is an unmonitored top-1.
    # enable_version_counter=False: resuming a moved run folder overwrites last.ckpt instead of adding last-v1.
    last_checkpoint = ModelCheckpoint(dirpath=out / "checkpoints", filename="last", monitor=None, save_top_k=1,
                                      enable_version_counter=False)
    checkpoint = ModelCheckpoint(dirpath=out / "checkpoints", filename="best-{epoch:03d}", monitor="val_nme",
                                 mode="min", save_top_k=1, enable_version_counter=False) if has_val else None
    loggers: list = [CSVLogger(out, name="logs", version="")]
    try:
        from lightning.pytorch.loggers import TensorBoardLogger
        import tensorboard  # noqa: F401

        loggers.append(TensorBoardLogger(out, name="tensorboard", version=""))
    except ImportError:
        pass
    meter = ThroughputMeter(recipe.data.batch_size)
    try:
        trainer = L.Trainer(
            max_epochs=cfg.epochs, accelerator=accelerator, devices=recipe.trainer.devices,
            num_nodes=recipe.trainer.num_nodes, strategy=recipe.trainer.strategy, precision=precision,
            max_time=recipe.trainer.max_time, callbacks=[c for c in (last_checkpoint, checkpoint, meter) if c is not None],
            logger=loggers, log_every_n_steps=recipe.trainer.log_every_n_steps, enable_progress_bar=progress,
            enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=out,
        )
    except (ValueError, TypeError, ImportError, MisconfigurationException) as exc:
        # Lightning validates the trainer section (strategy, precision, devices, max_time, accelerator)
        raise ConfigError(f"trainer settings: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    last = out / "checkpoints" / "last.ckpt"
    resume = last if last.is_file() and not restart else None
    if resume:
        print(f"resuming from {resume}")
        # Lightning's CSV writer deletes an existing metrics.csv: keep the earlier invocations' rows beside it
        csv_log = out / "logs" / "metrics.csv"
        if csv_log.is_file() and int(os.environ.get("LOCAL_RANK", "0")) == 0:
            k = 1
            while (out / "logs" / f"metrics.{k}.csv").exists():
                k += 1
            os.replace(csv_log, out / "logs" / f"metrics.{k}.csv")
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume)
    seconds = time.perf_counter() - start

    # 4. the selected model as a portable file, plus a summary
    summary: dict[str, Any] = {
        "role": role, "kind": kind, "loss": loss, "epochs_completed": int(trainer.current_epoch),
        "epochs_planned": cfg.epochs, "steps": int(trainer.global_step), "seconds": round(seconds, 1),
        "train_samples": len(datamodule.train_set), "val_faces": len(datamodule.val_set),
        "samples_per_second": meter.samples_per_second,
        "precision": precision, "accelerator": trainer.accelerator.__class__.__name__.replace("Accelerator", "").lower(),
        "teacher_cache": use_cache,
    }
    if trainer.is_global_zero:
        if cfg.select == "best-val" and checkpoint is not None and checkpoint.best_model_path:
            chosen = Path(checkpoint.best_model_path)
            model, _ = load_model(chosen)
        else:  # the weights as training left them (a max_time stop can end mid-epoch, after last.ckpt)
            chosen, model = Path("final-weights"), module.model
        info.metadata.update({"checkpoint": chosen.name, "epochs": summary["epochs_completed"],
                              "select": cfg.select})
        save_model(out / "model.pt", model, replace(info))
        val = trainer.callback_metrics.get("val_nme")
        summary.update({"selected_checkpoint": str(chosen), "model": str(out / "model.pt"),
                        "last_val_nme": round(float(val), 3) if val is not None else None,
                        "best_val_nme": round(float(checkpoint.best_model_score), 3)
                        if checkpoint is not None and checkpoint.best_model_score is not None else None})
        atomic_write_json(out / "summary.json", summary)
    return summary
