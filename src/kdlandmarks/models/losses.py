"""Training losses: plain L2/L1 regression losses and the KD-Loss
(docs/method.md#kd-loss: the released code's form, with the figure variant of docs/method.md#figure-variant as options).

Notation (docs/method.md#kd-notation), element-wise over every coordinate entry: g target (Hard-landmarks), p student,
a Tough-Teacher, s Tolerant-Teacher; e = |p - g| and, for a teacher t, d = |t - g|.

Assistive term of one teacher t (weight alpha, alpha_minus, boundary ratio b):

    sigma = sign(p - g);  t_hat = g + sigma * d          (teacher reflected to the student's side of g)
    w = alpha        in R_P: e > d and d > 0             (student beyond the teacher)
      = alpha_minus  in R_N: b*d <= e <= d, or p == g    (both boundaries and p == g belong to R_N)
      = 0            in R_L: everything else (e < b*d, or d == 0 with p != g)
        (rl_ramp=True: alpha_minus * e / (b*d) in R_L, a linear ramp from 0 at g to alpha_minus at the
         boundary, as figure ``loss_weight`` draws it; p == g then gets 0, and so does d == 0)
    ALoss_t = lambda_t * mean(w * |t_hat - p|)

The distance form above is the released code's sign-product test
``sign(p - t_hat) * sign(t_hat - g) > 0`` (R_P) / ``sign(t_hat - p) * sign(p - beta) >= 0`` (R_N) rewritten;
the two can disagree only on exact floating-point ties that rounding of t_hat moves by an ulp.

Main term, threshold delta (default |g - s|) and linear coefficient c:

    l = c * |g - p|                     if |g - p| <= delta
      = (g - p)^2 + c*delta - delta^2   otherwise     (continuous in value; in slope only when c == 2*delta)
    Loss_main = lambda_main * mean(l)

KD-Loss = Loss_main + ALoss_tough + ALoss_tolerant. The weights w, the reflected teachers and delta are
computed from detached tensors (in the original, sign() has zero gradient and the teachers come from
``predict_on_batch``), so gradients flow only through the student prediction p.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Iterable, Sequence

import torch
from torch import nn

from kdlandmarks.errors import ConfigError, DataError

TEACHERS = ("tough", "tolerant")
THRESHOLD_SOURCES = ("tolerant", "tough")


class LossInputError(DataError, ValueError):
    """Loss inputs that are not tensors, have mismatched or unsupported shapes, or lack a teacher's prediction:
    wrong data handed to a loss (a ValueError, and a KDLandmarksError for the CLI), not a bad model."""


def _check_same_shape(named: Sequence[tuple[str, torch.Tensor]]) -> None:
    """All tensors must share one shape (B, 2N) or (B, N, 2); no silent broadcasting."""
    first_name, first = named[0]
    for name, t in named:
        if not isinstance(t, torch.Tensor):
            raise LossInputError(f"losses: {name} must be a torch.Tensor, got {type(t).__name__}")
    shape = tuple(first.shape)
    if not (len(shape) == 2 or (len(shape) == 3 and shape[-1] == 2)):
        raise LossInputError(f"losses: {first_name} must have shape (B, 2N) or (B, N, 2), got {shape}")
    for name, t in named[1:]:
        if tuple(t.shape) != shape:
            raise LossInputError(
                f"losses: shape mismatch: {first_name} has shape {shape} but {name} has shape {tuple(t.shape)}")


def l2_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over all B*2N entries (teacher and baseline loss).

    The released teacher trainer used ``tf.losses.mean_squared_error`` (one MSE per sample, shape (B,)) and
    took the gradient of that vector, i.e. it minimised the *sum over the batch* of per-sample MSEs
    (docs/method.md#teachers). That is this loss times B: a constant rescaling that Adam (scale-invariant up to its eps)
    all but ignores, so the plain mean is used here.
    """
    _check_same_shape([("pred", pred), ("target", target)])
    return torch.mean((pred - target) ** 2)


def l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over all B*2N entries (the authors' development history's baseline
    alternative, docs/method.md#regression-losses)."""
    _check_same_shape([("pred", pred), ("target", target)])
    return torch.mean(torch.abs(pred - target))


def smooth_l1_loss(pred: torch.Tensor, target: torch.Tensor, beta: float = 0.01) -> torch.Tensor:
    """Huber-style loss: quadratic below beta (normalised units, ~1.3 px at 128 px input), linear above."""
    _check_same_shape([("pred", pred), ("target", target)])
    return torch.nn.functional.smooth_l1_loss(pred, target, beta=beta)


def wing_loss(pred: torch.Tensor, target: torch.Tensor, width: float = 0.04, curvature: float = 0.008) -> torch.Tensor:
    """Wing loss (Feng et al., CVPR 2018), in normalised units: log-shaped below `width`, linear above.

    width 0.04 and curvature 0.008 are the paper's w=10, epsilon=2 pixels rescaled to a 256 px face.
    """
    _check_same_shape([("pred", pred), ("target", target)])
    x = torch.abs(pred - target)
    c = width - width * math.log1p(width / curvature)
    return torch.mean(torch.where(x < width, width * torch.log1p(x / curvature), x - c))


REGRESSION_LOSSES = {"l2": l2_loss, "l1": l1_loss, "smooth_l1": smooth_l1_loss, "wing": wing_loss}


@torch.no_grad()
def assistant_weight(student: torch.Tensor, target: torch.Tensor, teacher: torch.Tensor, *,
                     alpha: float, alpha_minus: float, beta_ratio: float = 0.15,
                     rl_ramp: bool = False) -> torch.Tensor:
    """Per-entry weight w of one teacher (module docstring); a constant tensor, no gradient."""
    p, g, t = student.detach(), target.detach(), teacher.detach()
    e = torch.abs(p - g)
    d = torch.abs(t - g)
    bd = beta_ratio * d
    positive = (e > d) & (d > 0)
    # The code's R_N test also catches p == g; with the ramp, g is instead the ramp's start (w = 0), as the
    # figure draws it. The term w * |t_hat - p| and its gradient are 0 at p == g either way.
    negative = (bd <= e) & (e <= d)
    if not rl_ramp:
        negative = negative | (e == 0)
    if rl_ramp:
        # Guard the division: where b*d == 0 the ramp region is empty and the weight stays 0.
        ramp = torch.where(bd > 0, e / torch.where(bd > 0, bd, torch.ones_like(bd)), torch.zeros_like(e))
        low = alpha_minus * torch.clamp(ramp, max=1.0)
    else:
        low = torch.zeros_like(e)
    return torch.where(positive, torch.full_like(e, alpha), torch.where(negative, torch.full_like(e, alpha_minus), low))


def assistive_elementwise(student: torch.Tensor, target: torch.Tensor, teacher: torch.Tensor, *,
                          alpha: float, alpha_minus: float, beta_ratio: float = 0.15,
                          rl_ramp: bool = False) -> torch.Tensor:
    """Per-entry assistive loss w * |t_hat - p| of one teacher (no lambda); differentiable in ``student`` only."""
    g, t = target.detach(), teacher.detach()
    w = assistant_weight(student, g, t, alpha=alpha, alpha_minus=alpha_minus, beta_ratio=beta_ratio, rl_ramp=rl_ramp)
    with torch.no_grad():
        # sign(0) == 0 puts the reflected teacher on g when p == g, as in the code (the term is then 0).
        t_hat = g + torch.sign(student.detach() - g) * torch.abs(t - g)
    return w * torch.abs(t_hat - student)


def main_elementwise(student: torch.Tensor, target: torch.Tensor, threshold: torch.Tensor | float, *,
                     linear_coef: float = 3.0) -> torch.Tensor:
    """Per-entry main loss (linear up to ``threshold``, quadratic beyond; no lambda); differentiable in ``student`` only."""
    g = target.detach()
    delta = threshold.detach() if isinstance(threshold, torch.Tensor) else torch.full_like(g, float(threshold))
    diff = student - g
    err = torch.abs(diff)
    linear = linear_coef * err
    quadratic = diff * diff + (linear_coef * delta - delta * delta)
    # NaN in err or delta fails the comparison and lands in the quadratic branch, which propagates it.
    return torch.where(err <= delta, linear, quadratic)


def _finite(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"KDLoss: {name} must be a finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class KDOptions:
    """KD-Loss options; the defaults reproduce the released code (see KDLoss). A recipe's `kd:` mapping
    holds these names. Checked on creation (ConfigError); `teachers` and `main_threshold` are normalised."""

    alpha_tough: float = 1.9
    alpha_minus_tough: float = -0.45
    alpha_tolerant: float = 1.8
    alpha_minus_tolerant: float = -0.4
    beta_ratio: float = 0.15
    main_weight: float = 2.0
    tough_weight: float = 1.0
    tolerant_weight: float = 1.0
    main_linear_coef: float = 3.0
    main_threshold: str | float = "tolerant"
    rl_ramp: bool = False
    teachers: Iterable[str] | str = TEACHERS

    def __post_init__(self) -> None:
        for name in ("alpha_tough", "alpha_minus_tough", "alpha_tolerant", "alpha_minus_tolerant", "beta_ratio",
                     "main_weight", "tough_weight", "tolerant_weight", "main_linear_coef"):
            object.__setattr__(self, name, _finite(name, getattr(self, name)))
        if not 0.0 <= self.beta_ratio <= 1.0:
            raise ConfigError(f"KDLoss: beta_ratio must be in [0, 1], got {self.beta_ratio!r}")
        if self.main_linear_coef < 0:
            raise ConfigError(f"KDLoss: main_linear_coef must be >= 0, got {self.main_linear_coef!r}")
        if not isinstance(self.rl_ramp, bool):
            raise ConfigError(f"KDLoss: rl_ramp must be true or false, got {self.rl_ramp!r}")
        names = (self.teachers,) if isinstance(self.teachers, str) else tuple(self.teachers)
        unknown = [n for n in names if n not in TEACHERS]
        if unknown or len(set(names)) != len(names):
            raise ConfigError(f"KDLoss: teachers must be distinct names from {TEACHERS}, got {names!r}")
        object.__setattr__(self, "teachers", tuple(n for n in TEACHERS if n in names))
        object.__setattr__(self, "main_threshold", self._threshold(self.main_threshold))

    def _threshold(self, given: str | float) -> str | float:
        """The main term's threshold: a teacher that is used ("tolerant" falls back to "tough" in the tough-only
        ablation), or a finite number >= 0."""
        if isinstance(given, str):
            if given not in THRESHOLD_SOURCES:
                raise ConfigError(f"KDLoss: main_threshold must be one of {THRESHOLD_SOURCES} or a number, "
                                  f"got {given!r}")
            source = "tough" if given == "tolerant" and "tolerant" not in self.teachers else given
            if source not in self.teachers:
                raise ConfigError(f"KDLoss: main_threshold={given!r} needs a teacher, but teachers="
                                  f"{self.teachers!r}; use a numeric threshold")
            return source
        value = _finite("main_threshold", given)
        if value < 0:
            raise ConfigError(f"KDLoss: main_threshold must be >= 0, got {given!r}")
        return value


class KDLoss(nn.Module):
    """KD-Loss of Fard & Mahoor; defaults reproduce the released code (docs/method.md#kd-total).

    Call as ``loss(student, target, tough, tolerant)`` with tensors of one shape, (B, 2N) or (B, N, 2);
    returns the total as a 0-dim tensor. ``terms(...)`` returns ``{"main", "tough", "tolerant"}`` (0-dim,
    each already multiplied by its lambda; total = their sum); ``elementwise(...)`` the same per entry.

    Options (KDOptions; docs/method.md#figure-variant):
      beta_ratio       0.15 (code) or 0.4 (figures): boundary b between R_N and R_L, as a fraction of d.
      rl_ramp          False (code: w = 0 in R_L) or True (figure: linear ramp 0 -> alpha_minus).
      main_linear_coef 3.0 (code) or 1.0 (figure).
      main_threshold   "tolerant" (code: delta = |g - s|; falls back to |g - a| when only the tough teacher is
                       used), "tough" (delta = |g - a|), or a fixed float >= 0 (the figure draws 0.5).
      teachers         ("tough", "tolerant") or a single-teacher ablation ("tough",) / ("tolerant",), or ()
                       with a float threshold (main loss only). A missing teacher's term is 0 and its
                       argument may be None.
    """

    def __init__(self, options: KDOptions = KDOptions()) -> None:
        super().__init__()
        self.options = options
        for f in fields(options):  # the options are read as the loss's own attributes (extra_repr, terms)
            setattr(self, f.name, getattr(options, f.name))

    @classmethod
    def released(cls, **overrides) -> "KDLoss":
        """The released code's constants (docs/method.md#kd-total); same as ``KDLoss()``."""
        return cls(KDOptions(**overrides))

    @classmethod
    def figure_variant(cls, **overrides) -> "KDLoss":
        """The loss the paper figures draw (docs/method.md#figure-variant): b = 0.4, ramp in R_L, alpha = 0.9 and alpha_minus = -0.45
        for both teachers (figure ``KDLoss``), main loss with coefficient 1 and the figure's fixed threshold 0.5,
        all lambdas 1 (as plotted). Any argument can be overridden, e.g. ``main_threshold="tolerant"``."""
        params = dict(alpha_tough=0.9, alpha_minus_tough=-0.45, alpha_tolerant=0.9, alpha_minus_tolerant=-0.45,
                      beta_ratio=0.4, rl_ramp=True, main_linear_coef=1.0, main_threshold=0.5,
                      main_weight=1.0, tough_weight=1.0, tolerant_weight=1.0)
        params.update(overrides)
        return cls(KDOptions(**params))

    def extra_repr(self) -> str:
        return (f"teachers={self.teachers}, alpha_tough={self.alpha_tough}, alpha_minus_tough={self.alpha_minus_tough}, "
                f"alpha_tolerant={self.alpha_tolerant}, alpha_minus_tolerant={self.alpha_minus_tolerant}, "
                f"beta_ratio={self.beta_ratio}, rl_ramp={self.rl_ramp}, main_weight={self.main_weight}, "
                f"tough_weight={self.tough_weight}, tolerant_weight={self.tolerant_weight}, "
                f"main_linear_coef={self.main_linear_coef}, main_threshold={self.main_threshold!r}")

    def _validate(self, student, target, tough, tolerant) -> None:
        named = [("student", student), ("target", target)]
        for name, value in (("tough", tough), ("tolerant", tolerant)):
            if name in self.teachers:
                if value is None:
                    raise LossInputError(f"KDLoss: the {name} teacher's prediction is required (teachers={self.teachers})")
                named.append((name, value))
        _check_same_shape(named)

    def elementwise(self, student: torch.Tensor, target: torch.Tensor, tough: torch.Tensor | None = None,
                    tolerant: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Per-entry terms (same shape as ``student``), each multiplied by its lambda; unused teachers give zeros."""
        self._validate(student, target, tough, tolerant)
        if isinstance(self.main_threshold, str):
            teacher = tolerant if self.main_threshold == "tolerant" else tough
            delta: torch.Tensor | float = torch.abs(teacher.detach() - target.detach())
        else:
            delta = self.main_threshold
        out = {"main": self.main_weight * main_elementwise(student, target, delta, linear_coef=self.main_linear_coef)}
        for name, value, alpha, alpha_minus, weight in (
                ("tough", tough, self.alpha_tough, self.alpha_minus_tough, self.tough_weight),
                ("tolerant", tolerant, self.alpha_tolerant, self.alpha_minus_tolerant, self.tolerant_weight)):
            if name in self.teachers:
                out[name] = weight * assistive_elementwise(student, target, value, alpha=alpha, alpha_minus=alpha_minus,
                                                           beta_ratio=self.beta_ratio, rl_ramp=self.rl_ramp)
            else:
                out[name] = torch.zeros_like(out["main"])
        return out

    def terms(self, student: torch.Tensor, target: torch.Tensor, tough: torch.Tensor | None = None,
              tolerant: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``{"main", "tough", "tolerant"}`` as 0-dim tensors (means over all entries, lambdas applied)."""
        return {k: v.mean() for k, v in self.elementwise(student, target, tough, tolerant).items()}

    def forward(self, student: torch.Tensor, target: torch.Tensor, tough: torch.Tensor | None = None,
                tolerant: torch.Tensor | None = None) -> torch.Tensor:
        t = self.terms(student, target, tough, tolerant)
        return t["main"] + t["tough"] + t["tolerant"]
