"""The YuNet face detector (OpenCV Zoo), its ONNX file resolved through the registry (entry
`yunet-2026may`): a box, five landmarks ("yunet5") and a score per face.

The file runs on ONNX Runtime, as the registry's networks do, and its outputs are decoded as
OpenCV's `cv2.FaceDetectorYN` decodes them (`decode`; the tests compare the two): the same faces
in about half the time on a 2-core CPU (3.9 against 7.3 ms for a 640×480 photo).

>>> detect(rgb)[0].detector
'yunet'
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import cv2
import numpy as np

from faceres import registry
from faceres.detect.face import DETECT_MAX_SIDE, Face
from faceres.errors import ModelError
from faceres.registry.onnx import OnnxModel

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
YUNET_TOP_K = 5000
STRIDES = (8, 16, 32)
"""YuNet's feature strides; its input is padded to a multiple of the largest."""


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


def decode(
    outputs: dict[str, np.ndarray],
    size: tuple[int, int],
    score_threshold: float = YUNET_SCORE_THRESHOLD,
    nms_threshold: float = YUNET_NMS_THRESHOLD,
    top_k: int = YUNET_TOP_K,
) -> np.ndarray:
    """YuNet's outputs (`cls_8` … `kps_32`) for a padded input of `size` (width, height) → one
    row per face, as `cv2.FaceDetectorYN.detect` gives them: box x, y, w, h, five landmarks
    (x, y), score; float32 (0, 15) when none. Each cell of each stride scores
    √(cls·obj); boxes and points are offsets from the cell; OpenCV's NMS on integer boxes."""
    found = []
    for stride in STRIDES:
        cols = size[0] // stride
        cls = np.clip(outputs[f"cls_{stride}"].reshape(-1), 0, 1)
        obj = np.clip(outputs[f"obj_{stride}"].reshape(-1), 0, 1)
        score = np.sqrt(cls * obj)
        keep = np.flatnonzero(score >= score_threshold)
        cell = np.stack([keep % cols, keep // cols], axis=1).astype(np.float32)
        bbox = outputs[f"bbox_{stride}"].reshape(-1, 4)[keep]
        points = (outputs[f"kps_{stride}"].reshape(-1, 5, 2)[keep] + cell[:, None]) * stride
        centre = (cell + bbox[:, :2]) * stride
        extent = np.exp(bbox[:, 2:]) * stride
        found.append(
            np.column_stack([centre - extent / 2, extent, points.reshape(-1, 10), score[keep]])
        )
    faces = np.concatenate(found).astype(np.float32)
    if len(faces) > 1:
        boxes = faces[:, :4].astype(np.int32).tolist()  # truncated, as OpenCV's Rect2i
        kept = cv2.dnn.NMSBoxes(
            boxes, faces[:, 14].tolist(), score_threshold, nms_threshold, top_k=top_k
        )
        faces = faces[np.asarray(kept, np.int64).reshape(-1)]
    return faces


class YuNet:
    """YuNet on ONNX Runtime (a session is safe to share between threads), run at `max_side`
    at most (`DETECT_MAX_SIDE`)."""

    def __init__(self, path: Path, max_side: int = DETECT_MAX_SIDE):
        self.max_side = max_side
        self._model = OnnxModel(path)
        self._outputs = [output.name for output in self._model.session.get_outputs()]

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces of an RGB uint8 image, coordinates in that image."""
        h, w = image.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            scale_x, scale_y = w / size[0], h / size[1]
        else:
            scale_x = scale_y = 1.0
        rows = decode(*self._run(image))
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

    def _run(self, rgb: np.ndarray) -> tuple[dict[str, np.ndarray], tuple[int, int]]:
        """YuNet's outputs for an RGB image, fed as OpenCV feeds it: BGR, 0–255, padded with
        zeros on the right and bottom to a multiple of the largest stride."""
        h, w = rgb.shape[:2]
        pad_h, pad_w = (-(-n // STRIDES[-1]) * STRIDES[-1] for n in (h, w))
        blob = np.zeros((1, 3, pad_h, pad_w), np.float32)
        blob[0, :, :h, :w] = rgb[..., ::-1].transpose(2, 0, 1)
        values = self._model.session.run(self._outputs, {self._model.input: blob})
        return dict(zip(self._outputs, values, strict=True)), (pad_w, pad_h)


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
