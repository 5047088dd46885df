"""Measure how a dataset frames its faces, so inference crops faces the way the model was trained.

>>> measure_framing("yunet")["yunet5"][0]                      # doctest: +SKIP
[16.9, 19.8]
"""

from __future__ import annotations

import cv2
import numpy as np

from faceres.datasets.fer import load_fer2013
from faceres.detect import detect_faces
from faceres.errors import ModelError


def measure_framing(
    detector: str, data: str | None = None, count: int = 2000, upscale: int = 4
) -> dict:
    """How FER2013 frames its faces: the median landmarks that `detector` finds on upscaled
    FER2013 Training images, in 48×48 crop coordinates. Returns a template for `align`.

    >>> measure_framing("yunet")["yunet5"][0]                      # doctest: +SKIP
    [16.9, 19.8]
    """
    train = load_fer2013("Training", data, "fer")
    pick = np.random.default_rng(0).permutation(len(train))[:count]
    size = train.images.shape[1]
    points, scheme = [], None
    for i in pick:
        big = cv2.resize(train.images[i], (size * upscale,) * 2, interpolation=cv2.INTER_CUBIC)
        faces = detect_faces(cv2.cvtColor(big, cv2.COLOR_GRAY2RGB), detector=detector)
        if faces:
            scheme = faces[0].scheme
            points.append((faces[0].landmarks + 0.5) / upscale - 0.5)
    if len(points) < count // 4:
        raise ModelError(
            f"The {detector} detector found faces in only {len(points)} of {count} "
            "FER2013 images; cannot measure the framing."
        )
    median = np.median(np.stack(points), axis=0)
    return {
        "size": [size, size],
        scheme: np.round(median.astype(float), 2).tolist(),
        f"{scheme}_measured_on": f"{len(points)} of {count} FER2013 Training images, "
        f"{upscale}x upscaled",
    }
