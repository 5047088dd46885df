"""Verification metrics shared by every evaluation: thresholds, k-fold accuracy, ROC, AUC, TAR at
a FAR, and the uncertain band. Scores are similarities (higher = more alike), labels True = same.

>>> best_threshold(np.array([0.1, 0.4, 0.6, 0.9]), np.array([0, 0, 1, 1]))
(0.5, 1.0)
"""

from __future__ import annotations

import numpy as np

FAR_TARGET = 1e-3
BAND_TARGET = 0.997
"""The operating point of the uncertain band: the narrowest band around the threshold outside
which this share of View 1's pairs is verified correctly."""


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Threshold maximising accuracy of `score >= threshold` ↔ same, and that accuracy.

    Among equally accurate thresholds the midpoint of the best run of candidates is taken.

    >>> best_threshold(np.array([0.1, 0.4, 0.6, 0.9]), np.array([0, 0, 1, 1]))
    (0.5, 1.0)
    """
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=bool)
    order = np.argsort(scores)
    s, y = scores[order], labels[order]
    # threshold just above s[k-1]: the k lowest are "different", the rest "same"
    below_neg = np.concatenate([[0], np.cumsum(~y)])
    above_pos = np.concatenate([[0], np.cumsum(y[::-1])])[::-1]
    correct = below_neg + above_pos
    candidates = np.concatenate([[s[0] - 1e-6], (s[:-1] + s[1:]) / 2, [s[-1] + 1e-6]])
    best = np.flatnonzero(correct == correct.max())
    k = int(best[len(best) // 2])
    return float(candidates[k]), float(correct[k] / len(s))


def accuracy(scores: np.ndarray, labels: np.ndarray, threshold: float) -> float:
    """Share of pairs where `score >= threshold` matches the label."""
    return float(np.mean((np.asarray(scores) >= threshold) == np.asarray(labels, dtype=bool)))


def kfold_accuracy(scores: np.ndarray, labels: np.ndarray, folds: np.ndarray) -> dict:
    """LFW protocol: each fold's threshold chosen on the other folds; per-fold accuracies,
    mean, sample std and standard error."""
    accs, thresholds = [], []
    for fold in np.unique(folds):
        test = folds == fold
        threshold, _ = best_threshold(scores[~test], labels[~test])
        thresholds.append(threshold)
        accs.append(accuracy(scores[test], labels[test], threshold))
    accs_arr = np.array(accs)
    std = float(accs_arr.std(ddof=1)) if len(accs) > 1 else 0.0
    return {
        "accuracy_mean": float(accs_arr.mean()),
        "accuracy_std": std,
        "accuracy_se": std / np.sqrt(len(accs)),
        "fold_accuracies": [float(a) for a in accs],
        "fold_thresholds": thresholds,
    }


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False and true accept rates at every distinct threshold, highest threshold first."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=bool)
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last index of each distinct score
    tp, fp = np.cumsum(y)[last], np.cumsum(~y)[last]
    fpr = np.r_[0.0, fp / max(1, (~y).sum())]
    tpr = np.r_[0.0, tp / max(1, y.sum())]
    return fpr, tpr, np.r_[np.inf, s[last]]


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (trapezoids; ties count half).

    >>> roc_auc(np.array([0.2, 0.8]), np.array([0, 1]))
    1.0
    """
    fpr, tpr, _ = roc_curve(scores, labels)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def tar_at_far(
    scores: np.ndarray, labels: np.ndarray, far: float = FAR_TARGET
) -> tuple[float, float]:
    """True accept rate at the lowest threshold whose false accept rate is ≤ `far`, and that
    threshold (with 3,000 negatives, FAR 1e-3 allows 3 false accepts)."""
    fpr, tpr, thresholds = roc_curve(scores, labels)
    k = int(np.flatnonzero(fpr <= far)[-1])
    return float(tpr[k]), float(thresholds[k])


def best_balanced_accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """The best mean of true accept and true reject rates over all thresholds (for unbalanced
    pair sets).

    >>> best_balanced_accuracy(np.array([0.1, 0.4, 0.6, 0.9, 0.2]), np.array([0, 0, 1, 1, 0]))
    1.0
    """
    fpr, tpr, _ = roc_curve(scores, labels)
    return float(np.max(tpr + 1 - fpr) / 2)


def verdicts(
    scores: np.ndarray, thresholds: np.ndarray | float, band: float, gated: np.ndarray | None = None
) -> np.ndarray:
    """Per pair 1 ("same": score ≥ threshold + band), -1 ("different": score < threshold − band)
    or 0 (uncertain: in the band, or `gated`: a face failed the quality gate or was not found),
    the rule of `faceres.identity.decide`."""
    scores = np.asarray(scores, dtype=np.float64)
    out = np.where(scores >= thresholds + band, 1, np.where(scores < thresholds - band, -1, 0))
    if gated is not None:
        out[np.asarray(gated, dtype=bool)] = 0
    return out


def called_metrics(calls: np.ndarray, labels: np.ndarray) -> dict:
    """What the verdicts (`verdicts`) of labelled pairs add up to: `uncertain_fraction`,
    `accuracy_called` (on the pairs given a verdict; 1.0 when none) and `confident_wrong`,
    wrong "same" and "different" verdicts as fractions of all pairs.

    >>> called_metrics(np.array([1, 0, -1, 1]), np.array([1, 1, 0, 0]))["accuracy_called"]
    0.6666666666666666
    """
    calls, labels = np.asarray(calls), np.asarray(labels, dtype=bool)
    called = calls != 0
    right = called & ((calls == 1) == labels)
    false_same = int(np.sum((calls == 1) & ~labels))
    false_different = int(np.sum((calls == -1) & labels))
    n = max(1, len(calls))
    return {
        "pairs": len(calls),
        "uncertain": int(np.sum(~called)),
        "uncertain_fraction": float(np.sum(~called) / n),
        "accuracy_called": float(right.sum() / called.sum()) if called.any() else 1.0,
        "confident_wrong": (false_same + false_different) / n,
        "confident_wrong_same": false_same / n,
        "confident_wrong_different": false_different / n,
    }


def choose_band(
    scores: np.ndarray, labels: np.ndarray, threshold: float, target: float = BAND_TARGET
) -> float:
    """Half-width of the narrowest band around `threshold` outside which the pairs given a
    verdict are at least `target` accurate (the widest band when none is).

    >>> round(choose_band(np.array([0.1, 0.45, 0.55, 0.9]), np.array([0, 1, 0, 1]), 0.5, 0.99), 6)
    0.05
    """
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=bool)
    margin = np.abs(scores - threshold)
    candidates = np.r_[0.0, np.unique(margin) + 1e-9]
    for band in candidates:
        calls = verdicts(scores, threshold, band)
        if called_metrics(calls, labels)["accuracy_called"] >= target:
            return float(band)
    return float(candidates[-1])


def risk_coverage(
    scores: np.ndarray, labels: np.ndarray, thresholds: np.ndarray | float
) -> tuple[np.ndarray, np.ndarray]:
    """Coverage (share of pairs given a verdict) and risk (error rate among them) as the band
    widens: pairs dropped nearest the threshold first."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=bool)
    margin = np.abs(scores - thresholds)
    wrong = ((scores >= thresholds) != labels)[np.argsort(-margin, kind="stable")]
    kept = np.arange(1, len(scores) + 1)
    return kept / len(scores), np.cumsum(wrong) / kept


def smallest_limit(
    values: np.ndarray, calls: np.ndarray, labels: np.ndarray, target: float = BAND_TARGET
) -> int:
    """The smallest whole number L such that the verdicts (`verdicts`) of pairs whose `values`
    (e.g. the smaller face's eye distance) are ≥ L are at least `target` accurate.

    >>> smallest_limit(np.array([5, 9, 12, 20]), np.array([1, -1, 1, 1]), np.array([0, 1, 1, 1]))
    10
    """
    values, calls = np.asarray(values, dtype=np.float64), np.asarray(calls)
    right = (calls == 1) == np.asarray(labels, dtype=bool)
    for limit in range(int(np.nanmax(values, initial=0.0)) + 1):
        kept = (values >= limit) & (calls != 0)
        if not kept.any() or right[kept].mean() >= target:
            return limit
    return int(np.nanmax(values, initial=0.0)) + 1
