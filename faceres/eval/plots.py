"""The evaluations' plots: one way to make a figure and save it as PNG, and the verification
plots (ROC, risk–coverage).

>>> fig, ax = new_figure()
>>> ax.plot([0, 1], [0, 1], label="chance")
>>> save_figure(fig, ax, Path("runs/eval/chance.png"))
PosixPath('runs/eval/chance.png')
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from faceres.eval.metrics import BAND_TARGET, FAR_TARGET, risk_coverage


def new_figure(size: tuple[float, float] = (5, 4)):
    """A matplotlib (figure, axes) drawn off-screen (Agg), 120 dpi."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=size, dpi=120)


def save_figure(fig, ax, path: Path, legend: str = "best") -> Path:
    """Grid, legend at `legend`, tight layout; `fig` saved to `path` (folders made) and closed."""
    import matplotlib.pyplot as plt

    ax.grid(alpha=0.3)
    ax.legend(loc=legend)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def save_roc_plot(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, title: str) -> Path:
    """ROC curves (label → (fpr, tpr)) on a log-FAR axis, saved as PNG."""
    fig, ax = new_figure()
    for label, (fpr, tpr) in curves.items():
        ax.plot(np.maximum(fpr, 1e-4), tpr, label=label)
    ax.axvline(FAR_TARGET, color="grey", lw=0.8, ls="--")
    ax.set(
        xscale="log",
        xlim=(1e-4, 1),
        ylim=(0.8, 1.0),
        xlabel="false accept rate",
        ylabel="true accept rate",
        title=title,
    )
    return save_figure(fig, ax, path, legend="lower right")


def save_risk_coverage_plot(
    scores: np.ndarray,
    labels: np.ndarray,
    thresholds: np.ndarray,
    called: dict,
    path: Path,
    title: str,
) -> Path:
    """Error rate of the verdicts given against the share of pairs given one (pairs dropped
    nearest the threshold first), with the operating point of the band and gate (`called`, from
    `metrics.called_metrics`) and the band's target marked."""
    coverage, risk = risk_coverage(scores, labels, thresholds)
    fig, ax = new_figure()
    ax.plot(coverage, 100 * risk, label="band widened from the threshold")
    ax.plot(
        1 - called["uncertain_fraction"],
        100 * (1 - called["accuracy_called"]),
        "o",
        color="C3",
        label="the band and quality gate",
    )
    ax.axhline(
        100 * (1 - BAND_TARGET), color="grey", lw=0.8, ls="--", label="View 1 operating point"
    )
    ax.set(
        xlim=(0.8, 1.0),
        ylim=(0, max(1.0, 100 * float(risk[-1]) * 1.2)),
        xlabel="coverage (share of pairs given a verdict)",
        ylabel="error rate of the verdicts given (%)",
        title=title,
    )
    return save_figure(fig, ax, path, legend="upper left")
