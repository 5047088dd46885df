"""Open-set identification and clustering on a folder of people (a person = a first-level folder).

Protocol (`faceres eval identify`): images sorted by path; the first image of each person with at
least two images goes into the gallery, that person's other images are genuine probes, and every
image of a person with one image is an impostor probe. Each image is embedded as LFW's evaluation
does (the face nearest the centre, the model's test-time views; no face: the centre crop).

- `rank1` / `rank5`: genuine probes whose person is among the 1 / 5 most similar gallery images;
- `dir_at_far_1e-2`: detection and identification rate at a 1% false-alarm rate, i.e. genuine
  probes ranked first *and* scoring at least the threshold that 1% of impostor probes' best
  scores reach.

>>> report = evaluate_identify("lfw/lfw-deepfunneled")
>>> round(report["rank1"], 3), report["gallery"]
(0.93, 1650)
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from faceres import registry
from faceres.detect import select_detector
from faceres.errors import DataError
from faceres.eval.lfw import detect_images, embed_images, model_embedder
from faceres.search.build import image_files
from faceres.search.query import cluster_embeddings

FAR = 1e-2


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


def identification_metrics(
    gallery: np.ndarray,
    gallery_ids: list[str],
    genuine: np.ndarray,
    genuine_ids: list[str],
    impostor: np.ndarray,
    far: float = FAR,
) -> dict:
    """Rank-1, rank-5 and DIR at `far` from unit embeddings (rows) and person labels.

    >>> identification_metrics(np.eye(2), ["a", "b"], np.eye(2), ["a", "b"], np.zeros((1, 2)))
    {'rank1': 1.0, 'rank5': 1.0, 'dir_at_far_1e-2': 1.0, 'far_threshold': 0.0, ...}
    """
    sims = genuine @ gallery.T
    order = np.argsort(-sims, axis=1, kind="stable")
    labels = np.asarray(gallery_ids)[order]
    hit = labels == np.asarray(genuine_ids)[:, None]
    rank1 = hit[:, 0]
    best_impostor = (impostor @ gallery.T).max(axis=1) if len(impostor) else np.zeros(0)
    threshold = float(np.quantile(best_impostor, 1 - far, method="higher")) if len(impostor) else 0
    top = sims[np.arange(len(sims)), order[:, 0]]
    return {
        "rank1": float(rank1.mean()),
        "rank5": float(hit[:, :5].any(axis=1).mean()),
        "dir_at_far_1e-2": float((rank1 & (top > threshold)).mean()),
        "far_threshold": threshold,
        "far": far,
    }


def cluster_metrics(labels: np.ndarray, truth: list[str]) -> dict:
    """Pairwise and BCubed precision, recall and F1 of `labels` (-1: unassigned, each its own
    cluster) against the true people, and the number of clusters found vs true."""
    labels = np.asarray(labels).copy()
    unassigned = labels < 0
    labels[unassigned] = labels.max(initial=-1) + 1 + np.arange(unassigned.sum())
    _, truth_ids = np.unique(np.asarray(truth), return_inverse=True)
    same_pred = labels[:, None] == labels[None, :]
    same_true = truth_ids[:, None] == truth_ids[None, :]
    off = ~np.eye(len(labels), dtype=bool)
    tp = float((same_pred & same_true & off).sum())
    p = tp / max(1.0, float((same_pred & off).sum()))
    r = tp / max(1.0, float((same_true & off).sum()))
    both = (same_pred & same_true).sum(axis=1)
    bp = float(np.mean(both / same_pred.sum(axis=1)))
    br = float(np.mean(both / same_true.sum(axis=1)))

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
        "clusters_true": int(len(np.unique(truth_ids))),
    }


def evaluate_identify(
    root: str | Path,
    model: str | None = None,
    detector: str | None = None,
    out_dir: Path = Path("runs/eval"),
    cluster: bool = True,
) -> dict:
    """The identification protocol above on `root`, and (with `cluster`) the clustering of every
    image's face at the model's threshold scored against the folders."""
    root = Path(root)
    gallery, genuine, impostor, person = split_people(root)
    embedder, template, name = model_embedder(model or registry.default_model("identity"))
    paths = [*gallery, *genuine, *impostor]
    faces = detect_images(paths, detector, pick="center")
    emb = embed_images(faces, template, embedder)

    def rows(ps: list[Path]) -> np.ndarray:
        return np.stack([emb[p] for p in ps]) if ps else np.zeros((0, len(emb[paths[0]])))

    report = {
        "model": name,
        "detector": select_detector(detector),
        "root": str(root),
        "gallery": len(gallery),
        "probes": len(genuine) + len(impostor),
        "genuine_probes": len(genuine),
        "impostor_probes": len(impostor),
        "undetected": sum(f is None for f in faces.values()),
        **identification_metrics(
            rows(gallery),
            [person[p] for p in gallery],
            rows(genuine),
            [person[p] for p in genuine],
            rows(impostor),
        ),
    }
    if cluster:
        threshold = registry.model_config(name)["faceres"]["threshold"]
        labels = cluster_embeddings(rows(paths), threshold)
        report["cluster"] = cluster_metrics(labels, [person[p] for p in paths])
    out = Path(out_dir) / f"identify-{name}-{root.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    return report
