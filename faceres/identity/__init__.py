"""Face verification: are two photos the same person?

Pipeline: decode (`load_image`) → the faces of both photos, aligned, embedded and assessed by the
one face pipeline (`faceres.face.pipeline`) → the one verdict (`faceres.identity.verdict.judge`):
the cosine similarity against the model's calibrated threshold and band, the quality gate's
reasons, and how often calibration pairs scored like this.

Faces are numbered from 1, largest first, everywhere (arguments, results, JSON, CLI, app).
`compare` decides again for other faces of the same photos from their records, without running
the model: the app's face pickers use it.

>>> from faceres.identity import verify
>>> result = verify("a.jpg", "b.jpg")
>>> result.verdict, round(result.similarity, 3), result.threshold, result.chosen
('same', 0.977, 0.914234, (1, 1))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from faceres import registry
from faceres.detect import Face
from faceres.errors import ModelError, NoFaceError
from faceres.face.pipeline import FacePipeline, FaceRecord, face_dict, split
from faceres.face.quality import FaceQuality
from faceres.identity.verdict import Verdict, decide, judge
from faceres.imageio import ImageInput, load_image
from faceres.stopwatch import Stopwatch

__all__ = [
    "VerifyResult",
    "Verdict",
    "calibration",
    "compare",
    "decide",
    "embed",
    "judge",
    "judge_members",
    "verify",
]

MAX_FACES = 12
"""Faces of one photo (largest first) that `verify(..., every_face=True)` embeds: what the app's
face pickers offer."""


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of `verify` or `compare`: the verdict on face `chosen[i]` (from 1) of each photo.
    `faces[i]` are all faces found in photo i (largest first), `records[i]` those embedded (the
    chosen one, or up to `MAX_FACES`), `timings` milliseconds per stage (both photos)."""

    decided: Verdict
    faces: tuple[list[Face], list[Face]]
    records: tuple[list[FaceRecord], list[FaceRecord]]
    chosen: tuple[int, int]
    model: str
    detector: str
    members: tuple[tuple[str, Verdict], ...] = ()
    timings: dict[str, float] = field(default_factory=dict)

    similarity = property(lambda self: self.decided.similarity, doc="Cosine similarity.")
    threshold = property(lambda self: self.decided.threshold, doc="The model's threshold.")
    band = property(lambda self: self.decided.band, doc="Half-width of the uncertain band.")
    verdict = property(lambda self: self.decided.verdict, doc="same, different or uncertain.")
    reasons = property(lambda self: self.decided.reasons, doc="The quality gate's reasons.")
    rates = property(lambda self: self.decided.rates, doc="How calibration pairs scored.")

    @property
    def disagreement(self) -> str:
        """For a fused model whose members' own verdicts differ, that in words, else ""."""
        if len({v.verdict for _, v in self.members}) < 2:
            return ""
        said = ", ".join(f"{name} says {v.verdict}" for name, v in self.members)
        return f"The networks disagree: {said}."

    @property
    def compared(self) -> tuple[FaceRecord, FaceRecord]:
        """The records of the two faces compared."""
        a, b = (
            next(r for r in records if r.number == n)
            for records, n in zip(self.records, self.chosen, strict=True)
        )
        return a, b

    @property
    def chosen_faces(self) -> tuple[Face, Face]:
        """The two faces compared."""
        return self.compared[0].face, self.compared[1].face

    @property
    def crops(self) -> tuple[np.ndarray, np.ndarray]:
        """The aligned crops of the two faces compared."""
        return self.compared[0].crop, self.compared[1].crop

    @property
    def embeddings(self) -> np.ndarray:
        """2×D: the embeddings of the two faces compared."""
        return np.stack([r.embedding for r in self.compared])

    @property
    def quality(self) -> tuple[FaceQuality, FaceQuality]:
        """The quality records of the two faces compared."""
        return self.compared[0].quality, self.compared[1].quality

    def to_dict(self) -> dict:
        """JSON-ready summary (no pixels): the one details schema of the CLI, API and app."""
        return {
            "verdict": self.verdict,
            "similarity": round(self.similarity, 6),
            "threshold": self.threshold,
            "band": self.band,
            "reasons": list(self.reasons),
            "rates": self.rates,
            "model": self.model,
            "detector": self.detector,
            "images": [
                _photo_dict(faces, records, number)
                for faces, records, number in zip(
                    self.faces, self.records, self.chosen, strict=True
                )
            ],
            "timings_ms": {k: round(v, 2) for k, v in self.timings.items()},
        } | (
            {
                "members": [
                    {
                        "model": name,
                        "similarity": round(v.similarity, 6),
                        "threshold": v.threshold,
                        "band": v.band,
                        "verdict": v.verdict,
                    }
                    for name, v in self.members
                ],
                "disagreement": self.disagreement,
            }
            if self.members
            else {}
        )


def _photo_dict(faces: list[Face], records: list[FaceRecord], chosen: int) -> dict:
    """One photo's faces (with the quality of those embedded), the chosen one and its quality."""
    embedded = {r.number: r for r in records}
    rows = [
        embedded[n].to_dict() if n in embedded else face_dict(n, face)
        for n, face in enumerate(faces, start=1)
    ]
    return {"faces": rows, "chosen": chosen, "quality": embedded[chosen].quality.to_dict()}


def pick_face(faces: Sequence, number: int | None, label: str = "the image") -> int:
    """The number (from 1, largest first) of the face to use: `number` if given (checked), else 1.

    >>> pick_face(["f1", "f2"], None), pick_face(["f1", "f2"], 2)
    (1, 2)
    """
    if not faces:
        raise NoFaceError(
            f"No face found in {label}; use a photo where the face is clearly visible."
        )
    if number is None:
        return 1
    if not 1 <= number <= len(faces):
        raise NoFaceError(
            f"{label} has {len(faces)} face(s); there is no face {number} "
            f"(faces are numbered 1 to {len(faces)}, largest first)."
        )
    return number


def calibration(model: str, config: dict | None = None) -> dict:
    """Identity model `model`'s calibration: the `faceres` block of its `config` (default: its
    registry config), checked."""
    meta = (config or registry.model_config(model))["faceres"]
    if "threshold" not in meta:
        raise ModelError(f"{model} has no calibrated threshold; run `faceres eval lfw`.")
    return meta


def judge_members(
    a: FaceRecord, b: FaceRecord, meta: dict, metas: dict[str, dict] | None = None
) -> tuple[tuple[str, Verdict], ...]:
    """A fused model's (calibration `meta`) members' own verdicts on faces `a` and `b`: each
    member's part of the fused embeddings judged with its own calibration (`metas[name]`, default
    the registry's); () for a single model."""
    parts = meta.get("members", [])
    if not parts:
        return ()
    dims = [int(part["dim"]) for part in parts]
    quality = (a.quality, b.quality)
    return tuple(
        (
            part["model"],
            judge(x, y, quality, (metas or {}).get(part["model"]) or calibration(part["model"])),
        )
        for part, x, y in zip(
            parts, split(a.embedding, dims), split(b.embedding, dims), strict=True
        )
    )


def compare(
    records: tuple[list[FaceRecord], list[FaceRecord]],
    model: str,
    face1: int | None = None,
    face2: int | None = None,
    faces: tuple[list[Face], list[Face]] | None = None,
    meta: dict | None = None,
    metas: dict[str, dict] | None = None,
) -> VerifyResult:
    """The verdict on face `face1` of the first photo and face `face2` of the second (default the
    largest), from their `records` (no model run) with the calibration `meta` (default: registry
    model `model`'s); for a fused model, its members' verdicts too (`judge_members`, `metas`).
    `faces`: every face found in each photo (default: those of the records).

    >>> compare(verify("group.jpg", "b.jpg", every_face=True).records, "dlib-resnet29-face", 2)
    """
    faces = faces or (
        [r.face for r in records[0]],
        [r.face for r in records[1]],
    )
    numbers = [
        pick_face(found, number, f"photo {i}")
        for i, (found, number) in enumerate(zip(faces, (face1, face2), strict=True), start=1)
    ]
    chosen = (numbers[0], numbers[1])
    embedded = [{r.number: r for r in recs} for recs in records]
    for i, (have, n) in enumerate(zip(embedded, chosen, strict=True), start=1):
        if n not in have:
            raise NoFaceError(f"Face {n} of photo {i} was not embedded (at most {MAX_FACES}).")
    a, b = embedded[0][chosen[0]], embedded[1][chosen[1]]
    meta = meta or calibration(model)
    decided = judge(a.embedding, b.embedding, (a.quality, b.quality), meta)
    members = judge_members(a, b, meta, metas)
    return VerifyResult(decided, faces, records, chosen, model, a.face.detector, members)


def verify(
    img1: ImageInput,
    img2: ImageInput,
    model: str | None = None,
    face1: int | None = None,
    face2: int | None = None,
    detector: str | None = None,
    every_face: bool = False,
) -> VerifyResult:
    """Compare face number `face1` of `img1` with face `face2` of `img2` (from 1, largest first;
    default 1) with identity model `model`. With `every_face`, the `MAX_FACES` largest faces of
    each photo are embedded too (for `compare`), not only the chosen ones.

    Raises `NoFaceError` when an image has no face (or no face `face1` / `face2`).

    >>> verify("a.jpg", "b.jpg", model="dlib-resnet29-face").verdict
    'same'
    """
    pipeline = FacePipeline.for_model(model, detector)
    meta = calibration(pipeline.model, pipeline.config)
    metas = {m.name: calibration(m.name, m.config) for m in pipeline.members}
    watch = Stopwatch()
    images = (load_image(img1), load_image(img2))
    watch.lap("decode")
    faces = (pipeline.detect(images[0]), pipeline.detect(images[1]))
    chosen = [
        pick_face(found, number, f"image {i}")
        for i, (found, number) in enumerate(zip(faces, (face1, face2), strict=True), start=1)
    ]
    watch.lap("detect")
    numbers = [
        sorted({n, *range(1, min(len(found), MAX_FACES) + 1)}) if every_face else [n]
        for found, n in zip(faces, chosen, strict=True)
    ]
    made = pipeline.records(images, faces, numbers, watch)
    result = compare((made[0], made[1]), pipeline.model, *chosen, faces, meta, metas)
    return replace(result, timings=watch.timings())


def embed(
    img: ImageInput, model: str | None = None, face: int | None = None, detector: str | None = None
) -> np.ndarray:
    """L2-normalised embedding (D,) of face number `face` of `img` (from 1; default the largest).

    >>> embed("a.jpg").shape
    (128,)
    """
    pipeline = FacePipeline.for_model(model, detector)
    image = load_image(img)
    faces = pipeline.detect(image)
    number = pick_face(faces, face)
    return pipeline.records([image], [faces], [[number]])[0][0].embedding
