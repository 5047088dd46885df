"""1:N scoring and grouping choices: the gallery hub correction and its View 1 fit, the
clustering cuts (against scikit-learn) and their fit, checked on hand-computed cases; the
evaluation commands on a small folder of people."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from faceres import registry
from faceres.cli import main
from faceres.eval import identify
from faceres.eval.identify import (
    Embedded,
    cluster_metrics,
    fit_cluster,
    fit_hub,
    hub_scores,
    identification_metrics,
    view1_people,
)
from faceres.search.query import LINKAGES, cluster_cuts
from faceres.settings import data_dir
from tests.test_search import collection, needs_identity

LFW_IMAGES = (data_dir() or Path("/nonexistent")) / "lfw" / "lfw-deepfunneled"
needs_lfw = pytest.mark.skipif(
    not LFW_IMAGES.is_dir(), reason="LFW research data not found (set FACERES_DATA)"
)

R3 = np.sqrt(3)
# Gallery: people a, b, c (orthogonal) and a hub h = (a + b + c) / √3, cosine 1/√3 with each.
GALLERY = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [1 / R3, 1 / R3, 1 / R3, 0]])
IDS = ["a", "b", "c", "h"]
GENUINE = np.array([[0.8, 0, 0, 0.6]])  # a's other photo: cosine 0.8 with a
IMPOSTOR = (0.9 * GALLERY[3] + [0, 0, 0, np.sqrt(1 - 0.81)])[None, :]  # 0.9 with h


def test_hub_scores_by_hand():
    # a, b, c: one neighbour at 1/√3 (h), the rest 0; h: 1/√3 three times
    np.testing.assert_allclose(hub_scores(GALLERY, 1), [1 / R3] * 4)
    np.testing.assert_allclose(hub_scores(GALLERY, 2), [1 / (2 * R3)] * 3 + [1 / R3])
    # k beyond the other entries: all of them
    np.testing.assert_allclose(hub_scores(GALLERY, 30), [1 / (3 * R3)] * 3 + [1 / R3])
    assert hub_scores(GALLERY[:1], 5).tolist() == [0.0]


def test_the_hub_correction_turns_away_the_impostor_by_hand():
    # raw: the impostor's best is h at 0.9 > a's genuine 0.8: nothing identified at FAR 1e-2
    # k 3, weight 0.3: genuine 0.8 − 0.3/(3√3) = 0.742 > impostor 0.9 − 0.3/√3 = 0.727
    m = identification_metrics(GALLERY, IDS, GENUINE, ["a"], IMPOSTOR, hub=(3, 0.3))
    assert (m["rank1_raw"], m["dir_at_far_1e-2_raw"]) == (1.0, 0.0)
    assert m["far_threshold_raw"] == pytest.approx(0.9)
    assert (m["rank1"], m["dir_at_far_1e-2"]) == (1.0, 1.0)
    assert m["far_threshold"] == pytest.approx(0.9 - 0.3 / R3)
    assert m["hub"] == {"k": 3, "weight": 0.3}
    # weight 0.25 is not enough: 0.8 − 0.25/(3√3) = 0.752 < 0.9 − 0.25/√3 = 0.756
    assert identification_metrics(GALLERY, IDS, GENUINE, ["a"], IMPOSTOR, hub=(3, 0.25))[
        "dir_at_far_1e-2"
    ] == pytest.approx(0.0)


def test_rank5_by_hand():
    gallery = np.eye(7)
    probe = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3])
    probes = np.stack([probe, probe]) / np.linalg.norm(probe)
    # the true person is 5th best for the first probe, 6th for the second
    m = identification_metrics(gallery, list("abcdefg"), probes, ["e", "f"], np.zeros((1, 7)))
    assert (m["rank1"], m["rank5"]) == (0.0, 0.5)


def embedded(gallery, ids, genuine, genuine_ids, impostor) -> Embedded:
    """An `Embedded` of given rows (paths are made up, one folder per person)."""
    paths = {
        "gallery": [Path(f"{p}/g{i}.jpg") for i, p in enumerate(ids)],
        "genuine": [Path(f"{p}/p{i}.jpg") for i, p in enumerate(genuine_ids)],
        "impostor": [Path(f"x{i}/x{i}.jpg") for i in range(len(impostor))],
    }
    rows = {"gallery": gallery, "genuine": genuine, "impostor": impostor}
    emb = {p: v for part in paths for p, v in zip(paths[part], rows[part], strict=True)}
    person = {p: p.parent.name for p in emb}
    return Embedded("m", "yunet", Path("."), *paths.values(), person, emb, 0)


def test_fit_hub_takes_the_smallest_weight_that_works():
    # k 3 (or more, clamped to 3) needs weight > 0.1 / (2 / (3√3)) = 0.26, k 2 needs
    # > 0.1 / (1 / (2√3)) = 0.35, k 1 never works (every hub score is 1/√3): k 3, weight 0.3
    fit = fit_hub(embedded(GALLERY, IDS, GENUINE, ["a"], IMPOSTOR))
    assert fit == {"k": 3, "weight": 0.3}
    # no hub to correct (the impostor is far from everyone): the raw cosine, weight 0
    far = np.array([[0, 0, 0, 1.0]])
    assert fit_hub(embedded(GALLERY, IDS, GENUINE, ["a"], far))["weight"] == 0.0


def test_evaluate_identify_fits_on_view1_and_stores_the_fit(monkeypatch, tmp_path):
    def pad(rows: np.ndarray) -> np.ndarray:
        return np.c_[rows, np.zeros(len(rows))]

    z = np.eye(5)[4:]  # one more person, outside View 1, alone in a fifth dimension
    data = embedded(
        np.r_[pad(GALLERY), z], [*IDS, "z"], np.r_[pad(GENUINE), z], ["a", "z"], pad(IMPOSTOR)
    )
    stored = {}
    monkeypatch.setattr(identify, "embed_folder", lambda *a: data)
    monkeypatch.setattr(identify, "view1_people", lambda root: {*IDS, "x0"})
    monkeypatch.setattr(registry, "model_config", lambda name: {"faceres": {"threshold": 0.9}})
    monkeypatch.setattr(registry, "update_config", lambda name, **kw: stored.update(kw))
    report = identify.evaluate_identify(
        ".", out_dir=tmp_path, cluster=False, fit_view1=True, update_registry=True
    )
    fit = report["hub_fit"]
    assert (fit["k"], fit["weight"]) == (3, 0.3) and report["hub"] == {"k": 3, "weight": 0.3}
    assert (fit["view1"]["people"], fit["outside_view1"]["people"]) == (5, 1)
    v1 = fit["view1"]
    assert (v1["gallery"], v1["genuine_probes"], v1["impostor_probes"]) == (4, 1, 1)
    assert (fit["view1"]["dir_at_far_1e-2_raw"], fit["view1"]["dir_at_far_1e-2"]) == (0.0, 1.0)
    assert stored == {"hub_norm": {"k": 3, "weight": 0.3}, "hub_rule": identify.HUB_RULE}


def groups(labels: np.ndarray) -> set[frozenset[int]]:
    """The groups of two or more of a labelling, as sets of positions."""
    out: dict[int, set[int]] = {}
    for i, label in enumerate(labels):
        out.setdefault(int(label), set()).add(i)
    return {frozenset(g) for label, g in out.items() if label >= 0 and len(g) >= 2}


@pytest.mark.parametrize("linkage", LINKAGES)
def test_cluster_cuts_match_scikit_learn(linkage):
    from sklearn.cluster import AgglomerativeClustering

    rng = np.random.default_rng(1)
    centres = rng.normal(size=(6, 8))
    vecs = np.repeat(centres, 5, axis=0) + 0.5 * rng.normal(size=(30, 8))
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    thresholds = [0.3, 0.6, 0.8, 0.9]
    for threshold, labels in zip(thresholds, cluster_cuts(vecs, thresholds, linkage), strict=True):
        ref = AgglomerativeClustering(
            n_clusters=None, metric="cosine", linkage=linkage, distance_threshold=1 - threshold
        ).fit_predict(vecs)
        assert groups(labels) == groups(ref), (linkage, threshold)
        sizes = [int((labels == g).sum()) for g in range(labels.max() + 1)]
        assert sizes == sorted(sizes, reverse=True)  # numbered largest first


def test_cluster_metrics_match_scikit_learn_and_a_loop():
    from sklearn.metrics.cluster import pair_confusion_matrix

    rng = np.random.default_rng(2)
    truth = rng.integers(0, 12, 200).astype(str).tolist()
    labels = rng.integers(-1, 9, 200)
    m = cluster_metrics(labels, truth)
    singled = np.where(labels < 0, 100 + np.arange(200), labels)
    (_, fp), (fn, tp) = pair_confusion_matrix(truth, singled)
    assert m["pairwise_precision"] == pytest.approx(tp / (tp + fp))
    assert m["pairwise_recall"] == pytest.approx(tp / (tp + fn))
    found = [singled == singled[i] for i in range(200)]
    true = [np.asarray(truth) == truth[i] for i in range(200)]
    both = [(f & t).sum() for f, t in zip(found, true, strict=True)]
    assert m["bcubed_precision"] == pytest.approx(
        np.mean([b / f.sum() for b, f in zip(both, found)])
    )
    assert m["bcubed_recall"] == pytest.approx(np.mean([b / t.sum() for b, t in zip(both, true)]))


def gram_vectors(gram: np.ndarray) -> np.ndarray:
    """Unit vectors (rows) whose cosines are `gram`."""
    return np.linalg.cholesky(gram)


def test_fit_cluster_finds_the_threshold_between_two_people():
    # a1, a2 (cosine 0.97), b1, b2 (0.97), every a–b cosine 0.9305, a loner at 0.5 to all:
    # average linkage separates a from b only above 0.9305; the grid's first such step is 0.931
    gram = np.full((5, 5), 0.5)
    gram[:4, :4] = 0.9305
    gram[:2, :2] = gram[2:4, 2:4] = 0.97
    np.fill_diagonal(gram, 1.0)
    vecs = gram_vectors(gram)
    fit = fit_cluster(vecs, ["a", "a", "b", "b", "c"])
    assert (fit["threshold"], fit["linkage"], fit["bcubed_f1"]) == (0.931, "average", 1.0)
    assert (fit["clusters_found"], fit["unassigned"], fit["clusters_true"]) == (2, 1, 3)


def test_the_fits_see_only_view1_people(monkeypatch, tmp_path):
    # View 1: people a, b as in the test above (best threshold 0.931); outside it, d and e
    # (cosines 0.99 within, 0.9495 across) that 0.931 merges: a fit on everyone would go higher
    gram = np.full((8, 8), 0.3)
    gram[:4, :4] = 0.9305
    gram[4:, 4:] = 0.9495
    for i in range(0, 8, 2):
        gram[i : i + 2, i : i + 2] = 0.97 if i < 4 else 0.99
    np.fill_diagonal(gram, 1.0)
    vecs = gram_vectors(gram)
    people = ["a", "b", "d", "e"]
    data = embedded(vecs[::2], people, vecs[1::2], people, np.zeros((0, 8)))
    stored = {}
    monkeypatch.setattr(identify, "embed_folder", lambda *a: data)
    monkeypatch.setattr(identify, "view1_people", lambda root: {"a", "b"})
    monkeypatch.setattr(registry, "model_config", lambda name: {"faceres": {"threshold": 0.9}})
    monkeypatch.setattr(registry, "update_config", lambda name, **kw: stored.update(kw))
    report = identify.evaluate_cluster(".", out_dir=tmp_path, fit_view1=True)
    assert (report["view1_fit"]["people"], report["view1_fit"]["images"]) == (2, 4)
    assert report["view1_fit"]["threshold"] == 0.931 and stored == {}
    assert report["at_verification_threshold"]["threshold"] == 0.9
    out = report["outside_view1"]
    assert (out["people"], out["images"], out["fitted"]["clusters_found"]) == (2, 4, 1)
    c = report["cluster"]
    assert (c["threshold"], c["clusters_found"], c["clusters_true"]) == (0.931, 3, 4)  # d+e
    assert fit_cluster(vecs, [p for p in people for _ in "12"])["threshold"] == 0.95
    identify.evaluate_cluster(".", out_dir=tmp_path, fit_view1=True, update_registry=True)
    assert stored == {
        "cluster_threshold": 0.931,
        "cluster_linkage": "average",
        "cluster_rule": identify.CLUSTER_RULE,
    }


@needs_lfw
def test_view1_people_are_both_dev_lists():
    people = view1_people(LFW_IMAGES)
    assert len(people) == 3095  # 2,132 in pairsDevTrain + 963 in pairsDevTest, disjoint
    assert {"Aaron_Peirsol", "Abdullah_Gul"} <= people


@needs_identity
def test_eval_cluster_and_identify_commands(tmp_path, capsys):
    photos = collection(tmp_path / "photos")
    (photos / "other" / "broken.jpg").unlink()
    out = tmp_path / "out"
    assert main(["eval", "cluster", "--root", str(photos), "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["images"], report["cluster"]["clusters_true"]) == (7, 3)
    assert report["cluster"]["pairwise_precision"] == 1.0  # the two people are never merged
    assert json.loads((out / f"cluster-{report['model']}-photos.json").read_text()) == report
    args = ["eval", "identify", "--root", str(photos), "--out", str(out), "--json"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["gallery"], report["genuine_probes"], report["impostor_probes"]) == (2, 4, 1)
    assert report["rank1"] == report["rank1_raw"] == 1.0
    assert main([*args, "--update-registry"]) == 2
    assert "--fit-view1" in capsys.readouterr().err
