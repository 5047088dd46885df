"""FER2013 / FER+ loading in both layouts, from small files the tests write."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceres.datasets.fer import (
    FER_LABELS,
    FERPLUS_LABELS,
    ferplus_targets,
    load_fer2013,
    load_fer2013_csv,
    load_image_folder,
)
from faceres.errors import DataError


def write_fer_csv(path: Path, rows: list[tuple[int, str]]) -> np.ndarray:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (len(rows), 48, 48), dtype=np.uint8)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["emotion", "pixels", "Usage"])
        for (emotion, usage), im in zip(rows, images):
            w.writerow([emotion, " ".join(map(str, im.ravel())), usage])
    return images


def test_kaggle_csv_layout(tmp_path):
    rows = [(3, "Training"), (0, "Training"), (6, "PublicTest"), (5, "PrivateTest")]
    images = write_fer_csv(tmp_path / "fer2013.csv", rows)
    splits = load_fer2013_csv(tmp_path / "fer2013.csv")
    assert [len(splits[s]) for s in ("Training", "PublicTest", "PrivateTest")] == [2, 1, 1]
    assert splits["Training"].label_names == FER_LABELS
    assert splits["Training"].targets.tolist() == [3, 0]
    np.testing.assert_array_equal(splits["PrivateTest"].images[0], images[3])


def test_kaggle_csv_with_ferplus_votes(tmp_path):
    write_fer_csv(tmp_path / "fer2013.csv", [(3, "Training"), (0, "Training"), (6, "PublicTest")])
    header = ["Usage", "Image name", *FERPLUS_LABELS, "unknown", "NF"]
    votes = [
        ["Training", "fer0.png", 0, 9, 1, 0, 0, 0, 0, 0, 0, 0],
        ["Training", "", 0, 0, 0, 0, 0, 0, 0, 0, 0, 10],  # not a face: dropped
        ["PublicTest", "fer2.png", 6, 0, 0, 0, 0, 0, 0, 0, 4, 0],
    ]
    with (tmp_path / "fer2013new.csv").open("w", newline="") as fh:
        csv.writer(fh).writerows([header, *votes])
    splits = load_fer2013_csv(tmp_path / "fer2013.csv", tmp_path / "fer2013new.csv")
    assert len(splits["Training"]) == 1 and splits["Training"].targets.tolist() == [1]
    assert splits["PublicTest"].label_names == FERPLUS_LABELS
    prob = load_fer2013_csv(
        tmp_path / "fer2013.csv", tmp_path / "fer2013new.csv", protocol="probability"
    )
    np.testing.assert_allclose(prob["Training"].targets[0][:3], [0, 0.9, 0.1])


def test_ferplus_protocols():
    votes = np.array([[5, 3, 0, 0, 0, 0, 0, 0, 2, 0], [0, 0, 0, 0, 0, 0, 0, 0, 1, 9]])
    keep, labels = ferplus_targets(votes, "majority")
    assert keep.tolist() == [True, False] and labels.tolist() == [0]
    _, shares = ferplus_targets(votes, "probability")
    np.testing.assert_allclose(shares[0], [5 / 8, 3 / 8, 0, 0, 0, 0, 0, 0])
    with pytest.raises(DataError):
        ferplus_targets(votes, "vote")


def test_any_class_named_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("FACERES_CACHE", str(tmp_path / "cache"))
    for cls, value in (("happy", 200), ("sad", 50)):
        (tmp_path / "faces" / cls).mkdir(parents=True)
        Image.new("L", (96, 96), value).save(tmp_path / "faces" / cls / "a.png")
        Image.new("RGB", (64, 64), (value,) * 3).save(tmp_path / "faces" / cls / "b.jpg")
    faces = load_image_folder(tmp_path / "faces")
    assert faces.images.shape == (4, 48, 48) and faces.label_names == ("happy", "sad")
    assert faces.targets.tolist() == [0, 0, 1, 1]
    assert abs(int(faces.images[3].mean()) - 50) <= 1
    again = load_image_folder(tmp_path / "faces")  # from the cache
    np.testing.assert_array_equal(again.images, faces.images)
    with pytest.raises(DataError, match="not among the labels"):
        load_image_folder(tmp_path / "faces", label_names=("happy",))


def test_missing_data_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="FER2013"):
        load_fer2013("Training", data=tmp_path)
    with pytest.raises(DataError, match="split"):
        load_fer2013("Validation", data=tmp_path)
