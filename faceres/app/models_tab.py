"""The Models tab: one row per registry model with its headline figure, size and availability,
a chart of accuracy against size, and the model cards.

>>> models_table()[0][:2]
['dlib-resnet29-face', 'identity']
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from faceres import registry
from faceres.app.common import user_errors

MODEL_COLUMNS = [
    "model",
    "task",
    "headline figure",
    "accuracy %",
    "weights MB",
    "here",
    "architecture",
    "source",
]
"""Short headers (a narrow column breaks a long word); "weights MB" counts the weight file
alone (model.safetensors, or the third-party ONNX file), not the ONNX export beside it."""
HEADLINES = {
    "identity": [("lfw_accuracy_yunet", "LFW View 2, YuNet")],
    "expression": [
        ("fer2013-privatetest/accuracy", "FER2013 PrivateTest"),
        ("ferplus-privatetest/accuracy", "FER+ test (majority)"),
    ],
}
"""Per task, the metric a row shows (the first one the model has) and its name."""


def _folder(entry: dict) -> Path | None:
    return registry.registry_dir() / entry["path"] if entry.get("path") else None


def headline(entry: dict) -> tuple[str, float | None]:
    """(what the figure is, accuracy in %) of a model's headline metric; ("–", None) if none."""
    metrics = entry.get("metrics") or {}
    for key, name in HEADLINES.get(entry["task"], []):
        if key in metrics:
            return name, round(100 * metrics[key], 2)
    return "–", None


def weight_files(entry: dict) -> list[str]:
    """The files holding a model's weights: model.safetensors, else its ONNX files (a
    third-party model such as YuNet); the ONNX export of a safetensors model does not count."""
    files = list(entry.get("files", {}))
    return (
        ["model.safetensors"]
        if "model.safetensors" in files
        else [f for f in files if f.endswith(".onnx")]
    )


def models_table() -> list[list]:
    """The registry as rows of `MODEL_COLUMNS`: one per model (the default of its task marked),
    its headline figure in named columns, its weight files' size in MB (10^6 bytes), and
    whether every file is here and intact."""
    rows = []
    for e in registry.list_models():
        folder = _folder(e)
        size = (
            sum((folder / f).stat().st_size for f in weight_files(e) if (folder / f).is_file())
            if folder
            else None
        )
        what, accuracy = headline(e)
        here = all(status == "ok" for _, _, status in registry.verify(e["name"]))
        rows.append(
            [
                e["name"] + (" (default)" if e.get("default") else ""),
                e["task"],
                what,
                accuracy,
                None if size is None else round(size / 1e6, 1),
                "yes" if here else "no",
                e["architecture"],
                e.get("source") or e.get("repo_id") or "",
            ]
        )
    return rows


def accuracy_plot(rows: list[list]):
    """Headline accuracy against size, one marker per model, one colour per task (matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.6))
    col = {name: i for i, name in enumerate(MODEL_COLUMNS)}
    for task in sorted({r[col["task"]] for r in rows}):
        points = [r for r in rows if r[col["task"]] == task and r[col["accuracy %"]] is not None]
        if points:
            ax.scatter(
                [r[col["weights MB"]] for r in points],
                [r[col["accuracy %"]] for r in points],
                label=task,
            )
            ranked = sorted(points, key=lambda r: r[col["accuracy %"]])
            for k, r in enumerate(ranked):  # labels alternate above and below their markers
                ax.annotate(
                    r[col["model"]].removesuffix(" (default)"),
                    (r[col["weights MB"]], r[col["accuracy %"]]),
                    fontsize=7,
                    xytext=(4, 4 if k % 2 else -10),
                    textcoords="offset points",
                )
    ax.set_xlabel("weights (MB)")
    ax.set_ylabel("headline accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


@user_errors
def model_card(name: str | None) -> str:
    """The model card (README.md without its YAML front matter) of a registry model."""
    if not name:
        return ""
    entry = registry.get_entry(name)
    folder = _folder(entry)
    card = folder / "README.md" if folder else None
    if card is None or not card.is_file():
        lines = [
            f"### {name}",
            entry.get("description") or "",
            f"Source: {entry.get('source') or 'unknown'} · licence: "
            f"{entry.get('license') or 'unknown'}",
        ]
        return "\n\n".join(line for line in lines if line)
    from huggingface_hub import ModelCard

    return ModelCard.load(card).text.strip()


def build() -> None:
    """The tab's table, card picker and card (inside a `gr.Tab`)."""
    rows = models_table()
    if not rows:
        gr.Markdown("**The registry is empty.** See docs/models.md.")
        return
    gr.Dataframe(
        value=rows,
        headers=MODEL_COLUMNS,
        label="Registry",
        interactive=False,
        wrap=True,
        max_height=1000,
        column_widths=["17%", "9%", "15%", "9%", "9%", "6%", "15%", "20%"],
        elem_id="models-table",
    )
    gr.Plot(accuracy_plot(rows), label="Headline accuracy against size")
    names = [r[0].removesuffix(" (default)") for r in rows]
    picked = gr.Dropdown(names, value=names[0], label="Model card")
    card = gr.Markdown(model_card(names[0]))
    picked.change(model_card, picked, card, api_name="model_card")
