"""Face verification: are two photos the same person?

Pipeline: decode (`load_image`) → detect (`detect_faces`) → align (`alignment.views`: the model's
template, and dlib's own chip where the template asks for it) → embed
(an identity model from the registry) → cosine similarity of the L2-normalised embeddings. Higher
is more similar; the verdict compares it with the threshold calibrated on LFW View 1 and stored in
the model's config (`faceres.threshold`), with an "uncertain" band of `faceres.band` either side,
and is "uncertain" too when a face fails the quality gate (`faceres.quality`). Every answer says
how often calibration pairs scored like this one (`faceres.calibration`).

Faces are numbered from 1, largest first, everywhere (arguments, results, JSON, CLI, app).

>>> from faceres.identity import verify
>>> result = verify("a.jpg", "b.jpg")
>>> result.verdict, round(result.similarity, 3), result.threshold, result.chosen
('same', 0.977, 0.914234, (1, 1))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from faceres import registry
from faceres.align import model_template, views
from faceres.calibration import score_rates
from faceres.detect import Face, detect_faces
from faceres.errors import ModelError, NoFaceError
from faceres.imageio import ImageInput, load_image
from faceres.quality import FaceQuality, assess, gate_reasons
from faceres.registry.runtime import Runner, load_runner, standardise
from faceres.stopwatch import Stopwatch

DEFAULT_BAND = 0.02
"""Half-width of the "uncertain" band when a model's config declares none."""


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of `verify`. `faces[i]` are all faces of image i (largest first), `chosen[i]` the
    number of the one used (from 1), `crops[i]` its aligned crop, `embeddings[i]` its embedding and
    `quality[i]` its quality record; `reasons` say why the quality gate made the verdict
    "uncertain" (empty when it did not); `rates` say how often calibration pairs scored like this
    (`faceres.calibration.score_rates`, empty for a model without stored scores); `timings` are
    milliseconds per stage (both images together)."""

    similarity: float
    threshold: float
    band: float
    verdict: str
    faces: tuple[list[Face], list[Face]]
    chosen: tuple[int, int]
    crops: tuple[np.ndarray, np.ndarray]
    embeddings: np.ndarray
    model: str
    detector: str
    quality: tuple[FaceQuality, FaceQuality]
    reasons: tuple[str, ...] = ()
    rates: dict = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def chosen_faces(self) -> tuple[Face, Face]:
        """The two faces compared."""
        return self.faces[0][self.chosen[0] - 1], self.faces[1][self.chosen[1] - 1]

    def to_dict(self) -> dict:
        """JSON-ready summary (no pixels)."""
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
                {
                    "faces": [{"face": n, **_face_dict(f)} for n, f in enumerate(faces, start=1)],
                    "chosen": number,
                    "quality": quality.to_dict(),
                }
                for faces, number, quality in zip(
                    self.faces, self.chosen, self.quality, strict=True
                )
            ],
            "timings_ms": {k: round(v, 2) for k, v in self.timings.items()},
        }


def _face_dict(face: Face) -> dict:
    return {
        "box": [round(v, 2) for v in face.box],
        "landmarks": np.round(face.landmarks, 2).tolist(),
        "score": round(face.score, 4),
        "detector": face.detector,
    }


def load_identity_model(model: str | None = None) -> Runner:
    """The identity model `model` (registry name), or the registry's default identity model, on
    this machine's engine (`faceres.registry.runtime`)."""
    return load_runner("identity", model)


def embed_crops(crops: Sequence[np.ndarray], runner: Runner | registry.LoadedModel) -> np.ndarray:
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


def embed_views(
    face_views: Sequence[Sequence[np.ndarray]], embedder: Callable[[list[np.ndarray]], np.ndarray]
) -> np.ndarray:
    """One L2-normalised embedding per face from its aligned views (`alignment.views`): the
    normalised sum of the views' embeddings, all views embedded in one batch."""
    flat = [crop for crops in face_views for crop in crops]
    emb = embedder(flat)
    ends = np.cumsum([len(crops) for crops in face_views])
    out = np.stack(
        [emb[end - len(crops) : end].sum(0) for crops, end in zip(face_views, ends, strict=True)]
    )
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def decide(similarity: float, threshold: float, band: float, reasons: Sequence[str] = ()) -> str:
    """ "same" above `threshold + band`, "different" below `threshold - band`, else (or when the
    quality gate gave `reasons`) "uncertain".

    >>> decide(0.95, 0.9, 0.02), decide(0.91, 0.9, 0.02), decide(0.5, 0.9, 0.02)
    ('same', 'uncertain', 'different')
    >>> decide(0.95, 0.9, 0.02, ["face 20 px between the eyes; needs ≥ 30"])
    'uncertain'
    """
    if reasons:
        return "uncertain"
    if similarity >= threshold + band:
        return "same"
    if similarity < threshold - band:
        return "different"
    return "uncertain"


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


def quality_reasons(quality: Sequence[FaceQuality], gate: dict) -> tuple[str, ...]:
    """The quality gate's reasons for each face, prefixed with its photo ("photo 1: …")."""
    return tuple(
        f"photo {i}: {reason}"
        for i, q in enumerate(quality, start=1)
        for reason in gate_reasons(q, gate)
    )


@dataclass(frozen=True)
class Verdict:
    """The one verdict on two faces: their cosine similarity, the model's threshold and band,
    the decision, the quality gate's reasons, and how calibration pairs scored like this."""

    similarity: float
    threshold: float
    band: float
    verdict: str
    reasons: tuple[str, ...] = ()
    rates: dict = field(default_factory=dict)


def judge(a: np.ndarray, b: np.ndarray, quality: Sequence[FaceQuality], meta: dict) -> Verdict:
    """Same, different or uncertain for embeddings `a` and `b` (any norm) of two faces whose
    quality records are `quality`, with a model's calibration `meta` (its config's `faceres`
    block: threshold, band, quality gate, calibration scores). `verify`, the app's face pickers
    and its block removal all decide through this.

    >>> judge(np.array([1.0, 0.0]), np.array([1.0, 0.1]), [], {"threshold": 0.9}).verdict
    'same'
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    similarity = float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))
    threshold = float(meta["threshold"])
    band = float(meta.get("band", DEFAULT_BAND))
    reasons = quality_reasons(quality, meta.get("quality_gate", {}))
    return Verdict(
        similarity=similarity,
        threshold=threshold,
        band=band,
        verdict=decide(similarity, threshold, band, reasons),
        reasons=reasons,
        rates=score_rates(similarity, meta["scores"]) if "scores" in meta else {},
    )


def verify(
    img1: ImageInput,
    img2: ImageInput,
    model: str | None = None,
    face1: int | None = None,
    face2: int | None = None,
    detector: str | None = None,
) -> VerifyResult:
    """Compare face number `face1` of `img1` with face `face2` of `img2` (from 1, largest first;
    default 1) with identity model `model`.

    Raises `NoFaceError` when an image has no face (or no face `face1` / `face2`).

    >>> verify("a.jpg", "b.jpg", model="dlib-resnet29-face").verdict
    'same'
    """
    loaded = load_identity_model(model)
    meta = loaded.config["faceres"]
    if "threshold" not in meta:
        raise ModelError(f"{loaded.name} has no calibrated threshold; run `faceres eval lfw`.")
    watch = Stopwatch()
    images = (load_image(img1), load_image(img2))
    watch.lap("decode")
    faces = (detect_faces(images[0], detector), detect_faces(images[1], detector))
    chosen = (
        pick_face(faces[0], face1, "image 1"),
        pick_face(faces[1], face2, "image 2"),
    )
    watch.lap("detect")
    template = model_template(loaded.config)
    used = (faces[0][chosen[0] - 1], faces[1][chosen[1] - 1])
    face_views = [views(image, face, template) for image, face in zip(images, used, strict=True)]
    crops = (face_views[0][0], face_views[1][0])
    watch.lap("align")
    emb = embed_views(face_views, lambda batch: embed_crops(batch, loaded))
    watch.lap("embed")
    quality = (assess(used[0], crops[0]), assess(used[1], crops[1]))
    decided = judge(emb[0], emb[1], quality, meta)
    return VerifyResult(
        similarity=decided.similarity,
        threshold=decided.threshold,
        band=decided.band,
        verdict=decided.verdict,
        faces=faces,
        chosen=chosen,
        crops=crops,
        embeddings=emb,
        model=loaded.name,
        detector=used[0].detector,
        quality=quality,
        reasons=decided.reasons,
        rates=decided.rates,
        timings=watch.timings(),
    )


def embed(
    img: ImageInput, model: str | None = None, face: int | None = None, detector: str | None = None
) -> np.ndarray:
    """L2-normalised embedding (D,) of face number `face` of `img` (from 1; default the largest).

    >>> embed("a.jpg").shape
    (128,)
    """
    loaded = load_identity_model(model)
    image = load_image(img)
    faces = detect_faces(image, detector)
    number = pick_face(faces, face)
    face_views = [views(image, faces[number - 1], model_template(loaded.config))]
    return embed_views(face_views, lambda batch: embed_crops(batch, loaded))[0]
