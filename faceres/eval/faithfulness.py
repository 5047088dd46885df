"""Are the verification maps faithful? A deletion test on LFW View 1 same-person pairs.

For each pair, both faces are detected (the face nearest the image centre, as `faceres eval lfw`),
aligned (the model's template, one alignment per face) and explained (`faceres.identity.explain`).
Then, one face at a time with the other left intact, the `FRACTION` of the face's crop pixels that
its map ranks most supporting are replaced by the crop's per-channel mean colour, the crop is
re-embedded and the drop in similarity recorded; likewise for as many random pixels (mean of
`RANDOM_DRAWS` seeded draws). A pair's drop is the mean over its two faces. A faithful map removes
much more similarity than chance: `ratio` = mean top drop / mean random drop. The pixels the map
ranks most opposing are masked too (`drop_opposing`): to first order removing them raises the
similarity. The deletion curve repeats all three for each fraction in `CURVE` (random pixel sets
nested, one permutation per draw).

Pairs come from pairsDevTest.txt first (the maps' smoothing was chosen on DevTrain), then
pairsDevTrain.txt; a pair where either image has no detected face is skipped and listed.

>>> report = evaluate_explain(pairs=200)
>>> report["ratio"] >= 2
True
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from faceres import registry
from faceres.datasets.lfw import Pair, lfw_dir, read_lfw_pairs
from faceres.detect import detect_faces, select_detector
from faceres.errors import DataError
from faceres.eval.lfw import choose_face
from faceres.eval.plots import new_figure, save_figure
from faceres.face.align import align, model_template
from faceres.face.pipeline import embed_crops, load_identity_model
from faceres.identity.explain import explain_crops
from faceres.imageio import load_image
from faceres.registry.runtime import Runner

log = logging.getLogger(__name__)

FRACTION = 0.1
"""Share of a crop's pixels masked for the headline drops."""
RANDOM_DRAWS = 5
"""Seeded random pixel sets per face, averaged."""
CURVE = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5)
"""Fractions masked for the deletion curve."""
MASKING = (
    "each face in turn (the other intact); pixels replaced by the crop's per-channel mean; "
    "a pair's drop is the mean over its two faces"
)


def mask_pixels(crop: np.ndarray, order: np.ndarray, fraction: float) -> np.ndarray:
    """`crop` (H×W×C) with the first round(`fraction`·H·W) pixels of `order` (flat indices)
    replaced by the crop's per-channel mean (rounded for integer crops).

    >>> crop = np.array([[[0], [10]], [[20], [50]]], np.uint8)   # mean 20
    >>> mask_pixels(crop, np.array([3, 0, 1, 2]), 0.5)[..., 0]
    array([[20, 10],
           [20, 20]], dtype=uint8)
    """
    h, w = crop.shape[:2]
    flat = crop.reshape(h * w, -1).copy()
    fill = flat.mean(axis=0)
    if np.issubdtype(crop.dtype, np.integer):
        fill = np.round(fill)
    flat[order[: round(fraction * h * w)]] = fill.astype(crop.dtype)
    return flat.reshape(crop.shape)


def deletion_similarities(
    crop: np.ndarray,
    orders: list[np.ndarray],
    other: np.ndarray,
    loaded: Runner,
    fractions: tuple[float, ...],
) -> np.ndarray:
    """Similarity to embedding `other` of `crop` masked along each of `orders` at each of
    `fractions` (> 0); len(orders) × len(fractions)."""
    masked = [mask_pixels(crop, order, f) for order in orders for f in fractions]
    return (embed_crops(masked, loaded) @ other).reshape(len(orders), len(fractions))


def view1_same_pairs(root: Path) -> list[tuple[str, Pair]]:
    """LFW View 1's same-person pairs, DevTest's then DevTrain's, each with its list's name."""
    images = root / "lfw-deepfunneled"
    return [
        (name, pair)
        for name in ("pairsDevTest.txt", "pairsDevTrain.txt")
        for pair in read_lfw_pairs(root / name, images)
        if pair.same
    ]


def save_deletion_plot(curve: dict, path: Path, title: str) -> Path:
    """Mean similarity against fraction masked, in the map's order (most supporting first, most
    opposing first) and in random order, with quartile bands."""
    x = np.asarray(curve["fractions"])
    fig, ax = new_figure()
    for key, label, colour in (
        ("map", "most supporting first (map)", "tab:green"),
        ("opposing", "most opposing first (map)", "tab:red"),
        ("random", f"random pixels ({RANDOM_DRAWS} draws)", "tab:grey"),
    ):
        ax.plot(x, curve[key], marker="o", color=colour, label=label)
        ax.fill_between(x, curve[f"{key}_q25"], curve[f"{key}_q75"], color=colour, alpha=0.2)
    ax.set(xlabel="fraction of face pixels masked", ylabel="cosine similarity", title=title)
    return save_figure(fig, ax, path, legend="lower left")


def evaluate_explain(
    model: str | None = None,
    data: Path | None = None,
    pairs: int = 200,
    detector: str | None = None,
    out_dir: Path = Path("runs/eval"),
    seed: int = 0,
    curve: Sequence[float] = CURVE,
) -> dict:
    """The deletion test on `pairs` LFW View 1 same-person pairs, the deletion curve at the
    fractions `curve` (and `FRACTION`); report JSON and plot written under `out_dir` (nothing
    else is written)."""
    start = time.perf_counter()
    root = lfw_dir(data)
    loaded = load_identity_model(model)
    network = registry.load_task("identity", loaded.name)  # the torch model, for gradients
    template = model_template(loaded.config)
    detector_name = select_detector(detector)
    rng = np.random.default_rng(seed)
    fractions = tuple(sorted({f for f in curve if f > 0} | {FRACTION}))
    at = fractions.index(FRACTION)
    rows, skipped, curves, top, opposing, rand = [], [], [], [], [], []
    for list_name, pair in view1_same_pairs(root):
        if len(rows) == pairs:
            break
        crops = []
        for path in (pair.left, pair.right):
            image = load_image(path)
            face = choose_face(detect_faces(image, detector), image.shape, pick="center")
            crops.append(None if face is None else align(image, face, template))
        names = [str(p.relative_to(root / "lfw-deepfunneled")) for p in (pair.left, pair.right)]
        if any(c is None for c in crops):
            skipped.append(names)
            continue
        ex = explain_crops(crops[0], crops[1], network)
        emb = embed_crops(crops, loaded)
        base = float(emb[0] @ emb[1])
        per_face = []
        for i in (0, 1):
            size = ex.maps[i].size
            ranked = np.argsort(-ex.maps[i].ravel(), kind="stable")
            orders = [ranked, ranked[::-1]]
            orders += [rng.permutation(size) for _ in range(RANDOM_DRAWS)]
            sims = deletion_similarities(crops[i], orders, emb[1 - i], loaded, fractions)
            per_face.append(np.stack([sims[0], sims[1], sims[2:].mean(axis=0)]))
        pair_curve = np.mean(per_face, axis=0)  # (map, opposing, random) × fractions
        curves.append(np.concatenate([np.full((3, 1), base), pair_curve], axis=1))
        top.append(base - float(pair_curve[0, at]))
        opposing.append(base - float(pair_curve[1, at]))
        rand.append(base - float(pair_curve[2, at]))
        rows.append(
            {
                "pair": names,
                "list": list_name,
                "similarity": round(base, 6),
                "drop_top": round(top[-1], 6),
                "drop_opposing": round(opposing[-1], 6),
                "drop_random": round(rand[-1], 6),
            }
        )
        if len(rows) % 20 == 0:
            log.info("explained %d / %d pairs", len(rows), pairs)
    if not rows:
        raise DataError(f"No LFW View 1 pair with a face in both images under {root}.")
    top, rand = np.array(top), np.array(rand)
    stack = np.stack(curves)  # pairs × (map, opposing, random) × fractions
    means = {"fractions": [0.0, *fractions]}
    for j, key in enumerate(("map", "opposing", "random")):
        means[key] = [round(float(v), 6) for v in stack[:, j].mean(axis=0)]
        means[f"{key}_q25"] = [round(float(v), 6) for v in np.percentile(stack[:, j], 25, axis=0)]
        means[f"{key}_q75"] = [round(float(v), 6) for v in np.percentile(stack[:, j], 75, axis=0)]
    out_dir = Path(out_dir)
    stem = f"explain-{loaded.name}-{detector_name}"
    plot = save_deletion_plot(
        means, out_dir / f"{stem}-deletion.png", f"Deletion, {len(rows)} LFW pairs, {loaded.name}"
    )
    report = {
        "pairs": len(rows),
        "drop_top": round(float(top.mean()), 6),
        "drop_random": round(float(rand.mean()), 6),
        "ratio": round(float(top.mean() / rand.mean()), 4),
        "drop_top_median": round(float(np.median(top)), 6),
        "drop_random_median": round(float(np.median(rand)), 6),
        "ratio_median": round(float(np.median(top) / np.median(rand)), 4),
        "top_beats_random": round(float((top > rand).mean()), 4),
        "drop_opposing": round(float(np.mean(opposing)), 6),
        "similarity_mean": round(float(np.mean([r["similarity"] for r in rows])), 6),
        "fraction": FRACTION,
        "random_draws": RANDOM_DRAWS,
        "seed": seed,
        "masking": MASKING,
        "model": loaded.name,
        "detector": detector_name,
        "pair_lists": dict(Counter(r["list"] for r in rows)),
        "skipped": skipped,
        "curve": means,
        "plot": str(plot),
        "seconds": round(time.perf_counter() - start, 1),
        "per_pair": rows,
    }
    (out_dir / f"{stem}.json").write_text(json.dumps(report, indent=2))
    return report
