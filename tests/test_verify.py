"""Verification on real photos: two LFW photos of one person, two people, the astronaut and the
camera man; the embedding checked against the pipeline recomputed step by step."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from faceres import registry
from faceres.cli import main
from faceres.detect import detect_faces, select_detector
from faceres.errors import FaceresError, NoFaceError
from faceres.face.pipeline import load_identity_model
from faceres.identity import decide, pick_face
from faceres.settings import data_dir

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


LFW_IMAGES = (data_dir() or Path("/nonexistent")) / "lfw" / "lfw-deepfunneled"
SAME_PERSON = ("Akhmed_Zakayev/Akhmed_Zakayev_0001.jpg", "Akhmed_Zakayev/Akhmed_Zakayev_0003.jpg")
"""Two different photos of one person (a same-person pair of LFW View 2's first fold)."""
DIFFERENT_PEOPLE = (
    "Abdul_Rahman/Abdul_Rahman_0001.jpg",
    "Portia_de_Rossi/Portia_de_Rossi_0001.jpg",
)
"""Photos of two people (a different-person pair of LFW View 2's first fold)."""
needs_lfw = pytest.mark.skipif(
    not all((LFW_IMAGES / name).is_file() for name in SAME_PERSON + DIFFERENT_PEOPLE),
    reason=f"LFW photos not found under {LFW_IMAGES} (set FACERES_DATA to the research data)",
)


def _lfw(name: str) -> np.ndarray:
    return np.asarray(Image.open(LFW_IMAGES / name).convert("RGB"))


def _stored_calibration() -> dict:
    """The model's threshold and band as committed in its config.json (read from disk here, not
    through the code under test)."""
    config = json.loads((registry.resolve(MODEL) / "config.json").read_text(encoding="utf-8"))
    return config["faceres"]


def _reference_embedding(loaded, crops) -> np.ndarray:
    """The documented embedding, recomputed step by step: each view and its left-right mirror
    (numpy's fliplr) through the network one at a time, the two outputs summed, each view
    L2-normalised, the views summed and L2-normalised again."""
    cfg = loaded.config["pretrained_cfg"]
    mean, std = np.asarray(cfg["mean"], np.float32), np.asarray(cfg["std"], np.float32)

    def raw(crop: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(((crop / 255.0 - mean) / std).astype(np.float32).transpose(2, 0, 1))
        with torch.no_grad():
            return loaded.model(x[None].to(loaded.device)).float().cpu().numpy()[0]

    total = 0.0
    for crop in crops:
        view = raw(crop) + raw(np.fliplr(crop))
        total = total + view / np.linalg.norm(view)
    return total / np.linalg.norm(total)


@pytest.fixture
def exact_float32():
    """No TF32 on a GPU, so that the reference and the code under test agree to ~1e-6 (through
    torch's public switches, which every torch since 2.4 has)."""
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        with torch.backends.cudnn.flags(allow_tf32=False):
            yield
    finally:
        torch.set_float32_matmul_precision(previous)


@needs_model
@needs_lfw
def test_two_photos_of_one_person_are_the_same():
    stored = _stored_calibration()
    result = verify_model(_lfw(SAME_PERSON[0]), _lfw(SAME_PERSON[1]))
    assert result.verdict == "same", result.similarity
    assert (result.threshold, result.band) == (stored["threshold"], stored["band"])
    assert result.similarity > stored["threshold"] + stored["band"]
    assert result.chosen == (1, 1) and len(result.faces[0]) == 1
    size = stored["alignment"]["size"]
    assert result.crops[0].shape == (size[1], size[0], 3)
    assert set(result.timings) == {"decode", "detect", "align", "embed", "total"}
    assert result.model == MODEL and result.detector in ("yunet", "dlib")


@needs_model
@needs_lfw
def test_two_people_differ():
    stored = _stored_calibration()
    result = verify_model(_lfw(DIFFERENT_PEOPLE[0]), _lfw(DIFFERENT_PEOPLE[1]))
    assert result.verdict == "different", result.similarity
    assert (result.threshold, result.band) == (stored["threshold"], stored["band"])
    assert result.similarity < stored["threshold"] - stored["band"]


@needs_model
def test_astronaut_and_camera_man_differ():
    stored = _stored_calibration()
    result = verify_model(skdata.astronaut(), skdata.camera())
    assert result.verdict == "different", result.similarity
    assert (result.threshold, result.band) == (stored["threshold"], stored["band"])
    assert result.similarity < stored["threshold"] - stored["band"]


@needs_model
@needs_lfw
def test_a_similarity_inside_the_configured_band_is_uncertain(monkeypatch):
    """The real same-person pair, with the threshold moved (in the loaded config) so that its
    similarity falls inside, then outside, the band stored in the model's config.json."""
    band = _stored_calibration()["band"]
    assert band > 0
    images = _lfw(SAME_PERSON[0]), _lfw(SAME_PERSON[1])
    similarity = verify_model(*images).similarity
    meta = load_identity_model(MODEL).config["faceres"]  # the config verify reads
    for shift, expected in (
        (0.5, "uncertain"),
        (-0.5, "uncertain"),
        (1.5, "different"),
        (-1.5, "same"),
    ):
        monkeypatch.setitem(meta, "threshold", similarity + shift * band)
        result = verify_model(*images)
        assert result.similarity == pytest.approx(similarity, abs=1e-6)
        assert result.band == band
        assert result.verdict == expected, (shift, result.similarity, result.threshold)


@needs_model
@needs_lfw
def test_embeddings_follow_the_documented_pipeline(exact_float32):
    """`verify`'s embeddings equal the pipeline recomputed outside it: each photo's largest face,
    aligned with its own landmarks onto every view of the template, mirror-augmented and
    normalised per view."""
    from faceres.face.align import model_template, views

    images = _lfw(SAME_PERSON[0]), _lfw(DIFFERENT_PEOPLE[1])
    result = verify_model(*images)
    loaded = registry.load_task("identity", MODEL)
    template = model_template(loaded.config)
    for i, image in enumerate(images):
        crops = views(image, detect_faces(image)[0], template)
        np.testing.assert_array_equal(result.crops[i], crops[0])
        expected = _reference_embedding(loaded, crops)
        np.testing.assert_allclose(result.embeddings[i], expected, atol=1e-5)
    assert result.similarity == pytest.approx(float(np.dot(*result.embeddings)), abs=1e-6)


@needs_model
@needs_lfw
def test_each_photo_is_aligned_with_its_own_face():
    """Two photos of one person placed at opposite corners of larger canvases: each crop shows
    the face of its own photo (and they still match)."""
    from faceres.face.align import model_template, views

    canvases = []
    for name, (y, x) in zip(SAME_PERSON, ((0, 0), (230, 250))):
        canvas = np.full((480, 500, 3), 255, np.uint8)
        canvas[y : y + 250, x : x + 250] = _lfw(name)
        canvases.append(canvas)
    result = verify_model(*canvases)
    template = model_template(registry.load_task("identity", MODEL).config)
    for i, canvas in enumerate(canvases):
        own = views(canvas, detect_faces(canvas)[0], template)[0]
        np.testing.assert_array_equal(result.crops[i], own)
    assert result.verdict == "same", result.similarity


@needs_model
def test_embed_crops_is_unit_norm_and_mirror_invariant(astronaut, exact_float32):
    """Flip test-time augmentation embeds a crop with its left-right mirror image, so a crop and
    its mirror get the same embedding; each row is L2-normalised."""
    from faceres.face.align import model_template, views
    from faceres.face.pipeline import embed_crops

    loaded = registry.load_task("identity", MODEL)
    crop = views(astronaut, detect_faces(astronaut)[0], model_template(loaded.config))[0]
    upside_down = np.ascontiguousarray(crop[::-1])
    out = embed_crops([crop, np.ascontiguousarray(crop[:, ::-1]), upside_down], loaded)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(out[0], out[1], atol=1e-5)
    assert np.abs(out[0] - out[2]).max() > 1e-3  # not invariant to an upside-down flip
    np.testing.assert_allclose(out[0], _reference_embedding(loaded, [crop]), atol=1e-5)


@needs_model
def test_no_face_raises_a_clear_error():
    with pytest.raises(NoFaceError, match="image 2"):
        verify_model(skdata.astronaut(), np.full((200, 200, 3), 127, np.uint8))
    with pytest.raises(NoFaceError, match="there is no face 3"):
        verify_model(skdata.astronaut(), skdata.astronaut(), face2=3)
    with pytest.raises(NoFaceError, match="there is no face 0"):  # numbered from 1
        verify_model(skdata.astronaut(), skdata.astronaut(), face1=0)


@needs_model
@needs_lfw
def test_cli_verify_json(capsys):
    stored = _stored_calibration()
    for pair, verdict in ((SAME_PERSON, "same"), (DIFFERENT_PEOPLE, "different")):
        paths = [str(LFW_IMAGES / name) for name in pair]
        assert main(["verify", *paths, "--model", MODEL, "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["verdict"] == verdict and report["images"][0]["chosen"] == 1
        assert (report["threshold"], report["band"]) == (stored["threshold"], stored["band"])


@needs_model
def test_cli_embed(tmp_path, capsys, astronaut):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    cv2.imwrite(str(a), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(b), cv2.cvtColor(skdata.camera(), cv2.COLOR_GRAY2BGR))
    assert main(["embed", str(a), str(b), "--model", MODEL, "--out", str(tmp_path / "e.npy")]) == 0
    rows = np.load(tmp_path / "e.npy")
    assert rows.shape[0] == 2
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1, atol=1e-5)
    assert main(["embed", str(a), "--model", MODEL, "--out", str(tmp_path / "e.json")]) == 0
    saved = json.loads((tmp_path / "e.json").read_text())
    assert saved["model"] == MODEL and len(saved["embeddings"][0]["embedding"]) == rows.shape[1]
    np.testing.assert_allclose(saved["embeddings"][0]["embedding"], rows[0], atol=1e-5)
    capsys.readouterr()
    assert main(["embed", str(a), "--model", MODEL, "--out", str(tmp_path / "e.txt")]) == 2
    assert ".npy or .json" in capsys.readouterr().err
    # every face, and a broken file among the photos: reported, skipped, the others written
    group, broken = tmp_path / "group.png", tmp_path / "broken.jpg"
    cv2.imwrite(str(group), cv2.cvtColor(np.hstack([astronaut, astronaut]), cv2.COLOR_RGB2BGR))
    broken.write_bytes(b"\xff\xd8 not a jpeg")
    out = tmp_path / "all.json"
    argv = ["embed", str(group), str(broken), str(a), "--all-faces", "--out", str(out)]
    assert main([*argv, "--model", MODEL]) == 1
    assert capsys.readouterr().err.startswith(f"faceres: {broken}: ")
    saved = json.loads(out.read_text())
    assert [(e["image"], e["face"]) for e in saved["embeddings"]] == [
        (str(group), 1),
        (str(group), 2),
        (str(a), 1),
    ]
    assert [f["image"] for f in saved["failed"]] == [str(broken)]
    one, two = (np.asarray(e["embedding"]) for e in saved["embeddings"][:2])
    assert one @ two > 0.95  # the same face twice in one photo


def verify_model(a, b, **kwargs):
    from faceres.identity import verify

    return verify(a, b, model=MODEL, **kwargs)


def test_decide_band():
    assert decide(0.80, 0.7, 0.05) == "same"
    assert decide(0.75, 0.7, 0.05) == "same"
    assert decide(0.72, 0.7, 0.05) == "uncertain"
    assert decide(0.66, 0.7, 0.05) == "uncertain"
    assert decide(0.64, 0.7, 0.05) == "different"


def test_pick_face_numbers_faces_from_one():
    with pytest.raises(NoFaceError, match="No face found in image 1"):
        pick_face([], None, "image 1")
    assert pick_face(["f1", "f2"], None) == 1 and pick_face(["f1", "f2"], 2) == 2
    for number in (0, 3, -1):
        with pytest.raises(NoFaceError, match="numbered 1 to 2"):
            pick_face(["f1", "f2"], number)


def test_embed_views_sums_each_faces_views_and_normalises():
    from faceres.face.pipeline import embed_views

    crops = [[np.full((2, 2, 3), v, np.uint8) for v in (1, 2)], [np.full((2, 2, 3), 3, np.uint8)]]
    table = {1: [1.0, 0.0], 2: [0.0, 1.0], 3: [3.0, 4.0]}
    out = embed_views(crops, lambda batch: np.array([table[int(c[0, 0, 0])] for c in batch]))
    np.testing.assert_allclose(out, [[2**-0.5, 2**-0.5], [0.6, 0.8]])


@needs_model
def test_small_faces_get_no_verdict_from_the_quality_gate():
    import cv2

    from faceres.detect import backend

    if not backend("yunet").available():
        pytest.skip(
            "YuNet's model file does not resolve here (FACERES_DATA); dlib's misses small faces"
        )
    stored = _stored_calibration()
    limit = stored["quality_gate"]["min_eye_distance"]
    big = skdata.astronaut()
    small = cv2.resize(big, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)
    result = verify_model(small, big, detector="yunet")
    # the eye distance by hand, from the landmarks YuNet returned (right eye, left eye first)
    eyes = result.chosen_faces[0].landmarks[:2].astype(np.float64)
    distance = float(np.hypot(*(eyes[0] - eyes[1])))
    assert result.quality[0].eye_distance == pytest.approx(distance, rel=1e-6)
    assert distance < limit  # a quarter of the astronaut's ~47 px
    assert result.similarity > stored["threshold"] + stored["band"]  # the score alone says same
    assert result.verdict == "uncertain"
    assert result.reasons == (f"photo 1: face {distance:.0f} px between the eyes; needs ≥ {limit}",)
    full = verify_model(big, big, detector="yunet")
    assert full.verdict == "same" and full.reasons == ()
    # what the score means: counted by hand from the stored View 1 scores
    impostor = np.asarray(stored["scores"]["impostor"])
    assert full.rates["impostor_count"] == int(np.sum(impostor >= full.similarity))
    genuine = np.asarray(stored["scores"]["genuine"])
    assert result.rates["genuine_count"] == int(np.sum(genuine <= result.similarity))
