"""Expression recognition on real photos, and scoring of expression models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
)

import faceres.eval.fer as eval_expression
from faceres import registry
from faceres.errors import ModelError
from faceres.eval.fer import evaluate_expression, format_report, score
from faceres.settings import data_dir

skdata = pytest.importorskip("skimage.data")


def _has_default() -> bool:
    try:
        registry.default_model("expression")
    except Exception:  # noqa: BLE001
        return False
    return True


needs_model = pytest.mark.skipif(not _has_default(), reason="no default expression model")
needs_fer = pytest.mark.skipif(
    data_dir() is None or not (data_dir() / "fer2013" / "PrivateTest").is_dir(),
    reason="FER2013 is not in FACERES_DATA (fer2013/PrivateTest)",
)


def test_score_maps_ferplus_names_onto_fer_folders():
    labels = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt"]
    data_names = ("angry", "happy", "sad")
    probs = np.eye(8)[[4, 1, 3, 7]]  # anger, happiness, sadness, contempt
    report = score(probs, np.array([0, 1, 2, 2]), labels, data_names)
    assert report["accuracy"] == 0.75
    assert report["per_class"]["sad"] == {
        "precision": 1.0,
        "recall": 0.5,
        "support": 2,
        "no_face": 0,
    }
    assert "accuracy: 0.7500" in format_report(
        dict(report, model="m", data="d", faces="crop", views="mirror")
    )


def sklearn_scores(pred: np.ndarray, targets: np.ndarray, classes: int) -> dict:
    """Accuracy, confusion matrix, per-class precision / recall / support and the macro recall
    (balanced accuracy) by scikit-learn."""
    precision, recall, _, support = precision_recall_fscore_support(
        targets, pred, labels=range(classes), zero_division=0
    )
    return {
        "accuracy": accuracy_score(targets, pred),
        "confusion": confusion_matrix(targets, pred, labels=range(classes)),
        "precision": precision,
        "recall": recall,
        "support": support,
        "macro_recall": balanced_accuracy_score(targets, pred),
    }


def assert_scores_match(report: dict, expected: dict, data_names) -> None:
    assert report["accuracy"] == pytest.approx(expected["accuracy"])
    assert report["macro_recall"] == pytest.approx(expected["macro_recall"])
    for i, name in enumerate(data_names):
        row = report["per_class"][name]
        assert row["precision"] == pytest.approx(expected["precision"][i]), name
        assert row["recall"] == pytest.approx(expected["recall"][i]), name
        assert row["support"] == expected["support"][i], name


def test_score_agrees_with_sklearn():
    rng = np.random.default_rng(7)
    labels = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    probs = rng.dirichlet(np.ones(7), 500)
    targets = rng.choice(7, 500, p=[0.2, 0.02, 0.1, 0.3, 0.15, 0.08, 0.15])
    report = score(probs, targets, labels, tuple(labels))
    expected = sklearn_scores(probs.argmax(1), targets, 7)
    np.testing.assert_array_equal(report["confusion"], expected["confusion"])
    assert_scores_match(report, expected, labels)
    assert report["n"] == 500


def test_an_image_without_a_face_gets_no_class():
    """NaN rows (no face) are never counted correct, not even for class 0 ("angry"); scikit-learn
    scores the images with a face, and a hand count gives the rest."""
    labels = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    rng = np.random.default_rng(9)
    probs = rng.dirichlet(np.ones(7), 60)
    targets = rng.choice(7, 60)
    targets[:10] = 0  # angry, the class an all-zero row would argmax to
    probs[:10] = np.nan  # ... but these ten have no face
    report = score(probs, targets, labels, tuple(labels))
    found = slice(10, None)
    expected = sklearn_scores(probs[found].argmax(1), targets[found], 7)
    np.testing.assert_array_equal(report["confusion"], expected["confusion"])
    correct = int((probs[found].argmax(1) == targets[found]).sum())
    assert report["no_face"] == 10 and report["detection_rate"] == pytest.approx(50 / 60)
    assert report["accuracy"] == report["accuracy_all"] == pytest.approx(correct / 60)
    assert report["accuracy_detected"] == pytest.approx(expected["accuracy"])
    assert report["per_class"]["angry"]["no_face"] == 10
    angry_hits = int(((probs[found].argmax(1) == 0) & (targets[found] == 0)).sum())
    assert report["per_class"]["angry"]["recall"] == pytest.approx(
        angry_hits / int((targets == 0).sum())
    )


@needs_model
def test_detect_mode_reports_images_without_a_face(tmp_path):
    """A blank photo in angry/ and the astronaut in happy/: one without a face, never correct."""
    from PIL import Image
    from skimage import data

    (tmp_path / "angry").mkdir()
    (tmp_path / "happy").mkdir()
    Image.new("RGB", (320, 240), (128, 128, 128)).save(tmp_path / "angry" / "blank.png")
    Image.fromarray(data.astronaut()).save(tmp_path / "happy" / "astronaut.png")
    report = evaluate_expression(
        registry.default_model("expression"), folder=tmp_path, faces="detect"
    )
    assert report["no_face"] == 1 and report["detection_rate"] == 0.5
    assert report["per_class"]["angry"]["recall"] == 0.0
    assert report["accuracy_all"] <= 0.5
    assert "no face in 1" in format_report(report)


def test_score_of_a_ferplus_model_on_fer_folders_agrees_with_sklearn():
    model_names = [
        "neutral",
        "happiness",
        "surprise",
        "sadness",
        "anger",
        "disgust",
        "fear",
        "contempt",
    ]
    data_names = ("angry", "fear", "happy", "neutral", "sad")
    # each model class as the data class of the same meaning (-1: none, always wrong)
    as_data = {0: 3, 1: 2, 2: -1, 3: 4, 4: 0, 5: -1, 6: 1, 7: -1}
    rng = np.random.default_rng(8)
    targets = rng.choice(5, 400)
    probs = rng.dirichlet(np.ones(8), 400)
    right = rng.random(400) < 0.6  # a model that is mostly right
    model_class = {d: m for m, d in as_data.items() if d >= 0}
    probs[right, [model_class[t] for t in targets[right]]] += 1
    pred = np.array([as_data[int(p)] for p in probs.argmax(1)])
    assert (pred == targets).mean() > 0.5
    report = score(probs, targets, model_names, data_names)
    assert_scores_match(report, sklearn_scores(pred, targets, 5), data_names)
    # rows: the true data class; columns: the model's own class
    conf = np.zeros((5, 8), int)
    for t, p in zip(targets, probs.argmax(1)):
        conf[t, p] += 1
    np.testing.assert_array_equal(report["confusion"], conf)


def mirrored_probs(loaded, x: torch.Tensor) -> np.ndarray:
    """Softmax of a loaded registry model (eval mode, float32) on standardised images `x`,
    averaged with their mirror images."""
    x = x.to(loaded.device)
    with torch.no_grad():
        probs = (loaded.model(x).softmax(1) + loaded.model(x.flip(3)).softmax(1)) / 2
    return probs.cpu().numpy()


@needs_model
def test_astronaut_gets_one_face_with_probabilities():
    from faceres import analyze_expression

    result = analyze_expression(skdata.astronaut())
    assert len(result.faces) == 1
    face = result.faces[0]
    loaded = registry.load(result.model)
    labels = loaded.config["label_names"]
    assert list(face.probabilities) == labels
    scores = np.array([face.probabilities[name] for name in labels])
    assert face.label == labels[int(np.argmax(scores))]
    assert abs(scores.sum() - 1) < 1e-4
    assert face.crop.shape == (48, 48) and face.crop.dtype == np.uint8
    # the probabilities are the model's on the crop it saw and its mirror image (float32 here)
    mean, std = (float(loaded.config["pretrained_cfg"][k][0]) for k in ("mean", "std"))
    x = (torch.from_numpy(face.crop).float()[None, None] / 255 - mean) / std
    np.testing.assert_allclose(scores, mirrored_probs(loaded, x)[0], atol=0.02)
    assert set(result.timings) >= {"decode", "detect", "align", "classify", "total"}


@needs_model
@needs_fer
def test_classify_on_onnx_runtime_matches_the_torch_model():
    """`analyze_expression`'s classifier (ONNX Runtime on a CPU) against the registry's torch
    model in float32 on 512 PrivateTest faces: probabilities within 1e-4, every class the same."""
    from faceres.datasets.fer import load_fer2013
    from faceres.expression import classify
    from faceres.registry.runtime import load_runner

    name = registry.default_model("expression")
    runner = load_runner("expression", name)
    assert runner.backend == "onnx"
    loaded = registry.load(name)
    faces = load_fer2013("PrivateTest", None, "fer", protocol="majority")
    pick = np.random.default_rng(1).choice(len(faces.labels), 512, replace=False)
    mean, std = (float(loaded.config["pretrained_cfg"][k][0]) for k in ("mean", "std"))
    images = faces.images[pick]
    reference = mirrored_probs(
        loaded, (torch.from_numpy(images)[:, None].float() / 255 - mean) / std
    )
    probs = classify(images, runner)
    assert np.abs(probs - reference).max() < 1e-4
    assert (probs.argmax(1) == reference.argmax(1)).all()


@needs_model
def test_a_single_view_model_reads_the_face_alone():
    """With `views` "single" (as an argument or in the model's config) the app's classifier
    gives the torch model's softmax of the face alone; by default, the mean with the mirror
    image."""
    import dataclasses

    from faceres.expression import classify
    from faceres.registry.runtime import load_runner, mirror_views

    runner = load_runner("expression")
    loaded = registry.load(runner.name)
    images = np.random.default_rng(3).integers(0, 256, (6, 48, 48), dtype=np.uint8)
    mean, std = (float(loaded.config["pretrained_cfg"][k][0]) for k in ("mean", "std"))
    x = (torch.from_numpy(images)[:, None].float() / 255 - mean) / std
    with torch.no_grad():
        alone = loaded.model(x.to(loaded.device)).softmax(1).cpu().numpy()
    assert np.abs(classify(images, runner, views="single") - alone).max() < 1e-4
    config = {**runner.config, "faceres": {**runner.config["faceres"], "views": "single"}}
    single = dataclasses.replace(runner, config=config)
    assert not mirror_views(single.config)
    assert np.abs(classify(images, single) - alone).max() < 1e-4
    assert np.abs(classify(images, runner) - mirrored_probs(loaded, x)).max() < 1e-4
    with pytest.raises(ModelError, match="one of"):
        mirror_views({"faceres": {"views": "ten"}})


@needs_model
def test_no_face_gives_an_empty_result():
    from faceres import analyze_expression

    assert analyze_expression(np.full((200, 300, 3), 127, np.uint8)).faces == []


@needs_model
@needs_fer
@pytest.mark.slow
def test_default_model_reaches_its_card_on_privatetest(monkeypatch):
    name = registry.default_model("expression")
    seen = {}

    def predict_faces(model, faces, flip=True):
        seen.update(faces=faces, probs=original(model, faces, flip))
        return seen["probs"]

    original = eval_expression.predict_faces
    monkeypatch.setattr(eval_expression, "predict_faces", predict_faces)
    report = evaluate_expression(name, split="PrivateTest")
    assert report["n"] == 3589 and report["faces"] == "crop"

    # the scores, recomputed by sklearn from the same predictions and the true classes read from
    # the file paths (PrivateTest/<class>/<file>)
    loaded = registry.load(name)
    labels = list(loaded.config["label_names"])
    assert report["true_labels"] == report["predicted_labels"] == labels
    targets = np.array([labels.index(f.split("/")[-2]) for f in seen["faces"].files])
    assert len(targets) == 3589
    expected = sklearn_scores(seen["probs"].argmax(1), targets, len(labels))
    np.testing.assert_array_equal(report["confusion"], expected["confusion"])
    assert_scores_match(report, expected, labels)

    # those predictions are the model's: 64 images re-run here in float32, mirror image included
    pick = np.random.default_rng(0).choice(3589, 64, replace=False)
    mean, std = (float(loaded.config["pretrained_cfg"][k][0]) for k in ("mean", "std"))
    x = (torch.from_numpy(seen["faces"].images[pick]).float()[:, None] / 255 - mean) / std
    np.testing.assert_allclose(seen["probs"][pick], mirrored_probs(loaded, x), atol=0.02)

    card = registry.get_entry(name)["metrics"]["fer2013-privatetest/accuracy"]
    assert abs(report["accuracy"] - card) < 1e-3  # the published number is reproduced
    assert report["accuracy"] >= 0.70


FER2013_CLASSES = {"angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"}
"""FER2013's class folders (the data's README): the words every model answers in."""


def test_every_expression_model_answers_in_one_vocabulary():
    """FER+ models (happiness, sadness, anger…) answer with FER2013's words; contempt, which
    FER2013 has no word for, keeps its own."""
    from faceres.expression import class_names

    for entry in registry.list_models("expression"):
        names = class_names(registry.model_config(entry["name"]))
        assert set(names) - {"contempt"} <= FER2013_CLASSES, (entry["name"], names)


def test_every_expression_model_reads_a_smile():
    """The app's path (detect, frame at the template's size, resize to the model's input) works
    for every registered expression model, whatever its input size (48 or 32 pixels): the
    astronaut, who smiles, is one face and "happy" for each."""
    from skimage import data

    from faceres.expression import analyze_expression

    for entry in registry.list_models("expression"):
        result = analyze_expression(data.astronaut(), model=entry["name"])
        assert len(result.faces) == 1, entry["name"]
        probs = result.faces[0].probabilities
        assert sum(probs.values()) == pytest.approx(1.0, abs=1e-4), entry["name"]
        assert result.faces[0].label == "happy", (entry["name"], probs)


def test_a_first_use_is_known_before_it_happens(tmp_path, monkeypatch):
    """`first_use` is true exactly when running the model would export it: not for a model whose
    index pins a committed model.onnx, nor once its cached file exists."""
    from faceres.registry import onnx, runtime

    monkeypatch.setenv("FACERES_CACHE", str(tmp_path))
    monkeypatch.setattr(runtime, "_BUILT", set())
    monkeypatch.setattr(runtime, "choose_backend", lambda: "onnx")
    committed = [e["name"] for e in registry.list_models("identity") if "model.onnx" in e["files"]]
    assert committed and not runtime.first_use("identity", committed[0])
    name = next(
        e["name"] for e in registry.list_models("expression") if "model.onnx" not in e["files"]
    )
    assert runtime.first_use("expression", name)
    onnx.onnx_path(name).parent.mkdir(parents=True)
    onnx.onnx_path(name).touch()
    assert not runtime.first_use("expression", name)


def test_a_models_first_load_is_timed_apart_from_detection(monkeypatch):
    """A slow model load (its first use: an ONNX export) shows as "load model", not as
    detection time."""
    import time

    import faceres.expression as expression

    real = expression.load_runner

    def slow(*args, **kwargs):
        time.sleep(0.3)
        return real(*args, **kwargs)

    monkeypatch.setattr(expression, "load_runner", slow)
    result = expression.analyze_expression(skdata.astronaut())
    assert result.timings["load model"] >= 300 and result.timings["detect"] < 300


def test_the_card_shows_each_classs_recall_per_split():
    from faceres.registry.publish import results_section

    history = {
        "config": {"epochs": 10},
        "best_epoch": 9,
        "train_error_final": 0.1,
        "train_seconds": 60.0,
        "device": "cuda",
    }
    metrics = {
        "fer2013-privatetest/accuracy": 0.7,
        "fer2013-privatetest/macro_recall": 0.66,
        "fer2013-privatetest/recall_angry": 0.61,
        "fer2013-privatetest/recall_disgust": 0.709,
        "fer2013-publictest/recall_disgust": 0.5,
    }
    text = results_section(history, metrics)
    assert "| fer2013-privatetest/macro_recall | 0.6600 |" in text
    assert "| recall | angry | disgust |" in text
    assert "| fer2013-privatetest | 0.610 | 0.709 |" in text
    assert "| fer2013-publictest | – | 0.500 |" in text
    assert "/recall_" not in text
