"""dlib's 5-point face landmarks, loaded from the registry (entry `dlib-landmarks5`).

The model, `faceres.models.dlib_landmarks.ShapePredictor` (timm `faceres_dlib_shape_predictor5`),
places five points in face boxes: the outer and inner corners of the eye on the image's right, of
the eye on the image's left, then the base of the nose.

>>> from faceres.detect.landmarks import load_shape_predictor
>>> load_shape_predictor().predict(image, [(80, 60, 240, 220)]).shape  # doctest: +SKIP
(1, 5, 2)
"""

from __future__ import annotations

import numpy as np

from faceres import registry
from faceres.detect.face import Face
from faceres.models.dlib_landmarks import ShapePredictor

REGISTRY_NAME = "dlib-landmarks5"


def load_shape_predictor(device: str | None = None) -> ShapePredictor:
    """The converted 5-point predictor from the registry (cached per process by
    `registry.load`). Inference runs in numpy on the host whatever `device` holds the buffers.

    >>> load_shape_predictor().initial_shape.shape
    torch.Size([5, 2])
    """
    return registry.load(REGISTRY_NAME, device=device or "cpu").model


def dlib5_in_box(image: np.ndarray, face: Face, box_fit: dict) -> Face:
    """`face` re-landmarked with dlib's 5 points: the predictor runs in the square dlib's
    detector would have drawn around it, placed from `face.box` by `box_fit` (fitted by
    `faceres eval lfw --tune`: `centre_shift` in box widths and heights, `side` in
    sqrt(box area)).

    >>> dlib5_in_box(image, yunet_face, {"centre_shift": [-0.04, -0.01], "side": 0.93}).scheme
    'dlib5'
    """
    x, y, w, h = face.box
    cx = x + w / 2 + box_fit["centre_shift"][0] * w
    cy = y + h / 2 + box_fit["centre_shift"][1] * h
    half = box_fit["side"] * np.sqrt(w * h) / 2
    rect = [round(v) for v in (cx - half, cy - half, cx + half, cy + half)]
    points = load_shape_predictor().predict(image, [rect])[0]
    return Face(face.box, points, "dlib5", face.score, f"{face.detector}+dlib5")
