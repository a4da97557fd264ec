"""Faces rolled past a detector's range: search quarter-turned copies of the image when the upright one
holds none, and find a rolled face again on a small patch turned upright.

Face detectors are trained on roughly upright faces (RetinaFace finds faces to about 60 degrees of roll). A
quarter turn (np.rot90) is exact and costs no interpolation, so a face rolled 90 or 180 degrees is found on
one of the turned copies, and its box and keypoints map back exactly. The keypoints keep their meaning (left
eye, right eye, nose, mouth corners of the face), so the crop that follows can turn the face upright.

A rolled face the detector does find often comes with poor keypoints: on 300-W training faces rolled by 90
degrees, RetinaFace's eye keypoints are off by more than 30 degrees on 22 % of the faces it finds, some
bunched together and read as upright. On the same faces cut out turned upright it reads all of them within
20 degrees. `upright_detection` re-detects such a face on a patch around it turned by the estimated roll
(an exact affine map, data.crop.CropTransform), follows the detector's own reading of the roll there until it
reads the face as upright, and maps the result back. RetinaFace also reads some upside-down and sideways
faces as upright, with plausible keypoints and a high score; the caller's check (LandmarkDetector: does the
landmark network agree with the keypoints?) turns those down, and the search goes on with the other turns.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from kdlandmarks.data.crop import CropTransform, roll_angle
from kdlandmarks.inference.detection.base import Detection, FaceDetector

QUARTER_TURNS = (1, 3, 2)  # counter-clockwise quarter turns tried in order: 90, 270 (-90), 180 degrees


def turned_back(points: np.ndarray, turns: int, width: int, height: int) -> np.ndarray:
    """(..., 2) pixel centres in np.rot90(image, turns) -> the same points in the `width` x `height` image."""
    p = np.asarray(points, dtype=np.float64)
    x, y = p[..., 0], p[..., 1]
    turns %= 4
    if turns == 1:  # rot90 once: rotated (x, y) came from original (width - 1 - y, x)
        return np.stack([width - 1 - y, x], axis=-1)
    if turns == 2:
        return np.stack([width - 1 - x, height - 1 - y], axis=-1)
    if turns == 3:
        return np.stack([y, height - 1 - x], axis=-1)
    return p.copy()


def turned_box_back(box: np.ndarray, turns: int, width: int, height: int) -> np.ndarray:
    """A box (x0, y0, x1, y1) in np.rot90(image, turns) -> the same box in the `width` x `height` image."""
    corners = np.array([[box[0], box[1]], [box[2], box[3]]], dtype=np.float64)
    back = turned_back(corners, turns, width, height)
    return np.concatenate([back.min(axis=0), back.max(axis=0)])


def turned_detection_back(detection: Detection, turns: int, width: int, height: int) -> Detection:
    """A detection made on np.rot90(image, turns) -> the same face in the `width` x `height` image."""
    keypoints = detection.keypoints
    return Detection(turned_box_back(detection.box, turns, width, height), detection.score,
                     None if keypoints is None else turned_back(keypoints, turns, width, height))


class RotationSearch:
    """A detector that also tries quarter-turned copies of an image in which `detector` finds no face.

    Images with a face found upright cost nothing extra; any other image costs three more detector runs."""

    def __init__(self, detector: FaceDetector, turns: tuple[int, ...] = QUARTER_TURNS) -> None:
        self.detector = detector
        self.name = detector.name  # its boxes are the wrapped detector's: the same calibration applies
        self.turns = tuple(turns)

    def detect(self, image_rgb: np.ndarray) -> list[Detection]:
        found = self.detector.detect(image_rgb)
        if found:
            return found
        height, width = image_rgb.shape[:2]
        best_turns, best = 0, []
        for turns in self.turns:
            found = self.detector.detect(np.ascontiguousarray(np.rot90(image_rgb, turns)))
            # every turn is tried: a detector may find a face upside down too, with its keypoints misread as
            # upright; the turn that stands it up scores higher
            if found and (not best or max(d.score for d in found) > max(d.score for d in best)):
                best_turns, best = turns, found
        return [turned_detection_back(d, best_turns, width, height) for d in best]

    __call__ = detect


@dataclass(frozen=True)
class UprightPatch:
    """When and how a rolled face is found again upright (upright_detection).

    When: a face whose eye keypoints are rolled past `rolled` radians, or past the detector's roll threshold
    with a score under `doubtful`; or whose keypoints are bunched (eye distance under `spread` box sides:
    0.24 or more on all 2012 upright 300-W training faces, under 0.2 on most faces whose keypoints RetinaFace
    misreads at 90 degrees); or whose box is squat (height under `squat` times its width: RetinaFace's box
    of a face lying sideways that it reads as upright; 0.4 % of its upright detections on 300-W training
    photos, which the check confirms and leaves as they were); or a face scoring under `unsure` (0: off),
    however its keypoints lie: RetinaFace reads some faces lying sideways as upright with plausible
    keypoints but a lower score (on 383 held-out training faces at 90 degrees, 0.99 took NME from 4.38 to
    4.06). It costs 0.24 patch runs per upright LFPW photo instead of 0.08 (background faces), each a
    192-pixel detector run, about a twentieth of the photo's own; upright results stay the same.

    How: a patch `context` face-box sides wide, sampled at `size` pixels (RetinaFace sees the face about 100
    pixels wide), turned by the roll estimate; the detector's unbunched face nearest its centre (within
    `reach` of its side) is the face. The search follows the detector's own reading of the roll until it
    reads the face upright (its eye roll in the patch within `upright` radians, score at least
    `confident`), at most `tries` detector runs. RetinaFace reads some upside-down faces as upright, so an
    upright reading must also pass the caller's check (LandmarkDetector._network_agrees: the landmark
    network puts the eyes, nose tip and mouth corners within `agree` eye distances of the detector's five
    keypoints, on average); one that fails sends the search to the other quarter turns of its patch."""

    rolled: float = math.radians(30)
    doubtful: float = 0.95
    spread: float = 0.2
    squat: float = 0.9
    unsure: float = 0.99
    context: float = 2.0
    size: int = 192
    reach: float = 0.25
    upright: float = math.radians(15)
    confident: float = 0.95
    tries: int = 6
    agree: float = 0.2


DEFAULT_UPRIGHT_PATCH = UprightPatch()


def keypoint_roll(detection: Detection) -> float | None:
    """The roll (radians) of a detection's two eye keypoints (the first two); None without them."""
    kps = detection.keypoints
    if kps is None or len(kps) < 2:
        return None
    return float(roll_angle(kps[0], kps[1]))


def _box_side(box: np.ndarray) -> float:
    x0, y0, x1, y1 = np.asarray(box, dtype=np.float64)
    return math.sqrt(max(x1 - x0, 1e-6) * max(y1 - y0, 1e-6))


def bunched(detection: Detection, spread: float = DEFAULT_UPRIGHT_PATCH.spread) -> bool:
    """Whether a detection's eye keypoints sit closer than `spread` box sides: a face's keypoints misread
    (a detector reading a rolled face), never those of an upright face."""
    kps = detection.keypoints
    if kps is None or len(kps) < 2:
        return False
    return float(np.linalg.norm(np.asarray(kps[1], np.float64) - kps[0])) < spread * _box_side(detection.box)


def needs_upright_patch(detection: Detection, threshold: float, patch: UprightPatch = DEFAULT_UPRIGHT_PATCH) -> bool:
    """Whether a detection's keypoints are to be checked on an upright patch (see UprightPatch): `threshold`
    is the roll past which a face counts as rolled (LandmarkDetector.roll_threshold)."""
    roll = keypoint_roll(detection)
    if roll is None:
        return False
    x0, y0, x1, y1 = np.asarray(detection.box, dtype=np.float64)
    if bunched(detection, patch.spread) or (y1 - y0) < patch.squat * (x1 - x0) or detection.score < patch.unsure:
        return True
    return abs(roll) > patch.rolled or (abs(roll) > threshold and detection.score < patch.doubtful)


def patch_transform(detection: Detection, angle: float, patch: UprightPatch = DEFAULT_UPRIGHT_PATCH) -> CropTransform:
    """The patch around a detection's box turned by `angle` (the face upright in it when `angle` is its roll)."""
    x0, y0, x1, y1 = np.asarray(detection.box, dtype=np.float64)
    side = _box_side(detection.box)
    return CropTransform.from_square((x0 + x1) / 2, (y0 + y1) / 2, patch.context * side, patch.size, angle)


def patch_detection_back(detection: Detection, transform: CropTransform) -> Detection:
    """A detection made on a patch (transform: image -> patch) -> the same face in the image: keypoints
    mapped exactly; the box keeps its centre (mapped) and its size in the face's own frame (as a detector's
    box around a rolled face does), so a box calibration still applies with the face's roll."""
    box = np.asarray(detection.box, dtype=np.float64)
    centre = transform.to_image(((box[:2] + box[2:]) / 2)[None])[0]
    half = (box[2:] - box[:2]) / 2 / transform.scale
    kps = detection.keypoints
    return Detection(np.concatenate([centre - half, centre + half]), detection.score,
                     None if kps is None else transform.to_image(np.asarray(kps, dtype=np.float64)))


def _patch_face(detector: FaceDetector, image: np.ndarray, transform: CropTransform,
                patch: UprightPatch) -> Detection | None:
    """The detector's unbunched face nearest the patch's centre (within patch.reach of its side), in patch pixels."""
    centre, found, reach = (patch.size - 1) / 2, None, patch.reach * patch.size
    for d in detector.detect(transform.warp(image)):
        box = np.asarray(d.box, dtype=np.float64)
        dist = float(np.hypot((box[0] + box[2]) / 2 - centre, (box[1] + box[3]) / 2 - centre))
        if dist <= reach and keypoint_roll(d) is not None and not bunched(d, patch.spread):
            found, reach = d, dist
    return found


def upright_detection(detector: FaceDetector, image: np.ndarray, detection: Detection, roll: float,
                      patch: UprightPatch = DEFAULT_UPRIGHT_PATCH,
                      check: Callable[[Detection], bool] | None = None) -> Detection | None:
    """`detection` (a face rolled by about `roll` radians) found again where the detector reads it upright,
    mapped back into `image`; None when it is not within patch.tries detector runs.

    The first patch is turned by `roll`. When the detector finds the face there but reads it still rolled,
    the next patch follows that reading (its keypoints are good to about 45 degrees); when it finds no face,
    or bunched keypoints, the next is the next quarter turn of `roll` not yet tried (90, -90, 180 degrees).
    An upright reading that fails `check` (the mapped-back detection -> bool) sends the search to its own
    patch's other quarter turns, half a turn first (an upside-down face read as upright).
    """
    tried: list[float] = []
    turns = [roll + k * math.pi / 2 for k in (1, -1, 2)]
    angle = roll
    for _ in range(patch.tries):
        tried.append(angle)
        transform = patch_transform(detection, angle, patch)
        found = _patch_face(detector, image, transform, patch)
        seen = None if found is None else keypoint_roll(found)
        follow: list[float] = []
        if found is not None and abs(seen) <= patch.upright and found.score >= patch.confident:
            back = patch_detection_back(found, transform)
            if check is None or check(back):
                return back
            turns = [angle + k * math.pi / 2 for k in (2, 1, -1)]
        elif seen is not None and abs(seen) > patch.upright:
            follow = [angle + seen]
        nexts = [a for a in follow + turns
                 if all(abs(math.remainder(a - t, math.tau)) > patch.upright for t in tried)]
        if not nexts:
            return None
        angle = nexts[0]
    return None
