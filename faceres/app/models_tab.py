"""The Models tab: the registry's models with metrics, sizes and sources, and their model cards.

>>> models_table()[0][:2]
['dlib-resnet29-face', 'identity']
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from faceres import registry
from faceres.app.common import user_errors

MODEL_COLUMNS = ["name", "task", "architecture", "metrics", "size (MB)", "source", "default"]


def _folder(entry: dict) -> Path | None:
    return registry.registry_dir() / entry["path"] if entry.get("path") else None


def models_table() -> list[list]:
    """The registry as rows of `MODEL_COLUMNS`."""
    rows = []
    for e in registry.list_models():
        folder = _folder(e)
        size = (
            sum((folder / f).stat().st_size for f in e.get("files", {}) if (folder / f).is_file())
            if folder
            else None
        )
        metrics = ", ".join(
            f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
            for k, v in (e.get("metrics") or {}).items()
        )
        rows.append(
            [
                e["name"],
                e["task"],
                e["architecture"],
                metrics,
                None if size is None else round(size / 2**20, 2),
                e.get("source") or e.get("repo_id") or "",
                bool(e.get("default")),
            ]
        )
    return rows


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
        gr.Markdown("**The registry is empty.** See the README, 'Models'.")
        return
    gr.Dataframe(
        value=rows,
        headers=MODEL_COLUMNS,
        label="Registry",
        interactive=False,
        wrap=True,
        column_widths=["15%", "8%", "15%", "22%", "7%", "26%", "7%"],
    )
    names = [r[0] for r in rows]
    picked = gr.Dropdown(names, value=names[0], label="Model card")
    card = gr.Markdown(model_card(names[0]))
    picked.change(model_card, picked, card, api_name="model_card")
