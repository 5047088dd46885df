"""Facial expressions of every face in a photo.

>>> result = analyze_expression("photo.jpg")
>>> [(f.label, round(f.probabilities[f.label], 2)) for f in result.faces]
[('happy', 0.93)]
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from . import registry
from .alignment import align
from .detection import Face, detect_faces
from .errors import ModelError
from .imageio import ImageInput, load_image


@dataclass
class FaceExpression:
    """One face: where it is, the 48×48 grayscale crop the model saw, and its class scores."""

    face: Face
    probabilities: dict[str, float]
    label: str
    crop: np.ndarray


@dataclass
class ExpressionResult:
    """Every face found, largest first, with the model and detector used and timings (ms)."""

    faces: list[FaceExpression]
    model: str
    detector: str
    timings: dict[str, float] = field(default_factory=dict)


def _framing(config: dict) -> dict:
    template = config.get("faceres", {}).get("alignment")
    if not template:
        raise ModelError("This expression model has no measured face framing yet: run "
                         "`faceres train framing NAME` (see README).")
    return template


def face_crops(image: np.ndarray, faces: list[Face], template: dict) -> np.ndarray:
    """N×H×W uint8 grayscale crops of `faces`, framed by the model's template."""
    crops = [cv2.cvtColor(align(image, face, template), cv2.COLOR_RGB2GRAY) for face in faces]
    h, w = (int(v) for v in template["size"][::-1])
    return np.stack(crops) if crops else np.zeros((0, h, w), np.uint8)


def analyze_expression(img: ImageInput, model: str | None = None,
                       detector: str | None = None) -> ExpressionResult:
    """Detect every face of `img`, frame it like FER2013's crops, and classify its expression
    (mean of the face and its mirror image).

    >>> analyze_expression("photo.jpg", detector="yunet").faces[0].label
    'happy'
    """
    from .train import predict

    t0 = time.perf_counter()
    image = load_image(img)
    t1 = time.perf_counter()
    loaded = registry.load_task("expression", model)
    name = loaded.name
    template = _framing(loaded.config)
    faces = detect_faces(image, detector=detector)
    t2 = time.perf_counter()
    crops = face_crops(image, faces, template)
    t3 = time.perf_counter()
    labels = list(loaded.config["label_names"])
    pcfg = loaded.config["pretrained_cfg"]
    probs = predict(loaded.model, torch.from_numpy(crops).unsqueeze(1), float(pcfg["mean"][0]),
                    float(pcfg["std"][0])).numpy() if len(crops) else np.zeros((0, len(labels)))
    t4 = time.perf_counter()
    results = [FaceExpression(face, {label: float(p) for label, p in zip(labels, row)},
                              labels[int(row.argmax())], crop)
               for face, row, crop in zip(faces, probs, crops)]
    used = faces[0].detector if faces else (detector or "none")
    timings = {"decode": t1 - t0, "detect": t2 - t1, "align": t3 - t2, "classify": t4 - t3,
               "total": t4 - t0}
    return ExpressionResult(results, name, used,
                            {k: round(v * 1000, 2) for k, v in timings.items()})


def measure_framing(detector: str, data: str | None = None, count: int = 2000,
                    upscale: int = 4) -> dict:
    """How FER2013 frames its faces: the median landmarks that `detector` finds on upscaled
    FER2013 Training images, in 48×48 crop coordinates. Returns a template for `align`.

    >>> measure_framing("yunet")["yunet5"][0]                      # doctest: +SKIP
    [16.9, 19.8]
    """
    from .data import load_fer2013

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
        raise ModelError(f"The {detector} detector found faces in only {len(points)} of {count} "
                         "FER2013 images; cannot measure the framing.")
    median = np.median(np.stack(points), axis=0)
    return {"size": [size, size], scheme: np.round(median.astype(float), 2).tolist(),
            f"{scheme}_measured_on": f"{len(points)} of {count} FER2013 Training images, "
                                     f"{upscale}x upscaled"}
