"""How usable is a face for verification: size, sharpness, pose and detector score, and the gate
below which a verdict is "uncertain" whatever the similarity says.

Small faces look alike to the identity model (different people score higher when both photos are
downscaled), so a verdict needs enough pixels. The gate's limits are calibrated on LFW View 1
with its faces shrunk (`faceres eval lfw --downscale S`) and stored in the model's config
(`faceres.quality_gate`).

>>> q = assess(face, crop)
>>> round(q.eye_distance), gate_reasons(q, {"min_eye_distance": 45})
(38, ['face 38 px between the eyes; needs ≥ 45'])
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from faceres.detect import Face

NOSE_DEPTH = {"yunet5": 0.4, "dlib5": 0.25}
"""Depth of the scheme's nose point in front of the eyes, in eye distances (anthropometric
averages: nose tip about 25 mm, base of the nose about 16 mm, in front of eyes about 63 mm apart);
sets the yaw estimate's scale."""
GATE_KEYS = {
    "min_eye_distance": ("eye_distance", ">="),
    "min_sharpness": ("sharpness", ">="),
    "max_yaw": ("abs_yaw", "<="),
    "min_score": ("score", ">="),
}
"""Gate limit → (quality field it bounds, how)."""


@dataclass(frozen=True)
class FaceQuality:
    """One face's quality record.

    `eye_distance`: pixels between the eye centres in the photo; `sharpness`: variance of the
    Laplacian of the grey aligned crop (low: blurred, or a small face enlarged); `yaw`: degrees,
    estimated from how far the nose sits from the eyes' midpoint (positive: nose towards the
    image's right); `score`: the detector's confidence.
    """

    eye_distance: float
    sharpness: float
    yaw: float
    score: float

    @property
    def abs_yaw(self) -> float:
        """Yaw in degrees, either way."""
        return abs(self.yaw)

    def to_dict(self) -> dict:
        """JSON-ready record, rounded."""
        return {k: round(v, 2) for k, v in asdict(self).items()}


def eye_centres(face: Face) -> tuple[np.ndarray, np.ndarray]:
    """Centres of the eye on the image's left and on its right, from the five landmarks.

    >>> eye_centres(yunet_face)[0]
    array([101.5,  72. ])
    """
    points = np.asarray(face.landmarks, dtype=np.float64)
    if face.scheme == "dlib5":
        a, b = points[0:2].mean(0), points[2:4].mean(0)
    else:
        a, b = points[0], points[1]
    return (a, b) if a[0] <= b[0] else (b, a)


def nose_point(face: Face) -> np.ndarray:
    """The scheme's nose landmark (YuNet: its tip; dlib: the base of the nose)."""
    return np.asarray(face.landmarks, dtype=np.float64)[4 if face.scheme == "dlib5" else 2]


def estimate_yaw(face: Face) -> float:
    """Yaw in degrees from five landmarks: the nose's offset from the eyes' midpoint along the eye
    line, in eye distances, is depth × tan(yaw) (`NOSE_DEPTH`).

    >>> estimate_yaw(Face(box, np.array([[40, 50], [80, 50], [60, 70], [45, 90], [75, 90]]),
    ...                   "yunet5", 0.9, "yunet"))
    0.0
    """
    left, right = eye_centres(face)
    axis = right - left
    distance = float(np.linalg.norm(axis))
    if distance == 0:
        return 0.0
    offset = float(np.dot(nose_point(face) - (left + right) / 2, axis / distance)) / distance
    return float(np.degrees(np.arctan2(offset, NOSE_DEPTH.get(face.scheme, 0.4))))


def sharpness(crop: np.ndarray) -> float:
    """Variance of the Laplacian of an aligned RGB crop's grey image."""
    grey = cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def assess(face: Face, crop: np.ndarray) -> FaceQuality:
    """The quality record of `face`, with `crop` its aligned crop (`faceres.face.align.align`)."""
    left, right = eye_centres(face)
    return FaceQuality(
        eye_distance=float(np.linalg.norm(right - left)),
        sharpness=sharpness(crop),
        yaw=estimate_yaw(face),
        score=float(face.score),
    )


def gate_reasons(quality: FaceQuality, gate: dict) -> list[str]:
    """Why `quality` fails `gate` (limits named in `GATE_KEYS`), in words; [] when it passes.

    >>> gate_reasons(FaceQuality(60.0, 30.0, 52.0, 0.9), {"max_yaw": 45})
    ['face turned 52° from the camera; needs ≤ 45°']
    """
    reasons = []
    for key, limit in gate.items():
        if key not in GATE_KEYS:
            continue
        field, how = GATE_KEYS[key]
        value = getattr(quality, field)
        if (value < limit) if how == ">=" else (value > limit):
            reasons.append(_reason(key, value, limit))
    return reasons


def _reason(key: str, value: float, limit: float) -> str:
    if key == "min_eye_distance":
        return f"face {value:.0f} px between the eyes; needs ≥ {limit:.0f}"
    if key == "min_sharpness":
        return f"face blurred (sharpness {value:.0f}; needs ≥ {limit:.0f})"
    if key == "max_yaw":
        return f"face turned {value:.0f}° from the camera; needs ≤ {limit:.0f}°"
    return f"face found with low confidence ({value:.2f}; needs ≥ {limit:.2f})"
