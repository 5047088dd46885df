"""Search a face index for a person, and group its faces by person.

Similarities are cosines of the identity model's embeddings; each match gets the verdict that
verification would give (the model's calibrated threshold and band). They are not normalised
against the index: the hub correction that `faceres eval identify` applies
(`faceres.eval.identify.hub_scores`) needs every indexed face's nearest faces to be other people,
which holds for a gallery of one face per person but not for a photo collection, where a face's
nearest neighbours are the same person's other photos and would push its true matches down.

>>> search(["me.jpg"], "photos.index", top=3)[0]["matches"][0]["verdict"]
'same'
>>> groups = cluster_index("photos.index")["groups"]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from faceres import registry
from faceres.align import model_template, views
from faceres.detect import detect_faces
from faceres.errors import FaceresError, NoFaceError
from faceres.identity import decide, embed_crops, embed_views, load_identity_model
from faceres.imageio import load_image
from faceres.search.store import FaceStore


def probe_embeddings(
    path: str | Path, model: str, all_faces: bool, detector: str | None = None
) -> tuple[list[list[float]], np.ndarray]:
    """(boxes, embeddings) of a probe image's largest face, or of every face with `all_faces`."""
    loaded = load_identity_model(model)
    image = load_image(path)
    faces = detect_faces(image, detector)
    if not faces:
        raise NoFaceError(f"No face found in {path}.")
    faces = faces if all_faces else faces[:1]
    template = model_template(loaded.config)
    emb = embed_views([views(image, f, template) for f in faces], lambda c: embed_crops(c, loaded))
    return [[round(v, 2) for v in f.box] for f in faces], emb


def search(
    probes: Sequence[str | Path],
    index: str | Path,
    top: int = 5,
    all_faces: bool = False,
    detector: str | None = None,
) -> list[dict]:
    """For each probe image (its largest face, or each face with `all_faces`), the `top`
    indexed faces most similar to it, best first: one dict per probe face with `probe`,
    `box` and `matches` (each `path`, `face`, `box`, `similarity`, `verdict`)."""
    if top < 1:
        raise FaceresError("--top must be at least 1.")
    store = FaceStore.open(index)
    try:
        model = store.meta()["model"]
        meta = registry.model_config(model)["faceres"]
        faiss_index = store.faiss_index()
        out = []
        for probe in probes:
            boxes, emb = probe_embeddings(probe, model, all_faces, detector)
            k = min(top, faiss_index.ntotal)
            sims, ids = faiss_index.search(np.ascontiguousarray(emb, np.float32), k)
            found = store.records([int(i) for row in ids for i in row if i >= 0])
            for box, row_s, row_i in zip(boxes, sims, ids, strict=True):
                matches = [
                    {
                        **{key: found[int(i)][key] for key in ("path", "face", "box")},
                        "similarity": round(float(s), 6),
                        "verdict": decide(float(s), meta["threshold"], meta["band"]),
                    }
                    for s, i in zip(row_s, row_i, strict=True)
                    if i >= 0
                ]
                out.append({"probe": str(probe), "box": box, "matches": matches})
        return out
    finally:
        store.close()


LINKAGES = ("average", "complete", "single")
"""Linkages `cluster_embeddings` offers (scikit-learn's, on cosine distance)."""


def cluster_settings(model: str) -> tuple[float, str]:
    """(threshold, linkage) that `model` groups faces with: the registry's `cluster_threshold`
    and `cluster_linkage` (fitted on LFW View 1's people by `faceres eval cluster --fit-view1`),
    else the verification threshold and average linkage."""
    meta = registry.model_config(model)["faceres"]
    return meta.get("cluster_threshold", meta["threshold"]), meta.get("cluster_linkage", "average")


def cluster_cuts(
    vectors: np.ndarray, thresholds: Sequence[float], linkage: str = "average"
) -> list[np.ndarray]:
    """Group labels of unit vectors at each of `thresholds`, from one merge tree (see
    `cluster_embeddings`): scikit-learn's `distance_threshold` rule, the tree's first m merges,
    m being the number of merges at a cosine distance below 1 - threshold.

    >>> [c.tolist() for c in cluster_cuts(np.array([[1, 0], [0.99, 0.14], [0, 1]]), [0.9, -1])]
    [[0, 0, -1], [0, 0, 0]]
    """
    from sklearn.cluster import AgglomerativeClustering

    n = len(vectors)
    if n < 2:
        return [np.full(n, -1) for _ in thresholds]
    tree = AgglomerativeClustering(
        n_clusters=1, metric="cosine", linkage=linkage, compute_distances=True
    ).fit(vectors)
    out = []
    for threshold in thresholds:
        merges = int(np.count_nonzero(tree.distances_ < 1 - threshold))
        root = np.arange(2 * n - 1)
        for i in range(merges - 1, -1, -1):  # top down: each child takes its parent's root
            root[tree.children_[i]] = root[n + i]
        _, labels = np.unique(root[:n], return_inverse=True)
        sizes = np.bincount(labels)
        keep = np.flatnonzero(sizes >= 2)
        relabel = np.full(len(sizes), -1)
        relabel[keep[np.argsort(-sizes[keep], kind="stable")]] = np.arange(len(keep))
        out.append(relabel[labels])
    return out


def cluster_embeddings(
    vectors: np.ndarray, threshold: float, linkage: str = "average"
) -> np.ndarray:
    """Group labels (-1: unassigned) of unit vectors: agglomerative clustering that joins groups
    while their linkage similarity (average: mean cosine) stays above `threshold`, so an unknown
    number of people and faces that match nobody are both fine; groups are numbered largest
    first and groups of one face are "unassigned".

    >>> cluster_embeddings(np.array([[1, 0], [0.99, 0.14], [0, 1]]), 0.9).tolist()
    [0, 0, -1]
    """
    return cluster_cuts(vectors, [threshold], linkage)[0]


def cluster_index(index: str | Path) -> dict:
    """The faces of an index grouped by person (`cluster_embeddings` with the model's
    `cluster_settings`): `groups` (largest first, each a list of faces with `path`, `face`,
    `box`) and `unassigned`."""
    store = FaceStore.open(index)
    try:
        model = store.meta()["model"]
        threshold, linkage = cluster_settings(model)
        ids, vecs = store.vectors()
        labels = cluster_embeddings(vecs, threshold, linkage)
        found = store.records(ids.tolist())
    finally:
        store.close()

    def face(i: int) -> dict:
        return {key: found[int(i)][key] for key in ("path", "face", "box")}

    groups = [[face(i) for i in ids[labels == g]] for g in range(int(labels.max(initial=-1)) + 1)]
    return {
        "model": model,
        "threshold": threshold,
        "linkage": linkage,
        "faces": len(ids),
        "groups": groups,
        "unassigned": [face(i) for i in ids[labels == -1]],
    }
