"""The one writer of registry folders and the index: model folders, cards, metrics, calibration.

Every change merges into what is there (config.json's `faceres` block, the card's sections, the
entry's fields), is written atomically (temp file + rename), and the index's sha256 follow.
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from faceres.errors import ModelError
from faceres.registry.index import (
    _PICKLE_SUFFIXES,
    _TASK_PIPELINES,
    ENTRY_KEYS,
    TASKS,
    _index_lock,
    _read_index,
    _write_index,
    get_entry,
    registry_dir,
)
from faceres.registry.load import _forget
from faceres.registry.resolve import _check_folder, _check_hub, _hash_folder

# -- writing -----------------------------------------------------------------------------------


def _model_card(name: str, task: str, config: dict, card: str, metrics: Mapping[str, float],
                license: str) -> str:
    """README.md: YAML front matter (library_name timm, license, datasets, tags, model-index)
    followed by `card` (markdown without front matter)."""
    from huggingface_hub import ModelCardData

    if card.lstrip().startswith("---"):
        raise ValueError("`card` is the model card body; save_model writes the front matter.")
    datasets = list(config.get("faceres", {}).get("datasets", []))
    results = _eval_results(task, datasets, metrics)
    data = ModelCardData(
        library_name="timm", license=license, datasets=datasets or None,
        tags=["timm", "faceres", task], pipeline_tag=_TASK_PIPELINES.get(task),
        model_name=name, eval_results=results or None,
    )
    return f"---\n{data.to_yaml()}\n---\n\n{card.strip()}\n"


def _eval_results(task: str, datasets: list[str], metrics: Mapping[str, float]) -> list:
    """The card's `model-index` results; a metric key may be "dataset/metric"."""
    from huggingface_hub import EvalResult

    results = []
    for key, value in metrics.items():
        dataset, _, metric = key.rpartition("/") if "/" in key else (None, "", key)
        dataset = dataset or (datasets[0] if datasets else "unspecified")
        results.append(EvalResult(
            task_type=_TASK_PIPELINES.get(task, task), dataset_type=dataset,
            dataset_name=dataset, metric_type=metric, metric_value=value,
        ))
    return results


def _refresh_card_metrics(folder: Path, task: str, metrics: Mapping[str, float]) -> None:
    """Rewrite the `model-index` of the folder's model card to `metrics`, keeping the rest."""
    from huggingface_hub import ModelCard

    path = folder / "README.md"
    if not path.is_file():
        return
    card = ModelCard.load(path)
    card.data.eval_results = _eval_results(task, list(card.data.datasets or []), metrics) or None
    card.save(path)


def _description(card: str) -> str:
    for paragraph in card.split("\n\n"):
        text = " ".join(paragraph.split())
        if text and not text.startswith(("#", "|", "-", "```", "<")):
            return text if len(text) <= 200 else text[:199] + "…"
    return ""


def save_model(
    model: torch.nn.Module,
    name: str,
    *,
    task: str,
    config: dict,
    card: str,
    metrics: dict,
    twin: str | None = None,
    default: bool = False,
    license: str = "mit",
    source: str = "",
    files: dict[str, bytes | str] | None = None,
) -> Path:
    """Write `registry/models/<name>/` as timm writes a Hub repo (config.json with `config`
    merged in, fp16 model.safetensors), the model card and `files` (training artifacts, JSON);
    then add or replace the index entry. `config` holds the `faceres` block (its `datasets` list
    goes into the card); metric keys may be "dataset/metric".

    >>> save_model(model, "resnet18-fer", task="expression", config={"faceres": {
    ...     "labels": labels, "datasets": ["fer2013"]}}, card="# ResNet-18 on FER2013\\n...",
    ...     metrics={"fer2013/accuracy": 0.71}, twin="plain18-fer", default=True)
    PosixPath('.../registry/models/resnet18-fer')
    """
    from timm.models import save_for_hf

    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, not {task!r}")
    for rel in files or {}:
        parts = Path(rel).parts
        if Path(rel).is_absolute() or ".." in parts or not parts:
            raise ValueError(f"extra file {rel!r} must be a relative path inside the folder")
        if Path(rel).suffix in _PICKLE_SUFFIXES:
            raise ValueError(f"extra file {rel!r}: pickle formats are not allowed")
    config = copy.deepcopy(config)
    config.setdefault("faceres", {})["task"] = task
    readme = _model_card(name, task, config, card, metrics, license)
    folder = registry_dir() / "models" / name
    if folder.exists():
        shutil.rmtree(folder)
    half = copy.deepcopy(model).cpu().half()
    save_for_hf(half, folder, model_config=config, safe_serialization=True)
    (folder / "README.md").write_text(readme, encoding="utf-8")
    for rel, content in (files or {}).items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_bytes(content)
    architecture = json.loads((folder / "config.json").read_text(encoding="utf-8"))["architecture"]
    with _index_lock():
        entries = _read_index()
        previous = next((e for e in entries if e["name"] == name), {})
        entry = {
            "name": name, "task": task, "architecture": architecture, "twin": twin,
            "default": default, "repo_id": previous.get("repo_id"), "revision": None,
            "path": f"models/{name}", "files": _hash_folder(folder), "license": license,
            "metrics": dict(metrics), "description": _description(card), "source": source,
        }
        _store(entries, entry)
    return folder


def _store(entries: list[dict], entry: dict) -> None:
    """Put `entry` in place of its namesake (or last), keep one default per task, write."""
    unknown = set(entry) - set(ENTRY_KEYS)
    if unknown:
        raise ValueError(f"unknown entry fields: {', '.join(sorted(unknown))}")
    if entry.get("default"):
        for other in entries:
            if other["task"] == entry["task"] and other["name"] != entry["name"]:
                other["default"] = False
    names = [e["name"] for e in entries]
    if entry["name"] in names:
        entries[names.index(entry["name"])] = entry
    else:
        entries.append(entry)
    _write_index(entries)
    _forget(entry["name"])


def update_entry(name: str, **fields: Any) -> dict:
    """Change fields of `name`'s entry and re-hash its committed folder (new `metrics` are
    written into the model card's `model-index` too). When the files changed, the pinned
    revision is cleared (push again) unless `revision` is given.

    >>> update_entry("resnet18-fer", metrics={"fer2013/accuracy": 0.72})["metrics"]
    {'fer2013/accuracy': 0.72}
    """
    with _index_lock():
        entries = _read_index()
        entry = next((copy.deepcopy(e) for e in entries if e["name"] == name), None)
        if entry is None:
            get_entry(name)  # raises the usual "unknown model" error
        entry.update(fields)
        if entry.get("path") and "metrics" in fields:
            _refresh_card_metrics(registry_dir() / entry["path"], entry["task"], entry["metrics"])
        if entry.get("path"):
            hashes = _hash_folder(registry_dir() / entry["path"])
            if hashes != entry["files"] and "revision" not in fields:
                entry["revision"] = None
            entry["files"] = hashes
        _store(entries, entry)
    return copy.deepcopy(entry)


def update_config(name: str, **faceres_fields: Any) -> dict:
    """Merge `faceres_fields` into the `faceres` block of `name`'s committed config.json, then
    re-hash the folder (`update_entry`). Returns the new config.

    >>> update_config("resnet18-fer", alignment={"size": [48, 48], "yunet5": points})
    """
    entry = get_entry(name)
    if not entry.get("path"):
        raise ModelError(f"{name} is not a committed registry folder; its config cannot change.")
    path = registry_dir() / entry["path"] / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config.setdefault("faceres", {}).update(faceres_fields)
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    update_entry(name)
    return config


def push(name: str, repo_id: str, token: str | None = None) -> str:
    """Upload `name`'s committed folder to the Hub model repo `repo_id` (created if needed) and
    pin the new commit in the index; returns the commit id.

    >>> push("resnet18-fer", "faceres/resnet18-fer")  # doctest: +SKIP
    '0f3c9d…'
    """
    from huggingface_hub import HfApi

    entry = get_entry(name)
    if not entry.get("path"):
        raise ModelError(f"{name!r} is a third-party file; publish it from its own source.")
    folder = registry_dir() / entry["path"]
    _check_folder(entry, folder)
    _check_hub(name)
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="model", exist_ok=True)
    commit = api.upload_folder(
        repo_id=repo_id, folder_path=folder, repo_type="model",
        allow_patterns=list(entry["files"]), commit_message=f"faceres: upload {name}",
    )
    update_entry(name, repo_id=repo_id, revision=commit.oid)
    return commit.oid
