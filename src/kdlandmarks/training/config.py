"""Training configuration: YAML recipes shipped with the package, validated before anything runs.

A recipe has one section per role (teacher, student) plus shared data and trainer settings. Values
can be overridden from the command line with dotted keys (`--set student.epochs=5`). Unknown keys
are errors, so a typo never silently falls back to a default.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from enum import Enum
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from kdlandmarks.errors import ConfigError


OPTIMIZERS = ("adam", "adamw")
PRECISIONS = ("32-true", "32", "bf16-mixed", "16-mixed", "bf16-true", "16-true", "64-true")
SCHEDULES = ("keras", "onecycle", "cosine")


class TeacherCache(Enum):
    """Where a KD student's teacher outputs come from; the values are the recipe's (`teacher_cache: warp`)."""

    FIXED = True  # computed once per stored sample; the inputs must not change (data.augment null)
    WARP = "warp"  # computed on each sample's plain crop and moved with every step's fresh augmentation, like
    #                the ground truth (assumes the teacher follows the warp)
    ONLINE = False  # frozen teachers run on every batch

    @classmethod
    def parse(cls, value: Any) -> "TeacherCache":
        """A member from a recipe or --set value: true/false (or yes/no/1/0), warp, or a member."""
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            word = value.strip().lower()
            value = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}.get(word, word)
        try:
            return cls(value)
        except ValueError:
            raise ValueError(value) from None


@dataclass
class DataConfig:
    store: str | None = None  # prepared store folder (kdlandmarks prepare)
    val_fraction: float = 0.05  # faces held out of the training store for model selection
    batch_size: int = 70
    num_workers: int = 0
    augment: dict[str, float] | None = None  # online augmentation (None: offline copies only)
    resident: bool = False  # the whole store on the training device, batches gathered there (GPU: no loader)


@dataclass
class RoleConfig:
    arch: str = "mobilenetv2_100"
    epochs: int = 150
    lr: float = 1e-3
    lr_decay: float = 1e-4  # Keras legacy decay: lr_t = lr / (1 + lr_decay * step)
    weight_decay: float = 0.0
    optimizer: str = "adam"  # adam (the paper; weight decay as L2 in the gradient) | adamw (decoupled weight decay)
    schedule: str = "keras"  # keras (the paper: lr / (1 + lr_decay * step)) | onecycle | cosine
    warmup: float = 0.3  # onecycle/cosine: fraction of the run spent warming up to lr
    dropout: float | None = None  # None: the architecture's default (teacher 0.5, student 0)
    loss: str = "l2"  # l2 | l1 | kd (student only)
    kd: dict[str, Any] = field(default_factory=dict)  # KDLoss options
    teacher_cache: TeacherCache = TeacherCache.FIXED  # true | warp | false (TeacherCache)
    teacher_flip_test: bool = False  # KD: each teacher output is the flip-test average of plain and mirrored view
    # None: trainer.precision. Per role because the gain differs by backbone: on a CPU with AMX- or AVX512-BF16,
    # bf16-mixed trains ResNets 2.1-2.4x faster, depthwise MobileNets and EfficientNets not at all.
    precision: str | None = None
    select: str = "last"  # last | best-val (validation split carved from train)
    backbone_weights: str | None = None  # local weight file to start the backbone from (default: random, as the paper)
    init_weights: str | None = None  # a model to start the whole network from (fine-tuning): file, .ckpt, run
    #                                  folder or shipped name

    def __post_init__(self) -> None:
        self.teacher_cache = TeacherCache.parse(self.teacher_cache)  # RoleConfig(teacher_cache="warp") works too


@dataclass
class TrainerConfig:
    accelerator: str = "auto"
    devices: Any = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    seed: int = 0
    max_time: str | None = None  # "DD:HH:MM:SS" wall-clock cap; epochs reached are recorded
    max_steps: int = -1  # optimisation-step cap (-1: none); equal-budget comparisons across stores and batch sizes
    log_every_n_steps: int = 10
    channels_last: bool = False


@dataclass
class Recipe:
    name: str = "custom"
    dataset: str = "300w"
    input_size: int = 128
    context: float = 1.25
    margin: float = 0.1
    copies: int = 6
    space: str = "normalized"
    asm_variance: float = 0.95
    data: DataConfig = field(default_factory=DataConfig)
    teacher: RoleConfig = field(default_factory=lambda: RoleConfig(arch="efficientnet_b3"))
    student: RoleConfig = field(default_factory=RoleConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


def _build(cls, spec: Any, where: str):
    if spec is None:
        return cls()
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(spec).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = set(spec) - set(known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; known: {sorted(known)}")
    kwargs = {}
    defaults = cls()
    for key, value in spec.items():
        default = getattr(defaults, key)
        if is_dataclass(default):
            kwargs[key] = _build(type(default), value, f"{where}.{key}")
        elif value is None and not _nullable(known[key], default):  # `epochs:`, `epochs: ~`, --set epochs=
            raise ConfigError(f"{where}.{key}: no value given (empty or null); "
                              f"expected a value of type {type(default).__name__}")
        else:
            kwargs[key] = _coerce(value, default, f"{where}.{key}")
    return cls(**kwargs)


def _nullable(spec: Any, default: Any) -> bool:
    """Whether a recipe field may be null: its default is None, or its type says None or Any."""
    kind = str(spec.type)  # a string: this module uses postponed annotations
    return default is None or "None" in kind or kind == "Any"


def _coerce(value: Any, default: Any, where: str) -> Any:
    if default is None or value is None or isinstance(default, (dict, list)):
        return value
    if isinstance(default, TeacherCache):
        try:
            return TeacherCache.parse(value)
        except ValueError:
            raise ConfigError(f"{where}: {value!r} is not a valid bool or warp") from None
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                if value.lower() in {"true", "1", "yes"}:
                    return True
                if value.lower() in {"false", "0", "no"}:
                    return False
                raise ValueError(value)
            return bool(value)
        if isinstance(default, int):
            # int(1.5) would silently train 1 epoch; only whole numbers are ints (a YAML 2.0 is fine).
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
        return type(default)(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: {value!r} is not a valid {type(default).__name__}") from None


def recipe_values(recipe: Recipe) -> dict[str, Any]:
    """The recipe as plain YAML values (an enum as the value a recipe writes: `teacher_cache: warp`)."""
    return asdict(recipe, dict_factory=lambda items: {k: v.value if isinstance(v, Enum) else v for k, v in items})


def shipped_recipes() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("kdlandmarks.configs").iterdir() if p.name.endswith(".yaml"))


def load_recipe(name_or_path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """A shipped recipe by name (e.g. 300w-cpu) or a YAML file, with `key.sub=value` overrides applied."""
    path = Path(name_or_path)
    if path.is_file():
        try:
            text, where = path.read_text(), str(path)
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: not a YAML text file") from None
    else:
        candidate = resources.files("kdlandmarks.configs") / f"{name_or_path}.yaml"
        if not candidate.is_file():
            raise ConfigError(f"config {name_or_path!r} not found: give a YAML file or one of {shipped_recipes()}")
        text, where = candidate.read_text(), f"{name_or_path}.yaml"
    try:
        spec = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: invalid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: a recipe must be a mapping of sections, got {type(spec).__name__}")
    spec = copy.deepcopy(spec)
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.sub=value")
        key, raw = item.split("=", 1)
        node = spec
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part} is not a section")
        try:
            node[parts[-1]] = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: invalid YAML value ({str(exc).splitlines()[0]})") from None
    return check_recipe(_build(Recipe, spec, where), where)


def check_recipe(recipe: Recipe, where: str = "recipe") -> Recipe:
    """Range checks of the values that would otherwise fail deep inside training (or train forever)."""
    from kdlandmarks.data.codec import SPACES
    from kdlandmarks.data.store import STORE_RULES

    r, d = recipe, recipe.data
    checks = [  # (key, value, valid, rule)
        *((key, getattr(r, key), valid(getattr(r, key)), rule) for key, (valid, rule) in STORE_RULES.items()),
        ("space", r.space, r.space in SPACES, f"must be one of {', '.join(SPACES)}"),
        ("asm_variance", r.asm_variance, 0 < r.asm_variance <= 1, "must be in (0, 1]"),
        ("data.batch_size", d.batch_size, d.batch_size >= 1, "must be at least 1"),
        ("data.val_fraction", d.val_fraction, 0 <= d.val_fraction < 1, "must be in [0, 1)"),
        ("data.num_workers", d.num_workers, d.num_workers >= 0, "must be >= 0"),
    ]
    for role in ("teacher", "student"):
        c: RoleConfig = getattr(r, role)
        checks += [
            (f"{role}.epochs", c.epochs, c.epochs >= 0, "must be >= 0"),  # Lightning reads -1 as 'forever'
            (f"{role}.lr", c.lr, c.lr > 0, "must be > 0"),
            (f"{role}.lr_decay", c.lr_decay, c.lr_decay >= 0, "must be >= 0"),
            (f"{role}.weight_decay", c.weight_decay, c.weight_decay >= 0, "must be >= 0"),
            (f"{role}.optimizer", c.optimizer, c.optimizer in OPTIMIZERS, f"must be one of {', '.join(OPTIMIZERS)}"),
            (f"{role}.schedule", c.schedule, c.schedule in SCHEDULES, f"must be one of {', '.join(SCHEDULES)}"),
            (f"{role}.warmup", c.warmup, 0 <= c.warmup < 1, "must be in [0, 1)"),
            (f"{role}.precision", c.precision, c.precision is None or str(c.precision) in PRECISIONS,
             f"must be null or one of {', '.join(PRECISIONS)}"),
            (f"{role}.dropout", c.dropout, c.dropout is None or (type(c.dropout) in (int, float) and 0 <= c.dropout < 1),
             "must be null or a number in [0, 1)"),
        ]
    for key, value, valid, rule in checks:
        if not valid:
            raise ConfigError(f"{where}: {key}={value!r} {rule}")
    return recipe

