"""OpenCV's YuNet face detector (`cv2.FaceDetectorYN`), its ONNX file resolved through the registry
(entry `yunet-2026may`): a box, five landmarks ("yunet5") and a score per face.

>>> detect(rgb)[0].detector
'yunet'
"""

from __future__ import annotations

import functools
import os
import threading
from pathlib import Path

import cv2
import numpy as np

from faceres import registry
from faceres.detect.face import DETECT_MAX_SIDE, Face
from faceres.errors import ModelError

NAME = "yunet"
LIMITS = "sees each photo downscaled to 640 px on its longer side, so very small faces are lost"
"""What this detector cannot do, in words the app shows when it runs as the fallback."""
SCORE = "confidence, 0 to 1"
"""What this detector's score is (detectors score on different scales)."""
YUNET_MODEL = "yunet-2026may"
"""Registry name of the YuNet detector entry."""
YUNET_FILE = "face_detection_yunet_2026may.onnx"
YUNET_SCORE_THRESHOLD = 0.6
YUNET_NMS_THRESHOLD = 0.3


def available() -> bool:
    """Whether YuNet's file resolves here (committed data, `FACERES_DATA` or the Hub cache)."""
    return yunet_path() is not None


def detect(image: np.ndarray) -> list[Face]:
    """Every face YuNet finds in an RGB uint8 image."""
    return _yunet().detect(image)


def yunet_path() -> Path | None:
    """YuNet's ONNX file as the registry resolves it, or None when it is unavailable here.

    Resolved once per registry folder and `FACERES_DATA` value (an unreachable Hub costs seconds).
    """
    return _resolve_yunet(str(registry.registry_dir()), os.environ.get("FACERES_DATA"))


@functools.lru_cache(maxsize=8)
def _resolve_yunet(registry_dir: str, data: str | None) -> Path | None:
    try:
        return registry.resolve_file(YUNET_MODEL, YUNET_FILE)
    except ModelError:
        return None


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
