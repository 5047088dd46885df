"""The demo: handlers as plain functions, then the launched app through `gradio_client`."""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import io
import json
import os
import re
import socket
import subprocess
import sys
import time
import types
import urllib.request
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from face_pairs import camera_rgb, lfw_pair, save
from photos import as_upload, two_faces
from PIL import Image

from faceres import app, registry
from faceres.app import common, compare_tab, expression_tab, models_tab, render, uploads, verify_tab
from faceres.detect import Face, backend
from faceres.errors import ImageError, ModelError
from faceres.expression import ExpressionResult, FaceExpression
from faceres.face import pipeline
from faceres.settings import PROJECT_ROOT, cache_dir

skimage_data = pytest.importorskip("skimage.data")


def has_models(task: str) -> bool:
    return bool(registry.list_models(task))


def has_default(task: str) -> bool:
    """Whether the registry names a default model for `task` (what the app uses unless told)."""
    try:
        return bool(registry.default_model(task))
    except ModelError:
        return False


needs_identity = pytest.mark.skipif(
    not has_default("identity"), reason="no default identity model in the registry yet"
)
needs_expression = pytest.mark.skipif(
    not has_default("expression"), reason="no default expression model in the registry yet"
)


@pytest.fixture(scope="session")
def face_jpeg(tmp_path_factory) -> Path:
    """skimage's astronaut (a real face photo) as a JPEG file, written for the test run only."""
    path = tmp_path_factory.mktemp("photos") / "astronaut.jpg"
    Image.fromarray(skimage_data.astronaut()).save(path, quality=92)
    return path


@pytest.fixture(scope="session")
def two_faces_jpeg(tmp_path_factory) -> Path:
    """Two faces of the astronaut, the left one largest."""
    path = tmp_path_factory.mktemp("photos") / "two.jpg"
    Image.fromarray(two_faces(skimage_data.astronaut())).save(path, quality=92)
    return path


@pytest.fixture(scope="session")
def camera_jpeg(tmp_path_factory) -> Path:
    """skimage's cameraman: one face, a different person from the astronaut."""
    return save(camera_rgb(), tmp_path_factory.mktemp("photos") / "camera.jpg", quality=92)


# -- photos: decoding, privacy, drawing ----------------------------------------------------------


def test_upload_is_deleted_once_read_and_not_kept(face_jpeg, upload_dir):
    upload = as_upload(face_jpeg, upload_dir)
    assert uploads.take_photo(upload).shape == (512, 512, 3)
    assert not Path(upload["path"]).exists() and not any(upload_dir.iterdir())
    with pytest.raises(ImageError, match="not kept after a request: upload the photo again"):
        uploads.take_photo(upload)  # a rerun (another model) needs a new upload


def test_one_upload_named_twice_is_decoded_once(face_jpeg, upload_dir):
    upload = as_upload(face_jpeg, upload_dir)  # Gradio stores the same file at one path
    first, second = uploads.take_photos([upload, dict(upload)])
    assert first is second and not any(upload_dir.rglob("*.jpg"))


def test_bad_upload_is_deleted_and_explained(upload_dir, tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo")
    upload = as_upload(text, upload_dir)
    with pytest.raises(gr.Error, match="not a recognised image"):
        verify_tab.verify_photos(upload, upload)
    assert not any(upload_dir.iterdir())


def test_every_upload_is_deleted_when_one_is_bad(face_jpeg, upload_dir, tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo")
    with pytest.raises(gr.Error, match="not a recognised image"):
        verify_tab.verify_photos(as_upload(text, upload_dir), as_upload(face_jpeg, upload_dir))
    assert not any(upload_dir.rglob("*"))


def test_inline_uploads_are_decoded(face_jpeg):
    url = "data:image/jpeg;base64," + base64.b64encode(face_jpeg.read_bytes()).decode()
    assert uploads.take_photo({"path": None, "url": url}).shape == (512, 512, 3)
    with pytest.raises(ImageError, match="not valid base64"):
        uploads.take_photo({"path": None, "url": "data:image/jpeg;base64,@@@"})
    with pytest.raises(ImageError, match="not a recognised image"):
        uploads.take_photo({"path": None, "url": "data:image/jpeg;base64,aGVsbG8="})


def test_files_outside_the_upload_folder_are_never_deleted(face_jpeg, upload_dir):
    assert uploads.take_photo(str(face_jpeg)).shape == (512, 512, 3)
    assert face_jpeg.exists()


@pytest.mark.parametrize(
    "payload, message",
    [
        (None, "Upload a photo first"),
        (b"", "empty"),
        (b"\xff\xd8\xff\xe0" + b"\0" * 64, "truncated or corrupt|not a recognised"),
    ],
)
def test_bad_inputs_give_visible_messages(monkeypatch, face_jpeg, payload, message):
    fake_expression(monkeypatch, 1)
    with pytest.raises(gr.Error, match=message):
        expression_tab.analyze_photo(payload)
    with pytest.raises(gr.Error, match=message):
        verify_tab.verify_photos(payload, str(face_jpeg))


def test_used_upload_asks_for_a_new_one(face_jpeg, upload_dir):
    gone = {"path": str(upload_dir / "feedbeef" / "photo.jpg")}
    with pytest.raises(gr.Error, match="upload the photo again"):
        compare_tab.compare_models(gone, "a", "b")
    with pytest.raises(gr.Error, match="upload the photos again to compare with another model"):
        verify_tab.verify_photos(gone, as_upload(face_jpeg, upload_dir))
    assert not any(upload_dir.rglob("*.jpg"))


def test_image_html_is_inline_and_bounded():
    html = render.image_html(np.zeros((3000, 1500, 3), np.uint8), "test")
    assert html.startswith('<img src="data:image/jpeg;base64,')
    raw = base64.b64decode(html.split(",", 1)[1].split('"', 1)[0])
    assert Image.open(io.BytesIO(raw)).size == (512, 1024)


def test_draw_faces_boxes_every_face():
    image = np.zeros((200, 300, 3), np.uint8)
    faces = [
        Face((10, 40, 80, 80), np.zeros((5, 2), np.float32), "yunet5", 0.9, "yunet"),
        Face((150, 40, 60, 60), np.zeros((5, 2), np.float32), "yunet5", 0.9, "yunet"),
    ]
    out = render.draw_faces(image, faces, ["1", "2"])
    assert tuple(out[80, 10]) == render.CHOSEN and tuple(out[80, 150]) == render.CHOSEN
    assert not image.any()


def picked_faces() -> dict:
    """What `verify_photos` sends the browser, by hand: photo 1 has faces A and B, photo 2 has A."""
    crop = render.data_uri(np.zeros((16, 16, 3), np.uint8))
    a, b = [1.0, 0.0, 0.0], [0.6, 0.8, 0.0]

    def face(number: int, x: float, embedding: list[float], eyes: float = 40.0) -> dict:
        return {
            "face": number,
            "box": [x, 10.0, 40.0, 40.0],
            "landmarks": [
                [x + 10, 20.0],
                [x + 30, 20.0],
                [x + 20, 30.0],
                [x + 12, 40.0],
                [x + 28, 40.0],
            ],
            "scheme": "yunet5",
            "score": 0.9,
            "detector": "yunet",
            "quality": {"eye_distance": eyes, "sharpness": 90.0, "yaw": 3.0, "score": 0.9},
            "embedding": embedding,
            "crop": crop,
        }

    preview = render.data_uri(np.zeros((100, 200, 3), np.uint8))
    photo1 = {
        "preview": preview,
        "size": [200, 100],
        "faces": [face(1, 10, a), face(2, 120, b), face(3, 60, a, eyes=12.0)],
    }
    photo2 = {"preview": preview, "size": [200, 100], "faces": [face(1, 10, a)]}
    return {"model": "m", "detector": "yunet", "photos": [photo1, photo2]}


CALIBRATION = {
    "threshold": 0.7,
    "band": 0.05,
    "quality_gate": {"min_eye_distance": 20},
    "scores": {"genuine": [0.65, 0.9, 0.95, 0.99], "impostor": [0.1, 0.3, 0.62, 0.8]},
}
"""A model config's calibration, by hand: its answers below are counted by hand. The verdict
takes the threshold and band from the registry (here), never from the JSON the browser sends."""


def test_pick_faces_works_from_the_json_alone(monkeypatch):
    def no_photo_or_model(*args, **kwargs):
        raise AssertionError("a face pick must not decode a photo or run a model")

    for name in ("take_photos", "verify"):
        monkeypatch.setattr(verify_tab, name, no_photo_or_model)
    for name in ("embed_crops", "load_identity_model", "views", "detect_faces"):
        monkeypatch.setattr(pipeline, name, no_photo_or_model)
    monkeypatch.setattr(verify_tab.registry, "model_config", lambda name: {"faceres": CALIBRATION})
    faces = json.loads(json.dumps(picked_faces()))  # as it comes back from the browser
    verdict, shown1, shown2, crops, details, maps, lesion = verify_tab.pick_faces(faces, 1, 1)
    assert details["verdict"] == "same" and details["similarity"] == pytest.approx(1.0)
    assert "Same person" in verdict and crops.count("<img") == 2
    verdict, shown1, _, crops, details, maps, lesion = verify_tab.pick_faces(faces, 2, None)
    assert details["similarity"] == pytest.approx(0.6) and details["verdict"] == "different"
    assert [image["chosen"] for image in details["images"]] == [2, 1]
    tampered = {**faces, "threshold": 0.0, "band": 0.0}  # the browser cannot move the threshold
    assert verify_tab.pick_faces(tampered, 2, None)[4]["verdict"] == "different"
    assert "photo 1, face 2" in crops and "face 2 used" in shown1
    assert not any("embedding" in face for face in details["images"][0]["faces"])
    # 0.6: impostors at least 0.6: 0.62, 0.8 (2 of 4); genuines at most 0.6: none
    rates = details["rates"]
    assert (rates["impostor_count"], rates["genuine_count"]) == (2, 0)
    assert rates["impostor_at_least"] == 0.5 and "2 of 4 calibration pairs" in verdict
    # face 3 is the same embedding as face 1 but 12 px between the eyes: the gate says why
    verdict, *_, details, maps, lesion = verify_tab.pick_faces(faces, 3, 1)
    assert details["similarity"] == pytest.approx(1.0) and details["verdict"] == "uncertain"
    assert details["reasons"] == ["photo 1: face 12 px between the eyes; needs ≥ 20"]
    assert "needs ≥ 20" in verdict and "data:image/png" in verdict  # the distributions plot
    with pytest.raises(gr.Error, match="there is no face 4"):
        verify_tab.pick_faces(faces, 4, 1)
    for bad in (None, {}, {"photos": "x"}):
        with pytest.raises(gr.Error, match="Run Verify first"):
            verify_tab.pick_faces(bad, 1, 1)


def test_photo_html_marks_the_chosen_face():
    photo = picked_faces()["photos"][0]
    html = render.photo_html(photo, 2, "photo")
    first, second, third = html.split("border:3px solid")[1:]
    assert first.startswith(f" rgb{render.OTHER}") and second.startswith(f" rgb{render.CHOSEN}")
    assert third.startswith(f" rgb{render.OTHER}")
    assert "left:5.00%" in html and "width:20.00%" in html  # boxes in % of the photo


def test_score_plot_marks_the_pair_where_matplotlib_drew_the_band():
    rng = np.random.default_rng(0)
    scores = {
        "genuine": list(rng.normal(0.95, 0.02, 300)),
        "impostor": list(rng.normal(0.8, 0.05, 300)),
    }
    threshold, band = 0.9, 0.02
    html = render.score_plot(scores, threshold, threshold, band)
    uri = re.search(r'src="(data:image/png;base64,[^"]+)"', html)[1]
    png = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",")[1]))).convert("RGB"))
    # the band, drawn by matplotlib in #f9e79f, in a row above the highest bar
    row = png[round(0.12 * png.shape[0])]
    yellow = np.flatnonzero(np.all(np.abs(row.astype(int) - (249, 231, 159)) <= 2, axis=1))
    # the legend's patch, then the band (the threshold's dashes may cut it: gaps of a few px)
    runs = np.split(yellow, np.flatnonzero(np.diff(yellow) > 8) + 1)
    band_px = runs[-1]
    centre = 100 * (band_px.min() + band_px.max() + 1) / 2 / png.shape[1]
    left = float(re.search(r"left:([0-9.]+)%", html)[1])
    assert abs(left - centre) < 0.5, (left, centre)
    # a pair lower than every calibration pair sits at the plot's left edge, titled with its value
    low = render.score_plot(scores, -0.3, threshold, band)
    assert (
        'title="this pair: -0.300"' in low and float(re.search(r"left:([0-9.]+)%", low)[1]) < left
    )


def test_verdict_html_says_threshold_band_and_why():
    details = {"verdict": "same", "similarity": 0.91, "threshold": 0.88, "band": 0.02, "model": "m"}
    html = render.verdict_html(details, None)
    assert "Same person" in html and "0.910" in html and "from 0.860 to 0.900" in html
    uncertain = render.verdict_html({**details, "verdict": "uncertain", "similarity": 0.87}, None)
    assert "Uncertain: similarity within 0.020 of the threshold 0.880" in uncertain


# -- handlers with stand-in models (formatting only) ---------------------------------------------


FAKE_LABELS = {
    "fake": "happy",
    "m-happy": "happy",
    "m-sad": "sad",
    "m-fear": "fear",
    "m-default": "neutral",
}
"""The expression the stand-in model of each name sees on every face ("m-default": no name)."""


def fake_expression(monkeypatch, faces: int) -> list:
    """Replace `analyze_expression` with a stand-in returning `faces` faces whose probabilities
    depend on the model asked for (`FAKE_LABELS`; None runs "m-default"), so a handler that shows
    another model's output is caught. Returns the models asked for, in order."""
    labels = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    asked = []

    def analyze_expression(img, model=None, detector=None):
        asked.append(model)
        name = model or "m-default"
        top = FAKE_LABELS[name]
        found = []
        for i in range(faces):
            probs = dict.fromkeys(labels, 0.05)
            probs[top] = 0.7
            box = (10.0 + 20 * i, 10.0, 16.0, 16.0)
            face = Face(box, np.zeros((5, 2), np.float32), "yunet5", 0.9, "yunet")
            found.append(FaceExpression(face, probs, top, np.zeros((48, 48), np.uint8)))
        return ExpressionResult(found, name, "yunet", {"detect": 1.0, "classify": 2.0})

    def explain_expression(found):
        overlay = np.zeros((8, 8, 3), np.uint8)
        cams = [types.SimpleNamespace(label=f.label, overlay=lambda: overlay) for f in found.faces]
        return types.SimpleNamespace(faces=tuple(cams), model=found.model)

    for tab in (expression_tab, compare_tab):
        monkeypatch.setattr(tab, "analyze_expression", analyze_expression)
        monkeypatch.setattr(tab, "explain_expression", explain_expression)
    return asked


@pytest.mark.parametrize("faces", [0, 1, 8])
def test_expression_handler_labels_every_face(monkeypatch, face_jpeg, faces):
    fake_expression(monkeypatch, faces)
    html, *rest = expression_tab.analyze_photo(str(face_jpeg), "fake")
    labels, (summary, maps, details) = (
        rest[: expression_tab.MAX_FACE_LABELS],
        rest[expression_tab.MAX_FACE_LABELS :],
    )
    assert html.startswith("<img")
    assert sum(label.visible for label in labels) == min(faces, expression_tab.MAX_FACE_LABELS)
    assert len(details["faces"]) == faces
    assert [face["face"] for face in details["faces"]] == list(range(1, faces + 1))
    assert maps.count("<figure") == min(faces, expression_tab.MAX_FACE_LABELS)
    assert ("No face found" in summary) == (faces == 0)
    if faces > expression_tab.MAX_FACE_LABELS:
        assert "6 largest" in summary


@pytest.mark.parametrize("model", ["m-happy", "m-sad", None])
def test_expression_handler_shows_the_chosen_models_output(monkeypatch, face_jpeg, model):
    asked = fake_expression(monkeypatch, 2)
    html, *rest = expression_tab.analyze_photo(str(face_jpeg), model)
    labels, (summary, maps, details) = (
        rest[: expression_tab.MAX_FACE_LABELS],
        rest[expression_tab.MAX_FACE_LABELS :],
    )
    name = model or "m-default"
    expected = FAKE_LABELS[name]
    assert asked == [model]
    assert details["model"] == name and f"`{name}`" in summary
    assert [face["label"] for face in details["faces"]] == [expected, expected]
    assert [face["probabilities"][expected] for face in details["faces"]] == [0.7, 0.7]
    assert [label.value["label"] for label in labels[:2]] == [expected, expected]
    assert labels[0].label == f"Face 1: {expected}"
    assert f"face 1: {expected}" in maps and f"face 2: {expected}" in maps


@pytest.mark.parametrize("resnet, plain", [("m-happy", "m-sad"), ("m-sad", "m-fear")])
def test_compare_handler_runs_both_chosen_models(monkeypatch, face_jpeg, resnet, plain):
    asked = fake_expression(monkeypatch, 1)
    res, res_text, plain_label, plain_text, maps, details = compare_tab.compare_models(
        str(face_jpeg), resnet, plain
    )
    assert f"{resnet}: {FAKE_LABELS[resnet]}" in maps and f"{plain}: {FAKE_LABELS[plain]}" in maps
    assert sorted(asked) == sorted([resnet, plain])
    for key, name, label, text in (
        ("resnet", resnet, res, res_text),
        ("plain", plain, plain_label, plain_text),
    ):
        expected = FAKE_LABELS[name]
        assert details[key]["model"] == name and details[key]["label"] == expected
        assert details[key]["probabilities"][expected] == 0.7
        assert label.value["label"] == expected
        assert f"**{expected}**" in text and f"`{name}`" in text and "ms" in text


def test_compare_handler_defaults_to_the_chosen_resnets_twin(monkeypatch, face_jpeg):
    pairs = compare_tab.twin_pairs()
    if len(pairs) < 2:
        pytest.skip("needs two ResNet / plain twin pairs in the registry")
    asked = fake_expression(monkeypatch, 1)
    monkeypatch.setitem(FAKE_LABELS, pairs[-1][0], "surprise")
    monkeypatch.setitem(FAKE_LABELS, pairs[-1][1], "angry")
    monkeypatch.setitem(FAKE_LABELS, pairs[0][0], "happy")
    monkeypatch.setitem(FAKE_LABELS, pairs[0][1], "sad")
    resnet = pairs[-1][0]  # not the first pair: its twin is not the first plain model
    twin = registry.get_entry(resnet)["twin"]
    details = compare_tab.compare_models(str(face_jpeg), resnet, None)[-1]
    assert (details["resnet"]["model"], details["plain"]["model"]) == (resnet, twin)
    assert (details["resnet"]["label"], details["plain"]["label"]) == ("surprise", "angry")
    details = compare_tab.compare_models(str(face_jpeg))[-1]  # nothing chosen: the first pair
    assert (details["resnet"]["model"], details["plain"]["model"]) == pairs[0]
    assert (details["resnet"]["label"], details["plain"]["label"]) == ("happy", "sad")
    assert asked == [resnet, twin, *pairs[0]]


# -- handlers with the registry's models ---------------------------------------------------------


@needs_identity
def test_verify_different_people(face_jpeg, camera_jpeg):
    verdict, shown1, shown2, crops, face1, face2, details, faces = verify_tab.verify_photos(
        str(face_jpeg), str(camera_jpeg)
    )
    assert details["verdict"] == "different" and "Different people" in verdict
    assert details["similarity"] < details["threshold"] - details["band"]
    assert shown1.startswith("<div") and "<img" in shown1 and crops.count("<img") == 2
    assert face1.visible is False and face2.visible is False  # one face each: no picker
    assert faces["model"] == details["model"] and len(faces["photos"][0]["faces"]) == 1
    assert {"read", "detect", "embed"} <= set(details["timings_ms"])


@needs_identity
@pytest.mark.parametrize("detector", ["yunet", "dlib"])
def test_handlers_use_the_detector_asked_for(face_jpeg, camera_jpeg, detector):
    if detector == "yunet" and not backend("yunet").available():
        pytest.skip("YuNet's model file does not resolve here (FACERES_DATA)")
    details = verify_tab.verify_photos(str(face_jpeg), str(camera_jpeg), detector=detector)[6]
    assert details["detector"] == detector
    assert {f["detector"] for image in details["images"] for f in image["faces"]} == {detector}
    if has_default("expression"):
        assert (
            expression_tab.analyze_photo(str(face_jpeg), detector=detector)[-1]["detector"]
            == detector
        )
    with pytest.raises(gr.Error, match="Unknown detector"):
        verify_tab.verify_photos(str(face_jpeg), str(camera_jpeg), detector="haar")


@needs_identity
@pytest.mark.parametrize("same", [True, False], ids=["same-person", "different-people"])
def test_verify_two_lfw_photos(same):
    photo1, photo2 = lfw_pair(same)
    verdict, *_, details, faces = verify_tab.verify_photos(str(photo1), str(photo2))
    if same:
        assert details["verdict"] == "same" and "Same person" in verdict
        assert details["similarity"] > details["threshold"] + details["band"]
    else:
        assert details["verdict"] == "different" and "Different people" in verdict
        assert details["similarity"] < details["threshold"] - details["band"]
    # what the face pickers get back gives the same answer without the photos
    picked = verify_tab.pick_faces(json.loads(json.dumps(faces)), 1, 1)[4]
    assert picked["verdict"] == details["verdict"]
    assert picked["similarity"] == pytest.approx(details["similarity"], abs=1e-4)
    # the maps explain the crops the browser holds (JPEG, one alignment): nearly the same score
    maps = verify_tab.explain_faces(json.loads(json.dumps(faces)), 1, 1)
    explained = float(re.search(r"Similarity of these two crops <b>([0-9.-]+)</b>", maps)[1])
    assert explained == pytest.approx(details["similarity"], abs=0.03)
    # a block of the identity network removed: the whole network's score on the same crops is
    # the explained one (another forward pass), and removing a block moves it
    removed = verify_tab.remove_identity_block(json.loads(json.dumps(faces)), 1, 1, 3)
    without, whole = (
        float(v) for v in re.search(r"<b>([0-9.-]+)</b>.*against ([0-9.-]+)", removed).groups()
    )
    assert whole == pytest.approx(explained, abs=1e-3) and without != whole
    with pytest.raises(gr.Error, match="no such block"):
        verify_tab.remove_identity_block(json.loads(json.dumps(faces)), 1, 1, 99)


def other_expression_model() -> str:
    """A registry expression model other than the default, with other classes (FER+) if any."""
    default, *others = common.model_choices("expression")
    if not others:
        pytest.skip("needs a second expression model in the registry")

    def classes(name: str) -> set[str]:
        config = json.loads(registry.resolve_file(name, "config.json").read_text())
        return set(config["label_names"])

    return next((name for name in others if classes(name) != classes(default)), others[-1])


@needs_expression
def test_expression_handler_runs_the_chosen_registry_model(face_jpeg):
    from faceres import analyze_expression

    default, other = common.model_choices("expression")[0], other_expression_model()
    shown = {}
    for name in (default, other, None):
        details = expression_tab.analyze_photo(str(face_jpeg), name)[-1]
        direct = analyze_expression(str(face_jpeg), model=name).faces
        assert details["model"] == (name or default) and len(details["faces"]) == 1
        probs = details["faces"][0]["probabilities"]
        assert probs == pytest.approx(direct[0].probabilities, abs=1e-4)
        shown[name] = probs
    assert shown[None] == shown[default]
    assert (
        set(shown[other]) != set(shown[default])
        or max(abs(shown[other][k] - shown[default][k]) for k in shown[default]) > 0.05
    )


@needs_identity
def test_verify_offers_a_face_picker_for_several_faces(face_jpeg, two_faces_jpeg):
    out = verify_tab.verify_photos(str(two_faces_jpeg), str(face_jpeg))
    picker = out[4]
    assert picker.visible is True and len(picker.choices) >= 2 and picker.value == 1
    assert picker.choices[:2] == [("Face 1 (largest)", 1), ("Face 2", 2)]
    second = verify_tab.verify_photos(str(two_faces_jpeg), str(face_jpeg), face1=2)[6]
    assert second["images"][0]["chosen"] == 2
    picked = verify_tab.pick_faces(json.loads(json.dumps(out[7])), 2, 1)[4]  # no photo, no model
    assert picked["images"][0]["chosen"] == 2
    assert picked["similarity"] == pytest.approx(second["similarity"], abs=1e-4)
    assert picked["verdict"] == second["verdict"]


@needs_identity
def test_the_tab_shows_the_verdict_and_details_that_verify_returned(face_jpeg, two_faces_jpeg):
    """One verdict, one details schema: the tab's details are `faceres.verify(...).to_dict()`
    (timings aside), and a pick of another face gives what `verify(face1=2)` gives."""
    from faceres import verify

    def same(details: dict, result, exact: bool = True) -> None:
        expected = result.to_dict()
        for d in (details, expected):
            for key in ("timings_ms", "detector_note") + (() if exact else ("rates",)):
                d.pop(key, None)
        if not exact:  # the browser's embeddings are rounded to 6 decimals
            assert details.pop("similarity") == pytest.approx(expected.pop("similarity"), 1e-5)
        assert details == expected

    out = verify_tab.verify_photos(str(two_faces_jpeg), str(face_jpeg))
    same(out[6], verify(str(two_faces_jpeg), str(face_jpeg), every_face=True))
    picked = verify_tab.pick_faces(json.loads(json.dumps(out[7])), 2, 1)[4]
    same(picked, verify(str(two_faces_jpeg), str(face_jpeg), face1=2, every_face=True), False)


@needs_identity
def test_verify_without_a_face_says_so():
    blank = np.full((200, 200, 3), 128, np.uint8)
    with pytest.raises(gr.Error, match="No face found"):
        verify_tab.verify_photos(blank, blank)


def test_models_table_and_cards():
    """One row per model; figures and sizes as the index file and the folders say."""
    index = json.loads((registry.registry_dir() / "index.json").read_text())["models"]
    rows = {
        row[0].removesuffix(" (default)"): dict(zip(models_tab.MODEL_COLUMNS, row))
        for row in models_tab.models_table()
    }
    assert set(rows) == {e["name"] for e in index}
    for e in index:
        row = rows[e["name"]]
        if e["name"] == "dlib-resnet29-face":
            assert row["accuracy %"] == round(100 * e["metrics"]["lfw_accuracy_yunet"], 2)
        if e["name"] == "resnet18-ferplus":
            assert row["headline figure"] == "FER+ test (majority)"
            assert row["accuracy %"] == round(100 * e["metrics"]["ferplus-privatetest/accuracy"], 2)
        if e["task"] in ("detector", "landmarks"):
            assert row["accuracy %"] is None
        if e.get("path"):  # the weights alone: what the README's sizes count too
            folder = registry.registry_dir() / e["path"]
            weights = ["model.safetensors"] if "model.safetensors" in e["files"] else None
            weights = weights or [f for f in e["files"] if f.endswith(".onnx")]  # none: a fusion
            size = sum((folder / f).stat().st_size for f in weights)
            assert row["weights MB"] == round(size / 1e6, 1) and row["here"] == "yes"
        assert row["model"].endswith(" (default)") == bool(e["default"])
        assert models_tab.model_card(e["name"])
    figure = models_tab.accuracy_plot(models_tab.models_table())
    plotted = sum(len(c.get_offsets()) for c in figure.axes[0].collections)
    assert plotted == sum(row["accuracy %"] is not None for row in rows.values())
    with pytest.raises(gr.Error):
        models_tab.model_card("no-such-model")


def test_tabs_without_models_say_so(monkeypatch, tmp_path):
    import faceres.settings

    monkeypatch.setattr(faceres.settings, "REGISTRY_DIR", tmp_path)  # an empty registry
    demo = app.build_demo()
    texts = " ".join(str(getattr(b, "value", "")) for b in demo.blocks.values())
    assert "No identity model is in the registry yet" in texts
    assert "No expression model is in the registry yet" in texts
    assert "No expression ResNet with its plain twin is in the registry yet" in texts
    events = [fn for fn in demo.fns.values() if ("unload" not in [t[1] for t in fn.targets])]
    assert not [fn.api_name for fn in events]  # only the page-close cleanup of held photos


def inline_pngs(html_text: str) -> list[tuple[int, int]]:
    """(width, height) of every inline PNG `<img>` in `html_text`, decoded by Pillow."""
    uris = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html_text)
    return [Image.open(io.BytesIO(base64.b64decode(uri))).size for uri in uris]


def test_the_committed_study_feeds_the_comparison_tab():
    from faceres.app.studies import load_study

    table, findings, plots, note = compare_tab.committed_study("depth")
    report = load_study("depth")["report"]
    assert not note and (table, findings) == (report["table"], report["findings"])
    sizes = inline_pngs(plots())
    assert len(sizes) == 4 and all(w > 300 and h > 200 for w, h in sizes)
    blocks = app.build_demo().blocks.values()
    (protocol,) = [b for b in blocks if getattr(b, "elem_id", None) == "depth-protocol"]
    assert load_study("depth")["protocol"] in protocol.value  # which run the tab shows


def test_a_missing_study_is_a_note_with_its_remedy(tiny_registry):
    table, findings, plots, note = compare_tab.committed_study("lesion")
    assert (table, findings, plots) == ("", [], None)
    assert "faceres study lesion --report --update-registry" in note


def test_study_plots_are_drawn_when_a_page_loads_not_at_start(tmp_path, monkeypatch):
    """Building the demo draws no plot (a fresh Space starts faster); the page-load events send
    them inline (PNG data URIs: Gradio serves no file of ours, so nothing can fail to be served)
    and write nothing to disk, neither in the default cache nor in Gradio's folder."""
    home, gradio_tmp = tmp_path / "home", tmp_path / "gradio"
    monkeypatch.setenv("HOME", str(home))  # the default cache, ~/.cache/faceres
    monkeypatch.delenv("FACERES_CACHE", raising=False)
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(gradio_tmp))
    compare_tab._DRAWN.clear()
    demo = app.build_demo()
    loads = {fn.api_name: fn for fn in demo.fns.values() if fn.api_name.endswith("_plots")}
    studies = {
        "depth_plots": compare_tab.committed_study("depth"),
        "lesion_plots": compare_tab.committed_study("lesion"),
    }
    available = {name for name, (*_, note) in studies.items() if not note}
    assert set(loads) == available
    assert not compare_tab._DRAWN  # nothing drawn at build
    for name in available:
        assert (0, "load") in loads[name].targets
        assert len(inline_pngs(loads[name].fn())) >= 2
    assert not [p for p in tmp_path.rglob("*.png")]


def test_build_demo_names_every_event():
    demo = app.build_demo()
    names = [fn.api_name for fn in demo.fns.values()]
    assert all(names), names
    assert "model_card" in names or not registry.list_models()
    assert ("verify" in names) == has_models("identity")
    assert ("expression" in names) == has_models("expression")


@needs_identity
def test_the_fallback_detector_is_named_with_its_limits(face_jpeg, camera_jpeg, monkeypatch):
    import faceres.detect.yunet

    monkeypatch.setattr(faceres.detect.yunet, "available", lambda: False)
    gauge, *_, details, _ = verify_tab.verify_photos(str(face_jpeg), str(camera_jpeg))
    assert details["detector"] == "dlib"
    assert "yunet is not available" in details["detector_note"] and "80 px" in gauge
    if has_default("expression"):
        summary = expression_tab.analyze_photo(str(face_jpeg))[-3]
        assert "so the dlib detector ran" in summary
    chosen = verify_tab.verify_photos(str(face_jpeg), str(camera_jpeg), detector="dlib")[6]
    assert "detector_note" not in chosen  # dlib asked for: no fallback to explain


def test_every_class_of_every_expression_model_is_shown(face_jpeg):
    """The probability panels are not capped below any model's class count (FER+ has 8)."""
    demo = app.build_demo()
    counts = [
        len(registry.model_config(e["name"])["label_names"])
        for e in registry.list_models("expression")
    ]
    for block in demo.blocks.values():
        if isinstance(block, gr.Label) and block.num_top_classes is not None:
            assert block.num_top_classes >= max(counts, default=0), block.label
    if "resnet18-ferplus" in [e["name"] for e in registry.list_models("expression")]:
        panels = expression_tab.analyze_photo(str(face_jpeg), "resnet18-ferplus")[1:-3]
        assert (
            len(panels[0].value["confidences"])
            == 8
            == len(registry.model_config("resnet18-ferplus")["label_names"])
        )


@needs_expression
def test_expression_models_are_listed_production_first_with_their_accuracy():
    from faceres.app.studies import load_study

    studied = {r["name"] for r in load_study("depth")["rows"]}
    entries = {e["name"]: e for e in registry.list_models("expression")}
    shown, everything = expression_tab.model_options(), expression_tab.model_options(study=True)
    names = [name for _, name in shown]
    assert names[0] == registry.default_model("expression")
    assert set(names) == set(entries) - studied
    assert [name for _, name in everything[: len(names)]] == names
    assert sorted(name for _, name in everything) == sorted(entries)
    for label, name in everything:
        (accuracy,) = [
            v for k, v in entries[name]["metrics"].items() if k.endswith("privatetest/accuracy")
        ]
        assert label.startswith(f"{name} — ") and f"PrivateTest {100 * accuracy:.1f}%" in label
        assert ("depth study" in label) == (name in studied)
    demo = app.build_demo()
    (dropdown,) = [
        b for b in demo.blocks.values() if getattr(b, "elem_id", "") == "expression-model"
    ]
    assert dropdown.value == names[0]  # handlers get the model's name, not its label
    assert [value for _, value in dropdown.choices] == names
    texts = " ".join(str(getattr(b, "value", "")) for b in demo.blocks.values())
    assert "seven" not in texts.lower()
    study = sorted(studied & set(entries))
    if study:
        update = expression_tab.show_study_models(True, study[0])
        assert update.value == study[0] and len(update.choices) == len(entries)
        update = expression_tab.show_study_models(False, study[0])  # hidden: back to the default
        assert update.value == names[0] and len(update.choices) == len(names)


def test_launcher_options_follow_gradio_environment(monkeypatch):
    spec = importlib.util.spec_from_file_location("faceres_app_main", PROJECT_ROOT / "app.py")
    launcher = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(launcher)
    defaults = launcher.parse_args([])
    assert (defaults.host, defaults.port) == ("127.0.0.1", 7860)
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "7000")
    assert (launcher.parse_args([]).host, launcher.parse_args([]).port) == ("0.0.0.0", 7000)
    assert launcher.parse_args(["--port", "8000"]).port == 8000


# -- the launched app ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_app(env: dict[str, str] | None = None, timeout: float = 180):
    """`python app.py` on a free port in a subprocess; yields its URL, stops it afterwards. The
    app shares this process's faceres cache (ONNX exports) unless `env` says otherwise, even with
    another HOME."""
    env = {**os.environ, "FACERES_CACHE": str(cache_dir()), **(env or {})}
    with launched_app(env, subprocess.PIPE, timeout) as url:
        yield url


@contextlib.contextmanager
def launched_app(env: dict[str, str], output, timeout: float = 180):
    """`python app.py --port P` with exactly `env`, its output to `output` (a file or PIPE);
    yields its URL once it answers, stops it afterwards."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "app.py"), "--port", str(port)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"app exited early:\n{proc.stdout.read() if proc.stdout else ''}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"app did not answer on {url}") from None
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def client():
    from gradio_client import Client

    with serve_app() as url:
        yield Client(url, verbose=False, download_files=False, analytics_enabled=False)


def test_client_sees_the_api(client):
    api = client.view_api(print_info=False, return_format="dict")
    names = set(api["named_endpoints"])
    if registry.list_models():
        assert "/model_card" in names
    if has_default("identity"):
        assert "/verify" in names


@needs_identity
def test_client_verify_different_people(client, face_jpeg, camera_jpeg):
    from gradio_client import handle_file

    out = client.predict(
        handle_file(str(face_jpeg)),
        handle_file(str(camera_jpeg)),
        common.model_choices("identity")[0],
        None,
        None,
        api_name="/verify",
    )
    assert out[6]["verdict"] == "different"
    assert out[6]["similarity"] < out[6]["threshold"] - out[6]["band"]


@needs_identity
def test_client_verify_same_person(client):
    from gradio_client import handle_file

    photo1, photo2 = lfw_pair(same=True)
    out = client.predict(
        handle_file(str(photo1)), handle_file(str(photo2)), None, None, None, api_name="/verify"
    )
    assert out[6]["verdict"] == "same"
    assert out[6]["similarity"] > out[6]["threshold"] + out[6]["band"]


@needs_identity
def test_client_picks_another_face_without_the_photos(client, face_jpeg, two_faces_jpeg):
    from gradio_client import handle_file

    out = client.predict(
        handle_file(str(two_faces_jpeg)),
        handle_file(str(face_jpeg)),
        None,
        None,
        None,
        api_name="/verify",
    )
    faces = out[7]
    assert out[6]["images"][0]["chosen"] == 1 and len(faces["photos"][0]["faces"]) >= 2
    verdict, *_, details, maps, lesion = client.predict(faces, 2, 1, api_name="/pick_faces")
    assert details["images"][0]["chosen"] == 2 and "similarity" in verdict and maps == lesion == ""
    maps = client.predict(faces, 2, 1, api_name="/explain")  # from the JSON alone, no photo
    assert maps.count("<img") == 2 and "photo 1, face 2: supporting" in maps


@needs_identity
def test_client_bad_input_is_a_message(client, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    with pytest.raises(AppError, match="corrupt|not a recognised"):
        client.predict(
            handle_file(str(bad)), handle_file(str(bad)), None, None, None, api_name="/verify"
        )


@needs_expression
def test_client_expression(client, face_jpeg):
    from gradio_client import handle_file

    from faceres import analyze_expression

    name = other_expression_model()
    details = client.predict(handle_file(str(face_jpeg)), name, api_name="/expression")[-1]
    direct = analyze_expression(str(face_jpeg), model=name)
    assert details["model"] == name and len(details["faces"]) == len(direct.faces) == 1
    face = details["faces"][0]
    assert face["probabilities"] == pytest.approx(direct.faces[0].probabilities, abs=1e-4)
    names = list(face["probabilities"])
    assert face["label"] == names[int(np.argmax([face["probabilities"][n] for n in names]))]


@needs_expression
def test_remove_block_changes_the_plain_twin_more(face_jpeg):
    from faceres import analyze_expression

    pairs = compare_tab.twin_pairs()
    if not pairs:
        pytest.skip("needs a ResNet / plain twin pair in the registry")
    resnet, plain = pairs[0]
    html, details = compare_tab.remove_block(str(face_jpeg), resnet, plain, 3)
    for m in details["models"]:
        direct = analyze_expression(str(face_jpeg), model=m["model"]).faces[0].probabilities
        assert m["whole"]["probabilities"] == pytest.approx(direct, abs=1e-3)  # another path
    moved = [float(r) for r in re.findall(r"<td>([0-9.]+)</td></tr>", html)]
    assert len(moved) == 2 and html.count("<tr>") == 3
    with pytest.raises(gr.Error, match="no such block"):
        compare_tab.remove_block(str(face_jpeg), resnet, plain, 99)


@needs_identity
def test_detector_scores_name_their_scale(face_jpeg, camera_jpeg):
    """YuNet scores a confidence (0 to 1), dlib a margin (above 0, unbounded): each score is
    shown with its scale, so 1.03 beside 0.93 confuses nobody."""
    crops = verify_tab.verify_photos(str(face_jpeg), str(camera_jpeg), detector="yunet")[3]
    assert "yunet score" in crops and "(confidence, 0 to 1)" in crops
    crops = verify_tab.verify_photos(str(face_jpeg), str(face_jpeg), detector="dlib")[3]
    assert "dlib score" in crops and "MMOD margin" in crops


@pytest.mark.parametrize("count", [1, 3])
def test_the_timeline_legend_overlaps_no_title_or_label(count):
    """Measured by matplotlib's own renderer: the legend's box meets no plot's title and not
    the time axis's label (it once sat on top of the first title)."""
    import matplotlib.pyplot as plt

    classes = {name: [0.1, 0.5, 0.2] for name in ("angry", "happy", "neutral", "sad", "fear")}
    tracks = [
        (f"face {k}: mostly happy (0.0–2.0 s)", [0.0, 1.0, 2.0], classes) for k in range(count)
    ]
    fig = render.timeline_figure(tracks)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legend = fig.legends[0].get_window_extent(renderer)
    texts = [ax.title for ax in fig.axes] + [fig.axes[-1].xaxis.label]
    assert all(not legend.overlaps(t.get_window_extent(renderer)) for t in texts)
    assert legend.y0 >= 0  # inside the picture
    plt.close(fig)


def test_figures_drawn_from_many_threads_keep_no_fonts_open():
    """Gradio serves on worker threads that come and go; matplotlib keeps its fonts per thread.
    Timelines drawn from 30 threads alive at once leave the process's open files (as the OS
    counts them) where they were: every figure is drawn on the one plot thread."""
    import threading

    import psutil

    from faceres.app.render import timeline_html

    tracks = [("face 1", [0.0, 0.5, 1.0], {"happy": [0.2, 0.5, 0.9], "sad": [0.8, 0.5, 0.1]})]
    timeline_html(tracks)  # fonts loaded once
    before = psutil.Process().num_fds()
    gate = threading.Barrier(30)

    def draw() -> None:
        gate.wait()  # all 30 alive at once: 30 thread identities
        assert timeline_html(tracks).startswith("<img")

    threads = [threading.Thread(target=draw) for _ in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert psutil.Process().num_fds() <= before + 1


def test_freed_memory_goes_back_to_the_system():
    """A heap left fragmented (what a server's coming-and-going threads leave): 300 MB of 1 kB
    buffers freed but every 50th, so no free stretch reaches the heap's top. The process's
    resident memory (psutil) stays up until `release_freed_memory`, then drops by 150 MB."""
    script = """
import psutil
from faceres.app import release_freed_memory
proc = psutil.Process()
blocks = [bytes(1000) for _ in range(300_000)]
kept = blocks[::50]
del blocks
before = proc.memory_info().rss
assert release_freed_memory()
print((before - proc.memory_info().rss) / 1e6)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert float(out.stdout) > 150, out.stdout


def test_large_buffers_go_back_to_the_system_when_freed():
    """Forty 2 MB "photos", each followed by a 100 kB buffer that stays, after one 8 MB buffer
    was freed (which makes glibc serve buffers up to 8 MB from the heap). Freeing the photos
    gives their 80 MB back to the system (psutil's resident memory) only after
    `map_large_buffers`: without it they stay resident between the kept buffers (0 MB
    measured)."""
    script = """
import psutil
from faceres.app import map_large_buffers
assert map_large_buffers()
proc = psutil.Process()
freed_at_once = b"x" * 8_000_000
del freed_at_once
photos, kept = [], []
for _ in range(40):
    photos.append(b"x" * 2_000_000)
    kept.append(b"y" * 100_000)
before = proc.memory_info().rss
del photos
print((before - proc.memory_info().rss) / 1e6)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert float(out.stdout) > 70, out.stdout
