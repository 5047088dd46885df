"""Search a face index for a person, and group its faces by person.

Similarities are cosines of the identity model's embeddings; each match gets the verdict that
verification would give (the model's calibrated threshold and band). They are not normalised
against the index: the hub correction that `faceres eval identify` applies
(`faceres.eval.identify.hub_scores`) needs every indexed face's nearest faces to be other people,
which holds for a gallery of one face per person but not for a photo collection, where a face's
nearest neighbours are the same person's other photos and would push its true matches down.

>>> search(["me.jpg"], "photos.index", top=3)[0].matches[0].verdict
'same'
>>> groups = cluster_index("photos.index")["groups"]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from faceres import registry
from faceres.errors import FaceresError, NoFaceError
from faceres.face.pipeline import FacePipeline, FaceRecord
from faceres.face.quality import FaceQuality
from faceres.identity import calibration, judge
from faceres.imageio import load_image
from faceres.search.store import FaceStore


@dataclass(frozen=True)
class SearchHit:
    """One indexed face found for a probe face: where it is, its similarity to the probe and
    verification's verdict on the pair (`faceres.identity.judge`, quality gate included)."""

    path: str
    face: int
    box: list[float]
    similarity: float
    verdict: str

    def to_dict(self) -> dict:
        """JSON-ready."""
        return {**asdict(self), "similarity": round(self.similarity, 6)}


@dataclass(frozen=True)
class ProbeHits:
    """One probe face (its image and box) and the indexed faces most like it, best first."""

    probe: str
    box: list[float]
    matches: list[SearchHit]

    def to_dict(self) -> dict:
        """JSON-ready."""
        return {
            "probe": self.probe,
            "box": self.box,
            "matches": [m.to_dict() for m in self.matches],
        }


def probe_records(path: str | Path, pipeline: FacePipeline, all_faces: bool) -> list[FaceRecord]:
    """The face record of a probe image's largest face, or of every face with `all_faces`."""
    records = pipeline.read([load_image(path)], limit=None if all_faces else 1)[0]
    if not records:
        raise NoFaceError(f"No face found in {path}.")
    return records


def _hit(probe: FaceRecord, face: dict, meta: dict) -> SearchHit:
    """An indexed `face` (`FaceStore.records`) found for the `probe` face, with the verdict."""
    decided = judge(
        probe.embedding, face["vector"], (probe.quality, FaceQuality(**face["quality"])), meta
    )
    return SearchHit(face["path"], face["face"], face["box"], decided.similarity, decided.verdict)


def search(
    probes: Sequence[str | Path],
    index: str | Path,
    top: int = 5,
    all_faces: bool = False,
    detector: str | None = None,
) -> list[ProbeHits]:
    """For each probe image (its largest face, or each face with `all_faces`), the `top`
    indexed faces most similar to it, best first."""
    if top < 1:
        raise FaceresError("--top must be at least 1.")
    store = FaceStore.open(index)
    try:
        model = store.meta()["model"]
        meta = calibration(model)
        faiss_index = store.faiss_index()
        pipeline = FacePipeline.for_model(model, detector)
        out = []
        for probe in probes:
            records = probe_records(probe, pipeline, all_faces)
            emb = np.stack([r.embedding for r in records]).astype(np.float32)
            _, ids = faiss_index.search(emb, min(top, faiss_index.ntotal))
            found = store.records([int(i) for row in ids for i in row if i >= 0])
            for record, row in zip(records, ids, strict=True):
                hits = [_hit(record, found[int(i)], meta) for i in row if i >= 0]
                out.append(ProbeHits(str(probe), record.to_dict()["box"], hits))
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
