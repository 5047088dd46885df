"""Read and embed images for the face index: every face of each file through the one face
pipeline (`faceres.face.pipeline`), one batch per call.

>>> path, sha256, faces, error = embed_files(["a.jpg"], FacePipeline.for_model())[0]
>>> faces[0].face, faces[0].vector.shape, error
(1, (128,), None)
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from faceres.errors import FaceresError
from faceres.face.pipeline import FacePipeline, FaceRecord
from faceres.imageio import load_image
from faceres.search.store import IndexedFace

ImageFaces = tuple[str, str | None, list[IndexedFace], str | None]
"""One image's result: (path, sha256, faces, error)."""


def indexed(path: str, record: FaceRecord) -> IndexedFace:
    """A face record of the image at `path` as the index stores it."""
    row = record.to_dict()
    return IndexedFace(
        path,
        record.number,
        row["box"],
        row["landmarks"],
        row["detector"],
        row["score"],
        row["quality"],
        np.asarray(record.embedding, np.float32),
    )


def embed_files(files: Sequence[str | Path], pipeline: FacePipeline) -> list[ImageFaces]:
    """Every face of each file, embedded in one batch (all their aligned views and mirror
    images in one forward pass); a file that cannot be read gets its error instead."""
    images, names, read = [], [], []
    for path in files:
        try:
            data = Path(path).read_bytes()
            images.append(load_image(Path(path)))
            names.append(str(path))
            read.append((str(path), hashlib.sha256(data).hexdigest(), None))
        except (FaceresError, OSError) as exc:
            read.append((str(path), None, str(exc) or type(exc).__name__))
    records = dict(zip(names, pipeline.read(images), strict=True))
    return [
        (path, sha, [indexed(path, r) for r in records.get(path, [])], error)
        for path, sha, error in read
    ]
