"""Build a face index: every face of every image under some paths, embedded in batches.

A file that cannot be read, or holds no face, is recorded (`images.error`, or 0 faces) and the
build goes on. `resume=True` skips the images already written, so a build killed at any moment
and run again ends with the same index (each image is one SQLite transaction).

>>> summary = build_index(["photos/"], "photos.index")
>>> sorted(summary)
['failed', 'faces', 'images', 'index', 'model', 'seconds', 'skipped']
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from tqdm import tqdm

from faceres.errors import FaceresError
from faceres.face.pipeline import FacePipeline
from faceres.search.embed import ImageFaces, embed_files
from faceres.search.ray_engine import ray_engine
from faceres.search.store import FaceStore

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
BATCH_IMAGES = 16
"""Images whose faces are embedded together (views and mirror images in one forward pass)."""


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


def local_engine(files: Sequence[Path], model: str, detector: str | None) -> Iterator[ImageFaces]:
    """`embed_files` over `files` in batches of `BATCH_IMAGES`, in this process."""
    pipeline = FacePipeline.for_model(model, detector)
    for start in range(0, len(files), BATCH_IMAGES):
        yield from embed_files(files[start : start + BATCH_IMAGES], pipeline)


def build_index(
    paths: Iterable[str | Path],
    out: str | Path,
    model: str | None = None,
    detector: str | None = None,
    resume: bool = False,
    progress: bool = False,
    engine: str = "local",
) -> dict:
    """Index every face of every image under `paths` into the folder `out` (see module doc),
    embedding with `engine` ("local", or "ray": `faceres.search.ray_engine`). This process
    writes each image as its result arrives, whatever the engine.

    Without `resume`, images already in the index are indexed again (replaced).
    """
    start = time.perf_counter()
    pipeline = FacePipeline.for_model(model)
    config = pipeline.config
    dim = int(config["faceres"].get("embedding_size") or config["num_classes"])
    store = FaceStore.open(out, model=pipeline.model, dim=dim, writer=True)
    try:
        files = image_files(paths)
        done = store.done() if resume else set()
        todo = [p for p in files if str(p) not in done]
        if engine == "ray":
            results = ray_engine(todo, pipeline.model, detector, BATCH_IMAGES)
        elif engine == "local":
            results = local_engine(todo, pipeline.model, detector)
        else:
            raise FaceresError(f"Unknown engine {engine!r}; use local or ray.")
        totals = {"faces": 0, "failed": 0}
        for path, sha, records, error in tqdm(
            results, total=len(todo), unit="image", desc="indexing", disable=not progress
        ):
            store.add_image(path, sha, records, error)
            totals["faces"] += len(records)
            totals["failed"] += error is not None
        store.faiss_index()  # written now, so a search starts without rebuilding it
    finally:
        store.close()
    return {
        "index": str(out),
        "model": pipeline.model,
        "images": len(todo),
        "skipped": len(files) - len(todo),
        "faces": totals["faces"],
        "failed": totals["failed"],
        "seconds": round(time.perf_counter() - start, 2),
    }
