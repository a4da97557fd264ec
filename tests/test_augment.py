"""BatchAugmenter: identity window, geometry that keeps image and landmarks together, flip relabelling, seeds."""
import numpy as np
import pytest
import torch

from kdlandmarks.data.augment import AugmentConfig, BatchAugmenter, batch_generator
from kdlandmarks.data.datasets import sample_root
from kdlandmarks.data.datasets.pts import read_pts
from kdlandmarks.errors import ConfigError
from kdlandmarks.data.schemes import W300

SRC = 64  # stored crop side
OUT = 48  # network input side
WINDOW = 48.0  # the identity maps the centred 48 px square of the stored crop to the input


def geometric(**kw) -> AugmentConfig:
    """Only the geometric draws, so pixel values still encode where they came from."""
    cfg = AugmentConfig.disabled()
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg


def position_image(size: int = SRC) -> torch.Tensor:
    """R and G encode x and y linearly (4 grey levels per pixel), so a pixel value says where it was taken."""
    ramp = np.linspace(0, 252, size)  # 4 levels / px at size 64
    img = np.zeros((size, size, 3), np.uint8)
    img[..., 0] = np.round(ramp)[None, :]
    img[..., 1] = np.round(ramp)[:, None]
    img[..., 2] = 128
    return torch.from_numpy(img)


def decode_position(out: torch.Tensor, points: torch.Tensor) -> np.ndarray:
    """Bilinearly sample (R, G) of a (3, S, S) output at (N, 2) output points; return source (x, y)."""
    img = out.numpy()
    res = []
    for x, y in points.numpy():
        x0, y0 = int(np.floor(x)), int(np.floor(y))
        fx, fy = x - x0, y - y0
        v = (img[:2, y0, x0] * (1 - fx) * (1 - fy) + img[:2, y0, x0 + 1] * fx * (1 - fy)
             + img[:2, y0 + 1, x0] * (1 - fx) * fy + img[:2, y0 + 1, x0 + 1] * fx * fy)
        res.append(v * 255 / (252 / (SRC - 1)))
    return np.array(res)


def face_shape(size: int = SRC, half_extent: float = 14.0) -> np.ndarray:
    """A real 68-point 300-W shape, centred in the stored crop and scaled to +-half_extent px."""
    pts = read_pts(sorted((sample_root() / "afw").glob("*.pts"))[0], 68)
    pts = pts - (pts.min(0) + pts.max(0)) / 2
    pts = pts / np.abs(pts).max() * half_extent
    return pts + (size - 1) / 2


def test_identity_window_maps_points_and_pixels():
    aug = BatchAugmenter(AugmentConfig(), torch.as_tensor(W300.flip_index), 32, 40, 32.0)
    img = torch.randint(0, 256, (2, 40, 40, 3), dtype=torch.uint8)
    pts = torch.rand(2, 68, 2, dtype=torch.float64) * 39
    out, moved, extra = aug(img, pts, None, [pts + 1])
    # window 32 of a 40 px crop at 32 px: a pure shift by (40 - 32) / 2 = 4 pixels
    assert out.shape == (2, 3, 32, 32) and out.dtype == torch.float32
    assert torch.allclose(out * 255, img[:, 4:36, 4:36].permute(0, 3, 1, 2).float(), atol=1e-3)
    assert torch.allclose(moved, pts - 4, atol=1e-5)
    assert torch.allclose(extra[0], pts - 3, atol=1e-5)


def test_identity_window_with_scale():
    # a 64 px window of a 80 px crop into a 32 px input: half size about the centres
    aug = BatchAugmenter(AugmentConfig.disabled(), None, 32, 80, 64.0)
    pts = torch.tensor([[[39.5, 39.5], [7.5, 7.5], [71.5, 39.5]]], dtype=torch.float32)
    _, moved, _ = aug(torch.zeros(1, 80, 80, 3, dtype=torch.uint8), pts, batch_generator(0, 0))
    # disabled config: the generator is ignored, the map is the window's
    expected = (pts - 39.5) / 2 + 15.5
    assert torch.allclose(moved, expected, atol=1e-5)
    assert torch.allclose(moved[0, 0], torch.tensor([15.5, 15.5]))


@pytest.mark.parametrize("kw", [dict(rotation=0.5), dict(scale=0.2), dict(translate=0.05),
                                dict(rotation=0.5, scale=0.1, translate=0.05)])
def test_geometry_keeps_pixels_under_moved_landmarks(kw):
    aug = BatchAugmenter(geometric(**kw), torch.as_tensor(W300.flip_index), OUT, SRC, WINDOW)
    B = 6
    img = position_image().expand(B, SRC, SRC, 3).contiguous()
    pts = torch.from_numpy(np.stack([face_shape()] * B))
    out, moved, _ = aug(img, pts, batch_generator(3, 7))
    # the points really moved (not the identity's shift of (SRC - OUT) / 2)
    assert (moved - (pts - (SRC - OUT) / 2)).abs().max() > 0.5
    assert (moved > 0).all() and (moved < OUT - 1).all()
    for b in range(B):
        np.testing.assert_allclose(decode_position(out[b], moved[b]), pts[b].numpy(), atol=0.5)


def test_rotation_angle_and_centre():
    aug = BatchAugmenter(geometric(rotation=0.5), None, OUT, SRC, WINDOW)
    pts = torch.from_numpy(np.stack([face_shape()] * 8))
    _, moved, _ = aug(position_image().expand(8, SRC, SRC, 3), pts, batch_generator(0, 1))
    src_c = pts - (SRC - 1) / 2
    out_c = moved - (OUT - 1) / 2
    # a rotation about the centres: distances to the centre are kept, angles turn by at most 0.5 rad
    assert torch.allclose(src_c.norm(dim=-1), out_c.norm(dim=-1), atol=1e-4)
    turn = torch.atan2(out_c[..., 1], out_c[..., 0]) - torch.atan2(src_c[..., 1], src_c[..., 0])
    turn = torch.remainder(turn + torch.pi, 2 * torch.pi) - torch.pi
    per_sample = turn[:, 0]
    assert torch.allclose(turn, per_sample[:, None].expand_as(turn), atol=1e-4)  # rigid
    assert per_sample.abs().max() <= 0.5 + 1e-6 and per_sample.abs().max() > 0.1
    assert len(set(np.round(per_sample.numpy(), 4))) == 8  # one draw per sample


def test_flip_swaps_indices_with_the_scheme():
    aug = BatchAugmenter(geometric(flip=1.0), torch.as_tensor(W300.flip_index), OUT, SRC, WINDOW)
    pts = torch.from_numpy(face_shape()[None])
    out, moved, extra = aug(position_image()[None], pts, batch_generator(0, 0), [pts.clone()])
    plain = pts[0].numpy() - (SRC - OUT) / 2
    mirrored = plain.copy()
    mirrored[:, 0] = (OUT - 1) - mirrored[:, 0]
    # point i of the flipped face is where the mirror image of point flip_index[i] lies
    np.testing.assert_allclose(moved[0].numpy(), mirrored[W300.flip_index], atol=1e-5)
    np.testing.assert_allclose(extra[0][0].numpy(), moved[0].numpy())
    # and the pixels there came from that source point
    np.testing.assert_allclose(decode_position(out[0], moved[0]), pts[0].numpy()[W300.flip_index], atol=0.5)
    # labels keep their meaning: the eye indexed 36-41 is still on the image's left, the jaw starts left
    m = moved[0].numpy()
    assert m[36:42, 0].mean() < m[42:48, 0].mean()
    assert m[0, 0] < m[16, 0] and m[48, 0] < m[54, 0]
    assert not np.allclose(m, mirrored)  # the permutation was applied


def test_flip_without_permutation_table_only_mirrors():
    aug = BatchAugmenter(geometric(flip=1.0), None, OUT, SRC, WINDOW)
    pts = torch.from_numpy(face_shape()[None])
    _, moved, _ = aug(position_image()[None], pts, batch_generator(0, 0))
    expected = pts[0].numpy() - (SRC - OUT) / 2
    expected[:, 0] = (OUT - 1) - expected[:, 0]
    np.testing.assert_allclose(moved[0].numpy(), expected, atol=1e-5)


def test_dots_stay_under_landmarks_with_full_augmentation():
    """Bright dots at the landmarks on a dark face stay under the moved landmarks, photometric changes included."""
    import cv2

    B = 8
    shape = face_shape(half_extent=15.0)
    base = np.full((SRC, SRC, 3), 30, np.uint8)
    for x, y in shape:
        cv2.circle(base, (int(round(x * 4)), int(round(y * 4))), 5, (230, 230, 230), -1, cv2.LINE_AA, shift=2)
    aug = BatchAugmenter(AugmentConfig(rotation=0.5, flip=0.5, scale=0.1, translate=0.05), torch.as_tensor(W300.flip_index),
                         OUT, SRC, WINDOW)
    out, moved, _ = aug(torch.from_numpy(base).expand(B, SRC, SRC, 3), torch.from_numpy(np.stack([shape] * B)),
                        batch_generator(11, 5))
    grey = out.mean(dim=1)  # (B, S, S)
    rng = np.random.default_rng(0)
    for b in range(B):
        g = grey[b].numpy()
        lo, hi = np.percentile(g, 5), g.max()
        inside = [(x, y) for x, y in moved[b].numpy() if 0 <= x <= OUT - 1 and 0 <= y <= OUT - 1]
        assert len(inside) >= 60
        at_pts = np.array([g[int(round(y)), int(round(x))] for x, y in inside])
        assert np.mean((at_pts - lo) / (hi - lo) > 0.5) > 0.95, b
        # the unmoved landmark positions are mostly not on dots, so the check can fail
        rand = rng.uniform(2, OUT - 3, size=(68, 2))
        assert np.mean([(g[int(y), int(x)] - lo) / (hi - lo) > 0.5 for x, y in rand]) < 0.6


def test_same_seed_and_step_repeat_different_step_differs():
    aug = BatchAugmenter(AugmentConfig(noise=1.0, blur=0.5), torch.as_tensor(W300.flip_index), OUT, SRC, WINDOW)
    img = torch.randint(0, 256, (4, SRC, SRC, 3), dtype=torch.uint8)
    pts = torch.from_numpy(np.stack([face_shape()] * 4))
    a = aug(img, pts, batch_generator(1, 10))
    b = aug(img, pts, batch_generator(1, 10))
    c = aug(img, pts, batch_generator(1, 11))
    d = aug(img, pts, batch_generator(2, 10))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.allclose(a[0], c[0]) and not torch.allclose(a[1], c[1])
    assert not torch.allclose(a[1], d[1])


def test_photometric_keeps_unit_range():
    cfg = AugmentConfig(rotation=0.0, flip=0.0, scale=0.0, translate=0.0, gamma=1.0, contrast=1.0, noise=1.0,
                        blur=1.0, grayscale=0.5)
    aug = BatchAugmenter(cfg, None, OUT, SRC, WINDOW)
    img = torch.randint(0, 256, (16, SRC, SRC, 3), dtype=torch.uint8)
    img[:4] = 255
    img[4:8] = 0
    out, moved, _ = aug(img, torch.zeros(16, 3, 2), batch_generator(0, 3))
    assert out.min() >= 0 and out.max() <= 1 and torch.isfinite(out).all()
    plain, _, _ = aug(img, torch.zeros(16, 3, 2), None)
    assert not torch.allclose(out, plain)  # the photometric part did something
    assert torch.allclose(moved, plain.new_full((16, 3, 2), -(SRC - OUT) / 2))  # and nothing geometric


def test_config_from_dict():
    assert not AugmentConfig.from_dict(None).enabled
    assert not AugmentConfig.from_dict("none").enabled
    cfg = AugmentConfig.from_dict({"rotation": 0.25, "flip": 0})
    assert cfg.rotation == 0.25 and cfg.flip == 0.0 and cfg.scale == AugmentConfig().scale
    with pytest.raises(ConfigError, match="rotaton"):
        AugmentConfig.from_dict({"rotaton": 0.1})
    with pytest.raises(ConfigError, match="rotation"):
        AugmentConfig.from_dict({"rotation": "a lot"})
    with pytest.raises(ConfigError):
        AugmentConfig.from_dict("heavy")


def test_batch_generator_depends_only_on_seed_and_step():
    a = torch.rand(5, generator=batch_generator(3, 100))
    assert torch.equal(a, torch.rand(5, generator=batch_generator(3, 100)))
    assert not torch.equal(a, torch.rand(5, generator=batch_generator(3, 101)))
    assert not torch.equal(a, torch.rand(5, generator=batch_generator(4, 100)))


def test_cutout_occludes_one_rectangle_and_keeps_landmarks():
    cfg = AugmentConfig.disabled()
    cfg.cutout = 1.0
    aug = BatchAugmenter(cfg, None, OUT, SRC, WINDOW)
    img = torch.full((8, SRC, SRC, 3), 200, dtype=torch.uint8)
    pts = torch.from_numpy(face_shape()).float().expand(8, -1, -1)
    out, moved, _ = aug(img, pts, batch_generator(0, 1))
    plain, plain_pts, _ = aug(img, pts, None)
    assert torch.equal(moved, plain_pts)  # occlusion moves no landmark
    changed = (out != plain).any(dim=1)  # (B, S, S)
    for mask in changed:
        ys, xs = torch.nonzero(mask, as_tuple=True)
        assert len(ys) > 0
        # one axis-aligned rectangle, 10-40 % of the side, filled with one grey level
        h, w = int(ys.max() - ys.min() + 1), int(xs.max() - xs.min() + 1)
        assert len(ys) == h * w and 0.08 * OUT <= h <= 0.42 * OUT and 0.08 * OUT <= w <= 0.42 * OUT
    # the draws that stored copies replay are unchanged by the new option
    assert set(aug.draw(4, batch_generator(0, 1))) >= {"angle", "scale", "tx", "ty", "flip", "noise_seed"}
    base = BatchAugmenter(AugmentConfig(), None, OUT, SRC, WINDOW).draw(4, batch_generator(0, 1))
    with_cut = BatchAugmenter(AugmentConfig(cutout=0.5), None, OUT, SRC, WINDOW).draw(4, batch_generator(0, 1))
    for key in ("angle", "scale", "tx", "ty", "flip", "gamma", "noise_seed"):
        assert torch.equal(base[key], with_cut[key])


def test_occlusion_follows_the_landmarks_and_keeps_them():
    cfg = AugmentConfig.disabled()
    cfg.occlusion = 1.0
    aug = BatchAugmenter(cfg, None, OUT, SRC, WINDOW)
    img = torch.full((16, SRC, SRC, 3), 200, dtype=torch.uint8)
    pts = torch.from_numpy(face_shape()).float().expand(16, -1, -1)
    draws = aug.draw(16, batch_generator(0, 3))
    out, moved, _ = aug(img, pts, batch_generator(0, 3))
    plain, plain_pts, _ = aug(img, pts, None)
    assert torch.equal(moved, plain_pts)  # occlusion moves no landmark
    changed = (out != plain).any(dim=1)
    lo, hi = plain_pts[0].amin(0), plain_pts[0].amax(0)
    for i, mask in enumerate(changed):
        ys, xs = torch.nonzero(mask, as_tuple=True)
        assert len(ys) > 0
        assert len(ys) == int(ys.max() - ys.min() + 1) * int(xs.max() - xs.min() + 1)  # one rectangle
        colours = out[i][:, ys, xs]
        assert torch.allclose(colours, draws["occ_rgb"][i][:, None].expand_as(colours))  # one solid colour
        if draws["occ_mask"][i]:  # the lower face: from below the face's middle down past the chin
            assert ys.min() >= lo[1] + 0.45 * (hi[1] - lo[1]) and ys.max() >= min(hi[1], OUT - 1) - 0.5
        else:  # a part patch centred on one of the face's points
            centre = torch.stack([(xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2]).float()
            assert (plain_pts[0] - centre).norm(dim=1).min() < 0.25 * float((hi - lo).max())
    # the draws of every older option are unchanged by the new one
    base = BatchAugmenter(AugmentConfig(), None, OUT, SRC, WINDOW).draw(4, batch_generator(0, 1))
    with_occ = BatchAugmenter(AugmentConfig(occlusion=0.5), None, OUT, SRC, WINDOW).draw(4, batch_generator(0, 1))
    for key in ("angle", "scale", "tx", "ty", "flip", "gamma", "noise_seed", "cutout", "cut_cx", "cut_value"):
        assert torch.equal(base[key], with_occ[key])
