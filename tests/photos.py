"""Test photos and uploads made at test time (never committed): helpers shared by the tests."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceres import registry
from faceres.errors import ModelError


def edited_copy(
    rgb: np.ndarray,
    angle: float = 12.0,
    scale: float = 0.7,
    gamma: float = 1.4,
    cast: tuple[float, float, float] = (0.85, 0.9, 1.05),
) -> np.ndarray:
    """`rgb` rotated by `angle` degrees, rescaled, darkened by `gamma` and colour-cast."""
    h, w = rgb.shape[:2]
    rotated = cv2.warpAffine(
        rgb,
        cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0),
        (w, h),
        borderMode=cv2.BORDER_REFLECT,
    )
    small = cv2.resize(rotated, (int(w * scale), int(h * scale)), interpolation=cv2.INTER_AREA)
    relit = 255.0 * (small / 255.0) ** gamma * np.array(cast)
    return np.clip(relit, 0, 255).astype(np.uint8)


def as_upload(src: Path, upload_dir: Path) -> dict:
    """`src` copied into the upload folder as Gradio stores an upload, as its FileData dict."""
    dest = upload_dir / os.urandom(8).hex() / src.name
    dest.parent.mkdir()
    shutil.copyfile(src, dest)
    return {"path": str(dest), "orig_name": src.name, "meta": {"_type": "gradio.FileData"}}


def require_models(*names: str) -> None:
    """Skip the test, saying why, unless every named registry model resolves here."""
    for name in names:
        try:
            registry.resolve(name)
        except ModelError as exc:
            pytest.skip(f"{name} is not in the registry (run `faceres convert ...`): {exc}")


def two_faces(rgb: np.ndarray) -> np.ndarray:
    """The astronaut's head beside a 0.8× copy of it: two faces, the left one larger, both big
    enough for either detector (the dlib detector needs faces of about 80 px or more)."""
    head = rgb[0:300, 100:400]
    small = cv2.resize(head, (240, 240), interpolation=cv2.INTER_AREA)
    canvas = np.full((300, 560, 3), 255, np.uint8)
    canvas[:, :300], canvas[30:270, 310:550] = head, small
    return canvas
