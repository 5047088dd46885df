"""The converted dlib detector on its own: offline verification from the committed models, the
detector named in results, large photos mapped back, every committed model loading uniformly."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from photos import edited_copy, require_models
from PIL import Image

from faceres import registry
from faceres.detect import detect_faces

skdata = pytest.importorskip("skimage.data", reason="scikit-image provides the test photos")


def test_verify_offline_with_committed_models_only(tmp_path, astronaut):
    """A fresh environment: no FACERES_DATA (so no YuNet file), Hub offline, detector auto."""
    require_models("dlib-mmod-face", "dlib-landmarks5", registry.default_model("identity"))
    first, second = tmp_path / "astronaut.png", tmp_path / "edited.jpg"
    Image.fromarray(astronaut).save(first)
    edited = edited_copy(astronaut, angle=10, scale=0.8, gamma=1.3, cast=(1.05, 0.95, 0.85))
    Image.fromarray(edited).save(second, quality=90)
    empty = tmp_path / "no-data"
    empty.mkdir()
    env = {
        **os.environ,
        "FACERES_DATA": str(empty),
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf"),
        "FACERES_DETECTOR": "auto",
    }
    run = subprocess.run(
        [sys.executable, "-m", "faceres", "verify", str(first), str(second), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["verdict"] == "same", result["similarity"]
    assert result["detector"] == "dlib"
    for image in result["images"]:
        assert len(image["faces"]) == 1 and image["faces"][0]["detector"] == "dlib"


def test_dlib_result_names_its_detector(astronaut):
    require_models("dlib-mmod-face", "dlib-landmarks5")
    faces = detect_faces(astronaut, detector="dlib")
    assert len(faces) == 1
    assert faces[0].detector == "dlib" and faces[0].scheme == "dlib5"
    assert faces[0].landmarks.shape == (5, 2) and faces[0].score > 0


def test_large_photo_is_detected_downscaled_and_mapped_back(astronaut):
    require_models("dlib-mmod-face", "dlib-landmarks5")
    image = cv2.resize(astronaut, (640, 640))
    big_image = image.repeat(2, axis=0).repeat(2, axis=1)  # 1280 px: scored at 640, same pixels
    small, big = (detect_faces(x, detector="dlib")[0] for x in (image, big_image))
    np.testing.assert_array_equal(np.array(big.box), np.array(small.box) * 2)
    np.testing.assert_allclose(big.landmarks, small.landmarks * 2 + 0.5, atol=4)


def test_every_committed_model_loads_through_the_registry():
    """`registry.load` builds detector and landmark models like any other."""
    code = (
        "from faceres import registry\n"
        "names = [e['name'] for e in registry.list_models() if e['path']]\n"
        "tasks = {registry.load(n, device='cpu').config['faceres']['task'] for n in names}\n"
        "print(sorted(tasks))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert {"detector", "landmarks"} <= set(json.loads(run.stdout.replace("'", '"')))
