"""Read and embed images for the face index: every face of each file, one batch per call.

>>> path, sha256, faces, error = embed_files(["a.jpg"], load_identity_model(), None)[0]
>>> faces[0].face, faces[0].vector.shape, error
(1, (128,), None)
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from faceres.align import model_template, views
from faceres.detect import detect_faces
from faceres.errors import FaceresError
from faceres.identity import embed_crops, embed_views
from faceres.imageio import load_image
from faceres.quality import assess
from faceres.registry.runtime import Runner
from faceres.search.store import FaceRecord


def read_faces(path: Path, detector: str | None, template: dict) -> tuple[str, list, list]:
    """(sha256, faces, their aligned views) of one image; raises FaceresError when unreadable."""
    data = path.read_bytes()
    image = load_image(path)
    faces = detect_faces(image, detector)
    return hashlib.sha256(data).hexdigest(), faces, [views(image, f, template) for f in faces]


ImageFaces = tuple[str, str | None, list[FaceRecord], str | None]
"""One image's result: (path, sha256, faces, error)."""


def embed_files(
    files: Sequence[str | Path], loaded: Runner, detector: str | None
) -> list[ImageFaces]:
    """Every face of each file, embedded in one batch (all their aligned views and mirror
    images in one forward pass); a file that cannot be read gets its error instead."""
    template = model_template(loaded.config)
    read = []
    for path in files:
        try:
            read.append((str(path), *read_faces(Path(path), detector, template), None))
        except (FaceresError, OSError) as exc:
            read.append((str(path), None, [], [], str(exc) or type(exc).__name__))
    return _embed(read, loaded)


def embed_images(
    images: Sequence[np.ndarray], names: Sequence[str], loaded: Runner, detector: str | None
) -> list[ImageFaces]:
    """`embed_files` for decoded RGB images (`names` stand for their paths; no sha256)."""
    template = model_template(loaded.config)
    read = []
    for name, image in zip(names, images, strict=True):
        faces = detect_faces(image, detector)
        read.append((name, None, faces, [views(image, f, template) for f in faces], None))
    return _embed(read, loaded)


def _embed(read: list[tuple], loaded: Runner) -> list[ImageFaces]:
    """(path, sha256, faces, views, error) per image → `ImageFaces`, all views in one batch."""
    face_views = [v for item in read for v in item[3]]
    emb = embed_views(face_views, lambda crops: embed_crops(crops, loaded)) if face_views else []
    out, k = [], 0
    for path, sha, faces, views_, error in read:
        records = []
        for number, (face, crops) in enumerate(zip(faces, views_, strict=True), start=1):
            records.append(
                FaceRecord(
                    path,
                    number,
                    [round(v, 2) for v in face.box],
                    np.round(face.landmarks, 2).tolist(),
                    face.detector,
                    round(float(face.score), 4),
                    assess(face, crops[0]).to_dict(),
                    np.asarray(emb[k], np.float32),
                )
            )
            k += 1
        out.append((path, sha, records, error))
    return out
