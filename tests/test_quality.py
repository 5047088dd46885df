"""The quality record and gate, and what a score means: each value against a hand-computed case
or another library (scipy's Laplacian)."""

import math

import numpy as np
import pytest
from scipy import ndimage

from faceres.detect import Face
from faceres.face.quality import (
    NOSE_DEPTH,
    FaceQuality,
    assess,
    estimate_yaw,
    gate_reasons,
    sharpness,
)
from faceres.identity.calibration import rates_text, score_rates

BOX = (0.0, 0.0, 100.0, 100.0)


def yunet_face(nose_x: float, eyes: tuple[float, float] = (40.0, 80.0), y: float = 50.0) -> Face:
    left, right = eyes
    points = np.array([[right, y], [left, y], [nose_x, y + 20], [75, y + 40], [45, y + 40]])
    return Face(BOX, points.astype(np.float32), "yunet5", 0.87, "yunet")


def test_frontal_and_turned_faces_by_hand():
    assert estimate_yaw(yunet_face(60.0)) == pytest.approx(0.0)
    # eyes 40 px apart; the nose 0.4 x 40 x tan(30°) = 9.24 px right of their midpoint: 30°
    turned = yunet_face(60.0 + NOSE_DEPTH["yunet5"] * 40 * math.tan(math.radians(30)))
    assert estimate_yaw(turned) == pytest.approx(30.0, abs=1e-3)
    mirrored = yunet_face(60.0 - NOSE_DEPTH["yunet5"] * 40 * math.tan(math.radians(30)))
    assert estimate_yaw(mirrored) == pytest.approx(-30.0, abs=1e-3)


def test_yaw_ignores_roll():
    # the face of the previous test rotated 90° in the image: eyes above each other
    nose_offset = NOSE_DEPTH["yunet5"] * 40 * math.tan(math.radians(30))
    points = np.array([[50, 80], [50, 40], [50 - 20, 60 + nose_offset], [10, 75], [10, 45]])
    face = Face(BOX, points.astype(np.float32), "yunet5", 0.9, "yunet")
    assert abs(estimate_yaw(face)) == pytest.approx(30.0, abs=1e-3)


def test_dlib_eye_centres_are_the_means_of_the_corners():
    points = np.array([[90, 50], [70, 52], [30, 50], [50, 52], [60, 75]], np.float32)
    face = Face(BOX, points, "dlib5", 1.0, "dlib")
    crop = np.zeros((20, 20, 3), np.uint8)
    # eye centres (80, 51) and (40, 51): 40 px apart; the nose base at the midpoint's x
    q = assess(face, crop)
    assert q.eye_distance == pytest.approx(40.0) and q.yaw == pytest.approx(0.0)


def test_sharpness_is_scipys_laplacian_variance():
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (40, 30)).astype(np.uint8)
    crop = np.repeat(grey[:, :, None], 3, axis=2)
    expected = ndimage.laplace(grey.astype(np.float64), mode="mirror").var()
    assert sharpness(crop) == pytest.approx(expected, rel=1e-9)
    assert sharpness(np.full((40, 30, 3), 128, np.uint8)) == 0.0


def test_gate_reasons_in_words():
    q = FaceQuality(eye_distance=38.4, sharpness=12.0, yaw=-52.0, score=0.95)
    assert gate_reasons(q, {}) == []
    assert gate_reasons(q, {"min_eye_distance": 30, "max_yaw": 60}) == []
    assert gate_reasons(q, {"min_eye_distance": 45}) == ["face 38 px between the eyes; needs ≥ 45"]
    assert gate_reasons(q, {"max_yaw": 45, "min_sharpness": 20, "min_score": 0.5}) == [
        "face turned 52° from the camera; needs ≤ 45°",
        "face blurred (sharpness 12; needs ≥ 20)",
    ]


def test_score_rates_count_by_hand():
    scores = {"genuine": [0.5, 0.8, 0.9, 0.95], "impostor": [0.1, 0.4, 0.8, 0.85, 0.2]}
    rates = score_rates(0.8, scores)
    # impostors >= 0.8: 0.8, 0.85 (2 of 5); genuines <= 0.8: 0.5, 0.8 (2 of 4)
    assert (rates["impostor_count"], rates["impostors"]) == (2, 5)
    assert (rates["genuine_count"], rates["genuines"]) == (2, 4)
    assert rates["impostor_at_least"] == 0.4 and rates["genuine_at_most"] == 0.5
    text = rates_text(rates)
    assert "at least 0.800 in 2 of 5 calibration pairs (40.00%)" in text
    assert "at most 0.800 in 2 of 4 (50.00%)" in text


def test_one_verdict_from_two_embeddings_by_hand():
    """`identity.judge` against hand-computed cases: the cosine of (3, 4) and (4, 3) is 24/25 =
    0.96; threshold 0.9 with band 0.02 calls it "same", 0.95 ± 0.02 "uncertain"; a face below
    the gate makes it "uncertain" with the gate's reason; the rates count the calibration
    scores by hand (impostors ≥ 0.96: 1 of 4; genuine ≤ 0.96: 2 of 3)."""
    import numpy as np

    from faceres.identity import judge

    a, b = np.array([3.0, 4.0]), np.array([4.0, 3.0])
    good, small = FaceQuality(40.0, 100.0, 0.0, 0.9), FaceQuality(9.0, 100.0, 0.0, 0.9)
    meta = {
        "threshold": 0.9,
        "band": 0.02,
        "quality_gate": {"min_eye_distance": 13},
        "scores": {"genuine": [0.5, 0.96, 0.99], "impostor": [0.1, 0.2, 0.3, 0.97]},
    }
    decided = judge(a, b, [good, good], meta)
    assert decided.similarity == pytest.approx(0.96)
    assert decided.verdict == "same" and decided.reasons == ()
    assert (decided.rates["impostor_count"], decided.rates["genuine_count"]) == (1, 2)
    assert judge(a, b, [good, good], {**meta, "threshold": 0.95}).verdict == "uncertain"
    gated = judge(a, b, [good, small], meta)
    assert gated.verdict == "uncertain" and gated.reasons[0].startswith("photo 2: ")
