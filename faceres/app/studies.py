"""The studies as the app shows them: read from the JSON committed in the registry
(`registry/studies/<study>/<study>.json`, written by `faceres study depth|lesion --report
--update-registry`), with their table and findings, and drawn here. The research code that runs
the studies (`faceres.study`) draws its PNG files with the same functions.

>>> study = load_study("depth")
>>> study["report"]["findings"][0]                                   # doctest: +SKIP
'plain-56 ends with a training error of ...'
>>> figures = depth_figures(study)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from faceres import registry
from faceres.errors import DataError

STUDIES = ("depth", "lesion")
"""The studies committed in the registry, each in `registry/studies/<name>/<name>.json`."""


def study_file(name: str) -> Path:
    """Where study `name`'s JSON lives in the registry."""
    return registry.registry_dir() / "studies" / name / f"{name}.json"


def load_study(name: str) -> dict:
    """Study `name`'s committed JSON; a DataError that says how to make it when absent."""
    path = study_file(name)
    if not path.is_file():
        raise DataError(
            f"No {name} study in {path}: run `faceres study {name} --report --update-registry`."
        )
    return json.loads(path.read_text(encoding="utf-8"))


def groups(results: dict) -> list[list[dict]]:
    """The models side by side in the plots: a ResNet and its plain twin (same task, depth and
    number of blocks), residual first; a model without twin alone."""
    keyed: dict[tuple, list[dict]] = {}
    for m in results["models"]:
        keyed.setdefault((m["task"], m.get("depth"), len(m["blocks"])), []).append(m)
    return [sorted(g, key=lambda m: m["kind"] != "residual") for g in keyed.values()]


def training_curves(study: dict) -> list[dict]:
    """The depth study's training error (augmented, running, %) per epoch of every model with
    BatchNorm, as rows {"model", "epoch", "training error (%)"} for an interactive plot."""
    return [
        {"model": row["name"], "epoch": epoch, "training error (%)": 100 * error}
        for row in study["rows"]
        if row["batchnorm"]
        for epoch, error in enumerate(study["curves"][row["name"]], start=1)
    ]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _depth_style(row: dict) -> dict:
    """One colour per depth and normalisation, solid for residual nets, dashed for plain ones."""
    colour = {(20, True): "tab:blue", (56, True): "tab:red", (56, False): "tab:green"}.get(
        (row["depth"], row["batchnorm"]), "tab:gray"
    )
    return {"color": colour, "linestyle": "-" if row["residual"] else "--", "label": row["name"]}


def plot_training_error(study: dict):
    """Training error (augmented, running) against epoch, one line per model with BatchNorm
    (He et al. Fig. 1)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for row in study["rows"]:
        if row["batchnorm"]:
            errors = study["curves"][row["name"]]
            ax.plot(range(1, len(errors) + 1), [100 * e for e in errors], **_depth_style(row))
    ax.set_xlabel("epoch")
    ax.set_ylabel("training error (%)")
    ax.set_title("Training error: plain (dashed) vs residual (solid)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_gradient_norms(study: dict, when: str = "init"):
    """Per-layer gradient norm (log scale) against layer index, at initialisation ("init") or
    after training ("final")."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for row in study["rows"]:
        norms = np.asarray(study["grad_norms"][row["name"]][when])
        style = _depth_style(row)
        if not norms.any():  # a log axis cannot show zeros: say so in the legend
            style["label"] += " (all exactly 0)"
        ax.semilogy(range(1, len(norms) + 1), np.where(norms > 0, norms, np.nan), **style)
    ax.set_xlabel("layer (input → output)")
    ax.set_ylabel("gradient norm")
    moment = "at initialisation" if when == "init" else "after training"
    ax.set_title(f"Gradient norm per layer, {moment}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_accuracy_vs_depth(rows: list[dict]):
    """PrivateTest (or PublicTest) accuracy and final training error against depth."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for residual in (True, False):
        sel = sorted(
            (r for r in rows if r["residual"] == residual and r["batchnorm"]),
            key=lambda r: r["depth"],
        )
        if not sel:
            continue
        acc = [100 * (r["privatetest_accuracy"] or r["publictest_accuracy"] or 0) for r in sel]
        err = [100 * r["train_error_final"] for r in sel]
        label = "ResNet" if residual else "plain"
        ax.plot([r["depth"] for r in sel], acc, "o-", label=f"{label}: test accuracy")
        ax.plot([r["depth"] for r in sel], err, "s--", label=f"{label}: training error")
    ax.set_xlabel("depth (layers)")
    ax.set_ylabel("%")
    ax.set_title("Accuracy and training error against depth (with BatchNorm)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def depth_figures(study: dict) -> dict:
    """The depth study's matplotlib figures, by file name, the training-error curves first; the
    caller closes them."""
    return {
        "training_error.png": plot_training_error(study),
        "accuracy_vs_depth.png": plot_accuracy_vs_depth(study["rows"]),
        "grad_norms_init.png": plot_gradient_norms(study, "init"),
        "grad_norms_final.png": plot_gradient_norms(study, "final"),
    }


def _lesion_style(m: dict) -> dict:
    return {
        "color": "tab:blue" if m["kind"] == "residual" else "tab:red",
        "linestyle": "-" if m["kind"] == "residual" else "--",
        "label": f"{m['model']} ({m['kind']})",
    }


def _axes(plt, count: int):
    cols = min(count, 2)
    rows = (count + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 3.8 * rows), squeeze=False)
    for ax in axes.flat[count:]:
        ax.axis("off")
    return fig, list(axes.flat)


def plot_single(results: dict):
    """Accuracy against the deleted block (Veit et al. Figure 3), ResNet and twin together."""
    plt = _pyplot()
    gs = groups(results)
    fig, axes = _axes(plt, len(gs))
    for ax, group in zip(axes, gs):
        for m in group:
            style = _lesion_style(m)
            ax.plot(
                [s["index"] for s in m["single"]],
                [100 * s["accuracy"] for s in m["single"]],
                marker="o",
                markersize=3,
                **style,
            )
            ax.axhline(100 * m["baseline"], color=style["color"], linestyle=":", linewidth=1)
        fixed = [i + 1 for i, b in enumerate(group[0]["blocks"]) if b not in group[0]["deletable"]]
        for i, x in enumerate(fixed):
            ax.axvspan(x - 0.5, x + 0.5, color="0.85", label="not deletable" if i == 0 else None)
        ax.axhline(100 * group[0]["chance"], color="0.4", linewidth=1, label="chance")
        ax.set_xlabel("deleted block (dotted: nothing deleted)")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(", ".join(m["model"] for m in group), fontsize=10)
        ax.legend(fontsize=7)
    fig.suptitle("Deleting one block")
    fig.tight_layout()
    return fig


def plot_k(results: dict):
    """Mean accuracy (± std over draws) against the number of blocks deleted (Figure 5)."""
    plt = _pyplot()
    gs = groups(results)
    fig, axes = _axes(plt, len(gs))
    for ax, group in zip(axes, gs):
        for m in group:
            ks = [0] + [r["k"] for r in m["k"]]
            mean = np.array([m["baseline"]] + [r["mean"] for r in m["k"]]) * 100
            std = np.array([0.0] + [r["std"] for r in m["k"]]) * 100
            style = _lesion_style(m)
            ax.plot(ks, mean, marker="o", markersize=3, **style)
            ax.fill_between(ks, mean - std, mean + std, color=style["color"], alpha=0.2)
        ax.axhline(100 * group[0]["chance"], color="0.4", linewidth=1, label="chance")
        ax.set_xlabel("blocks deleted at random (k)")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(", ".join(m["model"] for m in group), fontsize=10)
        ax.legend(fontsize=7)
    fig.suptitle("Deleting k blocks (mean ± std over draws)")
    fig.tight_layout()
    return fig


def plot_paths(paths: dict):
    """Path-length distribution, gradient per path and total gradient per length (Figure 6)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    lengths = [d["length"] for d in paths["distribution"]]
    axes[0].bar(lengths, [d["paths"] for d in paths["distribution"]], color="tab:blue")
    axes[0].set_title(f"Paths per length ({paths['blocks']} blocks)")
    axes[0].set_ylabel("number of paths")
    grad = [g["gradient"] for g in paths["gradient"]]
    axes[1].semilogy(lengths, grad, marker="o", markersize=3, color="tab:red")
    axes[1].set_title(
        f"Gradient at the input through one path (mean of {paths['samples_per_length']})"
    )
    axes[1].set_ylabel("gradient magnitude")
    axes[2].bar(lengths, [t["share"] for t in paths["total_gradient"]], color="tab:green")
    axes[2].set_title("Total gradient per path length (paths × gradient)")
    axes[2].set_ylabel("share of the total")
    for ax in axes:
        ax.set_xlabel("path length (residual branches passed)")
    fig.suptitle(paths["model"])
    fig.tight_layout()
    return fig


def lesion_figures(results: dict) -> dict:
    """The lesion study's matplotlib figures by file name; the caller closes them."""
    drawn = {"lesion_single.png": plot_single(results), "lesion_k.png": plot_k(results)}
    for m in results["models"]:
        if "paths" in m:
            drawn[f"paths_{m['model']}.png"] = plot_paths(m["paths"])
    return drawn
