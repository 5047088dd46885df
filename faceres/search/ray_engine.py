"""The index build's embedding on Ray Data: the same `embed_files` in model actors (GPU actors
where the cluster has GPUs), so `faceres index build --engine ray` runs unchanged from one
laptop (a local Ray instance) to a cluster (`RAY_ADDRESS=ray://head:10001`, or `ray start` on the
machine and `RAY_ADDRESS=auto`). The workers must see the image paths (a shared filesystem) and
get this process's `FACERES_*` and `HF_*` settings; the index itself is written by the calling
process only.

>>> rows = list(ray_engine([Path("a.jpg")], "dlib-resnet29-face", None))
>>> rows[0][0], len(rows[0][2])
('a.jpg', 1)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from faceres.face.pipeline import FacePipeline
from faceres.search.embed import embed_files
from faceres.search.store import IndexedFace

ACTORS = int(os.environ.get("FACERES_RAY_ACTORS", "1"))
"""Model actors (each holds one copy of the identity model); on a cluster, raise it."""


class RayEmbedder:
    """A Ray Data actor: the identity model loaded once, `embed_files` on each batch of paths."""

    def __init__(self, model: str, detector: str | None) -> None:
        self.pipeline = FacePipeline.for_model(model, detector)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        results = embed_files(list(batch["path"]), self.pipeline)
        return {
            "path": [r[0] for r in results],
            "sha256": [r[1] or "" for r in results],
            "error": [r[3] or "" for r in results],
            "faces": [
                json.dumps(
                    [{**vars(f), "vector": np.asarray(f.vector, np.float32).tolist()} for f in r[2]]
                )
                for r in results
            ],
        }


def ray_engine(
    files: Sequence[Path], model: str, detector: str | None, batch_images: int = 16
) -> Iterator[tuple[str, str | None, list[IndexedFace], str | None]]:
    """(path, sha256, faces, error) for each file, embedded by `RayEmbedder` actors."""
    import ray
    import ray.data

    if not ray.is_initialized():
        ray.init(
            address=os.environ.get("RAY_ADDRESS"), include_dashboard=False, log_to_driver=False
        )
    if not files:
        return
    gpus = 1 if ray.cluster_resources().get("GPU", 0) > 0 else 0  # the cluster's, not ours
    ds = ray.data.from_items([{"path": str(p)} for p in files]).map_batches(
        RayEmbedder,
        fn_constructor_kwargs={"model": model, "detector": detector},
        batch_size=batch_images,
        concurrency=ACTORS,
        num_gpus=gpus,
    )
    for row in ds.iter_rows():
        faces = [
            IndexedFace(**{**f, "vector": np.asarray(f["vector"], np.float32)})
            for f in json.loads(row["faces"])
        ]
        yield row["path"], row["sha256"] or None, faces, row["error"] or None
