"""Train one model (Tough/Tolerant teacher or student) from a recipe, readable top to bottom.

Every run writes into its output folder: the resolved config (config.yaml), Lightning checkpoints
(checkpoints/last.ckpt, resumed automatically after a kill), CSV/TensorBoard logs, the selected
model as a portable file (model.pt) and a summary (summary.json). Model selection never looks at a
test split: the last epoch, or the best epoch on a validation split carved from the training store.
"""
from __future__ import annotations

import csv
import functools
import inspect
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

import lightning as L
import torch
import yaml
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from kdlandmarks.data.augment import AugmentConfig
from kdlandmarks.errors import ConfigError, DataError, ModelError
from kdlandmarks.fileio import atomic_write_json, atomic_write_text
from kdlandmarks.models.losses import TEACHERS
from kdlandmarks.models.backbones import (ARCH_CONFIGS, CHECKPOINT_INFO_KEY, CHECKPOINT_MODEL_PREFIX, ModelInfo,
                                         bf16_pays, cpu_description, load_model, read_torch_file,
                                         save_model)
from kdlandmarks.data.store import FaceStore
from kdlandmarks.training.config import Recipe, RoleConfig, TeacherCache, recipe_values

TEACHER_KINDS = TEACHERS  # the two teacher kinds, named as KD-Loss names them
TEACHER_LOSSES = ("l2", "l1", "smooth_l1", "wing")
STUDENT_LOSSES = (*TEACHER_LOSSES, "kd")


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
        # training time of this invocation, for val-NME-versus-minutes curves
        module.log("train_seconds", self._seconds, on_step=False, on_epoch=True)


class EpochLine(Callback):
    """One printed line per epoch (mean training loss, validation NME, time) where progress bars would be
    redrawn into a log file, one line per refresh: when standard output is not a terminal."""

    def __init__(self) -> None:
        super().__init__()
        self._start = time.perf_counter()
        self._loss_sum, self._batches = 0.0, 0

    def on_train_epoch_start(self, trainer, module) -> None:
        self._loss_sum, self._batches = 0.0, 0

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is not None:
            self._loss_sum += float(loss)
            self._batches += 1

    def on_train_epoch_end(self, trainer, module) -> None:
        if not trainer.is_global_zero:
            return
        planned = f"/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
        parts = [f"epoch {trainer.current_epoch + 1}{planned}"]
        if self._batches:
            parts.append(f"train loss {self._loss_sum / self._batches:.4g}")
        val = trainer.callback_metrics.get("val_nme")
        if val is not None:
            parts.append(f"val NME {float(val):.2f} %")
        parts.append(f"{time.perf_counter() - self._start:.0f} s")
        print(", ".join(parts), flush=True)


class RunCheckpoint(ModelCheckpoint):
    """A ModelCheckpoint that survives a moved or copied run folder: on resume, the checkpoint paths it
    recorded in the old folder are read as the same files in this one (Lightning would drop its records with
    a warning and keep a best_model_path in the old folder)."""

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved_dir = state_dict.get("dirpath")
        if saved_dir is not None and self.dirpath is not None and saved_dir != self.dirpath:
            def here(path: str | None) -> str | None:
                return str(Path(self.dirpath) / Path(path).name) if path else path

            paths = {k: here(state_dict[k]) for k in ("best_model_path", "kth_best_model_path", "last_model_path")
                     if k in state_dict}
            best_k = {here(p): score for p, score in state_dict.get("best_k_models", {}).items()}
            state_dict = {**state_dict, **paths, "best_k_models": best_k, "dirpath": self.dirpath}
        super().load_state_dict(state_dict)


def _run_model_file(path: str | Path) -> Path:
    """A model given as a run folder means the model.pt that training wrote into it."""
    p = Path(path)
    return p / "model.pt" if p.is_dir() else p


def _check_teacher(path: str | None, name: str, store: FaceStore, recipe: Recipe) -> tuple[Path, int]:
    """The teacher's model file (a path, a run folder or a shipped teacher's name) and its input size, once it
    is known to speak the student's output space. A teacher of another input size sees the same face window
    at its own resolution (normalised coordinates do not depend on it: u = (x + 0.5) / S - 0.5)."""
    from kdlandmarks.models.zoo import resolve_model

    if not path:
        raise ConfigError(f"KD training needs the {name} teacher: give {{teachers.{name}}} (a model)",
                          parameters=(f"teachers.{name}",))
    p = resolve_model(_run_model_file(path))
    _, info = load_model(p)
    if info.num_points != store.num_points:
        raise ConfigError(f"{p}: the {name} teacher predicts {info.num_points} points but the store has {store.num_points}")
    if info.space != recipe.space:
        raise ConfigError(f"{p}: the {name} teacher regresses {info.space!r} coordinates but the student "
                          f"{recipe.space!r}")
    if info.input_size != recipe.input_size and info.space == "pixels":
        raise ConfigError(f"{p}: the {name} teacher takes {info.input_size} px input but the student takes "
                          f"{recipe.input_size} px, and in the 'pixels' space their outputs differ in scale")
    margin = store.margin
    if abs(info.crop_margin - margin) > 1e-9:
        raise ConfigError(f"{p}: the {name} teacher was trained on crops with margin {info.crop_margin:g}, "
                          f"the store has {margin:g}")
    return p, info.input_size


def _check_init(name_or_path: str, arch: str, store: FaceStore) -> torch.nn.Module:
    """The network to fine-tune from, once it is known to have the run's architecture and point count."""
    from kdlandmarks.models.zoo import resolve_model

    path = resolve_model(_run_model_file(name_or_path))
    model, info = load_model(path)
    if info.arch != arch:
        raise ConfigError(f"{path}: init_weights is a {info.arch} but the run trains a {arch}")
    if info.num_points != store.num_points:
        raise ConfigError(f"{path}: init_weights predicts {info.num_points} points but the store has "
                          f"{store.num_points}")
    return model


@dataclass
class RunPlan:
    """What one train_model call trains, fixed and checked before any work starts."""

    role: str
    kind: str | None
    cfg: RoleConfig
    loss: str
    store: FaceStore
    target: str  # "hard" (ground truth) or "soft" (ASM soft-landmarks, the Tolerant-Teacher's)
    augment: dict[str, float] | None
    teacher_paths: dict[str, Path]
    teacher_sizes: dict[str, int]  # each teacher's input size (it may differ from the student's)
    init: torch.nn.Module | None
    use_cache: bool


def _quiet_lightning() -> None:
    """Lightning's start-up tips and a few harmless notices would bury the progress output."""
    import logging
    import warnings

    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    for pattern in (".*on_after_batch_transfer.*", ".*LeafSpec.*", ".*does not have many workers.*",
                    ".*smaller than the logging interval.*", ".*exists and is not empty.*",
                    # a max_steps stop mid-epoch ends before that epoch's validation; run.py validates after
                    ".*could not find the monitored key.*"):
        warnings.filterwarnings("ignore", message=pattern)


def _check_role_and_loss(recipe: Recipe, role: str, kind: str | None, loss: str | None) -> tuple[RoleConfig, str]:
    """The role's recipe section and the loss it trains with (the given one, else the recipe's)."""
    if role not in ("teacher", "student"):
        raise ConfigError(f"role must be teacher or student, got {role!r}")
    cfg = recipe.teacher if role == "teacher" else recipe.student
    if role == "teacher":
        if kind not in TEACHER_KINDS:
            raise ConfigError(f"teacher kind must be one of {TEACHER_KINDS}, got {kind!r}")
        loss = loss or cfg.loss
        if loss not in TEACHER_LOSSES:
            raise ConfigError(f"teacher loss must be one of {', '.join(TEACHER_LOSSES)}, got {loss!r}")
    else:
        loss = loss or cfg.loss
        if loss not in STUDENT_LOSSES:
            raise ConfigError(f"student loss must be one of {', '.join(STUDENT_LOSSES)}, got {loss!r}")
    if cfg.select not in ("last", "best-val"):
        raise ConfigError(f"select must be 'last' or 'best-val', got {cfg.select!r}")
    return cfg, loss


@dataclass(frozen=True)
class Teachers:
    """A KD student's teachers: model files, run folders or shipped names; `online`: run them on every batch
    instead of caching their outputs (whatever the recipe's teacher_cache says)."""

    tough: str | None = None
    tolerant: str | None = None
    online: bool = False


def plan_run(recipe: Recipe, role: str, kind: str | None, loss: str | None, teachers: Teachers = Teachers()
             ) -> RunPlan:
    """Check everything a run needs (role, loss, store, augmentation, teachers, init weights, cache)."""
    cfg, loss = _check_role_and_loss(recipe, role, kind, loss)
    if not recipe.data.store:
        raise ConfigError("no training store: set {data.store} (a store folder built by prepare_store)",
                          parameters=("data.store",))
    store = FaceStore(recipe.data.store)
    target = "soft" if kind == "tolerant" else "hard"
    if target == "soft" and store.soft_landmarks is None:
        raise DataError(f"{store.path}: store has no soft-landmarks for the Tolerant-Teacher; "
                        f"fit its ASM first (fit_store_asm; `kdlandmarks asm`)")
    augment = recipe.data.augment
    AugmentConfig.from_dict(augment)  # a bad option fails here, before anything is written
    teacher_paths: dict[str, Path] = {}
    teacher_sizes: dict[str, int] = {}
    if loss == "kd":
        from kdlandmarks.models.losses import KDOptions

        try:
            KDOptions(**cfg.kd)  # an unknown or malformed KD option fails now, before anything is written
        except TypeError as exc:
            raise ConfigError(f"student.kd: {exc}") from None
        given = {"tough": teachers.tough, "tolerant": teachers.tolerant}
        checked = {n: _check_teacher(given[n], n, store, recipe) for n in tuple(cfg.kd.get("teachers", TEACHER_KINDS))}
        teacher_paths = {n: p for n, (p, _) in checked.items()}
        teacher_sizes = {n: size for n, (_, size) in checked.items()}
        if cfg.teacher_flip_test and not store.scheme.flip_pairs:
            raise ConfigError(f"student.teacher_flip_test needs flip pairs, and the store's landmark scheme "
                              f"{store.scheme_ref!r} has none")
    init = _check_init(cfg.init_weights, cfg.arch, store) if cfg.init_weights else None
    use_cache = loss == "kd" and cfg.teacher_cache is not TeacherCache.ONLINE and not teachers.online
    if use_cache and augment and cfg.teacher_cache is not TeacherCache.WARP:
        raise ConfigError("the teacher cache needs fixed inputs: set data.augment to null (the store's offline "
                          "copies), set student.teacher_cache=warp (cached outputs moved with each augmentation) "
                          "or run the teachers online ({teachers.online})", parameters=("teachers.online",))
    return RunPlan(role, kind, cfg, loss, store, target, augment, teacher_paths, teacher_sizes, init, use_cache)


def _hardware(recipe: Recipe, cfg: RoleConfig) -> tuple[str, str]:
    """(accelerator, precision): "auto" without CUDA becomes the CPU. The role's precision overrides the
    trainer's; on the CPU bf16-mixed is kept only where `bf16_pays` (AMX- or AVX512-BF16 and an ordinary
    convolutional backbone: 2.1-2.4x for ResNets), since without those instructions bf16 is emulated and a ResNet-34
    step is about 18x slower than fp32 (AVX2-only AMD EPYC, one thread: 0.6 against 10.5 samples/s,
    benchmarks/training_throughput.py); fp16 becomes fp32."""
    precision = str(cfg.precision or recipe.trainer.precision)
    accelerator = recipe.trainer.accelerator
    if accelerator in ("auto", "gpu", "cuda") and not torch.cuda.is_available():
        if accelerator != "auto":
            raise ConfigError(f"trainer.accelerator={accelerator} but no CUDA device is available")
        accelerator = "cpu"
    if accelerator == "cpu" and precision not in ("32-true", "32", "bf16-mixed"):
        precision = "32-true"  # fp16 has no fast CPU kernels
    if accelerator == "cpu" and precision == "bf16-mixed" and not bf16_pays(cfg.arch, "cpu"):
        precision = "32-true"
    return accelerator, precision


def _model_info(recipe: Recipe, plan: RunPlan) -> ModelInfo:
    """The ModelInfo the trained model ships with (model.pt), provenance in its metadata."""
    cfg, store = plan.cfg, plan.store
    dropout = cfg.dropout if cfg.dropout is not None else ARCH_CONFIGS.get(cfg.arch, {}).get("dropout", 0.0)
    return ModelInfo(
        arch=cfg.arch, num_points=store.num_points, input_size=recipe.input_size, dropout=dropout,
        space=recipe.space, scheme=store.scheme_ref, crop_margin=store.margin,
        metadata={"role": plan.role, "kind": plan.kind, "loss": plan.loss, "recipe": recipe.name,
                  "dataset": store.dataset, "store": str(store.path),
                  "train_faces": store.faces, "copies": store.copies,
                  **({"init": str(cfg.init_weights)} if plan.init is not None else {})},
    )


def _write_resolved_config(out: Path, recipe: Recipe, plan: RunPlan, info: ModelInfo, online_teachers: bool) -> None:
    resolved = {"recipe": recipe_values(recipe), "role": plan.role, "kind": plan.kind, "loss": plan.loss,
                "teachers": {k: str(v) for k, v in plan.teacher_paths.items()}, "online_teachers": online_teachers,
                "model_info": asdict(info)}
    atomic_write_text(out / "config.yaml", yaml.safe_dump(resolved, sort_keys=False))


def _datamodule(recipe: Recipe, plan: RunPlan, accelerator: str, progress: bool) -> Any:
    """The store's train/val split; teacher outputs cached once per stored sample (unless run online)."""
    from kdlandmarks.training.data import StoreDataModule
    from kdlandmarks.training.teacher_cache import teacher_outputs

    cached = {}
    if plan.use_cache:
        device = "cuda" if accelerator != "cpu" else "cpu"
        cached = {n: teacher_outputs(p, plan.store, plan.teacher_sizes[n], device=device, progress=progress,
                                     flip_test=plan.cfg.teacher_flip_test)
                  for n, p in plan.teacher_paths.items()}
    return StoreDataModule(plan.store, recipe.data.batch_size, recipe.data.val_fraction, recipe.trainer.seed,
                           recipe.data.num_workers, soft=(plan.target == "soft"), teacher_outputs=cached,
                           resident=recipe.data.resident)


def _lightning_module(recipe: Recipe, plan: RunPlan, info: ModelInfo) -> Any:
    from kdlandmarks.training.module import InputPipeline, LandmarkModule, Objective, Optimisation, TeacherSource

    cfg, kd = plan.cfg, plan.loss == "kd"
    module = LandmarkModule(
        asdict(info),
        Objective(target=plan.target, loss=plan.loss, kd=dict(cfg.kd) if kd else None),
        Optimisation(lr=cfg.lr, lr_decay=cfg.lr_decay, weight_decay=cfg.weight_decay, optimizer=cfg.optimizer,
                     schedule=cfg.schedule, warmup=cfg.warmup),
        InputPipeline(augment=plan.augment, source_size=plan.store.store_size, window=plan.store.window,
                      seed=recipe.trainer.seed, channels_last=recipe.trainer.channels_last),
        TeacherSource(
            online={n: str(p) for n, p in plan.teacher_paths.items()} if (kd and not plan.use_cache) else None,
            warp_cached=plan.use_cache and cfg.teacher_cache is TeacherCache.WARP,
            flip_test=kd and cfg.teacher_flip_test),
        backbone_weights=cfg.backbone_weights,
    )
    if plan.init is not None:  # a resumed run then replaces these weights with its checkpoint's
        module.model.load_state_dict(plan.init.state_dict())
    return module


def _checkpointers(out: Path, has_val: bool) -> tuple[RunCheckpoint, RunCheckpoint | None]:
    """last.ckpt after every epoch (for resuming) and, with a validation split, best-*.ckpt on val NME.

    Lightning's save_last refreshes last.ckpt only when another checkpoint is written, so "last" is an
    unmonitored top-1. enable_version_counter=False: resuming a moved run folder overwrites last.ckpt
    instead of adding last-v1.
    """
    last = RunCheckpoint(dirpath=out / "checkpoints", filename="last", monitor=None, save_top_k=1,
                         enable_version_counter=False)
    best = RunCheckpoint(dirpath=out / "checkpoints", filename="best-{epoch:03d}", monitor="val_nme",
                         mode="min", save_top_k=1, enable_version_counter=False) if has_val else None
    return last, best


def _loggers(out: Path) -> list:
    """CSV logs always, TensorBoard when it is installed."""
    loggers: list = [CSVLogger(out, name="logs", version="")]
    try:
        from lightning.pytorch.loggers import TensorBoardLogger
        import tensorboard  # noqa: F401

        loggers.append(TensorBoardLogger(out, name="tensorboard", version=""))
    except ImportError:
        pass
    return loggers


def _trainer(recipe: Recipe, cfg: RoleConfig, out: Path, accelerator: str, precision: str, callbacks: list,
             progress: bool) -> L.Trainer:
    try:
        return L.Trainer(
            max_epochs=cfg.epochs, accelerator=accelerator, devices=recipe.trainer.devices,
            num_nodes=recipe.trainer.num_nodes, strategy=recipe.trainer.strategy, precision=precision,
            max_time=recipe.trainer.max_time, max_steps=recipe.trainer.max_steps,
            callbacks=[c for c in callbacks if c is not None],
            logger=_loggers(out), log_every_n_steps=recipe.trainer.log_every_n_steps, enable_progress_bar=progress,
            enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=out,
        )
    except (ValueError, TypeError, ImportError, MisconfigurationException) as exc:
        # Lightning validates the trainer section (strategy, precision, devices, max_time, accelerator)
        raise ConfigError(f"trainer settings: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


def logged_invocations(out: str | Path) -> list[Path]:
    """A run folder's CSV logs in training order: metrics.1.csv, metrics.2.csv, ... (one per invocation that
    a resume continued), then metrics.csv (the latest)."""
    logs = Path(out) / "logs"
    earlier = [(int(p.name.split(".")[1]), p) for p in logs.glob("metrics.*.csv") if p.name.split(".")[1].isdigit()]
    latest = [logs / "metrics.csv"] if (logs / "metrics.csv").is_file() else []
    return [p for _, p in sorted(earlier)] + latest


def logged_training_seconds(csv_log: Path) -> float:
    """The training seconds one invocation logged (ThroughputMeter's last train_seconds; 0 when none)."""
    seconds = 0.0
    with open(csv_log, newline="") as fh:
        for row in csv.DictReader(fh):
            if row.get("train_seconds"):
                seconds = float(row["train_seconds"])
    return seconds


def _earlier_logs(out: str | Path) -> list[Path]:
    """The CSV logs of the invocations before the latest (metrics.<k>.csv), in training order."""
    return [p for p in logged_invocations(out) if p.name != "metrics.csv"]


def earlier_training_seconds(out: str | Path) -> float:
    """Training seconds of the invocations before the latest (metrics.<k>.csv), so that a run cut off and
    resumed reports its whole cost, not only the last invocation's."""
    return sum(logged_training_seconds(p) for p in _earlier_logs(out))


def _resume_point(out: Path, restart: bool) -> Path | None:
    """checkpoints/last.ckpt when there is one to resume from (and not `restart`). Lightning's CSV writer
    deletes an existing metrics.csv, so the earlier invocations' rows are kept beside it (metrics.<k>.csv);
    a restart drops them with the run they belonged to."""
    last = out / "checkpoints" / "last.ckpt"
    resume = last if last.is_file() and not restart else None
    if int(os.environ.get("LOCAL_RANK", "0")) != 0:
        return resume
    earlier = _earlier_logs(out)
    if resume:
        print(f"resuming from {resume}")
        csv_log = out / "logs" / "metrics.csv"
        if csv_log.is_file():
            os.replace(csv_log, out / "logs" / f"metrics.{len(earlier) + 1}.csv")
    else:
        for stale in earlier:
            stale.unlink()
    return resume


def _fit(trainer: L.Trainer, module: Any, datamodule: Any, resume: Path | None, has_val: bool) -> float:
    """Train (resuming from `resume`), then score the final weights when training stopped mid-epoch; seconds."""
    start = time.perf_counter()
    # weights_only: a checkpoint is read as tensors and plain values, never code (models.load_model does the
    # same); Lightning before 2.5 has no such argument, and torch >= 2.6 then defaults to it anyway
    safe = {"weights_only": True} if "weights_only" in inspect.signature(trainer.fit).parameters else {}
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume, **safe)
    seconds = time.perf_counter() - start
    if has_val and module.validated_at_step != trainer.global_step and trainer.global_step > 0:
        # max_steps or max_time stopped mid-epoch: score the weights that training left
        trainer.validate(module, datamodule=datamodule, verbose=False)
    return seconds


def _save_selected(out: Path, trainer: L.Trainer, module: Any, checkpoint: ModelCheckpoint | None,
                   cfg: RoleConfig, info: ModelInfo, summary: dict[str, Any]) -> None:
    """Write the selected weights as model.pt (best validation checkpoint or the final weights) and
    summary.json; `summary` gains the selection's fields."""
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


def _drops_a_failed_new_folder(train: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """`train` (train_model) that, when it fails in a run folder it created, removes that folder unless it
    holds a checkpoint to resume from: a failed start leaves no folder with only config.yaml in it."""
    @functools.wraps(train)
    def wrapper(recipe: Recipe, role: str, out_dir: str | Path, *args: Any, **kwargs: Any) -> dict[str, Any]:
        out = Path(out_dir)
        fresh = not out.exists()
        try:
            return train(recipe, role, out_dir, *args, **kwargs)
        except BaseException:
            if fresh and out.is_dir() and not (out / "checkpoints" / "last.ckpt").is_file():
                shutil.rmtree(out, ignore_errors=True)  # made by this call: everything in it is this run's
            raise
    return wrapper


def _check_resumable(resume: Path | None, module: Any) -> None:
    """One error naming `restart` when checkpoints/last.ckpt cannot be resumed: unreadable (cut short by a
    kill or a full disk), refused (objects that would run code), not a training checkpoint, or a checkpoint
    of another network than the recipe now builds (its architecture or point count changed)."""
    if resume is None:
        return
    hint = "to start the run over (discarding it), train again with {restart}"
    try:
        payload = read_torch_file(resume, what="training checkpoint")
    except ModelError as exc:
        raise ModelError(f"cannot resume: {exc}; {hint}", parameters=("restart",)) from None
    state = payload.get("state_dict") if isinstance(payload, dict) else None
    if not isinstance(state, dict):
        raise ModelError(f"cannot resume: {resume} is not a training checkpoint; {hint}", parameters=("restart",))
    prefix = CHECKPOINT_MODEL_PREFIX
    wanted = {prefix + k: tuple(v.shape) for k, v in module.model.state_dict().items()}
    found = {k: tuple(getattr(v, "shape", ())) for k, v in state.items() if k.startswith(prefix)}
    if wanted != found:
        saved = (payload.get("hyper_parameters") or {}).get(CHECKPOINT_INFO_KEY) or {}
        was = (f"{saved.get('arch')} with {saved.get('num_points')} points" if isinstance(saved, dict)
               else "another network")
        now = f"{module.info.arch} with {module.info.num_points} points"
        raise ModelError(f"cannot resume: {resume} holds {was}, and the recipe now builds {now}; {hint}",
                         parameters=("restart",))


@_drops_a_failed_new_folder
def train_model(recipe: Recipe, role: str, out_dir: str | Path, kind: str | None = None, loss: str | None = None,
                teachers: Teachers = Teachers(), restart: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train one model (role "teacher" of `kind` tough/tolerant, or "student") into `out_dir`; returns the
    run summary (also written as summary.json). See the module docstring for what the folder holds."""
    _quiet_lightning()
    # 1. what is being trained, checked before any work starts
    plan = plan_run(recipe, role, kind, loss, teachers)
    accelerator, precision = _hardware(recipe, plan.cfg)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    info = _model_info(recipe, plan)
    _write_resolved_config(out, recipe, plan, info, teachers.online)

    # 2. data: teacher outputs cached once per stored sample (or teachers run online)
    datamodule = _datamodule(recipe, plan, accelerator, progress)

    # 3. model and loop
    L.seed_everything(recipe.trainer.seed, workers=True, verbose=False)
    module = _lightning_module(recipe, plan, info)
    has_val = len(datamodule.val_set) > 0
    last_checkpoint, checkpoint = _checkpointers(out, has_val)
    meter = ThroughputMeter(recipe.data.batch_size)
    bars = progress and sys.stdout.isatty()  # off a terminal a bar's every refresh becomes a line of the log
    epoch_lines = EpochLine() if progress and not bars else None
    trainer = _trainer(recipe, plan.cfg, out, accelerator, precision,
                       [last_checkpoint, checkpoint, meter, epoch_lines], bars)
    resume = _resume_point(out, restart)
    _check_resumable(resume, module)
    seconds = _fit(trainer, module, datamodule, resume, has_val)
    seconds_before = earlier_training_seconds(out) if resume else 0.0
    device_kind = trainer.accelerator.__class__.__name__.replace("Accelerator", "").lower()  # cpu, cuda, mps, ...

    # 4. the selected model as a portable file, plus a summary
    summary: dict[str, Any] = {
        "role": role, "kind": kind, "loss": plan.loss, "epochs_completed": int(trainer.current_epoch),
        "epochs_planned": plan.cfg.epochs, "steps": int(trainer.global_step),
        # the whole run's cost: this invocation plus those a resume continued (their logged training time)
        "seconds": round(seconds + seconds_before, 1), "seconds_before_resume": round(seconds_before, 3),
        "train_samples": len(datamodule.train_set), "val_faces": len(datamodule.val_set),
        "samples_per_second": meter.samples_per_second,
        "precision": precision, "accelerator": device_kind,
        # which machine the seconds were spent on: campaigns resume across machines of different speeds
        "hardware": (cpu_description() if device_kind == "cpu" else
                     torch.cuda.get_device_name() if device_kind == "cuda" else device_kind),
        "teacher_cache": plan.cfg.teacher_cache.value if plan.use_cache else False,
    }
    if trainer.is_global_zero:
        _save_selected(out, trainer, module, checkpoint, plan.cfg, info, summary)
    return summary
