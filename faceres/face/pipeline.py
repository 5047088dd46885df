"""The one face pipeline: a decoded photo → its faces (detected, largest first) → each face
aligned onto the identity model's template (`views`) → embedded → assessed, as `FaceRecord`s.

Verification (`faceres.identity`), the face index (`faceres.search`), the LFW evaluation and the
app's face pickers all build faces here; nothing else runs detect → align → embed in sequence.

>>> pipeline = FacePipeline.for_model()
>>> records = pipeline.read([load_image("a.jpg")])[0]
>>> records[0].number, records[0].embedding.shape, records[0].quality.eye_distance > 0
(1, (128,), True)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from faceres.detect import Face, detect_faces
from faceres.face.align import model_template, views
from faceres.face.quality import FaceQuality, assess
from faceres.registry.runtime import Runner, load_runner, standardise
from faceres.stopwatch import Stopwatch

Embedder = Callable[[list[np.ndarray]], np.ndarray]
"""Aligned RGB uint8 crops → one embedding per crop (any norm)."""


def load_identity_model(model: str | None = None) -> Runner:
    """The identity model `model` (registry name), or the registry's default identity model, on
    this machine's engine (`faceres.registry.runtime`)."""
    return load_runner("identity", model)


def embed_crops(crops: Sequence[np.ndarray], runner: Runner) -> np.ndarray:
    """L2-normalised embeddings (N, D) float32 of aligned RGB uint8 crops: each crop and its
    mirror image are embedded and their embeddings summed (flip test-time augmentation, chosen on
    LFW View 1: +0.2 points of DevTest accuracy for the dlib ResNet).

    >>> embed_crops([crop], load_identity_model()).shape
    (1, 128)
    """
    batch = standardise(crops, runner.config)
    out = runner(np.concatenate([batch, batch[..., ::-1]])).astype(np.float32)
    out = out[: len(crops)] + out[len(crops) :]
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def embed_views(face_views: Sequence[Sequence[np.ndarray]], embedder: Embedder) -> np.ndarray:
    """One L2-normalised embedding per face from its aligned views (`views`): the normalised sum
    of the views' embeddings, all views embedded in one batch."""
    flat = [crop for crops in face_views for crop in crops]
    emb = embedder(flat)
    ends = np.cumsum([len(crops) for crops in face_views])
    out = np.stack(
        [emb[end - len(crops) : end].sum(0) for crops, end in zip(face_views, ends, strict=True)]
    )
    return out / np.linalg.norm(out, axis=1, keepdims=True)


@dataclass(frozen=True)
class FaceRecord:
    """One face of a photo as an identity model sees it: its number there (from 1, largest
    first), the detector's `face` (box, landmarks, score), its aligned `views` (the first is the
    crop shown and assessed), its L2-normalised `embedding` and its `quality`."""

    number: int
    face: Face
    views: tuple[np.ndarray, ...]
    embedding: np.ndarray
    quality: FaceQuality

    @property
    def crop(self) -> np.ndarray:
        """The aligned crop (the template's own view)."""
        return self.views[0]

    def to_dict(self) -> dict:
        """JSON-ready summary (no pixels, no embedding): `face_dict` and the quality record."""
        return face_dict(self.number, self.face) | {"quality": self.quality.to_dict()}


def face_dict(number: int, face: Face) -> dict:
    """A detected face as JSON: its number, box, landmarks, score and detector."""
    return {
        "face": number,
        "box": [round(v, 2) for v in face.box],
        "landmarks": np.round(face.landmarks, 2).tolist(),
        "score": round(float(face.score), 4),
        "detector": face.detector,
    }


@dataclass(frozen=True)
class FacePipeline:
    """detect → align → embed → assess with one identity model (`embedder` and its alignment
    `template`) and one detector (None: auto). `model` names the registry model, if any, and
    `config` is its config."""

    embedder: Embedder
    template: dict
    detector: str | None = None
    model: str = ""
    config: dict = field(default_factory=dict)

    @classmethod
    def for_model(cls, model: str | None = None, detector: str | None = None) -> FacePipeline:
        """The pipeline of registry identity model `model` (default: the registry's default)."""
        runner = load_identity_model(model)
        return cls(
            lambda crops: embed_crops(crops, runner),
            model_template(runner.config),
            detector,
            runner.name,
            runner.config,
        )

    def detect(self, image: np.ndarray) -> list[Face]:
        """Every face of `image`, largest first."""
        return detect_faces(image, self.detector)

    def records(
        self,
        images: Sequence[np.ndarray],
        faces: Sequence[Sequence[Face]],
        numbers: Sequence[Sequence[int]] | None = None,
        watch: Stopwatch | None = None,
    ) -> list[list[FaceRecord]]:
        """For each image, the records of its faces numbered `numbers[i]` (from 1; default every
        face): aligned, embedded (every view of every face in one batch) and assessed. `watch`
        times the "align" and "embed" stages."""
        watch = watch or Stopwatch()
        numbers = numbers if numbers is not None else [range(1, len(f) + 1) for f in faces]
        chosen = [
            [(n, found[n - 1], views(image, found[n - 1], self.template)) for n in picked]
            for image, found, picked in zip(images, faces, numbers, strict=True)
        ]
        flat = [item for items in chosen for item in items]
        watch.lap("align")
        emb = embed_views([v for *_, v in flat], self.embedder) if flat else []
        watch.lap("embed")
        made = iter(
            FaceRecord(n, face, tuple(v), e, assess(face, v[0]))
            for (n, face, v), e in zip(flat, emb, strict=True)
        )
        return [[next(made) for _ in items] for items in chosen]

    def read(
        self, images: Sequence[np.ndarray], limit: int | None = None
    ) -> list[list[FaceRecord]]:
        """The records of every face (the `limit` largest) of each image."""
        faces = [self.detect(image)[:limit] for image in images]
        return self.records(images, faces)
