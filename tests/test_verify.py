"""Verification on real photos: the astronaut against an edited copy of herself, the camera man."""

import json

import cv2
import numpy as np
import pytest
from photos import edited_copy

from faceres import registry
from faceres.cli import main
from faceres.detection import select_detector
from faceres.errors import FaceresError, NoFaceError
from faceres.verify import decide, pick_face

skdata = pytest.importorskip("skimage.data")


def _identity_model() -> str | None:
    """The default identity model, else the dlib ResNet, if it is in the registry and calibrated."""
    try:
        name = registry.default_model("identity")
    except FaceresError:
        name = "dlib-resnet29-face"
    try:
        config = registry.load(name, device="cpu").config
        select_detector()
    except FaceresError:
        return None
    return name if "threshold" in config.get("faceres", {}) else None


MODEL = _identity_model()
needs_model = pytest.mark.skipif(
    MODEL is None,
    reason="no calibrated identity model and detector here (registry dlib-resnet29-face with a "
           "threshold from `faceres eval lfw`, and YuNet or the dlib detector)",
)


@needs_model
def test_astronaut_matches_her_edited_copy():
    result = verify_model(skdata.astronaut(), edited_copy(skdata.astronaut()))
    assert result.verdict == "same", result.similarity
    assert result.similarity > result.threshold + result.band
    assert result.chosen == (0, 0) and len(result.faces[0]) == 1
    size = registry.load(MODEL).config["faceres"]["alignment"]["size"]
    assert result.crops[0].shape == (size[1], size[0], 3)
    assert set(result.timings) == {"decode", "detect", "align", "embed", "total"}
    assert result.model == MODEL and result.detector in ("yunet", "dlib")


@needs_model
def test_astronaut_and_camera_man_differ():
    camera = skdata.camera()
    result = verify_model(skdata.astronaut(), camera)
    assert result.verdict == "different", result.similarity
    assert result.similarity < result.threshold - result.band


@needs_model
def test_no_face_raises_a_clear_error():
    with pytest.raises(NoFaceError, match="image 2"):
        verify_model(skdata.astronaut(), np.full((200, 200, 3), 127, np.uint8))
    with pytest.raises(NoFaceError, match="face index 3"):
        verify_model(skdata.astronaut(), skdata.astronaut(), face2=3)


@needs_model
def test_cli_verify_json_and_embed(tmp_path, capsys):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    cv2.imwrite(str(a), cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(b), cv2.cvtColor(edited_copy(skdata.astronaut()), cv2.COLOR_RGB2BGR))
    assert main(["verify", str(a), str(b), "--model", MODEL, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["verdict"] == "same" and report["images"][0]["chosen"] == 0
    assert main(["embed", str(a), str(b), "--model", MODEL, "--out", str(tmp_path / "e.npy")]) == 0
    rows = np.load(tmp_path / "e.npy")
    assert rows.shape[0] == 2
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1, atol=1e-5)
    assert main(["embed", str(a), "--model", MODEL, "--out", str(tmp_path / "e.json")]) == 0
    saved = json.loads((tmp_path / "e.json").read_text())
    assert saved["model"] == MODEL and len(saved["embeddings"][0]["embedding"]) == rows.shape[1]
    capsys.readouterr()
    assert main(["embed", str(a), "--model", MODEL, "--out", str(tmp_path / "e.txt")]) == 2
    assert ".npy or .json" in capsys.readouterr().err


def verify_model(a, b, **kwargs):
    from faceres.verify import verify

    return verify(a, b, model=MODEL, **kwargs)


def test_decide_band():
    assert decide(0.80, 0.7, 0.05) == "same"
    assert decide(0.75, 0.7, 0.05) == "same"
    assert decide(0.72, 0.7, 0.05) == "uncertain"
    assert decide(0.66, 0.7, 0.05) == "uncertain"
    assert decide(0.64, 0.7, 0.05) == "different"


def test_pick_face_checks_the_index():
    with pytest.raises(NoFaceError, match="No face found in image 1"):
        pick_face([], None, "image 1")
    assert pick_face(["f0", "f1"], None) == 0 and pick_face(["f0", "f1"], 1) == 1
    with pytest.raises(NoFaceError, match="0 to 1"):
        pick_face(["f0", "f1"], 2)


def test_embed_views_sums_each_faces_views_and_normalises():
    from faceres.verify import embed_views

    crops = [[np.full((2, 2, 3), v, np.uint8) for v in (1, 2)], [np.full((2, 2, 3), 3, np.uint8)]]
    table = {1: [1.0, 0.0], 2: [0.0, 1.0], 3: [3.0, 4.0]}
    out = embed_views(crops, lambda batch: np.array([table[int(c[0, 0, 0])] for c in batch]))
    np.testing.assert_allclose(out, [[2 ** -0.5, 2 ** -0.5], [0.6, 0.8]])
