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


def _verify_cli(tmp_path, astronaut, **env) -> subprocess.CompletedProcess:
    """`faceres verify` of the astronaut and an edited copy in a fresh environment: no research
    data, Hub offline, detector auto, plus `env`."""
    first, second = tmp_path / "astronaut.png", tmp_path / "edited.jpg"
    Image.fromarray(astronaut).save(first)
    # 5°: at 10° the reflected border holds a second, partial face that YuNet finds as well.
    edited = edited_copy(astronaut, angle=5, scale=0.8, gamma=1.2, cast=(1.05, 0.95, 0.85))
    Image.fromarray(edited).save(second, quality=90)
    empty = tmp_path / "no-data"
    empty.mkdir()
    env = {
        **os.environ,
        "FACERES_DATA": str(empty),
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf"),
        "FACERES_DETECTOR": "auto",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "faceres", "verify", str(first), str(second), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_verify_offline_with_committed_models_only(tmp_path, astronaut):
    """A fresh environment runs YuNet: its file ships in the registry, no research data needed."""
    require_models("yunet-2026may", registry.default_model("identity"))
    run = _verify_cli(tmp_path, astronaut)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["verdict"] == "same", result["similarity"]
    assert result["detector"] == "yunet"
    assert "fell back" not in run.stderr


def test_the_cli_says_when_it_falls_back_to_dlib(tmp_path, astronaut):
    """Without YuNet's file (a registry without its folder), auto runs dlib's detector and the
    CLI says so on stderr; the JSON on stdout stays parseable."""
    require_models("dlib-mmod-face", "dlib-landmarks5", registry.default_model("identity"))
    copy = tmp_path / "registry"
    (copy / "models").mkdir(parents=True)
    (copy / "index.json").write_bytes((registry.registry_dir() / "index.json").read_bytes())
    for entry in registry.list_models():
        if entry.get("path") and entry["name"] != "yunet-2026may":
            (copy / entry["path"]).symlink_to(registry.registry_dir() / entry["path"])
    run = _verify_cli(tmp_path, astronaut, FACERES_REGISTRY=str(copy))
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["verdict"] == "same", result["similarity"]
    assert result["detector"] == "dlib"
    for image in result["images"]:
        assert len(image["faces"]) == 1 and image["faces"][0]["detector"] == "dlib"
    assert "yunet is not available" in run.stderr and "dlib" in run.stderr


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
        "names = [e['name'] for e in registry.list_models()\n"
        "         if 'config.json' in e['files'] and e['architecture'] != registry.FUSION]\n"
        "tasks = {registry.load(n, device='cpu').config['faceres']['task'] for n in names}\n"
        "print(sorted(tasks))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert {"detector", "landmarks"} <= set(json.loads(run.stdout.replace("'", '"')))
