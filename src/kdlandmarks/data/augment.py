"""Batched augmentation with keypoints, in PyTorch on whatever device the batch is on.

One affine warp per sample (F.affine_grid + grid_sample) maps a stored face crop to the network
input: the deterministic part selects the input window inside the stored crop's context, the random
part adds rotation about the face centre (paper: +-0.5 rad), scale and translation jitter and a
horizontal flip with the scheme's index permutation. Photometric changes follow: gamma, contrast,
brightness, Gaussian noise, blur. All random draws come from a CPU torch.Generator seeded per batch
(the noise pixels from a generator on the batch's device, seeded by one of those draws), so a run
is reproducible on its device and a resumed run draws the same numbers.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F

from kdlandmarks.errors import ConfigError


@dataclass
class AugmentConfig:
    rotation: float = 0.5  # max |angle| in radians (paper: 0.5)
    flip: float = 0.5  # probability of a horizontal flip
    scale: float = 0.1  # scale jitter: factor in [1 - s, 1 + s]
    translate: float = 0.05  # shift, as a fraction of the input window, each axis
    gamma: float = 0.5  # probability of a gamma change, gamma in [0.5, 2.0] (log-uniform)
    contrast: float = 0.2  # contrast/brightness jitter amplitude
    noise: float = 0.2  # probability of Gaussian noise (std 0.02)
    blur: float = 0.2  # probability of a 5x5 Gaussian blur
    grayscale: float = 0.05  # probability of dropping colour (COFW has grey faces)
    cutout: float = 0.0  # probability of one grey occluding rectangle (10-40 % of the side) over the face
    # probability of an occluder placed by the landmarks, in a random solid colour: half the time a part patch
    # (20-45 % of the face, centred on a random landmark: an eye, the mouth, a hand), half the time the lower
    # face from between the nose and the mouth down past the chin, as a face mask covers it
    occlusion: float = 0.0

    @staticmethod
    def from_dict(spec: dict | None) -> "AugmentConfig":
        if spec in (None, "none", False):
            return AugmentConfig.disabled()
        known = {f.name for f in fields(AugmentConfig)}
        if not isinstance(spec, dict):
            raise ConfigError(f"augmentation must be a mapping of {sorted(known)} or null, got {spec!r}")
        unknown = set(spec) - known
        if unknown:
            raise ConfigError(f"unknown augmentation option(s) {sorted(unknown)}; known: {sorted(known)}")
        values = {}
        for k, v in spec.items():
            try:
                values[k] = float(v)
            except (TypeError, ValueError):
                raise ConfigError(f"augmentation option {k}: {v!r} is not a number") from None
        return AugmentConfig(**values)

    @staticmethod
    def disabled() -> "AugmentConfig":
        return AugmentConfig(**{f.name: 0.0 for f in fields(AugmentConfig)})

    @property
    def enabled(self) -> bool:
        return any(v != 0 for v in asdict(self).values())


def _pixel_to_norm(size: int) -> torch.Tensor:
    """3x3 map from pixel centres to grid_sample's [-1, 1] coordinates (align_corners=False)."""
    return torch.tensor([[2.0 / size, 0, 1.0 / size - 1], [0, 2.0 / size, 1.0 / size - 1], [0, 0, 1]])


class BatchAugmenter:
    """Warp stored crops (B, H, W, 3) uint8 to network inputs (B, 3, S, S) float in [0, 1], moving landmarks along.

    window: the side, in stored-crop pixels, of the centred square that maps to the input when no
    augmentation is drawn (stored crops carry extra context around the face for rotations).
    """

    def __init__(self, config: AugmentConfig, flip_index: torch.Tensor | None, out_size: int,
                 source_size: int, window: float) -> None:
        self.config = config
        self.flip_index = flip_index
        self.out_size = int(out_size)
        self.source_size = int(source_size)
        self.window = float(window)

    def draw(self, batch: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """One batch's random augmentation parameters (per sample), drawn from `generator` in a fixed order:
        the same (seed, step) generator gives the same draws, so runs and stores are reproducible."""
        c = self.config
        u = lambda: torch.rand(batch, generator=generator)  # noqa: E731
        log_gamma = (u() * 2 - 1) * math.log(2.0)
        return {
            "angle": (u() * 2 - 1) * c.rotation,
            "scale": 1 + (u() * 2 - 1) * c.scale,
            "tx": (u() * 2 - 1) * c.translate,
            "ty": (u() * 2 - 1) * c.translate,
            "flip": u() < c.flip,
            "gamma": torch.where(u() < c.gamma, log_gamma.exp(), torch.ones(batch)),
            "contrast": 1 + (u() * 2 - 1) * c.contrast,
            "brightness": (u() * 2 - 1) * c.contrast * 0.5,
            "noise": u() < c.noise,
            "blur": u() < c.blur,
            "gray": u() < c.grayscale,
            "noise_seed": torch.randint(0, 2**31 - 1, (1,), generator=generator),
            # drawn last, so the draws above keep the order that stores built before cutout existed used
            "cutout": u() < c.cutout,
            "cut_cx": 0.2 + 0.6 * u(), "cut_cy": 0.2 + 0.6 * u(),
            "cut_w": 0.1 + 0.3 * u(), "cut_h": 0.1 + 0.3 * u(), "cut_value": u(),
            # drawn after cutout's, for the same reason
            "occlude": u() < c.occlusion, "occ_mask": u() < 0.5, "occ_point": u(), "occ_size": 0.2 + 0.25 * u(),
            "occ_aspect": 0.7 + 0.6 * u(), "occ_top": 0.5 + 0.15 * u(),
            "occ_rgb": torch.rand(batch, 3, generator=generator),
        }

    def output_to_source(self, draws: dict[str, torch.Tensor] | None, batch: int) -> torch.Tensor:
        """(B, 3, 3) maps from output pixel centres to source pixel centres."""
        S, src = self.out_size, self.source_size
        centre_out = (S - 1) / 2
        centre_src = (src - 1) / 2
        k = self.window / S  # source pixels per output pixel
        eye = torch.eye(3).repeat(batch, 1, 1)
        if draws is None:  # the plain store -> input window (crop.input_to_window as a matrix)
            m = eye.clone()
            m[:, 0, 0] = m[:, 1, 1] = k
            m[:, 0, 2] = m[:, 1, 2] = centre_src - k * centre_out
            return m
        # output pixel -> centred, flipped, scaled, rotated, shifted -> source pixel
        flip = torch.where(draws["flip"], -1.0, 1.0)
        cos, sin = torch.cos(draws["angle"]), torch.sin(draws["angle"])
        s = k / draws["scale"]
        m = eye.clone()
        m[:, 0, 0] = s * cos * flip
        m[:, 0, 1] = -s * sin
        m[:, 1, 0] = s * sin * flip
        m[:, 1, 1] = s * cos
        shift_x = draws["tx"] * self.window
        shift_y = draws["ty"] * self.window
        m[:, 0, 2] = centre_src + shift_x - (m[:, 0, 0] * centre_out + m[:, 0, 1] * centre_out)
        m[:, 1, 2] = centre_src + shift_y - (m[:, 1, 0] * centre_out + m[:, 1, 1] * centre_out)
        return m

    def plain_to_source(self, points: torch.Tensor) -> torch.Tensor:
        """(..., N, 2) points in the pixels of the un-augmented input -> stored-crop pixels (where labels live)."""
        plain = self.output_to_source(None, 1)[0].to(points)
        return points @ plain[:2, :2].T + plain[:2, 2]

    def __call__(self, images: torch.Tensor, landmarks: torch.Tensor, generator: torch.Generator | None = None,
                 extra_points: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """images uint8 (B, H, W, 3); landmarks (B, N, 2) source pixels. generator None = no augmentation.

        extra_points (e.g. soft landmarks) get the same geometric transform and permutation.
        Returns (images (B, 3, S, S) float in [0, 1], landmarks (B, N, 2) output pixels, extra points).
        """
        out, moved, extra, _ = self.augment(images, landmarks, generator, extra_points)
        return out, moved, extra

    def augment(self, images: torch.Tensor, landmarks: torch.Tensor, generator: torch.Generator | None = None,
                extra_points: list[torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """__call__, plus the geometry it applied: (images, landmarks, extra points, output_to_source), the
        last the (B, 3, 3) map from output pixel centres to source pixel centres (output_to_source of the
        draws), for callers that track where each output came from (the store's augmented copies)."""
        batch, device = images.shape[0], images.device
        draws = self.draw(batch, generator) if generator is not None and self.config.enabled else None
        out_to_src = self.output_to_source(draws, batch)
        # grid_sample wants output-normalised -> source-normalised coordinates
        theta = _pixel_to_norm(self.source_size) @ out_to_src @ torch.linalg.inv(_pixel_to_norm(self.out_size))
        x = images.permute(0, 3, 1, 2).float().div_(255.0)
        grid = F.affine_grid(theta[:, :2].to(device), [batch, 3, self.out_size, self.out_size], align_corners=False)
        out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

        src_to_out = torch.linalg.inv(out_to_src).to(device=device, dtype=landmarks.dtype)
        moved = [self._move_points(p, src_to_out, draws) for p in [landmarks, *(extra_points or [])]]
        if draws is not None:
            on_device = {k: v.to(device) for k, v in draws.items()}
            out = self._photometric(out, on_device)
            if "occlude" in on_device and bool(on_device["occlude"].any()):
                out = occlude(out, moved[0], on_device)
        return out, moved[0], moved[1:], out_to_src

    def _move_points(self, points: torch.Tensor, src_to_out: torch.Tensor, draws) -> torch.Tensor:
        pts = points @ src_to_out[:, :2, :2].transpose(1, 2) + src_to_out[:, None, :2, 2]
        if draws is not None and self.flip_index is not None and bool(draws["flip"].any()):
            flipped = pts[:, self.flip_index.to(pts.device)]
            pts = torch.where(draws["flip"].to(pts.device)[:, None, None], flipped, pts)
        return pts

    def _photometric(self, x: torch.Tensor, d: dict[str, torch.Tensor]) -> torch.Tensor:
        gray = x.mean(dim=1, keepdim=True)
        x = torch.where(d["gray"][:, None, None, None], gray.expand_as(x), x)
        x = x.clamp(1e-6, 1).pow(d["gamma"][:, None, None, None])
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * d["contrast"][:, None, None, None] + mean + d["brightness"][:, None, None, None]
        if bool(d["blur"].any()):
            k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], device=x.device)
            k = (k[:, None] * k[None, :]) / 256.0
            blurred = F.conv2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), k.expand(3, 1, 5, 5), groups=3)
            x = torch.where(d["blur"][:, None, None, None], blurred, x)
        if "cutout" in d and bool(d["cutout"].any()):
            x = self._cutout(x, d)
        if bool(d["noise"].any()):
            g = torch.Generator(device=x.device).manual_seed(int(d["noise_seed"].item()))
            noise = torch.randn(x.shape, generator=g, device=x.device) * 0.02
            x = x + noise * d["noise"][:, None, None, None]
        return x.clamp_(0, 1)


    @staticmethod
    def _cutout(x: torch.Tensor, d: dict[str, torch.Tensor]) -> torch.Tensor:
        """Occlude one rectangle per selected sample; the landmarks stay, as an occluded face's do."""
        size = x.shape[-1]
        grid = (torch.arange(size, device=x.device, dtype=x.dtype) + 0.5) / size
        inside_x = (grid[None, :] - d["cut_cx"][:, None]).abs() <= d["cut_w"][:, None] / 2
        inside_y = (grid[None, :] - d["cut_cy"][:, None]).abs() <= d["cut_h"][:, None] / 2
        mask = (inside_y[:, :, None] & inside_x[:, None, :]) & d["cutout"][:, None, None]
        return torch.where(mask[:, None], d["cut_value"][:, None, None, None].to(x.dtype), x)


def occluder_masks(landmarks: torch.Tensor, size: int, d: dict[str, torch.Tensor]) -> torch.Tensor:
    """(B, S, S) bool: where each sample's occluder lies, placed by its landmarks (B, N, 2) in input pixels.

    A part patch is a rectangle of `occ_size` times the landmark extent's larger side, centred on the
    landmark `occ_point` picks; a mask covers the extent's width (plus 10 % a side) from `occ_top` of its
    height down past the chin. Scheme-free: it needs only where the points are."""
    lo, hi = landmarks.amin(dim=1), landmarks.amax(dim=1)  # (B, 2)
    extent = (hi - lo).amax(dim=1).clamp_min(1.0)
    index = (d["occ_point"] * landmarks.shape[1]).long().clamp_(max=landmarks.shape[1] - 1)
    centre = landmarks[torch.arange(len(landmarks), device=landmarks.device), index]  # (B, 2)
    half_w = d["occ_size"] * extent * d["occ_aspect"] / 2
    half_h = d["occ_size"] * extent / d["occ_aspect"] / 2
    part = torch.stack([centre[:, 0] - half_w, centre[:, 1] - half_h, centre[:, 0] + half_w, centre[:, 1] + half_h], 1)
    width = hi[:, 0] - lo[:, 0]
    mask = torch.stack([lo[:, 0] - 0.1 * width, lo[:, 1] + d["occ_top"] * (hi[:, 1] - lo[:, 1]),
                        hi[:, 0] + 0.1 * width, hi[:, 1] + 0.1 * extent], 1)
    box = torch.where(d["occ_mask"][:, None], mask, part)
    pix = torch.arange(size, device=landmarks.device, dtype=landmarks.dtype)
    inside_x = (pix[None, :] >= box[:, 0:1]) & (pix[None, :] <= box[:, 2:3])
    inside_y = (pix[None, :] >= box[:, 1:2]) & (pix[None, :] <= box[:, 3:4])
    return inside_y[:, :, None] & inside_x[:, None, :] & d["occlude"][:, None, None]


def occlude(x: torch.Tensor, landmarks: torch.Tensor, d: dict[str, torch.Tensor]) -> torch.Tensor:
    """Paint each selected sample's occluder (occluder_masks) in its solid colour; the landmarks stay where
    they are, as an occluded face's do, so the network learns to place hidden points from the visible ones."""
    masks = occluder_masks(landmarks, x.shape[-1], d)
    colour = d["occ_rgb"].to(x.dtype)[:, :, None, None]
    return torch.where(masks[:, None], colour, x)


def batch_generator(seed: int, step: int) -> torch.Generator:
    """The generator for one training step: depends only on (seed, step), so resumed runs repeat draws."""
    return torch.Generator().manual_seed((int(seed) * 1_000_003 + int(step)) % (2**63 - 1))
