"""The pair-list evaluation harness: parsing, metrics, and a full run with a throwaway embedder."""

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

import faceres.eval.lfw as eval_identity
from faceres import imageio
from faceres.datasets.lfw import image_pairs, read_lfw_pairs, read_pairs_csv
from faceres.detect.yunet import yunet_path
from faceres.errors import DataError
from faceres.eval.lfw import (
    CENTRE_CROP,
    TUNE_SCALES,
    Subject,
    centre_face,
    evaluate_detectors,
    evaluate_lfw,
    evaluate_pairs,
)
from faceres.eval.metrics import (
    accuracy,
    best_balanced_accuracy,
    best_threshold,
    called_metrics,
    choose_band,
    kfold_accuracy,
    risk_coverage,
    roc_auc,
    roc_curve,
    tar_at_far,
    verdicts,
)
from faceres.face.align import align, dlib_chip_template
from faceres.face.pipeline import Member
from faceres.identity import decide
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


SUBJECT = Subject("throwaway", (Member(colour_embedder, dlib_chip_template()),))
"""The throwaway embedder as an evaluation subject (no registry calibration)."""


def test_read_lfw_pairs_folds_and_dev(tmp_path):
    (tmp_path / "pairs.txt").write_text("2\t1\nA\t1\t2\nA\t1\tB\t3\nC\t4\t5\nB\t1\tC\t2\n")
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


def _sk_accuracies(scores, labels):
    """Accuracy of `score >= t` at every operating point, from scikit-learn's ROC curve (the
    first threshold, +inf, rejects everything; the last accepts everything)."""
    fpr, tpr, _ = sk_roc_curve(labels, scores, drop_intermediate=False)
    positives, negatives = labels.sum(), (~labels).sum()
    return (tpr * positives + (1 - fpr) * negatives) / len(labels)


def test_best_threshold_on_hand_computed_cases():
    assert best_threshold(np.array([0.1, 0.4, 0.6, 0.9]), np.array([0, 0, 1, 1])) == (0.5, 1.0)
    # sorted: 0.1- 0.2- 0.3+ 0.35- 0.4- 0.6+ 0.9+; only the cut between 0.4 and 0.6 gets 6 of 7
    scores = np.array([0.9, 0.1, 0.35, 0.6, 0.2, 0.3, 0.4])
    labels = np.array([1, 0, 0, 1, 0, 1, 0], bool)
    threshold, acc = best_threshold(scores, labels)
    assert threshold == pytest.approx(0.5) and acc == pytest.approx(6 / 7)
    assert accuracy(scores, labels, 0.5) == pytest.approx(6 / 7)
    assert accuracy(scores, labels, 0.25) == pytest.approx(5 / 7)


def test_best_threshold_reaches_the_best_accuracy_of_sklearns_roc():
    rng = np.random.default_rng(0)
    labels = np.tile([True] * 30 + [False] * 30, 10)
    scores = np.where(labels, rng.normal(0.7, 0.1, 600), rng.normal(0.5, 0.1, 600))
    best = _sk_accuracies(scores, labels).max()
    threshold, acc = best_threshold(scores, labels)
    assert acc == pytest.approx(best) and accuracy(scores, labels, threshold) == pytest.approx(best)


def test_kfold_thresholds_are_chosen_on_the_other_folds_on_a_hand_computed_case():
    # fold 0: different 0.10 0.45, same 0.60 0.90 | fold 1: 0.20 0.30, 0.52 0.80
    # fold 2: 0.15 0.35, 0.55 0.70. Without fold 0 the only perfect cut is (0.35 + 0.52) / 2,
    # without fold 1 it is (0.45 + 0.55) / 2, without fold 2 (0.45 + 0.52) / 2. With every fold
    # included it would be 0.485 each time, and fold 0 would score 4/4 instead of 3/4.
    scores = np.array([0.10, 0.45, 0.60, 0.90, 0.20, 0.30, 0.52, 0.80, 0.15, 0.35, 0.55, 0.70])
    labels = np.tile([False, False, True, True], 3)
    folds = np.repeat([0, 1, 2], 4)
    result = kfold_accuracy(scores, labels, folds)
    assert result["fold_thresholds"] == pytest.approx([0.435, 0.5, 0.485])
    assert result["fold_accuracies"] == pytest.approx([0.75, 1.0, 1.0])
    assert result["accuracy_mean"] == pytest.approx(11 / 12)
    assert result["accuracy_std"] == pytest.approx(np.sqrt(1 / 48))  # sample std of 3/4, 1, 1
    assert result["accuracy_se"] == pytest.approx(np.sqrt(1 / 48) / np.sqrt(3))


def test_kfold_thresholds_are_best_on_the_other_nine_folds():
    """Each fold's threshold reaches the best accuracy scikit-learn's ROC allows on the other
    nine folds, and the fold's accuracy is measured at it on the fold alone."""
    rng = np.random.default_rng(3)
    labels = np.tile([True] * 30 + [False] * 30, 10)
    scores = np.where(labels, rng.normal(0.65, 0.1, 600), rng.normal(0.45, 0.1, 600))
    folds = np.repeat(np.arange(10), 60)
    result = kfold_accuracy(scores, labels, folds)
    assert len(result["fold_thresholds"]) == 10
    for fold, (threshold, acc) in enumerate(
        zip(result["fold_thresholds"], result["fold_accuracies"])
    ):
        train, test = folds != fold, folds == fold
        best = _sk_accuracies(scores[train], labels[train]).max()
        assert np.mean((scores[train] >= threshold) == labels[train]) == pytest.approx(best)
        assert acc == pytest.approx(np.mean((scores[test] >= threshold) == labels[test]))
    assert result["accuracy_mean"] == pytest.approx(np.mean(result["fold_accuracies"]))
    assert result["accuracy_std"] == pytest.approx(np.std(result["fold_accuracies"], ddof=1))


def test_roc_curve_and_auc_match_sklearn():
    rng = np.random.default_rng(1)
    labels = rng.random(400) < 0.5
    scores = np.round(rng.normal(labels * 0.8, 1.0), 1)  # ties on purpose
    pos, neg = scores[labels], scores[~labels]
    mann_whitney = ((pos[:, None] > neg).sum() + 0.5 * (pos[:, None] == neg).sum()) / (
        len(pos) * len(neg)
    )
    assert roc_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))
    assert roc_auc(scores, labels) == pytest.approx(mann_whitney)
    expected = sk_roc_curve(labels, scores, drop_intermediate=False)
    for ours, theirs in zip(roc_curve(scores, labels), expected):
        np.testing.assert_allclose(ours, theirs)


def test_tar_at_far_on_a_hand_built_case():
    # 5 same pairs, 10 different ones. Lowering the threshold: 0.95 (TAR 1/5, 0 false accepts),
    # 0.90 (2/5, 0), 0.85 (2/5, 1), 0.70 (3/5, 1), 0.60 (4/5, 1), 0.50 (4/5, 2), 0.45 (4/5, 3),
    # 0.40 (5/5, 4), 0.35 (5/5, 5), 0.30 (5/5, 6), 0.25 (5/5, 7) ...
    same = [0.95, 0.90, 0.70, 0.60, 0.40]
    different = [0.10, 0.15, 0.20, 0.25, 0.30, 0.35, 0.40, 0.45, 0.50, 0.85]
    scores, labels = np.r_[same, different], np.r_[np.ones(5, bool), np.zeros(10, bool)]
    for far, tar, threshold in (
        (0.0, 0.4, 0.90),
        (0.1, 0.8, 0.60),
        (0.2, 0.8, 0.50),
        (0.6, 1.0, 0.30),
        (1.0, 1.0, 0.10),
    ):
        assert tar_at_far(scores, labels, far) == pytest.approx((tar, threshold)), far


def test_tar_at_far_matches_sklearns_roc():
    neg = np.linspace(0, 0.5, 1000)
    pos = np.r_[np.linspace(0.3, 1, 90), np.full(10, 0.1)]
    scores, labels = np.r_[pos, neg], np.r_[np.ones(100, bool), np.zeros(1000, bool)]
    fpr, tpr, thresholds = sk_roc_curve(labels, scores, drop_intermediate=False)
    for far in (1e-3, 1e-2, 0.1):
        allowed = np.flatnonzero(fpr <= far)
        tar, threshold = tar_at_far(scores, labels, far=far)
        assert tar == pytest.approx(tpr[allowed].max())
        assert threshold == pytest.approx(thresholds[allowed[-1]])
    # FAR 1e-3 of 1000 different pairs: one false accept (0.5), 64 of 100 same pairs above it
    assert tar_at_far(scores, labels, far=1e-3) == pytest.approx((0.64, 0.5))


def _band_case() -> tuple[np.ndarray, np.ndarray]:
    """Threshold 0.5; 21 errors at distances 0.00, 0.01, ..., 0.20 from it (different pairs at
    0.5 + even hundredths, same pairs at 0.5 - odd ones), 100 right "different" at 0.1 and 100
    right "same" at 0.95."""
    different = 0.5 + np.arange(0, 21, 2) / 100
    same = 0.5 - np.arange(1, 21, 2) / 100
    scores = np.r_[different, same, np.full(100, 0.1), np.full(100, 0.95)]
    labels = np.r_[np.zeros(11, bool), np.ones(10, bool), np.zeros(100, bool), np.ones(100, bool)]
    return scores, labels


def test_choose_band_on_a_hand_computed_case():
    scores, labels = _band_case()
    # a band covering the errors up to k/100 leaves 20 - k of them among 220 - k verdicts:
    # 200 / (220 - k) >= 0.99 first at k = 18 (200/202 = 0.9901; k = 17 gives 0.9852)
    assert choose_band(scores, labels, 0.5, target=0.99) == pytest.approx(0.18, abs=1e-6)
    # 200 / (220 - k) >= 0.95 at k = 10 (200/210 = 0.952; k = 9 gives 0.948)
    assert choose_band(scores, labels, 0.5, target=0.95) == pytest.approx(0.10, abs=1e-6)
    assert choose_band(np.r_[0.2, 0.8], np.r_[False, True], 0.5) == 0.0


def test_called_metrics_count_verdicts_by_hand():
    scores, labels = _band_case()
    calls = verdicts(scores, 0.5, 0.18 + 1e-9)
    m = called_metrics(calls, labels)
    assert m["pairs"] == 221 and m["uncertain"] == 19  # errors at 0.00 ... 0.18
    assert m["accuracy_called"] == pytest.approx(200 / 202)
    # left: the different pairs at 0.70 and the same pair at 0.31, both wrong
    assert m["confident_wrong_same"] == pytest.approx(1 / 221)
    assert m["confident_wrong_different"] == pytest.approx(1 / 221)
    gated = np.zeros(221, bool)
    gated[-100:] = True  # the quality gate stops every right "same"
    m = called_metrics(verdicts(scores, 0.5, 0.18 + 1e-9, gated), labels)
    assert m["uncertain"] == 119 and m["accuracy_called"] == pytest.approx(100 / 102)
    # verdicts follows faceres.identity.decide, pair by pair
    for s, call in zip(scores, verdicts(scores, 0.5, 0.05), strict=True):
        assert {1: "same", -1: "different", 0: "uncertain"}[call] == decide(s, 0.5, 0.05)


def test_risk_coverage_drops_pairs_nearest_the_threshold_first():
    scores = np.r_[0.9, 0.52, 0.1, 0.47, 0.2]
    labels = np.r_[True, False, False, True, False]
    coverage, risk = risk_coverage(scores, labels, 0.5)
    # by distance from 0.5: 0.1 (right), 0.9 (right), 0.2 (right), 0.47 (wrong), 0.52 (wrong)
    np.testing.assert_allclose(coverage, [0.2, 0.4, 0.6, 0.8, 1.0])
    np.testing.assert_allclose(risk, [0, 0, 0, 1 / 4, 2 / 5])


def test_best_balanced_accuracy_weighs_both_classes_equally():
    scores = np.r_[0.9, 0.1, np.linspace(0.0, 0.5, 98)]
    labels = np.r_[True, True, np.zeros(98, bool)]
    # one of two same pairs is below every different pair: half the same pairs, all different
    assert best_balanced_accuracy(scores, labels) == pytest.approx(0.75)
    assert best_threshold(scores, labels)[1] == pytest.approx(0.99)
    rng = np.random.default_rng(2)
    labels = rng.random(300) < 0.2
    scores = rng.normal(labels * 1.0, 1.0)
    fpr, tpr, _ = sk_roc_curve(labels, scores, drop_intermediate=False)
    assert best_balanced_accuracy(scores, labels) == pytest.approx(np.max((tpr + 1 - fpr) / 2))


def test_image_pairs_has_every_same_pair_and_seeded_different_pairs():
    paths = [
        Path(f"{person}/{person}_{i:04d}.jpg")
        for person, n in (("A", 3), ("B", 2), ("C", 1))
        for i in range(1, n + 1)
    ]
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


def _record_scores(monkeypatch) -> list[np.ndarray]:
    """Spy on the pair similarities an evaluation computes (one array per pair list)."""
    recorded = []
    original = eval_identity.pair_scores

    def spy(pairs, embeddings):
        recorded.append(original(pairs, embeddings))
        return recorded[-1]

    monkeypatch.setattr(eval_identity, "pair_scores", spy)
    return recorded


@needs_yunet
def test_evaluate_pairs_end_to_end(tmp_path, monkeypatch):
    _write_images(tmp_path)
    csv = tmp_path / "pairs.csv"
    csv.write_text(
        "left,right,same\nastro.png,astro_flip.png,1\nastro.png,astro_dark.png,1\n"
        "astro.png,camera.png,0\ncamera.png,blank.png,0\n"
    )
    scored = _record_scores(monkeypatch)
    report = evaluate_pairs(
        csv,
        tmp_path,
        Subject("throwaway", (Member(colour_embedder, dlib_chip_template()),)),
        out_dir=tmp_path / "out",
        detector="yunet",
    )
    assert report["pairs"] == 4 and report["images"] == 5
    assert report["undetected"] == 1  # the blank image: centre crop, not dropped
    # the report's metrics against scikit-learn on the scores the run computed
    (scores,) = scored
    labels = np.array([True, True, False, False])
    assert report["auc"] == pytest.approx(roc_auc_score(labels, scores))
    assert report["accuracy_best_threshold"] == pytest.approx(_sk_accuracies(scores, labels).max())
    fpr, tpr, _ = sk_roc_curve(labels, scores, drop_intermediate=False)
    assert report["tar_at_far"] == pytest.approx(tpr[fpr <= report["far"]].max())
    assert report["similarity_same_mean"] == pytest.approx(np.mean(scores[:2]))
    assert Path(report["roc_plot"]).is_file()


@needs_yunet
def test_evaluate_lfw_on_a_miniature_lfw(tmp_path):
    root = tmp_path / "lfw"
    folder = root / "lfw-deepfunneled"
    names = {
        "astro": ("Ann", 1),
        "astro_dark": ("Ann", 2),
        "astro_flip": ("Ann", 3),
        "camera": ("Bob", 1),
        "blank": ("Bob", 2),
    }
    for key, path in _write_images(tmp_path).items():
        person, number = names[key]
        (folder / person).mkdir(parents=True, exist_ok=True)
        Image.open(path).convert("RGB").save(folder / person / f"{person}_{number:04d}.jpg")
    same, diff = "Ann\t1\t2\n", "Ann\t1\tBob\t1\n"
    (root / "pairsDevTrain.txt").write_text(f"1\n{same}{diff}")
    (root / "pairsDevTest.txt").write_text("1\nAnn\t1\t3\nAnn\t3\tBob\t2\n")
    (root / "pairs.txt").write_text(f"2\t1\n{same}{diff}Ann\t2\t3\nAnn\t2\tBob\t2\n")
    report = evaluate_lfw(
        SUBJECT,
        data=root,
        out_dir=tmp_path / "out",
        detector="yunet",
        tune=True,
    )
    assert report["images"] == 5 and report["undetected"] == 1
    assert report["undetected_images"] == ["Bob/Bob_0002.jpg"]
    assert len(report["view2"]["fold_accuracies"]) == 2
    assert set(report["view1"]) >= {"threshold", "band", "dev_test_accuracy"}
    trials = report["view1"]["template_trials"]
    assert {t["scale"] for t in trials} == set(TUNE_SCALES) and "geometry" in report["template"]
    # the dlib detector finds the astronaut: its box is fitted and the dlib5 view is tried
    assert len(trials) == 2 * len(TUNE_SCALES) and {t["dlib5_view"] for t in trials} == {0, 1}
    with pytest.raises(DataError, match="YuNet"):
        evaluate_lfw(
            SUBJECT,
            data=root,
            out_dir=tmp_path / "out",
            detector="dlib",
            tune=True,
        )
    saved = json.loads((tmp_path / "out" / "lfw-throwaway-yunet.json").read_text())
    assert saved["view2"]["auc"] == report["view2"]["auc"]
    v2 = report["view2"]
    calls = v2["pairs"] - v2["uncertain"]
    assert v2["uncertain_fraction"] == v2["uncertain"] / 4 and 0 <= calls <= 4
    # Bob_0002 has no face: its View 2 pair gets no verdict, whatever its similarity
    assert v2["gated"] == 1 and v2["uncertain"] >= 1
    assert report["view1"]["genuine_scores"] == sorted(report["view1"]["genuine_scores"])
    assert len(report["view1"]["genuine_scores"]) == len(report["view1"]["impostor_scores"]) == 2
    table = (tmp_path / "out" / "lfw-throwaway-yunet-pairs.csv").read_text().splitlines()
    assert len(table) == 1 + 2 + 2 + 4 and table[0].startswith("list,fold,same,similarity")
    blank = [row for row in table if "Bob/Bob_0002.jpg" in row]
    assert len(blank) == 2 and all(row.endswith(",,,") for row in blank)  # DevTest, View 2
    assert Path(report["risk_coverage_plot"]).is_file()
    small = evaluate_lfw(
        SUBJECT,
        data=root,
        out_dir=tmp_path / "out",
        detector="yunet",
        downscale=0.5,
        gate={"min_eye_distance": 10_000},
    )
    assert small["downscale"] == 0.5 and small["view2"]["uncertain_fraction"] == 1.0
    assert (tmp_path / "out" / "lfw-throwaway-yunet-x0.5.json").is_file()
    with pytest.raises(DataError, match="downscale"):
        evaluate_lfw(SUBJECT, data=root, downscale=1.5)
    both = evaluate_detectors(
        SUBJECT,
        data=root,
        out_dir=tmp_path / "out",
    )
    assert both["detectors"]["yunet"]["detection_rate"] == pytest.approx(4 / 5)
    assert both["detectors"]["dlib"]["images"] == 5


@pytest.fixture
def split_lfw(tmp_path) -> tuple[Path, set[Path], set[Path]]:
    """A miniature LFW whose View 1 (pairsDevTrain/DevTest: Ann, Bob) and View 2 (pairs.txt,
    2 folds: Cat, Dan) use disjoint images: the root, View 1's images, View 2's images."""
    root = tmp_path / "lfw"
    folder = root / "lfw-deepfunneled"
    astro, camera = skdata.astronaut(), np.stack([skdata.camera()] * 3, axis=2)
    pixels = {
        ("Ann", 1): astro,
        ("Ann", 2): (astro * 0.6).astype(np.uint8),
        ("Ann", 3): astro[:, ::-1],
        ("Bob", 1): camera,
        ("Bob", 2): np.full((200, 200, 3), 90, np.uint8),
        ("Cat", 1): np.clip(astro * 1.3, 0, 255).astype(np.uint8),
        ("Cat", 2): astro[40:, 30:],
        ("Dan", 1): camera[:, ::-1],
        ("Dan", 2): skdata.coffee(),
    }
    paths = {}
    for (person, number), image in pixels.items():
        paths[person, number] = folder / person / f"{person}_{number:04d}.jpg"
        paths[person, number].parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.ascontiguousarray(image)).save(paths[person, number])
    (root / "pairsDevTrain.txt").write_text("1\nAnn\t1\t2\nAnn\t1\tBob\t1\n")
    (root / "pairsDevTest.txt").write_text("1\nAnn\t1\t3\nAnn\t3\tBob\t2\n")
    (root / "pairs.txt").write_text("2\t1\nCat\t1\t2\nCat\t1\tDan\t1\nDan\t1\t2\nCat\t2\tDan\t2\n")
    view1 = {path for (person, _), path in paths.items() if person in ("Ann", "Bob")}
    return root, view1, set(paths.values()) - view1


@needs_yunet
def test_tune_reads_only_view1_images(split_lfw, tmp_path, monkeypatch):
    """`--tune` fits the template on View 1: it reads every View 1 image again, and no View 2
    image more often than an evaluation without tuning does."""
    root, view1, view2 = split_lfw

    def reads(tune: bool) -> Counter:
        counts: Counter = Counter()

        def spy(source, *args, **kwargs):
            counts[Path(source)] += 1
            return imageio.load_image(source, *args, **kwargs)

        with monkeypatch.context() as patch:
            patch.setattr(eval_identity, "load_image", spy)
            report = evaluate_lfw(
                SUBJECT,
                data=root,
                out_dir=tmp_path / "out",
                detector="yunet",
                tune=tune,
            )
        assert bool(report["view1"]["template_trials"]) == tune
        return counts

    plain, tuned = reads(False), reads(True)
    assert set(plain) == set(tuned) == view1 | view2
    assert {p: tuned[p] for p in view2} == {p: plain[p] for p in view2}
    assert all(tuned[p] > plain[p] for p in view1), (tuned, plain)


@pytest.mark.skipif(
    data_dir() is None or not (data_dir() / "lfw" / "pairs.txt").is_file(),
    reason="LFW is not in FACERES_DATA (lfw/pairs.txt)",
)
def test_lfw_lists_have_the_standard_sizes():
    lfw = data_dir() / "lfw"
    view2 = read_lfw_pairs(lfw / "pairs.txt", lfw / "lfw-deepfunneled")
    assert len(view2) == 6000 and sum(p.same for p in view2) == 3000
    assert {p.fold for p in view2} == set(range(10))
    assert all(p.left.is_file() and p.right.is_file() for p in view2[:50])
