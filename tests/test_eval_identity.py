"""The pair-list evaluation harness: parsing, metrics, and a full run with a throwaway embedder."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceres.alignment import align, dlib_chip_template
from faceres.detection import yunet_path
from faceres.errors import DataError
from faceres.eval_identity import (
    CENTRE_CROP,
    TUNE_SCALES,
    accuracy,
    best_balanced_accuracy,
    best_threshold,
    centre_face,
    evaluate_detectors,
    evaluate_lfw,
    evaluate_pairs,
    image_pairs,
    kfold_accuracy,
    read_lfw_pairs,
    read_pairs_csv,
    roc_auc,
    tar_at_far,
    uncertainty_band,
)
from faceres.settings import data_dir

skdata = pytest.importorskip("skimage.data")
needs_yunet = pytest.mark.skipif(
    yunet_path() is None,
    reason="YuNet's ONNX file does not resolve (registry entry yunet-2026may, FACERES_DATA)",
)


def colour_embedder(crops):
    """Throwaway embedder: mean colour of the crop's centre, plus a constant, normalised."""
    rows = [np.r_[c[50:100, 50:100].reshape(-1, 3).mean(axis=0) / 255.0, 0.2] for c in crops]
    out = np.asarray(rows)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_read_lfw_pairs_folds_and_dev(tmp_path):
    (tmp_path / "pairs.txt").write_text(
        "2\t1\nA\t1\t2\nA\t1\tB\t3\nC\t4\t5\nB\t1\tC\t2\n")
    pairs = read_lfw_pairs(tmp_path / "pairs.txt", tmp_path / "img")
    assert [p.same for p in pairs] == [True, False, True, False]
    assert [p.fold for p in pairs] == [0, 0, 1, 1]
    assert pairs[1].right == tmp_path / "img" / "B" / "B_0003.jpg"
    (tmp_path / "dev.txt").write_text("1\nA\t1\t2\nA\t1\tB\t3\n")
    assert [p.fold for p in read_lfw_pairs(tmp_path / "dev.txt", tmp_path)] == [None, None]
    (tmp_path / "bad.txt").write_text("1\nA\t1\t2\n")
    with pytest.raises(DataError, match="expected 2 pairs"):
        read_lfw_pairs(tmp_path / "bad.txt", tmp_path)


def test_read_pairs_csv(tmp_path):
    csv = tmp_path / "p.csv"
    csv.write_text("left,right,same,fold\na.jpg,b.jpg,1,0\na.jpg,c.jpg,different,1\n")
    pairs = read_pairs_csv(csv, tmp_path)
    assert [(p.same, p.fold) for p in pairs] == [(True, 0), (False, 1)]
    assert pairs[0].left == tmp_path / "a.jpg"
    csv.write_text("left,right\na.jpg,b.jpg\n")
    with pytest.raises(DataError, match="missing"):
        read_pairs_csv(csv, tmp_path)
    csv.write_text("left,right,same\na.jpg,b.jpg,maybe\n")
    with pytest.raises(DataError, match="line 2"):
        read_pairs_csv(csv, tmp_path)


def test_threshold_and_kfold_accuracy():
    rng = np.random.default_rng(0)
    labels = np.tile([True] * 30 + [False] * 30, 10)
    scores = np.where(labels, rng.normal(0.7, 0.1, 600), rng.normal(0.2, 0.1, 600))
    folds = np.repeat(np.arange(10), 60)
    threshold, acc = best_threshold(scores, labels)
    assert 0.3 < threshold < 0.6 and acc == accuracy(scores, labels, threshold) > 0.97
    result = kfold_accuracy(scores, labels, folds)
    assert len(result["fold_accuracies"]) == 10
    assert result["accuracy_mean"] == pytest.approx(np.mean(result["fold_accuracies"]))
    assert 0.95 < result["accuracy_mean"] <= acc + 1e-9


def test_auc_matches_the_rank_statistic():
    rng = np.random.default_rng(1)
    labels = rng.random(400) < 0.5
    scores = np.round(rng.normal(labels * 0.8, 1.0), 1)  # ties on purpose
    pos, neg = scores[labels], scores[~labels]
    mann_whitney = ((pos[:, None] > neg).sum() + 0.5 * (pos[:, None] == neg).sum()) / (
        len(pos) * len(neg))
    assert roc_auc(scores, labels) == pytest.approx(mann_whitney)


def test_tar_at_far_counts_false_accepts():
    neg = np.linspace(0, 0.5, 1000)
    pos = np.r_[np.linspace(0.3, 1, 90), np.full(10, 0.1)]
    scores, labels = np.r_[pos, neg], np.r_[np.ones(100, bool), np.zeros(1000, bool)]
    tar, threshold = tar_at_far(scores, labels, far=1e-3)
    assert ((neg >= threshold).sum()) <= 1
    assert tar == pytest.approx((pos >= threshold).mean())
    assert uncertainty_band(scores, labels, 0.5) >= 0


def test_best_balanced_accuracy_weighs_both_classes_equally():
    scores = np.r_[0.9, 0.1, np.linspace(0.0, 0.5, 98)]
    labels = np.r_[True, True, np.zeros(98, bool)]
    # one of two same pairs is below every different pair: half the same pairs, all different
    assert best_balanced_accuracy(scores, labels) == pytest.approx(0.75)
    assert best_threshold(scores, labels)[1] == pytest.approx(0.99)


def test_image_pairs_has_every_same_pair_and_seeded_different_pairs():
    paths = [Path(f"{person}/{person}_{i:04d}.jpg") for person, n in (("A", 3), ("B", 2), ("C", 1))
             for i in range(1, n + 1)]
    pairs = image_pairs(paths, different=50, seed=3)
    same = [p for p in pairs if p.same]
    assert len(same) == 3 + 1 and all(p.left.parent == p.right.parent for p in same)
    assert sum(not p.same for p in pairs) == 50
    assert all(p.left.parent != p.right.parent for p in pairs if not p.same)
    assert pairs == image_pairs(paths, different=50, seed=3)
    assert image_pairs(paths[:3], different=50) == same[:3]


def test_centre_face_gives_the_centre_crop():
    image = np.zeros((250, 250, 3), np.uint8)
    side = CENTRE_CROP * 250
    lo, hi = round(125 - side / 2), round(125 + side / 2)
    image[lo:hi, lo:hi] = 255
    template = dlib_chip_template()
    face = centre_face(image.shape, template)
    assert face.detector == "centre-crop"
    crop = align(image, face, template)
    assert crop[3:-3, 3:-3].min() == 255


def _write_images(folder: Path) -> dict[str, Path]:
    astro = skdata.astronaut()
    images = {
        "astro": astro,
        "astro_dark": (astro * 0.6).astype(np.uint8),
        "astro_flip": astro[:, ::-1],
        "camera": np.stack([skdata.camera()] * 3, axis=2),
        "blank": np.full((200, 200, 3), 90, np.uint8),
    }
    paths = {}
    for name, pixels in images.items():
        paths[name] = folder / f"{name}.png"
        Image.fromarray(np.ascontiguousarray(pixels)).save(paths[name])
    return paths


@needs_yunet
def test_evaluate_pairs_end_to_end(tmp_path):
    _write_images(tmp_path)
    csv = tmp_path / "pairs.csv"
    csv.write_text("left,right,same\nastro.png,astro_flip.png,1\nastro.png,astro_dark.png,1\n"
                   "astro.png,camera.png,0\ncamera.png,blank.png,0\n")
    report = evaluate_pairs(csv, tmp_path, "throwaway", out_dir=tmp_path / "out",
                            detector="yunet", embedder=colour_embedder,
                            template=dlib_chip_template())
    assert report["pairs"] == 4 and report["images"] == 5
    assert report["undetected"] == 1  # the blank image: centre crop, not dropped
    assert 0 <= report["auc"] <= 1 and "accuracy_best_threshold" in report
    assert Path(report["roc_plot"]).is_file()


@needs_yunet
def test_evaluate_lfw_on_a_miniature_lfw(tmp_path):
    root = tmp_path / "lfw"
    folder = root / "lfw-deepfunneled"
    names = {"astro": ("Ann", 1), "astro_dark": ("Ann", 2), "astro_flip": ("Ann", 3),
             "camera": ("Bob", 1), "blank": ("Bob", 2)}
    for key, path in _write_images(tmp_path).items():
        person, number = names[key]
        (folder / person).mkdir(parents=True, exist_ok=True)
        Image.open(path).convert("RGB").save(folder / person / f"{person}_{number:04d}.jpg")
    same, diff = "Ann\t1\t2\n", "Ann\t1\tBob\t1\n"
    (root / "pairsDevTrain.txt").write_text(f"1\n{same}{diff}")
    (root / "pairsDevTest.txt").write_text("1\nAnn\t1\t3\nAnn\t3\tBob\t2\n")
    (root / "pairs.txt").write_text(f"2\t1\n{same}{diff}Ann\t2\t3\nAnn\t2\tBob\t2\n")
    report = evaluate_lfw("throwaway", data=root, out_dir=tmp_path / "out", detector="yunet",
                          tune=True, embedder=colour_embedder, template=dlib_chip_template())
    assert report["images"] == 5 and report["undetected"] == 1
    assert report["undetected_images"] == ["Bob/Bob_0002.jpg"]
    assert len(report["view2"]["fold_accuracies"]) == 2
    assert set(report["view1"]) >= {"threshold", "band", "dev_test_accuracy"}
    trials = report["view1"]["template_trials"]
    assert {t["scale"] for t in trials} == set(TUNE_SCALES) and "geometry" in report["template"]
    # the dlib detector finds the astronaut: its box is fitted and the dlib5 view is tried
    assert len(trials) == 2 * len(TUNE_SCALES) and {t["dlib5_view"] for t in trials} == {0, 1}
    with pytest.raises(DataError, match="YuNet"):
        evaluate_lfw("throwaway", data=root, out_dir=tmp_path / "out", detector="dlib",
                     tune=True, embedder=colour_embedder, template=dlib_chip_template())
    saved = json.loads((tmp_path / "out" / "lfw-throwaway-yunet.json").read_text())
    assert saved["view2"]["auc"] == report["view2"]["auc"]
    both = evaluate_detectors("throwaway", data=root, out_dir=tmp_path / "out",
                              embedder=colour_embedder, template=dlib_chip_template())
    assert both["detectors"]["yunet"]["detection_rate"] == pytest.approx(4 / 5)
    assert both["detectors"]["dlib"]["images"] == 5


@pytest.mark.skipif(data_dir() is None or not (data_dir() / "lfw" / "pairs.txt").is_file(),
                    reason="LFW is not in FACERES_DATA (lfw/pairs.txt)")
def test_lfw_lists_have_the_standard_sizes():
    lfw = data_dir() / "lfw"
    view2 = read_lfw_pairs(lfw / "pairs.txt", lfw / "lfw-deepfunneled")
    assert len(view2) == 6000 and sum(p.same for p in view2) == 3000
    assert {p.fold for p in view2} == set(range(10))
    assert all(p.left.is_file() and p.right.is_file() for p in view2[:50])
