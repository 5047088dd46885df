"""Photo pairs with a known answer for identity tests: two different photos of one person (LFW,
from the research data) and photos of two different people (LFW, or scikit-image's astronaut,
Eileen Collins, and its cameraman). Never a photo compared with itself: that gives a similarity
of about 1 whatever the alignment or the embedding does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceres.settings import data_dir

LFW_SAME = (("Akhmed_Zakayev", 1), ("Akhmed_Zakayev", 3))
"""A same-person pair of LFW View 2 (fold 1): two different photos, one face each."""
LFW_DIFFERENT = (("Abdel_Madi_Shabneh", 1), ("Dean_Barker", 1))
"""A different-person pair of LFW View 2 (fold 1): two men, one face each."""


def lfw_photo(name: str, number: int) -> Path:
    """The deep-funneled LFW image `name`_`number`; skips the test, saying why, without LFW."""
    root = data_dir()
    path = (root / "lfw" / "lfw-deepfunneled" / name / f"{name}_{number:04d}.jpg") if root else None
    if path is None or not path.is_file():
        pytest.skip(
            f"LFW is not in FACERES_DATA (no {path or 'data folder'}): the same-person "
            "pair needs two real photos of one person"
        )
    return path


def lfw_pair(same: bool) -> tuple[Path, Path]:
    """Paths of `LFW_SAME` or `LFW_DIFFERENT` (skipping without LFW)."""
    return tuple(lfw_photo(*photo) for photo in (LFW_SAME if same else LFW_DIFFERENT))


def camera_rgb() -> np.ndarray:
    """scikit-image's cameraman (one face, a different person from the astronaut), as RGB,
    enlarged twice: at 512 px his face has about 14 px between the eyes, on the edge of the
    identity model's quality gate, which a JPEG re-encoding can tip into "uncertain"."""
    data = pytest.importorskip("skimage.data", reason="scikit-image provides the test photo")
    grey = np.repeat(np.repeat(data.camera(), 2, axis=0), 2, axis=1)
    return np.repeat(grey[..., None], 3, axis=2)


def save(rgb: np.ndarray, path: Path, **options) -> Path:
    """`rgb` written to `path` (format from the suffix) for the test run only."""
    Image.fromarray(rgb).save(path, **options)
    return path
