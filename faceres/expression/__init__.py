"""Facial expressions of every face in a photo.

Examples:
    >>> result = analyze_expression("photo.jpg")
    >>> [(f.label, round(f.probabilities[f.label], 2)) for f in result.faces]
    [('happy', 0.93)]
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from faceres.detect import Face, detect_faces
from faceres.errors import ModelError
from faceres.face.align import align, resize_faces
from faceres.imageio import ImageInput, load_image
from faceres.registry.runtime import Runner, load_runner, mirror_views, softmax, standardise
from faceres.stopwatch import Stopwatch

WORDS = {"happiness": "happy", "sadness": "sad", "anger": "angry"}
"""FER+'s class names → FER2013's words for the same classes: every model answers in one
vocabulary (the UI, the API and the CLI alike); the training data keep their own names."""


def class_names(config: dict) -> list[str]:
    """The model's classes (its `label_names`, in output order) in faceres's one vocabulary.

    >>> class_names({"label_names": ["neutral", "happiness", "sadness", "contempt"]})
    ['neutral', 'happy', 'sad', 'contempt']
    """
    return [WORDS.get(name, name) for name in config["label_names"]]


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

    def to_dict(self) -> dict:
        """JSON-ready summary (no pixels): the one details schema of the CLI, API and app."""
        return {
            "model": self.model,
            "detector": self.detector,
            "faces": [
                {
                    "face": number,
                    "box": [round(v, 1) for v in f.face.box],
                    "label": f.label,
                    "probabilities": {k: round(float(v), 4) for k, v in f.probabilities.items()},
                }
                for number, f in enumerate(self.faces, start=1)
            ],
            "timings_ms": {k: round(v, 2) for k, v in self.timings.items()},
        }


def _framing(config: dict) -> dict:
    template = config.get("faceres", {}).get("alignment")
    if not template:
        raise ModelError(
            "This expression model has no measured face framing yet: run "
            "`faceres train framing NAME` (see docs/models.md)."
        )
    return template


def face_crops(image: np.ndarray, faces: list[Face], template: dict, size: int) -> np.ndarray:
    """N×size×size uint8 grayscale crops of `faces`, framed by the model's template (at the
    template's size: the dataset's), then resized (area) to the model's input `size` as its
    training resized the dataset's faces."""
    crops = [cv2.cvtColor(align(image, face, template), cv2.COLOR_RGB2GRAY) for face in faces]
    h, w = (int(v) for v in template["size"][::-1])
    return resize_faces(np.stack(crops) if crops else np.zeros((0, h, w), np.uint8), size)


def classify(crops: np.ndarray, runner: Runner, views: str | None = None) -> np.ndarray:
    """Class probabilities (N, classes) of N×H×W uint8 grayscale crops: the softmax of each crop
    and of its mirror image, averaged, or of the crop alone, as the model's config (or `views`)
    says (`mirror_views`). float32 throughout, on `runner`'s engine.

    >>> classify(np.zeros((1, 48, 48), np.uint8), load_runner("expression")).shape
    (1, 7)
    """
    x = standardise(crops, runner.config)
    if not mirror_views(runner.config, views):
        return softmax(runner(x))
    p = softmax(runner(np.concatenate([x, x[..., ::-1]])))
    return (p[: len(crops)] + p[len(crops) :]) / 2


def analyze_expression(
    img: ImageInput, model: str | None = None, detector: str | None = None
) -> ExpressionResult:
    """Detect every face of `img`, frame it like FER2013's crops, and classify its expression
    (`classify`: with the mirror image unless the model's config says "single").

    >>> analyze_expression("photo.jpg", detector="yunet").faces[0].label
    'happy'
    """
    watch = Stopwatch()
    image = load_image(img)
    watch.lap("decode")
    loaded = load_runner("expression", model)  # its first use on a machine: an ONNX export
    watch.lap("load model")
    name = loaded.name
    template = _framing(loaded.config)
    faces = detect_faces(image, detector=detector)
    watch.lap("detect")
    crops = face_crops(image, faces, template, loaded.config["pretrained_cfg"]["input_size"][-1])
    watch.lap("align")
    labels = class_names(loaded.config)
    probs = classify(crops, loaded) if len(crops) else np.zeros((0, len(labels)))
    watch.lap("classify")
    results = [
        FaceExpression(
            face,
            {label: float(p) for label, p in zip(labels, row)},
            labels[int(row.argmax())],
            crop,
        )
        for face, row, crop in zip(faces, probs, crops)
    ]
    used = faces[0].detector if faces else (detector or "none")
    return ExpressionResult(results, name, used, watch.timings(decimals=2))
