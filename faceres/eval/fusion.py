"""A fused identity model: registry identity networks whose cosine similarities are combined with
weights fitted on LFW View 1's DevTrain pairs only; or an expression ensemble (`fit_ensemble`):
expression networks whose probabilities are averaged.

Each member's DevTrain scores are z-normalised (their mean and standard deviation) and Fisher's
linear discriminant of the z-scores (genuine against impostor pairs) gives one weight per member;
divided by the member's standard deviation it weights the raw cosine, and the weights are scaled
to sum to 1. The fused similarity, the weighted sum of the members' cosines, is then the dot
product of fused embeddings (`faceres.face.pipeline.fuse`), so the verdict, the index and search
take the fused model like any model. Calibrate it as any model afterwards:
`faceres eval lfw --model NAME --fit-gate --update-registry` (threshold, band, gate on View 1).

>>> report = fit_fusion(["dlib-resnet29-face", "sface-2021dec"])
>>> [m["weight"] for m in report["members"]], report["dev_test_accuracy"]
([0.47, 0.53], 0.995)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from faceres import registry
from faceres.errors import DataError
from faceres.eval.fer import evaluate_expression
from faceres.eval.lfw import (
    detect_images,
    embed_images,
    pair_scores,
    read_lfw,
    registry_subject,
)
from faceres.eval.metrics import accuracy, best_threshold

log = logging.getLogger(__name__)

RULE = (
    "weights fitted on LFW View 1 pairsDevTrain: Fisher's linear discriminant of the members' "
    "z-normalised cosine similarities, divided by each member's standard deviation, scaled to "
    "sum to 1"
)


def fit_weights(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Weights (M,) ≥ 0 summing to 1 on the members' cosines `scores` (pairs × M) of pairs
    labelled `labels` (True: same person): Fisher's discriminant of the z-normalised scores.

    >>> fit_weights(np.array([[0.9, 0.2], [0.1, 0.3], [0.8, 0.1], [0.2, 0.2]]),
    ...             np.array([True, False, True, False])).round(3).tolist()
    [1.0, 0.0]
    """
    spread = scores.std(axis=0)
    z = (scores - scores.mean(axis=0)) / spread
    within = np.atleast_2d(np.cov(z[labels].T) + np.cov(z[~labels].T))
    w = np.linalg.solve(within, z[labels].mean(axis=0) - z[~labels].mean(axis=0)) / spread
    w = np.clip(w, 0.0, None)
    if not w.sum() > 0:
        raise DataError("No member's similarity separates the pairs; nothing to fuse.")
    return w / w.sum()


def fit_fusion(
    models: Sequence[str], data: Path | None = None, detector: str | None = None
) -> dict:
    """Fit the weights of `models` (registry identity models) on LFW View 1 DevTrain; report
    each member's and the fusion's DevTest accuracy at their DevTrain thresholds."""
    if len(models) < 2 or len(set(models)) != len(models):
        raise DataError("A fusion needs two or more different identity models.")
    lists = read_lfw(data)
    faces = detect_images(lists.paths([lists.dev_train, lists.dev_test]), detector, "center")
    scores = {"train": [], "test": []}
    subjects = [registry_subject(m) for m in models]
    for subject in subjects:
        if subject.stored.get("members"):
            raise DataError(f"{subject.name} is fused already; fuse its members.")
        log.info("embedding View 1 with %s", subject.name)
        emb = embed_images(faces, subject.members)
        scores["train"].append(pair_scores(lists.dev_train, emb))
        scores["test"].append(pair_scores(lists.dev_test, emb))
    train, test = (np.stack(scores[k], axis=1) for k in ("train", "test"))
    train_labels = np.array([p.same for p in lists.dev_train])
    test_labels = np.array([p.same for p in lists.dev_test])
    weights = fit_weights(train, train_labels)

    def dev_test(train_scores: np.ndarray, test_scores: np.ndarray) -> float:
        threshold, _ = best_threshold(train_scores, train_labels)
        return accuracy(test_scores, test_labels, threshold)

    return {
        "members": [
            {
                "model": s.name,
                "weight": round(float(w), 4),
                "dim": _embedding_size(s.name),
                "dev_test_accuracy": dev_test(train[:, i], test[:, i]),
            }
            for i, (s, w) in enumerate(zip(subjects, weights, strict=True))
        ],
        "dev_test_accuracy": dev_test(train @ weights, test @ weights),
        "rule": RULE,
    }


def _embedding_size(model: str) -> int:
    config = registry.model_config(model)
    return int(config["faceres"].get("embedding_size") or config["num_classes"])


def card(name: str, report: dict) -> str:
    """The fused model's card body: what it is, its members and weights, and how it was fitted."""
    rows = "\n".join(
        f"| `{m['model']}` | {m['weight']:.4f} | {m['dim']} | {m['dev_test_accuracy']:.2%} |"
        for m in report["members"]
    )
    return f"""# {name}

A fused identity model: {", ".join(f"`{m['model']}`" for m in report["members"])} each embed the
face aligned onto its own template, and their cosine similarities are combined with the weights
below ({report["rule"]}). It has no weights of its own; each member keeps its own licence and card.

| member | weight | embedding size | View 1 DevTest accuracy alone |
|---|---|---|---|
{rows}
| **fused** | | {sum(m["dim"] for m in report["members"])} | **{report["dev_test_accuracy"]:.2%}** |

DevTest accuracies at each one's best DevTrain threshold, printed by
`faceres eval fuse --members {" ".join(m["model"] for m in report["members"])} --name {name}`.
Threshold, band and quality gate: `faceres eval lfw --model {name} --fit-gate --update-registry`.
"""


ENSEMBLE_RULE = "equal weights: the mean of the members' probabilities (nothing fitted)"


def fit_ensemble(models: Sequence[str], data: Path | None = None) -> dict:
    """An expression ensemble of `models` (registry expression models of one label set, equal
    weights): each member's and the ensemble's PublicTest accuracy (FER2013's validation split;
    FER+ models: FER+ majority labels), each face and its mirror image averaged."""
    if len(models) < 2 or len(set(models)) != len(models):
        raise DataError("An ensemble needs two or more different expression models.")
    weight = round(1 / len(models), 4)
    members = []
    for model in models:
        if registry.get_entry(model)["architecture"] == registry.FUSION:
            raise DataError(f"{model} is an ensemble already; list its members.")
        accuracy = evaluate_expression(model, split="PublicTest", data=data)["accuracy"]
        members.append({"model": model, "weight": weight, "public_test_accuracy": accuracy})
    return {"members": members, "rule": ENSEMBLE_RULE, "data": data}


def ensemble_card(name: str, report: dict) -> str:
    """The expression ensemble's card body: its members, weights and PublicTest accuracies."""
    rows = "\n".join(
        f"| `{m['model']}` | {m['weight']:.4f} | {m['public_test_accuracy']:.2%} |"
        for m in report["members"]
    )
    members = " ".join(m["model"] for m in report["members"])
    return f"""# {name}

An expression ensemble: {", ".join(f"`{m['model']}`" for m in report["members"])} each classify
the same 48×48 face crop (and its mirror image), and their probabilities are averaged
({report["rule"]}). It has no weights of its own; each member keeps its own licence and card.

| member | weight | PublicTest accuracy alone |
|---|---|---|
{rows}

Made by `faceres eval fuse --members {members} --name {name} --update-registry`; its own
accuracy: `faceres eval expression --model {name} --split PublicTest --update-registry`.
"""


def write_fusion(name: str, report: dict, default: bool = False) -> Path:
    """Store the fused model `name` of a `fit_fusion` or `fit_ensemble` report in the registry."""
    if "dim" in report["members"][0]:
        members = [{k: m[k] for k in ("model", "weight", "dim")} for m in report["members"]]
        return registry.save_fused(name, members, card(name, report), default=default)
    members = [{k: m[k] for k in ("model", "weight")} for m in report["members"]]
    return registry.save_fused(name, members, ensemble_card(name, report), default=default)
