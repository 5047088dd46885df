"""Open-set identification and clustering on a folder of people (a person = a first-level folder).

Protocol (`faceres eval identify`): images sorted by path; the first image of each person with at
least two images goes into the gallery, that person's other images are genuine probes, and every
image of a person with one image is an impostor probe. Each image is embedded as LFW's evaluation
does (the face nearest the centre, the model's test-time views; no face: the centre crop).

- `rank1` / `rank5`: genuine probes whose person is among the 1 / 5 best-scoring gallery images;
- `dir_at_far_1e-2`: detection and identification rate at a 1% false-alarm rate, i.e. genuine
  probes ranked first *and* scoring above the threshold that 1% of impostor probes' best scores
  reach.

Scores are cosines less a **hub correction** (`hub_scores`) when the model's registry config has
`hub_norm`: some gallery faces sit close to many other people (on LFW the same few gallery images
are the best match of many of the highest-scoring impostor probes), so each gallery entry's score
is lowered by `weight` × its mean cosine with its `k` nearest *other gallery entries*. The cohort
is the gallery itself, known at enrolment: no probe enters it, and with one gallery image per
person its members are other people. `k` and `weight` are fitted (`fit_hub`) on the same protocol
restricted to the folders of LFW View 1's people (`view1_people`: everyone in pairsDevTrain and
pairsDevTest). Identity overlap: those 3,095 people are also 3,095 of the full folder's 4,911, so
the full-folder figure is not a held-out one; the fit also reports the 1,816 people outside View
1, which no choice saw. `*_raw` keys give the uncorrected cosine's figures.

Clustering (`faceres eval cluster`, and `eval identify` without `--no-cluster`): every image's
embedding grouped by `cluster_embeddings` with the model's `cluster_settings`, scored against the
folders (`cluster_metrics`); `fit_cluster` chooses that threshold and linkage on View 1's people.

>>> report = evaluate_identify("lfw/lfw-deepfunneled")
>>> report["gallery"], report["dir_at_far_1e-2"] > report["dir_at_far_1e-2_raw"]
(1650, True)
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceres import registry
from faceres.datasets.lfw import lfw_dir, read_lfw_pairs
from faceres.detect import select_detector
from faceres.errors import DataError
from faceres.eval.lfw import detect_images, embed_images
from faceres.face.pipeline import FacePipeline
from faceres.search.indexing import image_files
from faceres.search.query import LINKAGES, cluster_cuts, cluster_embeddings, cluster_settings

FAR = 1e-2
HUB_KS = (1, 2, 3, 4, 5, 6, 7, 8, 10, 15, 20, 30)
HUB_WEIGHTS = tuple(round(0.05 * i, 2) for i in range(21))
RANK1_SLACK = 0.005
HUB_RULE = (
    "cosine − weight × the gallery entry's mean cosine with its k nearest other gallery entries; "
    f"k in {list(HUB_KS)} and weight in 0, 0.05, …, 1 maximising DIR at FAR 1e-2 on the open-set "
    "protocol restricted to LFW View 1's people (pairsDevTrain + pairsDevTest), rank-1 at most "
    f"{RANK1_SLACK} below the raw cosine's"
)
CLUSTER_THRESHOLDS = tuple(round(0.85 + 0.001 * i, 3) for i in range(141))
CLUSTER_RULE = (
    f"linkage in {list(LINKAGES)} and threshold in 0.850, 0.851, …, 0.990 maximising BCubed F1 "
    "over the images of LFW View 1's people (pairsDevTrain + pairsDevTest), a person's folder as "
    "the truth"
)


@dataclass
class Embedded:
    """A folder split by the protocol and the embedding (unit vector) of every image."""

    model: str
    detector: str
    root: Path
    gallery: list[Path]
    genuine: list[Path]
    impostor: list[Path]
    person: dict[Path, str]
    emb: dict[Path, np.ndarray]
    undetected: int

    def rows(self, paths: list[Path]) -> np.ndarray:
        """Embeddings of `paths`, one row each."""
        dim = len(next(iter(self.emb.values())))
        return np.stack([self.emb[p] for p in paths]) if paths else np.zeros((0, dim))

    def subset(self, people: set[str]) -> Embedded:
        """The same split restricted to `people` (the rule is per person, so nothing moves)."""

        def keep(paths: list[Path]) -> list[Path]:
            return [p for p in paths if self.person[p] in people]

        return Embedded(
            self.model,
            self.detector,
            self.root,
            keep(self.gallery),
            keep(self.genuine),
            keep(self.impostor),
            self.person,
            self.emb,
            self.undetected,
        )

    def identification(self, hub: tuple[int, float] | None) -> dict:
        """`identification_metrics` of this split."""
        return identification_metrics(
            self.rows(self.gallery),
            [self.person[p] for p in self.gallery],
            self.rows(self.genuine),
            [self.person[p] for p in self.genuine],
            self.rows(self.impostor),
            hub=hub,
        )

    def counts(self) -> dict:
        """Gallery and probe counts."""
        return {
            "gallery": len(self.gallery),
            "probes": len(self.genuine) + len(self.impostor),
            "genuine_probes": len(self.genuine),
            "impostor_probes": len(self.impostor),
        }

    def images(self) -> list[Path]:
        """Every image of the split: gallery, genuine probes, impostor probes."""
        return [*self.gallery, *self.genuine, *self.impostor]


def split_people(root: Path) -> tuple[list[Path], list[Path], list[Path], dict[Path, str]]:
    """(gallery, genuine probes, impostor probes, person of each image) under `root`."""
    files = image_files([root])
    people: dict[str, list[Path]] = defaultdict(list)
    person = {}
    for path in files:
        parts = path.relative_to(root).parts
        if len(parts) < 2:
            continue
        people[parts[0]].append(path)
        person[path] = parts[0]
    if not people:
        raise DataError(f"No person folders with images under {root}.")
    gallery, genuine, impostor = [], [], []
    for name in sorted(people):
        images = sorted(people[name])
        if len(images) >= 2:
            gallery.append(images[0])
            genuine += images[1:]
        else:
            impostor += images
    return gallery, genuine, impostor, person


def embed_folder(root: str | Path, model: str | None, detector: str | None) -> Embedded:
    """`split_people(root)` and every image's embedding with `model`."""
    root = Path(root)
    gallery, genuine, impostor, person = split_people(root)
    pipeline = FacePipeline.for_model(model)
    name = pipeline.model
    paths = [*gallery, *genuine, *impostor]
    faces = detect_images(paths, detector, pick="center")
    emb = embed_images(faces, pipeline.members)
    undetected = sum(f is None for f in faces.values())
    return Embedded(
        name, select_detector(detector), root, gallery, genuine, impostor, person, emb, undetected
    )


def view1_people(root: Path) -> set[str]:
    """Names of LFW View 1's people (pairsDevTrain and pairsDevTest), read from the LFW folder
    that holds the image folder `root`."""
    lfw = lfw_dir(Path(root).parent)
    return {
        path.parent.name
        for name in ("pairsDevTrain.txt", "pairsDevTest.txt")
        for pair in read_lfw_pairs(lfw / name, Path(root))
        for path in (pair.left, pair.right)
    }


def hub_scores(gallery: np.ndarray, k: int) -> np.ndarray:
    """Each gallery row's mean cosine with its `k` most similar other rows (fewer when the
    gallery is smaller; 0 for a gallery of one).

    >>> hub_scores(np.array([[1, 0], [0.6, 0.8], [0, 1]]), 1).tolist()
    [0.6, 0.8, 0.8]
    """
    k = min(k, len(gallery) - 1)
    if k < 1:
        return np.zeros(len(gallery))
    sims = gallery @ gallery.T
    np.fill_diagonal(sims, -np.inf)
    return np.partition(sims, -k, axis=1)[:, -k:].mean(axis=1)


def open_set_metrics(
    genuine_scores: np.ndarray,
    gallery_ids: list[str],
    genuine_ids: list[str],
    impostor_scores: np.ndarray,
    far: float = FAR,
) -> dict:
    """Rank-1, rank-5 and DIR at `far` from score matrices (probes × gallery); a tie for first
    goes to the earlier gallery entry."""
    ids, truth = np.asarray(gallery_ids), np.asarray(genuine_ids)[:, None]
    first = genuine_scores.argmax(axis=1)
    rank1 = ids[first] == truth[:, 0]
    five = min(5, len(ids))
    rank5 = (ids[np.argpartition(-genuine_scores, five - 1, axis=1)[:, :five]] == truth).any(axis=1)
    best_impostor = impostor_scores.max(axis=1, initial=-np.inf)
    threshold = (
        float(np.quantile(best_impostor, 1 - far, method="higher")) if len(best_impostor) else 0.0
    )
    top = genuine_scores[np.arange(len(genuine_scores)), first]
    return {
        "rank1": float(rank1.mean()),
        "rank5": float(rank5.mean()),
        "dir_at_far_1e-2": float((rank1 & (top > threshold)).mean()),
        "far_threshold": threshold,
    }


def identification_metrics(
    gallery: np.ndarray,
    gallery_ids: list[str],
    genuine: np.ndarray,
    genuine_ids: list[str],
    impostor: np.ndarray,
    far: float = FAR,
    hub: tuple[int, float] | None = None,
) -> dict:
    """Rank-1, rank-5 and DIR at `far` from unit embeddings (rows) and person labels, with the
    hub correction `hub` = (k, weight) when given, and the same figures of the raw cosine
    (`*_raw`).

    >>> identification_metrics(np.eye(2), ["a", "b"], np.eye(2), ["a", "b"], np.zeros((1, 2)))
    {'rank1': 1.0, 'rank5': 1.0, 'dir_at_far_1e-2': 1.0, 'far_threshold': 0.0, ...}
    """
    genuine_scores, impostor_scores = genuine @ gallery.T, impostor @ gallery.T
    raw = open_set_metrics(genuine_scores, gallery_ids, genuine_ids, impostor_scores, far)
    out = raw
    if hub is not None:
        shift = hub[1] * hub_scores(gallery, hub[0])
        out = open_set_metrics(
            genuine_scores - shift, gallery_ids, genuine_ids, impostor_scores - shift, far
        )
    return {
        **out,
        **{f"{key}_raw": value for key, value in raw.items()},
        "far": far,
        "hub": {"k": hub[0], "weight": hub[1]} if hub else None,
    }


def fit_hub(data: Embedded) -> dict:
    """The hub correction (k, weight) in `HUB_KS` × `HUB_WEIGHTS` with the highest DIR at FAR
    1e-2 on `data` (weight 0 is the raw cosine), rank-1 no more than `RANK1_SLACK` below the raw
    cosine's; ties go to the smaller weight, then the smaller k."""
    gallery, impostor = data.rows(data.gallery), data.rows(data.impostor)
    gallery_ids = [data.person[p] for p in data.gallery]
    genuine_ids = [data.person[p] for p in data.genuine]
    genuine_scores, impostor_scores = data.rows(data.genuine) @ gallery.T, impostor @ gallery.T
    raw = open_set_metrics(genuine_scores, gallery_ids, genuine_ids, impostor_scores)
    best = (raw["dir_at_far_1e-2"], 0.0, -HUB_KS[0], HUB_KS[0])
    for k in HUB_KS:
        hubs = hub_scores(gallery, k)
        for weight in HUB_WEIGHTS[1:]:
            m = open_set_metrics(
                genuine_scores - weight * hubs,
                gallery_ids,
                genuine_ids,
                impostor_scores - weight * hubs,
            )
            if m["rank1"] >= raw["rank1"] - RANK1_SLACK:
                best = max(best, (m["dir_at_far_1e-2"], -weight, -k, k))
    return {"k": best[3], "weight": -best[1] + 0.0}


def cluster_metrics(labels: np.ndarray, truth: list[str]) -> dict:
    """Pairwise and BCubed precision, recall and F1 of `labels` (-1: unassigned, each its own
    cluster) against the true people, and the number of clusters found vs true."""
    labels = np.asarray(labels).copy()
    unassigned = labels < 0
    labels[unassigned] = labels.max(initial=-1) + 1 + np.arange(unassigned.sum())
    _, found = np.unique(labels, return_inverse=True)
    _, true = np.unique(np.asarray(truth), return_inverse=True)
    _, cell, both = np.unique(
        found * (true.max() + 1) + true, return_inverse=True, return_counts=True
    )
    found_sizes, true_sizes = np.bincount(found), np.bincount(true)

    def pairs(sizes: np.ndarray) -> float:
        return float((sizes * (sizes - 1)).sum() / 2)

    tp = pairs(both)
    p = tp / max(1.0, pairs(found_sizes))
    r = tp / max(1.0, pairs(true_sizes))
    bp = float(np.mean(both[cell] / found_sizes[found]))
    br = float(np.mean(both[cell] / true_sizes[true]))

    def f1(a: float, b: float) -> float:
        return 2 * a * b / (a + b) if a + b else 0.0

    return {
        "pairwise_precision": p,
        "pairwise_recall": r,
        "pairwise_f1": f1(p, r),
        "bcubed_precision": bp,
        "bcubed_recall": br,
        "bcubed_f1": f1(bp, br),
        "clusters_found": int(len(np.unique(labels[~unassigned]))),
        "unassigned": int(unassigned.sum()),
        "clusters_true": int(len(true_sizes)),
    }


def fit_cluster(vectors: np.ndarray, truth: list[str]) -> dict:
    """The linkage (`LINKAGES`) and threshold (`CLUSTER_THRESHOLDS`) whose grouping of `vectors`
    has the highest BCubed F1 against `truth`; ties go to the first tried."""
    best: dict = {"bcubed_f1": -1.0}
    for linkage in LINKAGES:
        cuts = cluster_cuts(vectors, CLUSTER_THRESHOLDS, linkage)
        for threshold, labels in zip(CLUSTER_THRESHOLDS, cuts, strict=True):
            m = cluster_metrics(labels, truth)
            if m["bcubed_f1"] > best["bcubed_f1"]:
                best = {"threshold": threshold, "linkage": linkage, **m}
    return best


def cluster_report(data: Embedded, settings: tuple[float, str]) -> dict:
    """Every image of `data` grouped at `settings` (threshold, linkage), against the folders."""
    paths = data.images()
    labels = cluster_embeddings(data.rows(paths), *settings)
    return {
        "threshold": settings[0],
        "linkage": settings[1],
        **cluster_metrics(labels, [data.person[p] for p in paths]),
    }


def _header(data: Embedded) -> dict:
    return {
        "model": data.model,
        "detector": data.detector,
        "root": str(data.root),
        **data.counts(),
        "undetected": data.undetected,
    }


def _write(report: dict, out_dir: Path, kind: str) -> None:
    out = Path(out_dir) / f"{kind}-{report['model']}-{Path(report['root']).name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))


def evaluate_identify(
    root: str | Path,
    model: str | None = None,
    detector: str | None = None,
    out_dir: Path = Path("runs/eval"),
    cluster: bool = True,
    fit_view1: bool = False,
    update_registry: bool = False,
) -> dict:
    """The identification protocol above on `root` with the model's hub correction (with
    `fit_view1`: fitted now on View 1's people, and stored with `update_registry`), and (with
    `cluster`) the clustering of every image's face, scored against the folders."""
    data = embed_folder(root, model, detector)
    meta = registry.model_config(data.model)["faceres"]
    fit = None
    if fit_view1:
        people = view1_people(data.root)
        fit = fit_hub(data.subset(people))
        hub = (fit["k"], fit["weight"])
        fit["rule"] = HUB_RULE
        outside = set(data.person.values()) - people
        for part, names in (("view1", people), ("outside_view1", outside)):
            sub = data.subset(names)
            fit[part] = {"people": len(names), **sub.counts(), **sub.identification(hub)}
        if update_registry:
            registry.update_config(
                data.model, hub_norm={"k": hub[0], "weight": hub[1]}, hub_rule=HUB_RULE
            )
    elif "hub_norm" in meta:
        hub = (meta["hub_norm"]["k"], meta["hub_norm"]["weight"])
    else:
        hub = None
    report = {**_header(data), **data.identification(hub)}
    if fit is not None:
        report["hub_fit"] = fit
    if cluster:
        report["cluster"] = cluster_report(data, cluster_settings(data.model))
    _write(report, out_dir, "identify")
    return report


def evaluate_cluster(
    root: str | Path,
    model: str | None = None,
    detector: str | None = None,
    out_dir: Path = Path("runs/eval"),
    fit_view1: bool = False,
    update_registry: bool = False,
) -> dict:
    """Every image's face under `root` grouped with the model's `cluster_settings` (with
    `fit_view1`: fitted now on View 1's people, and stored with `update_registry`), scored
    against the folders. A fit also reports the grouping at the verification threshold (average
    linkage, the fallback), on every image and on the people outside View 1, which it never saw."""
    data = embed_folder(root, model, detector)
    report = {**_header(data), "images": len(data.images())}
    settings = cluster_settings(data.model)
    if fit_view1:
        people = view1_people(data.root)
        paths = data.subset(people).images()
        fit = fit_cluster(data.rows(paths), [data.person[p] for p in paths])
        report["view1_fit"] = {"people": len(people), "images": len(paths), "rule": CLUSTER_RULE}
        report["view1_fit"] |= fit
        settings = (fit["threshold"], fit["linkage"])
        baseline = (registry.model_config(data.model)["faceres"]["threshold"], "average")
        report["at_verification_threshold"] = cluster_report(data, baseline)
        others = set(data.person.values()) - people
        outside = data.subset(others)
        report["outside_view1"] = {
            "people": len(others),
            "images": len(outside.images()),
            "at_verification_threshold": cluster_report(outside, baseline),
            "fitted": cluster_report(outside, settings),
        }
        if update_registry:
            registry.update_config(
                data.model,
                cluster_threshold=fit["threshold"],
                cluster_linkage=fit["linkage"],
                cluster_rule=CLUSTER_RULE,
            )
    report["cluster"] = cluster_report(data, settings)
    _write(report, out_dir, "cluster")
    return report
