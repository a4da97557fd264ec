"""ActiveShapeModel: rank recovery, projection, 3-sigma clamp, hard landmarks and persistence."""
import numpy as np
import pytest

from kdlandmarks.training.asm import ActiveShapeModel
from kdlandmarks.errors import ConfigError, DataError

N = 10


def rank_r_shapes(r: int = 3, m: int = 200, noise: float = 1e-6, seed: int = 0):
    rng = np.random.default_rng(seed)
    mean = rng.normal(size=2 * N)
    basis, _ = np.linalg.qr(rng.normal(size=(2 * N, r)))
    coeffs = rng.normal(size=(m, r)) * np.array([5.0, 3.0, 2.0, 1.0, 0.5][:r])
    x = mean + coeffs @ basis.T + noise * rng.normal(size=(m, 2 * N))
    return x.reshape(m, N, 2), mean, basis


def test_fit_recovers_rank_and_variance_statistics():
    shapes, _, basis = rank_r_shapes(r=3)
    asm = ActiveShapeModel(0.95).fit(shapes)
    assert asm.n_components <= 3
    full = ActiveShapeModel(0.999999).fit(shapes)
    assert full.n_components == 3
    # The kept subspace is the generating one.
    proj = full.components @ basis
    np.testing.assert_allclose(np.linalg.svd(proj, compute_uv=False), 1.0, atol=1e-6)
    # Eigenvalues use divisor M - 1 like sklearn's explained_variance_.
    x = shapes.reshape(len(shapes), -1)
    cov = np.cov(x, rowvar=False)  # divisor M - 1
    np.testing.assert_allclose(full.eigenvalues, np.sort(np.linalg.eigvalsh(cov))[::-1][:3], rtol=1e-8)
    assert full.mean.shape == (2 * N,) and full.components.shape == (3, 2 * N)
    assert full.explained_variance_ratio.sum() == pytest.approx(1.0, abs=1e-6)


def test_smallest_k_reaching_variance():
    shapes, _, _ = rank_r_shapes(r=3)
    asm = ActiveShapeModel(0.5).fit(shapes)
    cum = np.cumsum(ActiveShapeModel(1.0).fit(shapes).explained_variance_ratio)
    expected = int(np.argmax(cum >= 0.5)) + 1
    assert asm.n_components == expected
    assert cum[expected - 1] >= 0.5 and (expected == 1 or cum[expected - 2] < 0.5)


def test_soften_in_model_shape_unchanged():
    shapes, _, _ = rank_r_shapes(r=3, noise=0.0)
    asm = ActiveShapeModel(0.999).fit(shapes)
    assert asm.n_components == 3
    np.testing.assert_allclose(asm.soften(shapes[:5]), shapes[:5], atol=1e-9)
    one = asm.soften(shapes[7])
    assert one.shape == (N, 2)
    np.testing.assert_allclose(one, shapes[7], atol=1e-9)


def test_soften_removes_off_model_component():
    shapes, _, _ = rank_r_shapes(r=3, noise=0.0)
    asm = ActiveShapeModel(0.999).fit(shapes)
    off = np.random.default_rng(1).normal(size=2 * N)
    off -= asm.components.T @ (asm.components @ off)  # now orthogonal to the model
    off /= np.linalg.norm(off)
    noisy = shapes[0] + 0.7 * off.reshape(N, 2)
    np.testing.assert_allclose(asm.soften(noisy), shapes[0], atol=1e-9)


def test_huge_coefficient_clamped_to_three_sigma():
    shapes, _, _ = rank_r_shapes(r=3, noise=0.0)
    asm = ActiveShapeModel(0.999).fit(shapes)
    sig = np.sqrt(asm.eigenvalues)
    x = asm.mean + 100 * sig[0] * asm.components[0] - 50 * sig[1] * asm.components[1] + 0.5 * sig[2] * asm.components[2]
    soft = asm.soften(x.reshape(N, 2))
    b = asm.project(soft)
    assert b[0] == pytest.approx(3 * sig[0], rel=1e-12)
    assert b[1] == pytest.approx(-3 * sig[1], rel=1e-12)
    assert b[2] == pytest.approx(0.5 * sig[2], rel=1e-9)


def test_variance_one_returns_input():
    shapes, _, _ = rank_r_shapes(r=3, noise=1e-3)
    asm = ActiveShapeModel(1.0).fit(shapes)
    assert asm.n_components == min(len(shapes), 2 * N)
    wild = shapes[0] * 50.0
    np.testing.assert_array_equal(asm.soften(wild), wild)


def test_save_load_round_trip(tmp_path):
    shapes, _, _ = rank_r_shapes(r=3, noise=1e-4)
    asm = ActiveShapeModel(0.9).fit(shapes)
    path = tmp_path / "sub" / "asm.npz"
    asm.save(path)
    assert path.is_file() and not list(path.parent.glob(".*tmp*"))
    back = ActiveShapeModel.load(path)
    assert back.variance == asm.variance and back.n_components == asm.n_components
    for name in ("mean", "components", "eigenvalues", "explained_variance_ratio"):
        np.testing.assert_array_equal(getattr(back, name), getattr(asm, name))
    np.testing.assert_array_equal(back.soften(shapes[:3]), asm.soften(shapes[:3]))


def test_errors(tmp_path):
    for bad in (0.0, -0.1, 1.01):
        with pytest.raises(ConfigError):
            ActiveShapeModel(bad)
    shapes, _, _ = rank_r_shapes()
    with pytest.raises(DataError, match="at least 2"):
        ActiveShapeModel().fit(shapes[:1])
    nan = shapes.copy()
    nan[3, 2, 1] = np.nan
    with pytest.raises(DataError, match="NaN"):
        ActiveShapeModel().fit(nan)
    with pytest.raises(DataError):
        ActiveShapeModel().fit(shapes.reshape(len(shapes), -1))
    with pytest.raises(ConfigError, match="not fitted"):
        ActiveShapeModel().soften(shapes[0])
    asm = ActiveShapeModel().fit(shapes)
    with pytest.raises(DataError, match="expects"):
        asm.soften(np.zeros((N + 1, 2)))
    with pytest.raises(DataError, match="not found"):
        ActiveShapeModel.load(tmp_path / "missing.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not an npz")
    with pytest.raises(DataError, match="junk.npz"):
        ActiveShapeModel.load(junk)
