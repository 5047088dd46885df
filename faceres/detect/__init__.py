"""Find faces: a box, five landmarks and a score for every face in an RGB image.

Detectors are plug-ins: one module each in this folder (a `NAME`, `LIMITS`, `available()` and
`detect(image)`), listed once in `BACKENDS` and imported when first used (`backend`: the dlib
detector needs torch, YuNet ONNX Runtime and OpenCV). Today: YuNet (`faceres.detect.yunet`, its
ONNX file resolved through the registry) and the converted dlib MMOD detector with dlib's 5-point
landmarks (`faceres.detect.dlib`, weights committed in the registry). `detector="auto"` (or the
setting `FACERES_DETECTOR`) takes the first available backend in table order. Every `Face` says
which detector found it.

>>> from faceres.imageio import load_image
>>> faces = detect_faces(load_image("group.jpg"), detector="yunet")
>>> faces[0].box, faces[0].landmarks.shape, faces[0].detector
((212.0, 80.5, 96.3, 121.4), (5, 2), 'yunet')
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import numpy as np

from faceres.detect.face import DETECT_MAX_SIDE, SCHEMES, Face
from faceres.errors import FaceresError, ImageError

BACKENDS = {"yunet": "faceres.detect.yunet", "dlib": "faceres.detect.dlib"}
"""Detector name → its module ("auto": the first available, in this order)."""
DETECTORS = ("auto", *BACKENDS)
"""Every name a user may pass as `detector` (CLI choices, the app's dropdown, evaluations)."""

__all__ = [
    "BACKENDS",
    "DETECTORS",
    "DETECT_MAX_SIDE",
    "SCHEMES",
    "Face",
    "backend",
    "detect_faces",
    "detector_setting",
    "fallback_note",
    "score_text",
    "select_detector",
]


def backend(name: str) -> ModuleType:
    """The module of detector `name` (a key of `BACKENDS`), imported on first use.

    >>> backend("yunet").LIMITS
    'sees each photo downscaled to 640 px on its longer side, so very small faces are lost'
    """
    return importlib.import_module(BACKENDS[name])


def detector_setting() -> str:
    """The `FACERES_DETECTOR` setting (one of `DETECTORS`), "auto" when unset."""
    value = os.environ.get("FACERES_DETECTOR", "auto").strip().lower() or "auto"
    if value not in DETECTORS:
        raise FaceresError(f"FACERES_DETECTOR={value!r} is not one of {', '.join(DETECTORS)}.")
    return value


def select_detector(detector: str | None = None) -> str:
    """The backend that `detect_faces` will run for `detector` (None: the setting).

    >>> select_detector("auto")   # "yunet" when its file resolves, else "dlib"
    'yunet'
    """
    choice = (detector or detector_setting()).lower()
    if choice not in DETECTORS:
        raise FaceresError(f"Unknown detector {choice!r}; use one of {', '.join(DETECTORS)}.")
    if choice == "auto":
        return next((name for name in BACKENDS if backend(name).available()), list(BACKENDS)[-1])
    return choice


def detect_faces(image: np.ndarray, detector: str | None = None) -> list[Face]:
    """Every face in an RGB uint8 image (from `faceres.imageio.load_image`), largest box first.

    `detector` is one of `DETECTORS`; None reads the `FACERES_DETECTOR` setting.

    Examples:
        >>> [f.score for f in detect_faces(rgb, detector="yunet")]
        [0.93]
    """
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        raise ImageError("detect_faces expects an H×W×3 RGB array; decode with load_image first.")
    faces = backend(select_detector(detector)).detect(image)
    return sorted(faces, key=lambda f: f.area, reverse=True)


def fallback_note(requested: str | None, used: str) -> str:
    """What the app and the CLI say when "auto" (`requested`, None: the setting) could not run
    the preferred detector, naming the one that ran and its limits; "" otherwise.

    >>> fallback_note("auto", "dlib")   # YuNet's model file is not here
    'yunet is not available here, so the dlib detector ran: it misses faces ...'
    """
    preferred = next(iter(BACKENDS))
    if (requested or detector_setting()) != "auto" or used == preferred or used not in BACKENDS:
        return ""
    return (
        f"{preferred} is not available here, so the {used} detector ran: it {backend(used).LIMITS}."
    )


def score_text(detector: str, score: float) -> str:
    """A detector's score with its scale named (YuNet's is a confidence, dlib's a margin).

    >>> score_text("yunet", 0.93)
    'yunet score 0.93 (confidence, 0 to 1)'
    """
    meaning = backend(detector).SCORE if detector in BACKENDS else "unknown scale"
    return f"{detector} score {score:.2f} ({meaning})"
