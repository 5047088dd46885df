"""Build a face index: every face of every image under some paths, embedded in batches.

A file that cannot be read, or holds no face, is recorded (`images.error`, or 0 faces) and the
build goes on. `resume=True` skips the images already written, so a build killed at any moment
and run again ends with the same index (each image is one SQLite transaction).

>>> summary = build_index(["photos/"], "photos.index")
>>> sorted(summary)
['failed', 'faces', 'images', 'index', 'model', 'seconds', 'skipped']
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from faceres.align import model_template, views
from faceres.detect import detect_faces
from faceres.errors import FaceresError
from faceres.identity import embed_crops, embed_views, load_identity_model
from faceres.imageio import load_image
from faceres.quality import assess
from faceres.search.store import FaceRecord, FaceStore

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
BATCH_FACES = 32
"""Faces embedded together (their aligned views and mirror images in one forward pass)."""


def image_files(paths: Iterable[str | Path]) -> list[Path]:
    """Image files under `paths` (files as given, folders recursively), sorted, each once.

    >>> image_files(["photos/"])[:2]
    [PosixPath('photos/a.jpg'), PosixPath('photos/trip/b.png')]
    """
    found: dict[Path, None] = {}
    for root in map(Path, paths):
        if root.is_dir():
            for p in sorted(root.rglob("*")):
                if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
                    found[p] = None
        elif root.is_file():
            found[root] = None
        else:
            raise FaceresError(f"No such file or folder: {root}")
    return sorted(found)


def read_faces(path: Path, detector: str | None, template: dict) -> tuple[str, list, list]:
    """(sha256, faces, their aligned views) of one image; raises FaceresError when unreadable."""
    data = path.read_bytes()
    image = load_image(path)
    faces = detect_faces(image, detector)
    return hashlib.sha256(data).hexdigest(), faces, [views(image, f, template) for f in faces]


def _pending(
    files: Sequence[Path], detector: str | None, template: dict
) -> Iterator[tuple[Path, str | None, list, list, str | None]]:
    for path in files:
        try:
            sha, faces, face_views = read_faces(path, detector, template)
            yield path, sha, faces, face_views, None
        except (FaceresError, OSError) as exc:
            yield path, None, [], [], str(exc) or type(exc).__name__


def build_index(
    paths: Iterable[str | Path],
    out: str | Path,
    model: str | None = None,
    detector: str | None = None,
    resume: bool = False,
    progress: bool = False,
) -> dict:
    """Index every face of every image under `paths` into the folder `out` (see module doc).

    Without `resume`, images already in the index are indexed again (replaced).
    """
    start = time.perf_counter()
    loaded = load_identity_model(model)
    template = model_template(loaded.config)
    dim = int(loaded.config["faceres"].get("embedding_size") or loaded.config["num_classes"])
    store = FaceStore.open(out, model=loaded.name, dim=dim)
    files = image_files(paths)
    done = store.done() if resume else set()
    todo = [p for p in files if str(p) not in done]
    bar = tqdm(total=len(todo), unit="image", desc="indexing") if progress else None
    batch: list[tuple[Path, str | None, list, list, str | None]] = []
    totals = {"faces": 0, "failed": 0}

    def flush() -> None:
        face_views = [v for item in batch for v in item[3]]
        emb = (
            embed_views(face_views, lambda crops: embed_crops(crops, loaded))
            if face_views
            else np.zeros((0, dim), np.float32)
        )
        k = 0
        for path, sha, faces, views_, error in batch:
            records = []
            for number, face in enumerate(faces, start=1):
                records.append(
                    FaceRecord(
                        str(path),
                        number,
                        [round(v, 2) for v in face.box],
                        np.round(face.landmarks, 2).tolist(),
                        face.detector,
                        round(float(face.score), 4),
                        assess(face, views_[number - 1][0]).to_dict(),
                        emb[k],
                    )
                )
                k += 1
            store.add_image(str(path), sha, records, error)
            totals["faces"] += len(records)
            totals["failed"] += error is not None
        if bar is not None:
            bar.update(len(batch))
        batch.clear()

    for item in _pending(todo, detector, template):
        batch.append(item)
        if sum(len(i[3]) for i in batch) >= BATCH_FACES:
            flush()
    flush()
    if bar is not None:
        bar.close()
    store.faiss_index()  # written now, so a search starts without rebuilding it
    store.close()
    return {
        "index": str(out),
        "model": loaded.name,
        "images": len(todo),
        "skipped": len(files) - len(todo),
        "faces": totals["faces"],
        "failed": totals["failed"],
        "seconds": round(time.perf_counter() - start, 2),
    }
