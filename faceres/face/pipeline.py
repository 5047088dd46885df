"""The one face pipeline: a decoded photo → its faces (detected, largest first) → each face
aligned onto the identity model's template (`views`) → embedded → assessed, as `FaceRecord`s.

Verification (`faceres.identity`), the face index (`faceres.search`), the LFW evaluation and the
app's face pickers all build faces here; nothing else runs detect → align → embed in sequence.

A pipeline runs one or more identity networks (`Member`s), each on the face aligned onto its own
template. A fused model (a registry identity model whose config lists `faceres.members`) embeds
each face as its members' L2-normalised embeddings, each scaled by √weight and concatenated
(`fuse`): the dot product of two fused embeddings is the weighted sum of the members' cosine
similarities, and with weights summing to 1 every fused embedding has unit norm, so the verdict,
the index and search take it like any model's. `split` recovers each member's embedding.

>>> pipeline = FacePipeline.for_model()
>>> records = pipeline.read([load_image("a.jpg")])[0]
>>> records[0].number, records[0].embedding.shape, records[0].quality.eye_distance > 0
(1, (128,), True)
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from faceres import registry
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


def fuse(embeddings: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """(N, ΣD): each member's L2-normalised embeddings (N, D_i) scaled by √weight, concatenated.

    >>> fuse([np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])], [0.25, 0.75]).round(3).tolist()
    [[0.5, 0.0, 0.0, 0.866]]
    """
    return np.concatenate(
        [np.sqrt(np.float32(w)) * e for e, w in zip(embeddings, weights, strict=True)], axis=-1
    )


def split(embedding: np.ndarray, dims: Sequence[int]) -> list[np.ndarray]:
    """A fused embedding's member embeddings (`dims` their sizes), each L2-normalised again."""
    parts = np.split(embedding, np.cumsum(dims)[:-1], axis=-1)
    return [p / np.maximum(np.linalg.norm(p, axis=-1, keepdims=True), 1e-12) for p in parts]


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
    crop shown and assessed), its L2-normalised `embedding`, its `quality`, and for a fused
    model each member's crop (`member_crops`, in the members' order)."""

    number: int
    face: Face
    views: tuple[np.ndarray, ...]
    embedding: np.ndarray
    quality: FaceQuality
    member_crops: tuple[np.ndarray, ...] = ()

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
class Member:
    """One identity network of a pipeline: `embedder` with its alignment `template`, registry
    model `name` and `config` (if any) and `weight` in the fused similarity (1 for a model on
    its own)."""

    embedder: Embedder
    template: dict
    name: str = ""
    weight: float = 1.0
    config: dict = field(default_factory=dict)


def member(model: str, weight: float = 1.0) -> Member:
    """Registry identity model `model` as a pipeline `Member`."""
    runner = load_identity_model(model)
    embedder = functools.partial(embed_crops, runner=runner)
    return Member(embedder, model_template(runner.config), runner.name, weight, runner.config)


def model_members(model: str | None = None) -> tuple[Member, ...]:
    """The networks of registry identity model `model` (default: the registry's default): its
    `faceres.members` when it is a fused model, else itself."""
    name = registry.task_model("identity", model)
    if registry.get_entry(name)["architecture"] != registry.FUSION:
        return (member(name),)
    parts = registry.model_config(name)["faceres"]["members"]
    return tuple(member(part["model"], float(part["weight"])) for part in parts)


@dataclass(frozen=True)
class FacePipeline:
    """detect → align → embed → assess with one identity model (its `members`: one network, or
    the members of a fused model) and one detector (None: auto). `model` names the registry
    model, if any, and `config` is its config."""

    members: tuple[Member, ...]
    detector: str | None = None
    model: str = ""
    config: dict = field(default_factory=dict)

    @classmethod
    def for_model(cls, model: str | None = None, detector: str | None = None) -> FacePipeline:
        """The pipeline of registry identity model `model` (default: the registry's default)."""
        name = registry.task_model("identity", model)
        members = model_members(name)
        own = len(members) == 1 and members[0].name == name
        return cls(
            members, detector, name, members[0].config if own else registry.model_config(name)
        )

    @property
    def template(self) -> dict:
        """The first member's template: the crop each record shows and is assessed on."""
        return self.members[0].template

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
        face): aligned onto each member's template, embedded (per member, every view of every
        face in one batch), fused and assessed on the first member's crop. `watch` times the
        "align" and "embed" stages."""
        watch = watch or Stopwatch()
        numbers = numbers if numbers is not None else [range(1, len(f) + 1) for f in faces]
        chosen = [
            [(n, found[n - 1], image) for n in picked]
            for image, found, picked in zip(images, faces, numbers, strict=True)
        ]
        flat = [item for items in chosen for item in items]
        aligned = [
            [views(image, face, m.template) for _, face, image in flat] for m in self.members
        ]
        watch.lap("align")
        emb = (
            fuse(
                [embed_views(v, m.embedder) for v, m in zip(aligned, self.members, strict=True)],
                [m.weight for m in self.members],
            )
            if flat
            else []
        )
        watch.lap("embed")
        fused = len(self.members) > 1
        made = iter(
            FaceRecord(
                n,
                face,
                tuple(aligned[0][i]),
                e,
                assess(face, aligned[0][i][0]),
                tuple(crops[i][0] for crops in aligned) if fused else (),
            )
            for i, ((n, face, _), e) in enumerate(zip(flat, emb, strict=True))
        )
        return [[next(made) for _ in items] for items in chosen]

    def read(
        self, images: Sequence[np.ndarray], limit: int | None = None
    ) -> list[list[FaceRecord]]:
        """The records of every face (the `limit` largest) of each image."""
        faces = [self.detect(image)[:limit] for image in images]
        return self.records(images, faces)
