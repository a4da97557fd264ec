"""Tests for kdlandmarks.models.losses: KD-Loss regions, weights, values, gradients and shapes, against hand-computed numbers."""
import math

import pytest
import torch

from kdlandmarks.errors import ConfigError, KDLandmarksError
from kdlandmarks.models.losses import (KDLoss, KDOptions, LossInputError, assistant_weight, assistive_elementwise, l1_loss, l2_loss,
                                main_elementwise)

F64 = torch.float64


def full(value, shape=(1, 2)):
    return torch.full(shape, float(value), dtype=F64)


def w(p, a, g=0.0, alpha=1.9, alpha_minus=-0.45, beta_ratio=0.15, rl_ramp=False):
    return float(assistant_weight(full(p), full(g), full(a), alpha=alpha, alpha_minus=alpha_minus,
                                  beta_ratio=beta_ratio, rl_ramp=rl_ramp)[0, 0])


# ---------------------------------------------------------------- reference transcription of the released code

def reference_kd_loss(p, g, a, s, alpha_a=1.9, am_a=-0.45, alpha_s=1.8, am_s=-0.4, b=0.15, lam=(2.0, 1.0, 1.0)):
    """The spec's sign-product reading of custom_Losses.kd_loss, written independently of the module."""
    sg = torch.sign(p - g)
    out = []
    for t, al, am in ((a, alpha_a, am_a), (s, alpha_s, am_s)):
        d = torch.abs(t - g)
        t_hat = g + sg * d
        beta = g + b * sg * d
        rp = torch.sign(p - t_hat) * torch.sign(t_hat - g) > 0
        rn = torch.sign(t_hat - p) * torch.sign(p - beta) >= 0
        al_t, am_t, zero = (torch.tensor(v, dtype=F64) for v in (al, am, 0.0))  # scalars would become float32
        weight = torch.where(rp, al_t, torch.where(rn, am_t, zero))
        out.append(weight * torch.abs(t_hat - p))
    delta = torch.abs(g - s)
    err = torch.abs(g - p)
    high = (err > delta).to(F64)
    low = 1 - high
    main = torch.mean(low * 3 * err) + torch.mean(high * ((g - p) ** 2 + 3 * delta - delta ** 2))
    return lam[0] * main + lam[1] * out[0].mean() + lam[2] * out[1].mean()


def test_matches_code_transcription_on_random_inputs():
    gen = torch.Generator().manual_seed(0)
    shape = (4, 10)
    g = torch.rand(shape, generator=gen, dtype=F64) - 0.5
    a = g + 0.05 * torch.randn(shape, generator=gen, dtype=F64)
    s = g + 0.1 * torch.randn(shape, generator=gen, dtype=F64)
    p = g + 0.1 * torch.randn(shape, generator=gen, dtype=F64)
    assert torch.allclose(KDLoss()(p, g, a, s), reference_kd_loss(p, g, a, s), rtol=0, atol=1e-12)


# ---------------------------------------------------------------- the spec's numerical check: g = 0, a = -0.04, s = +0.08

@pytest.mark.parametrize("p, main, tough, tolerant", [
    # e < 0.006 and < 0.012: both weights 0; main linear 2 * 3 * 0.003
    (0.003, 0.018, 0.0, 0.0),
    # tough in R_N: -0.45 * (0.04 - 0.01); tolerant still in R_L (0.01 < 0.012)
    (0.01, 0.06, -0.0135, 0.0),
    # tough in R_P: 1.9 * 0.01; tolerant in R_N: -0.4 * (0.08 - 0.05)
    (0.05, 0.3, 0.019, -0.012),
    # both R_P: 1.9 * 0.06, 1.8 * 0.02; main quadratic 2 * (0.01 + 3 * 0.08 - 0.0064)
    (0.1, 0.4872, 0.114, 0.036),
    (-0.1, 0.4872, 0.114, 0.036),
    (0.0, 0.0, 0.0, 0.0),
])
def test_spec_numerical_check(p, main, tough, tolerant):
    loss = KDLoss()
    t = loss.terms(full(p), full(0.0), full(-0.04), full(0.08))
    assert set(t) == {"main", "tough", "tolerant"}
    assert all(v.dim() == 0 for v in t.values())
    assert float(t["main"]) == pytest.approx(main, abs=1e-12)
    assert float(t["tough"]) == pytest.approx(tough, abs=1e-12)
    assert float(t["tolerant"]) == pytest.approx(tolerant, abs=1e-12)
    total = loss(full(p), full(0.0), full(-0.04), full(0.08))
    assert total.dim() == 0
    assert float(total) == pytest.approx(main + tough + tolerant, abs=1e-12)


def test_weights_spec_numerical_check_thresholds():
    # "weights are 0 for e < 0.006 and 0.012, alpha_minus up to d, and alpha beyond d"
    assert w(0.0059, -0.04) == 0.0 and w(0.0061, -0.04) == -0.45
    assert w(0.0119, 0.08, alpha=1.8, alpha_minus=-0.4) == 0.0
    assert w(0.0121, 0.08, alpha=1.8, alpha_minus=-0.4) == -0.4
    assert w(0.0399, -0.04) == -0.45 and w(0.0401, -0.04) == 1.9
    assert w(0.0799, 0.08, alpha=1.8, alpha_minus=-0.4) == -0.4
    assert w(0.0801, 0.08, alpha=1.8, alpha_minus=-0.4) == 1.8


# ---------------------------------------------------------------- regions and boundaries

def test_region_boundaries_and_p_equal_g():
    d = 0.04
    beta = 0.15 * d  # same float64 product the module computes
    assert w(0.0, -d) == -0.45                      # p == g belongs to R_N
    assert w(beta, -d) == -0.45                     # the beta boundary belongs to R_N
    assert w(-beta, -d) == -0.45                    # on the teacher's own side too
    assert w(math.nextafter(beta, 0.0), -d) == 0.0  # just inside R_L
    assert w(d, -d) == -0.45                        # p on the reflected teacher: R_N, not R_P
    assert w(-d, -d) == -0.45                       # p on the teacher itself
    assert w(math.nextafter(d, 1.0), -d) == 1.9     # just beyond: R_P
    assert w(-0.3, -d) == 1.9


def test_teacher_on_target_gives_no_positive_region():
    # d == 0: R_P needs d > 0, R_N shrinks to p == g, everything else is R_L (weight 0)
    assert w(0.0, 0.0) == -0.45
    assert w(0.01, 0.0) == 0.0
    assert w(-0.2, 0.0) == 0.0
    assert w(0.01, 0.0, rl_ramp=True) == 0.0


def test_rl_ramp_is_linear_from_zero_to_alpha_minus():
    # figure loss_weight: teacher at 0.4, boundary at 0.4 * 0.4 = 0.16, alpha = 1, alpha_minus = -0.5
    kw = dict(alpha=1.0, alpha_minus=-0.5, beta_ratio=0.4, rl_ramp=True)
    assert w(0.0, 0.4, **kw) == 0.0                  # ramp starts at 0 on g
    assert w(0.04, 0.4, **kw) == pytest.approx(-0.125)
    assert w(0.08, 0.4, **kw) == pytest.approx(-0.25)
    assert w(-0.12, 0.4, **kw) == pytest.approx(-0.375)
    assert w(0.16, 0.4, **kw) == pytest.approx(-0.5)
    assert w(0.3, 0.4, **kw) == -0.5
    assert w(0.5, 0.4, **kw) == 1.0
    # without the ramp the same points weigh 0
    assert w(0.08, 0.4, alpha=1.0, alpha_minus=-0.5, beta_ratio=0.4) == 0.0


def test_figure_weight_curve_values():
    # figure loss_weight, ALoss_Te: about -0.12 at the boundary 0.16 and 0.4 at p = 0.8
    kw = dict(alpha=1.0, alpha_minus=-0.5, beta_ratio=0.4, rl_ramp=True)
    vals = assistive_elementwise(torch.tensor([[0.16, 0.8, -0.8, 0.4, 0.0]], dtype=F64), torch.zeros(1, 5, dtype=F64),
                                 torch.full((1, 5), 0.4, dtype=F64), **kw)
    assert torch.allclose(vals, torch.tensor([[-0.12, 0.4, 0.4, 0.0, 0.0]], dtype=F64), atol=1e-12)


def test_ramp_makes_assistive_loss_continuous_at_beta():
    d = 0.04
    beta = 0.15 * d
    def term(p, ramp):
        return float(assistive_elementwise(full(p), full(0.0), full(-d), alpha=1.9, alpha_minus=-0.45,
                                           beta_ratio=0.15, rl_ramp=ramp)[0, 0])
    below = math.nextafter(beta, 0.0)
    assert abs(term(below, True) - term(beta, True)) < 1e-12
    assert term(below, False) == 0.0
    assert term(beta, False) == pytest.approx(-0.45 * (d - beta))  # the code's jump at beta


# ---------------------------------------------------------------- symmetry

@pytest.mark.parametrize("make", [KDLoss, KDLoss.figure_variant, lambda: KDLoss(KDOptions(rl_ramp=True, beta_ratio=0.4))])
def test_symmetric_under_reflection_about_target(make):
    gen = torch.Generator().manual_seed(1)
    shape = (3, 8)
    g = torch.rand(shape, generator=gen, dtype=F64) - 0.5
    a = g + 0.05 * torch.randn(shape, generator=gen, dtype=F64)
    s = g + 0.1 * torch.randn(shape, generator=gen, dtype=F64)
    p = g + 0.15 * torch.randn(shape, generator=gen, dtype=F64)
    loss = make()
    t1 = loss.terms(p, g, a, s)
    t2 = loss.terms(2 * g - p, g, 2 * g - a, 2 * g - s)
    for k in t1:
        assert torch.allclose(t1[k], t2[k], rtol=1e-12, atol=1e-13), k
    # reflecting only the teachers changes nothing either: they are reflected to p's side anyway
    t3 = loss.terms(p, g, 2 * g - a, 2 * g - s)
    for k in t1:
        assert torch.allclose(t1[k], t3[k], rtol=1e-12, atol=1e-13), k


# ---------------------------------------------------------------- gradients

def grad_of(loss, p, g, a, s, term=None):
    p = p.clone().requires_grad_(True)
    value = loss(p, g, a, s) if term is None else loss.terms(p, g, a, s)[term]
    value.backward()
    return p.grad


@pytest.mark.parametrize("p, expected", [
    (0.05, 1.9),     # R_P: alpha > 0 pulls p back toward the teacher, i.e. toward g
    (-0.05, -1.9),
    (0.02, 0.45),    # R_N: alpha_minus < 0 pushes p away from the reflected teacher, i.e. toward g
    (-0.02, -0.45),
    (0.003, 0.0),    # R_L: no pull
])
def test_tough_gradient_per_region(p, expected):
    loss = KDLoss(KDOptions(teachers=("tough",)))
    grad = grad_of(loss, full(p, (1, 1)), full(0.0, (1, 1)), full(-0.04, (1, 1)), None, term="tough")
    assert float(grad) == pytest.approx(expected, abs=1e-12)


def test_ramp_gradient_in_low_region_points_to_target():
    loss = KDLoss(KDOptions(teachers=("tough",), rl_ramp=True, beta_ratio=0.4))
    # d = 0.04, boundary 0.016; at p = 0.008 the weight is -0.45 / 2 and the gradient w * sign(p - t_hat) = +0.225
    grad = grad_of(loss, full(0.008, (1, 1)), full(0.0, (1, 1)), full(0.04, (1, 1)), None, term="tough")
    assert float(grad) == pytest.approx(0.225, abs=1e-12)


@pytest.mark.parametrize("p, expected", [
    (0.05, 2 * 3.0),           # linear branch: lambda * 3 * sign(p - g)
    (-0.05, -2 * 3.0),
    (0.08, 2 * 3.0),           # |g - p| == delta belongs to the linear branch (the code's mask is <=)
    (0.1, 2 * 2 * 0.1),        # quadratic branch: lambda * 2 (p - g)
    (-0.3, 2 * 2 * -0.3),
    (0.0, 0.0),
])
def test_main_gradient(p, expected):
    grad = grad_of(KDLoss(), full(p, (1, 1)), full(0.0, (1, 1)), full(-0.04, (1, 1)), full(0.08, (1, 1)), term="main")
    assert float(grad) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("make", [KDLoss, KDLoss.figure_variant])
def test_total_gradient_points_toward_target_everywhere(make):
    gen = torch.Generator().manual_seed(2)
    n = 2000
    g = torch.rand(1, n, generator=gen, dtype=F64) - 0.5
    a = g + 0.05 * torch.randn(1, n, generator=gen, dtype=F64)
    s = g + 0.1 * torch.randn(1, n, generator=gen, dtype=F64)
    p = g + 0.2 * torch.randn(1, n, generator=gen, dtype=F64)
    grad = grad_of(make(), p, g, a, s)
    moving = torch.sign(grad) == torch.sign(p - g)
    assert bool(moving.all())


def test_gradients_flow_only_through_student():
    shape = (2, 6)
    gen = torch.Generator().manual_seed(3)
    g, a, s, p = (torch.randn(shape, generator=gen, dtype=F64).requires_grad_(True) for _ in range(4))
    KDLoss()(p, g, a, s).backward()
    assert p.grad is not None and bool(torch.isfinite(p.grad).all())
    assert g.grad is None and a.grad is None and s.grad is None


# ---------------------------------------------------------------- main loss branches

def test_main_loss_linear_and_quadratic_branches_released():
    g = torch.zeros(1, 4, dtype=F64)
    delta = torch.tensor([[0.08, 0.08, 0.08, 0.2]], dtype=F64)
    p = torch.tensor([[0.05, 0.08, -0.1, 0.5]], dtype=F64)
    out = main_elementwise(p, g, delta, linear_coef=3.0)
    # 3 * 0.05; 3 * 0.08 (boundary is linear); 0.01 + 0.24 - 0.0064; 0.25 + 0.6 - 0.04
    assert torch.allclose(out, torch.tensor([[0.15, 0.24, 0.2436, 0.81]], dtype=F64), atol=1e-12)


def test_main_loss_continuous_at_threshold():
    for coef, delta in ((3.0, 0.08), (1.0, 0.5), (3.0, 2.5)):
        at = float(main_elementwise(full(delta), full(0.0), delta, linear_coef=coef)[0, 0])
        above = float(main_elementwise(full(delta + 1e-9), full(0.0), delta, linear_coef=coef)[0, 0])
        assert at == pytest.approx(coef * delta)
        assert abs(above - at) < 1e-7


def test_figure_variant_main_loss():
    # figure main_loss: |x| for |x| <= 0.5, x^2 + 0.25 beyond; slope 1 on both sides of 0.5
    loss = KDLoss.figure_variant()
    x = torch.tensor([[0.25, -0.5, 1.0, -1.5]], dtype=F64)
    zeros = torch.zeros_like(x)
    main = loss.elementwise(x, zeros, zeros + 0.4, zeros + 0.49)["main"]
    assert torch.allclose(main, torch.tensor([[0.25, 0.5, 1.25, 2.5]], dtype=F64), atol=1e-12)
    for p, slope in ((0.5 - 1e-6, 1.0), (0.5 + 1e-6, 1.0)):
        grad = grad_of(loss, full(p, (1, 1)), full(0.0, (1, 1)), full(0.4, (1, 1)), full(0.49, (1, 1)), term="main")
        assert float(grad) == pytest.approx(slope, abs=1e-5)


def test_figure_variant_settings_and_overrides():
    loss = KDLoss.figure_variant()
    assert (loss.beta_ratio, loss.rl_ramp, loss.main_linear_coef, loss.main_threshold) == (0.4, True, 1.0, 0.5)
    assert (loss.alpha_tough, loss.alpha_minus_tough, loss.alpha_tolerant, loss.alpha_minus_tolerant) == \
        (0.9, -0.45, 0.9, -0.45)
    assert KDLoss.figure_variant(main_threshold="tolerant").main_threshold == "tolerant"
    released = KDLoss.released()
    assert (released.beta_ratio, released.rl_ramp, released.main_linear_coef, released.main_weight) == \
        (0.15, False, 3.0, 2.0)


def test_fixed_threshold():
    # threshold 0.5 instead of |g - s| = 0.08: p = 0.1 stays on the linear branch, 2 * 3 * 0.1
    t = KDLoss(KDOptions(main_threshold=0.5)).terms(full(0.1), full(0.0), full(-0.04), full(0.08))
    assert float(t["main"]) == pytest.approx(0.6, abs=1e-12)


# ---------------------------------------------------------------- shapes, ablations, errors

def test_point_layout_equals_flat_layout():
    gen = torch.Generator().manual_seed(4)
    tensors = [torch.randn(3, 5, 2, generator=gen, dtype=F64) * 0.1 for _ in range(4)]
    p, g, a, s = tensors
    loss = KDLoss()
    t_pts = loss.terms(p, g, a, s)
    t_flat = loss.terms(*(x.reshape(3, 10) for x in tensors))
    for k in t_pts:
        assert torch.allclose(t_pts[k], t_flat[k], rtol=0, atol=1e-14)
    assert loss.elementwise(p, g, a, s)["tough"].shape == (3, 5, 2)
    g1 = grad_of(loss, p, g, a, s)
    g2 = grad_of(loss, p.reshape(3, 10), g.reshape(3, 10), a.reshape(3, 10), s.reshape(3, 10))
    assert torch.allclose(g1.reshape(3, 10), g2, atol=1e-14)


def test_single_teacher_ablations():
    p, g, a, s = full(0.05), full(0.0), full(-0.04), full(0.08)
    tough_only = KDLoss(KDOptions(teachers=("tough",)))
    assert tough_only.main_threshold == "tough"  # falls back to delta = |g - a|
    t = tough_only.terms(p, g, a, None)
    # main: e = 0.05 > 0.04, 2 * (0.0025 + 0.12 - 0.0016); tough R_P 1.9 * 0.01
    assert float(t["main"]) == pytest.approx(0.2418, abs=1e-12)
    assert float(t["tough"]) == pytest.approx(0.019, abs=1e-12)
    assert float(t["tolerant"]) == 0.0
    assert float(tough_only(p, g, a, s)) == pytest.approx(0.2608, abs=1e-12)  # a given tolerant is ignored

    tol_only = KDLoss(KDOptions(teachers=("tolerant",)))
    t = tol_only.terms(p, g, None, s)
    assert float(t["main"]) == pytest.approx(0.3, abs=1e-12)
    assert float(t["tough"]) == 0.0
    assert float(t["tolerant"]) == pytest.approx(-0.012, abs=1e-12)
    assert float(tol_only(p, g, None, s)) == pytest.approx(0.288, abs=1e-12)

    none = KDLoss(KDOptions(teachers=(), main_threshold=0.08))
    assert float(none(p, g)) == pytest.approx(0.3, abs=1e-12)


def test_shape_errors():
    loss = KDLoss()
    x = torch.zeros(2, 10)
    with pytest.raises(ValueError, match="shape mismatch.*tolerant"):
        loss(x, x, x, torch.zeros(2, 12))
    with pytest.raises(ValueError, match="shape mismatch.*target"):
        loss(x, torch.zeros(2, 5, 2), x, x)
    with pytest.raises(ValueError, match=r"\(B, 2N\) or \(B, N, 2\)"):
        loss(torch.zeros(10), torch.zeros(10), torch.zeros(10), torch.zeros(10))
    with pytest.raises(ValueError, match=r"\(B, 2N\) or \(B, N, 2\)"):
        loss(*(torch.zeros(2, 5, 3) for _ in range(4)))
    with pytest.raises(ValueError, match="tolerant teacher's prediction is required"):
        loss(x, x, x, None)
    with pytest.raises(ValueError, match="shape mismatch"):
        l2_loss(x, torch.zeros(2, 5, 2))
    with pytest.raises(KDLandmarksError):  # also reported as a one-line CLI error
        l1_loss(x, torch.zeros(3, 10))
    assert issubclass(LossInputError, ValueError)
    from kdlandmarks.errors import DataError, ModelError

    assert issubclass(LossInputError, DataError) and not issubclass(LossInputError, ModelError)


@pytest.mark.parametrize("kwargs", [
    dict(teachers=("tough", "weak")),
    dict(teachers=("tough", "tough")),
    dict(teachers=("tough",), main_threshold="tolerant", beta_ratio=1.5),
    dict(main_threshold="soft"),
    dict(main_threshold=-0.1),
    dict(teachers=("tolerant",), main_threshold="tough"),
    dict(teachers=()),
    dict(alpha_tough=float("nan")),
    dict(main_linear_coef=-1.0),
    dict(rl_ramp="yes"),
])
def test_config_errors(kwargs):
    with pytest.raises(ConfigError):
        KDLoss(KDOptions(**kwargs))


@pytest.mark.parametrize("which", range(4))
def test_nan_is_not_masked(which):
    args = [full(0.05), full(0.0), full(-0.04), full(0.08)]
    args[which] = torch.tensor([[math.nan, 0.01]], dtype=F64)
    assert torch.isnan(KDLoss()(*args))
    assert torch.isnan(KDLoss.figure_variant()(*args))


def test_float32_and_single_string_teacher():
    p, g, a, s = (torch.full((2, 4), v) for v in (0.05, 0.0, -0.04, 0.08))
    total = KDLoss()(p, g, a, s)
    assert total.dtype == torch.float32
    assert float(total) == pytest.approx(0.307, abs=1e-6)
    assert KDLoss(KDOptions(teachers="tough")).teachers == ("tough",)


def test_l2_and_l1_values():
    pred = torch.tensor([[1.0, -2.0], [0.5, 0.0]])
    target = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    assert float(l2_loss(pred, target)) == pytest.approx((1 + 4 + 0.25) / 4)
    assert float(l1_loss(pred, target)) == pytest.approx((1 + 2 + 0.5) / 4)
    assert l2_loss(pred, target).dim() == 0
