"""dlib's 5-point face landmarks, loaded from the registry (entry `dlib-landmarks5`).

The model, `faceres.models.dlib_landmarks.ShapePredictor` (timm `dlib_shape_predictor5`), places
five points in face boxes: the outer and inner corners of the eye on the image's right, of the
eye on the image's left, then the base of the nose.

>>> from faceres.landmarks import load_shape_predictor
>>> load_shape_predictor().predict(image, [(80, 60, 240, 220)]).shape  # doctest: +SKIP
(1, 5, 2)
"""

from __future__ import annotations

from .models.dlib_landmarks import ShapePredictor

REGISTRY_NAME = "dlib-landmarks5"


def load_shape_predictor(device: str | None = None) -> ShapePredictor:
    """The converted 5-point predictor from the registry (cached per process by
    `registry.load`). Inference runs in numpy on the host whatever `device` holds the buffers.

    >>> load_shape_predictor().initial_shape.shape
    torch.Size([5, 2])
    """
    from . import registry

    return registry.load(REGISTRY_NAME, device=device or "cpu").model
