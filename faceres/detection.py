"""Find faces: a box, five landmarks and a score for every face in an RGB image.

Two detectors: OpenCV's YuNet (`cv2.FaceDetectorYN`, its ONNX file resolved through the registry)
and the converted dlib MMOD detector with dlib's 5-point landmarks (`faceres.dlib_detector`, weights
committed in the registry). The setting `FACERES_DETECTOR` (auto | yunet | dlib) picks one; `auto`
uses YuNet when its file resolves, else dlib. Every `Face` says which detector found it.

>>> from faceres.imageio import load_image
>>> faces = detect_faces(load_image("group.jpg"))
>>> faces[0].box, faces[0].landmarks.shape, faces[0].detector
((212.0, 80.5, 96.3, 121.4), (5, 2), 'yunet')
"""

from __future__ import annotations

import functools
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .errors import FaceresError, ImageError, ModelError

DETECTORS = ("auto", "yunet", "dlib")
SCHEMES = ("yunet5", "dlib5")
"""Landmark schemes, each with its own points in an alignment template."""
YUNET_MODEL = "yunet-2026may"
"""Registry name of the YuNet detector entry."""
YUNET_FILE = "face_detection_yunet_2026may.onnx"
DETECT_MAX_SIDE = 640
"""Longer side, in pixels, images are downscaled to for detection (faces are mapped back)."""
YUNET_SCORE_THRESHOLD = 0.6
YUNET_NMS_THRESHOLD = 0.3


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


def detector_setting() -> str:
    """The `FACERES_DETECTOR` setting (auto | yunet | dlib), `auto` when unset."""
    value = os.environ.get("FACERES_DETECTOR", "auto").strip().lower() or "auto"
    if value not in DETECTORS:
        raise FaceresError(f"FACERES_DETECTOR={value!r} is not one of {', '.join(DETECTORS)}.")
    return value


def yunet_path() -> Path | None:
    """YuNet's ONNX file as the registry resolves it, or None when it is unavailable here.

    Resolved once per registry folder and `FACERES_DATA` value (an unreachable Hub costs seconds).
    """
    from . import registry

    return _resolve_yunet(str(registry.registry_dir()), os.environ.get("FACERES_DATA"))


@functools.lru_cache(maxsize=8)
def _resolve_yunet(registry_dir: str, data: str | None) -> Path | None:
    from . import registry

    try:
        return registry.resolve_file(YUNET_MODEL, YUNET_FILE)
    except ModelError:
        return None


def select_detector(detector: str | None = None) -> str:
    """The detector that `detect_faces` will run: "yunet" or "dlib".

    >>> select_detector("auto")   # "yunet" when its file resolves, else "dlib"
    'yunet'
    """
    choice = (detector or detector_setting()).lower()
    if choice not in DETECTORS:
        raise FaceresError(f"Unknown detector {choice!r}; use one of {', '.join(DETECTORS)}.")
    if choice == "auto":
        return "yunet" if yunet_path() is not None else "dlib"
    return choice


def detect_faces(image: np.ndarray, detector: str | None = None) -> list[Face]:
    """Every face in an RGB uint8 image (from `faceres.imageio.load_image`), largest box first.

    `detector` is "auto", "yunet" or "dlib"; None reads the `FACERES_DETECTOR` setting.

    >>> [f.score for f in detect_faces(rgb, detector="yunet")]
    [0.93]
    """
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        raise ImageError("detect_faces expects an H×W×3 RGB array; decode with load_image first.")
    name = select_detector(detector)
    if name == "yunet":
        faces = _yunet().detect(image)
    else:
        from . import dlib_detector

        faces = dlib_detector.detect(image)
    return sorted(faces, key=lambda f: f.area, reverse=True)


class YuNet:
    """`cv2.FaceDetectorYN` behind a lock (it is stateful), run at `DETECT_MAX_SIDE` at most."""

    def __init__(self, path: Path, max_side: int = DETECT_MAX_SIDE):
        self.max_side = max_side
        self._lock = threading.Lock()
        level = cv2.utils.logging.getLogLevel()  # OpenCV warns on stderr that the DNN engine
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # ignores targets
        try:
            self._net = cv2.FaceDetectorYN.create(
                str(path), "", (320, 320), YUNET_SCORE_THRESHOLD, YUNET_NMS_THRESHOLD, 5000
            )
        except cv2.error as exc:
            raise ModelError(f"OpenCV could not load YuNet from {path.name}: {exc}") from exc
        finally:
            cv2.utils.logging.setLogLevel(level)

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces of an RGB uint8 image, coordinates in that image."""
        h, w = image.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
            scale_x, scale_y = w / size[0], h / size[1]
        else:
            scale_x = scale_y = 1.0
        with self._lock:
            self._net.setInputSize((bgr.shape[1], bgr.shape[0]))
            _, rows = self._net.detect(bgr)
        if rows is None:
            return []
        factors = np.array([scale_x, scale_y], dtype=np.float32)
        offset = 0.5 * factors - 0.5  # pixel centres of the resized image -> of the original
        faces = []
        for row in rows:
            x, y = row[:2] * factors + offset
            bw, bh = row[2:4] * factors
            landmarks = (row[4:14].reshape(5, 2) * factors + offset).astype(np.float32)
            box = (float(x), float(y), float(bw), float(bh))
            faces.append(Face(box, landmarks, "yunet5", float(row[14]), "yunet"))
        return faces


def _yunet() -> YuNet:
    path = yunet_path()
    if path is None:
        raise ModelError(
            f"YuNet is not available: {YUNET_FILE} did not resolve through the registry "
            f"(entry {YUNET_MODEL}); set FACERES_DETECTOR=dlib or FACERES_DATA."
        )
    return _yunet_at(path)


@functools.lru_cache(maxsize=2)
def _yunet_at(path: Path) -> YuNet:
    return YuNet(path)
