"""Verification metrics shared by every evaluation: thresholds, k-fold accuracy, ROC, AUC, TAR at
a FAR, and the uncertain band. Scores are similarities (higher = more alike), labels True = same.

>>> best_threshold(np.array([0.1, 0.4, 0.6, 0.9]), np.array([0, 0, 1, 1]))
(0.5, 1.0)
"""

from __future__ import annotations

import numpy as np

FAR_TARGET = 1e-3
BAND_COVERAGE = 0.95
"""The uncertain band is the narrowest band around the threshold holding this share of the
View 1 (DevTrain) errors."""


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


def uncertainty_band(
    scores: np.ndarray, labels: np.ndarray, threshold: float, coverage: float = BAND_COVERAGE
) -> float:
    """Half-width of the narrowest band around `threshold` holding `coverage` of the errors."""
    scores, labels = np.asarray(scores), np.asarray(labels, dtype=bool)
    wrong = (scores >= threshold) != labels
    if not wrong.any():
        return 0.0
    return float(np.quantile(np.abs(scores[wrong] - threshold), coverage))
