"""Expression recognition on real photos, and scoring of expression models."""

from __future__ import annotations

import numpy as np
import pytest

from faceres import registry
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
    reason="FER2013 is not in FACERES_DATA (fer2013/PrivateTest)")


def test_score_maps_ferplus_names_onto_fer_folders():
    labels = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt"]
    data_names = ("angry", "happy", "sad")
    probs = np.eye(8)[[4, 1, 3, 7]]            # anger, happiness, sadness, contempt
    report = score(probs, np.array([0, 1, 2, 2]), labels, data_names)
    assert report["accuracy"] == 0.75
    assert report["per_class"]["sad"] == {"precision": 1.0, "recall": 0.5, "support": 2}
    assert "accuracy: 0.7500" in format_report(dict(report, model="m", data="d", faces="crop",
                                                    no_face=0))


@needs_model
def test_astronaut_gets_one_face_with_probabilities():
    from faceres import analyze_expression

    result = analyze_expression(skdata.astronaut())
    assert len(result.faces) == 1
    face = result.faces[0]
    labels = registry.load(result.model).config["label_names"]
    assert list(face.probabilities) == labels and face.label in labels
    assert abs(sum(face.probabilities.values()) - 1) < 1e-4
    assert face.crop.shape == (48, 48) and face.crop.dtype == np.uint8
    assert set(result.timings) >= {"decode", "detect", "align", "classify", "total"}


@needs_model
def test_no_face_gives_an_empty_result():
    from faceres import analyze_expression

    assert analyze_expression(np.full((200, 300, 3), 127, np.uint8)).faces == []


@needs_model
@needs_fer
def test_default_model_reaches_its_card_on_privatetest():
    name = registry.default_model("expression")
    report = evaluate_expression(name, split="PrivateTest")
    card = registry.get_entry(name)["metrics"]["fer2013-privatetest/accuracy"]
    assert report["n"] == 3589 and report["faces"] == "crop"
    assert abs(report["accuracy"] - card) < 1e-3
    assert report["accuracy"] >= 0.70
