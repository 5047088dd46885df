"""The one verdict on two faces: same, different or uncertain, with its reasons and rates.

A similarity (cosine of two embeddings; higher is more similar) is compared with the threshold
calibrated on LFW View 1 and stored in the model's config (`faceres.threshold`), with an
"uncertain" band of `faceres.band` either side; the verdict is "uncertain" too when a face fails
the quality gate (`faceres.face.quality`). Every verdict says how often calibration pairs scored
like this one (`faceres.identity.calibration`).

>>> judge(np.array([1.0, 0.0]), np.array([1.0, 0.1]), [], {"threshold": 0.9}).verdict
'same'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from faceres.face.quality import FaceQuality, gate_reasons
from faceres.identity.calibration import score_rates

DEFAULT_BAND = 0.02
"""Half-width of the "uncertain" band when a model's config declares none."""


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
    block: threshold, band, quality gate, calibration scores). Verification, the app's face
    pickers and its block removal all decide through this.

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
