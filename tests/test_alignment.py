"""Five-point alignment: the similarity fit, the warp, dlib's chip geometry, the views."""

import dataclasses

import cv2
import numpy as np
import pytest

from faceres.detect import Face, detect_faces
from faceres.detect.landmarks import dlib5_in_box
from faceres.errors import ModelError
from faceres.face.align import (
    align,
    dlib_chip_template,
    dlib_mean_face_yunet5,
    similarity_transform,
    views,
)


def _face(landmarks: np.ndarray, scheme: str = "yunet5") -> Face:
    return Face((0, 0, 1, 1), np.asarray(landmarks, np.float32), scheme, 1.0, "yunet")


def test_similarity_transform_recovers_a_known_one():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (5, 2))
    angle, scale, shift = np.deg2rad(23), 1.7, np.array([12.0, -4.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = src @ rot.T + shift
    matrix = similarity_transform(src, dst)
    np.testing.assert_allclose(matrix[:, :2], rot, atol=1e-9)
    np.testing.assert_allclose(matrix[:, 2], shift, atol=1e-9)


def test_similarity_transform_never_reflects():
    src = np.asarray(dlib_chip_template()["yunet5"]) + np.random.default_rng(1).normal(0, 3, (5, 2))
    mirrored = src * [-1, 1]
    assert np.linalg.det(similarity_transform(src, mirrored)[:, :2]) > 0


def test_dlib5_template_is_dlibs_own_chip_points():
    template = dlib_chip_template(150, 0.25)
    assert template["size"] == [150, 150]
    # get_face_chip_details: (padding + p) / (2 padding + 1) * size
    expected = (0.25 + np.array([0.8595674595992, 0.2134981538014])) / 1.5 * 150
    np.testing.assert_allclose(template["dlib5"][0], expected, atol=1e-3)


def test_mean_face_yunet5_points_are_symmetric_and_ordered():
    pts = dlib_mean_face_yunet5()
    assert pts[0, 0] < 0.5 < pts[1, 0] and pts[3, 0] < 0.5 < pts[4, 0]
    assert pts[0, 1] == pytest.approx(pts[1, 1], abs=1e-6)
    assert pts[0, 1] < pts[2, 1] < pts[3, 1]
    moved = np.asarray(dlib_chip_template(150, 0.25, 1.1, (0, 0.02))["yunet5"])
    base = np.asarray(dlib_chip_template(150, 0.25)["yunet5"])
    assert np.ptp(moved[:, 0]) == pytest.approx(1.1 * np.ptp(base[:, 0]), rel=1e-3)


@pytest.mark.parametrize("factor", [1.0, 5.0])
def test_align_puts_landmarks_on_the_template(factor):
    """Dots drawn at the landmarks land on the template points (also via the downscale path)."""
    template = dlib_chip_template(150, 0.25)
    target = np.asarray(template["yunet5"])
    angle = np.deg2rad(-15)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    landmarks = (target - 75) @ rot.T * 1.3 * factor + 300 * factor
    image = np.zeros((int(600 * factor), int(600 * factor), 3), np.uint8)
    for i, (x, y) in enumerate(landmarks):
        cv2.circle(image, (round(x), round(y)), round(3 * factor), (255, 40 * i, 0), -1)
    crop = align(image, _face(landmarks), template)
    assert crop.shape == (150, 150, 3) and crop.dtype == np.uint8
    for x, y in target:
        assert crop[round(y), round(x), 0] > 100


def test_align_fills_outside_with_black():
    template = {"size": [112, 112], "yunet5": [[38, 51], [73, 51], [56, 71], [41, 92], [70, 92]]}
    image = np.full((100, 100, 3), 255, np.uint8)
    # chip pixel (u, v) samples image pixel (u - 50, v - 50): the top-left is outside the image
    landmarks = np.asarray(template["yunet5"], np.float64) - 50
    crop = align(image, _face(landmarks), template)
    assert crop.shape == (112, 112, 3)
    assert crop[:45, :45].max() == 0 and crop[55:, 55:].min() == 255


def test_align_needs_the_scheme_in_the_template():
    with pytest.raises(ModelError, match="dlib5"):
        align(
            np.zeros((50, 50, 3), np.uint8),
            _face(np.zeros((5, 2)), "dlib5"),
            {"size": [112, 112], "yunet5": [[0, 0]] * 5},
        )


def test_views_add_dlib_s_own_chip_for_a_yunet_face(astronaut):
    dlib_face = detect_faces(astronaut, "dlib")[0]  # committed models only
    as_yunet = dataclasses.replace(dlib_face, scheme="yunet5", detector="yunet")
    box_fit = {"centre_shift": [0.0, 0.0], "side": 1.0}
    # the box dlib's detector drew gives back (within a pixel) the landmarks dlib found in it
    refit = dlib5_in_box(astronaut, as_yunet, box_fit)
    assert refit.scheme == "dlib5" and refit.detector == "yunet+dlib5"
    np.testing.assert_allclose(refit.landmarks, dlib_face.landmarks, atol=1.5)
    template = dlib_chip_template(150, 0.25, 1.1, dlib5_box=box_fit)
    crops = views(astronaut, as_yunet, template)
    assert len(crops) == 2 and all(c.shape == (150, 150, 3) for c in crops)
    np.testing.assert_array_equal(crops[0], align(astronaut, as_yunet, template))
    np.testing.assert_array_equal(crops[1], align(astronaut, refit, template))
    # a face that already has dlib's points, or a template without the fit: one crop
    assert len(views(astronaut, dlib_face, template)) == 1
    assert len(views(astronaut, as_yunet, dlib_chip_template(150, 0.25, 1.1))) == 1
