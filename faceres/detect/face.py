"""A detected face: its box, five landmarks (in a named scheme), score and detector.

>>> Face((10.0, 20.0, 50.0, 60.0), points, "yunet5", 0.93, "yunet").area
3000.0
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SCHEMES = ("yunet5", "dlib5")
"""Landmark schemes, each with its own points in an alignment template."""
DETECT_MAX_SIDE = 640
"""Longer side, in pixels, images are downscaled to for detection (faces are mapped back)."""


@dataclass(frozen=True)
class Face:
    """One detected face, in the pixel coordinates of the image it was found in.

    `landmarks` are five (x, y) points whose order is given by `scheme`: "yunet5" is right eye,
    left eye, nose tip, right mouth corner, left mouth corner (the subject's right and left);
    "dlib5" is dlib's 5-point shape (two corners of each eye, then the base of the nose).
    """

    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    scheme: str
    score: float
    detector: str

    @property
    def area(self) -> float:
        """Box area in square pixels."""
        return self.box[2] * self.box[3]
