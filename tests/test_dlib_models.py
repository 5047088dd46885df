"""The converted dlib models load from the registry and run (skipped when not converted)."""

from __future__ import annotations

import numpy as np
import torch
from photos import require_models

from faceres import registry


def test_resnet_embeds_deterministically():
    require_models("dlib-resnet29-face")
    loaded = registry.load("dlib-resnet29-face", device="cpu")
    assert loaded.config["faceres"]["embedding_size"] == 128
    x = torch.rand(2, 3, 150, 150, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = loaded.model(x), loaded.model(x)
    assert a.shape == (2, 128) and torch.equal(a, b)


def test_landmarks_on_a_face(astronaut):
    require_models("dlib-landmarks5")
    from faceres.detect.landmarks import load_shape_predictor

    points = load_shape_predictor().predict(astronaut, [(165, 70, 265, 170)])
    assert points.shape == (1, 5, 2)
    right_eye, left_eye, nose = points[0, :2].mean(0), points[0, 2:4].mean(0), points[0, 4]
    assert right_eye[0] > left_eye[0]  # dlib's order: the image-right eye first
    assert nose[1] > max(right_eye[1], left_eye[1])  # nose below the eyes


def test_detector_finds_the_astronaut(astronaut):
    require_models("dlib-mmod-face")
    require_models("dlib-landmarks5")
    import faceres.detect.dlib as dlib_detector

    faces = dlib_detector.detect(astronaut)
    assert len(faces) == 1
    face = faces[0]
    assert face.scheme == "dlib5" and face.detector == "dlib" and face.score > 0
    x, y, w, h = face.box
    assert 150 < x + w / 2 < 300 and 50 < y + h / 2 < 200 and 60 < w < 200
    inside = (face.landmarks[:, 0] > x) & (face.landmarks[:, 0] < x + w)
    assert inside.all()
    assert dlib_detector.detect(np.zeros((240, 320, 3), np.uint8)) == []
