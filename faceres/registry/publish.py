"""The one writer of registry folders and the index: model folders, cards, metrics, calibration.

Every change merges into what is there (config.json's `faceres` block, the card's sections, the
entry's fields), is written atomically (temp file + rename), and the index's sha256 follow.
"""

from __future__ import annotations

import copy
import json
import os
import re
import statistics
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from faceres.errors import ModelError
from faceres.registry.index import (
    _PICKLE_SUFFIXES,
    _TASK_PIPELINES,
    ENTRY_KEYS,
    FUSION,
    TASKS,
    _index_lock,
    _read_index,
    _write_index,
    get_entry,
    registry_dir,
)
from faceres.registry.resolve import _check_folder, _check_hub, _hash_folder, model_config
from faceres.registry.weights import _forget


def write_atomic(path: Path, content: str | bytes) -> None:
    """Write `content` to `path` through a temporary file in the same folder and a rename, so a
    reader sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content.encode("utf-8") if isinstance(content, str) else content)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def card_sections(body: str) -> dict[str, str]:
    """A card body split at its `## ` headings: heading line → section text (the text before the
    first heading under the key "")."""
    parts = re.split(r"(?m)^(?=## )", body)
    return {
        (part.splitlines()[0] if part.startswith("## ") else ""): part.rstrip() + "\n"
        for part in parts
        if part.strip()
    }


def with_section(body: str, heading: str, text: str) -> str:
    """`body` with `text` as its `## heading` section (replaced in place, or added at the end)."""
    sections = card_sections(body)
    sections[f"## {heading}"] = f"## {heading}\n\n{text.strip()}\n"
    return "\n".join(part.rstrip() + "\n" for part in sections.values()).rstrip() + "\n"


def merge_card(old: str, new: str) -> str:
    """`new` card body, followed by the sections of `old` whose headings `new` lacks (a study
    section written by another command survives a re-save)."""
    kept = {h: text for h, text in card_sections(old).items() if h}
    fresh = card_sections(new)
    extra = [text for heading, text in kept.items() if heading not in fresh]
    return "\n".join([new.rstrip() + "\n", *extra]).rstrip() + "\n"


# -- writing -----------------------------------------------------------------------------------

_USE = {
    "identity": 'faceres.verify("a.jpg", "b.jpg", model="{name}").verdict   # same / different',
    "expression": 'faceres.analyze_expression("photo.jpg", model="{name}").faces[0].label',
    "detector": 'faceres.detect.detect_faces(rgb, detector="dlib")   # this model\'s detector',
    "landmarks": 'faceres.detect.detect_faces(rgb, detector="dlib")[0].landmarks',
}
HOW_TO_LOAD = "How to load"


def how_to_load(name: str, task: str, architecture: str) -> str:
    """The card's "How to load" section body: faceres, then timm (which needs `import
    faceres.models` first: that registers the architecture)."""
    use = _USE.get(task, 'faceres.registry.load("{name}").model').format(name=name)
    return f"""`pip install faceres`, then:

```python
import faceres

{use}
loaded = faceres.registry.load("{name}")   # the timm module, sha256-checked
```

With timm, import `faceres.models` first: it registers the architecture `{architecture}` with
timm.

```python
import timm
import faceres.models  # noqa: F401

model = timm.create_model("local-dir:registry/models/{name}", pretrained=True)  # a checkout
model = timm.create_model("hf-hub:REPO_ID@REVISION", pretrained=True)  # from the index entry
```

Without faceres, timm stops with `Unknown model ({architecture})`: install faceres.
"""


def _model_card(
    name: str, task: str, config: dict, card: str, metrics: Mapping[str, float], license: str
) -> str:
    """README.md: YAML front matter (library_name timm, license, datasets, tags, model-index)
    followed by `card` (markdown without front matter)."""
    from huggingface_hub import ModelCardData

    if card.lstrip().startswith("---"):
        raise ValueError("`card` is the model card body; save_model writes the front matter.")
    datasets = list(config.get("faceres", {}).get("datasets", []))
    results = _eval_results(task, datasets, metrics)
    data = ModelCardData(
        library_name="timm",
        license=license,
        datasets=datasets or None,
        tags=["timm", "faceres", task],
        pipeline_tag=_TASK_PIPELINES.get(task),
        model_name=name,
        eval_results=results or None,
    )
    return f"---\n{data.to_yaml()}\n---\n\n{card.strip()}\n"


def _eval_results(task: str, datasets: list[str], metrics: Mapping[str, float]) -> list:
    """The card's `model-index` results; a metric key may be "dataset/metric"."""
    from huggingface_hub import EvalResult

    results = []
    for key, value in metrics.items():
        dataset, _, metric = key.rpartition("/") if "/" in key else (None, "", key)
        dataset = dataset or (datasets[0] if datasets else "unspecified")
        results.append(
            EvalResult(
                task_type=_TASK_PIPELINES.get(task, task),
                dataset_type=dataset,
                dataset_name=dataset,
                metric_type=metric,
                metric_value=value,
            )
        )
    return results


def _refresh_card_metrics(folder: Path, task: str, metrics: Mapping[str, float]) -> None:
    """Rewrite the `model-index` of the folder's model card to `metrics`, keeping the rest."""
    from huggingface_hub import ModelCard

    path = folder / "README.md"
    if not path.is_file():
        return
    card = ModelCard.load(path)
    card.data.eval_results = _eval_results(task, list(card.data.datasets or []), metrics) or None
    write_atomic(path, str(card))


def _description(card: str) -> str:
    for paragraph in card.split("\n\n"):
        text = " ".join(paragraph.split())
        if text and not text.startswith(("#", "|", "-", "```", "<")):
            return text if len(text) <= 200 else text[:199] + "…"
    return ""


def _check_extra_files(files: dict[str, bytes | str]) -> None:
    """ValueError for an extra file outside the folder or in a pickle format."""
    for rel in files:
        parts = Path(rel).parts
        if Path(rel).is_absolute() or ".." in parts or not parts:
            raise ValueError(f"extra file {rel!r} must be a relative path inside the folder")
        if Path(rel).suffix in _PICKLE_SUFFIXES:
            raise ValueError(f"extra file {rel!r}: pickle formats are not allowed")


def _write_folder(
    folder: Path,
    model: torch.nn.Module,
    name: str,
    task: str,
    config: dict,
    card: str,
    metrics: dict,
    license: str,
    files: dict[str, bytes | str],
    weights: dict[str, torch.Tensor] | None,
) -> tuple[str, str]:
    """Stage the model's folder (fp16 safetensors, or `weights` as given; config, card, `files`)
    beside `folder`, then move each file in by a rename (never half written) and drop stale ones.
    Returns (the architecture, the card as written)."""
    from timm.models import save_for_hf

    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{name}-") as tmp:
        staged = Path(tmp)
        save_for_hf(
            copy.deepcopy(model).cpu().half(), staged, model_config=config, safe_serialization=True
        )
        if weights is not None:
            save_file(weights, str(staged / "model.safetensors"), metadata={"format": "pt"})
        architecture = json.loads((staged / "config.json").read_text("utf-8"))["architecture"]
        card = with_section(card, HOW_TO_LOAD, how_to_load(name, task, architecture))
        readme = _model_card(name, task, config, card, metrics, license)
        (staged / "README.md").write_text(readme, encoding="utf-8")
        for rel, content in files.items():
            (staged / rel).parent.mkdir(parents=True, exist_ok=True)
            write_atomic(staged / rel, content)
        new_files = _hash_folder(staged)
        folder.mkdir(exist_ok=True)
        for stale in set(_hash_folder(folder)) - set(new_files):
            (folder / stale).unlink()
        for rel in new_files:  # each file replaced by a rename: never half written
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged / rel, folder / rel)
    return architecture, card


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
    weights: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write `registry/models/<name>/` as timm writes a Hub repo (config.json with `config`
    merged in, fp16 model.safetensors), the model card and `files` (training artifacts, JSON);
    then add or replace the index entry. `config` holds the `faceres` block (its `datasets` list
    goes into the card); metric keys may be "dataset/metric". `weights`, when given, is what
    model.safetensors stores instead (a converted model's tensors as its source quantised them),
    which the architecture's `pretrained_filter_fn` turns back into its state dict.

    >>> save_model(model, "resnet18-fer", task="expression", config={"faceres": {
    ...     "labels": labels, "datasets": ["fer2013"]}}, card="# ResNet-18 on FER2013\\n...",
    ...     metrics={"fer2013/accuracy": 0.71}, twin="plain18-fer", default=True)
    PosixPath('.../registry/models/resnet18-fer')
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, not {task!r}")
    _check_extra_files(files or {})
    from huggingface_hub import ModelCard

    config = copy.deepcopy(config)
    config.setdefault("faceres", {})["task"] = task
    folder = registry_dir() / "models" / name
    if (folder / "README.md").is_file():
        card = merge_card(ModelCard.load(folder / "README.md").text, card)
    architecture, card = _write_folder(
        folder, model, name, task, config, card, metrics, license, files or {}, weights
    )
    with _index_lock():
        entries = _read_index()
        previous = next((e for e in entries if e["name"] == name), {})
        entry = {
            "name": name,
            "task": task,
            "architecture": architecture,
            "twin": twin,
            "default": default,
            "repo_id": previous.get("repo_id"),
            "revision": None,
            "path": f"models/{name}",
            "files": _hash_folder(folder),
            "license": license,
            "metrics": dict(metrics),
            "description": _description(card),
            "source": source,
        }
        _store(entries, entry)
    return folder


def save_fused(name: str, members: list[dict], card: str, *, default: bool = False) -> Path:
    """Write `registry/models/<name>/` for a fused model (no weights of its own) of registry
    models of one task: its config.json (`architecture` "fusion", `faceres.members`: each
    member's model and weight) and card; then add or replace the index entry.

    An identity fusion's members each give their embedding size (`dim`); an expression fusion
    (an ensemble: the weighted mean of the members' probabilities) takes its classes, input and
    face framing from its members, which must share them.

    >>> save_fused("fused-dlib-sface", [{"model": "dlib-resnet29-face", "weight": 0.5,
    ...     "dim": 128}, {"model": "sface-2021dec", "weight": 0.5, "dim": 128}], "# Fused ...")
    """
    from huggingface_hub import ModelCardData

    tasks = {get_entry(member["model"])["task"] for member in members}
    if len(tasks) != 1 or not tasks <= {"identity", "expression"}:
        raise ModelError(
            "A fused model's members must all be identity models or all expression models, "
            f"not {', '.join(sorted(tasks))}."
        )
    task = tasks.pop()
    config = _fused_config(task, members)
    data = ModelCardData(license="mit", tags=["faceres", task, "fusion"], model_name=name)
    folder = registry_dir() / "models" / name
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / "config.json", json.dumps(config, indent=2) + "\n")
    write_atomic(folder / "README.md", f"---\n{data.to_yaml()}\n---\n\n{card.strip()}\n")
    with _index_lock():
        entries = _read_index()
        previous = next((e for e in entries if e["name"] == name), {})
        entry = {
            "name": name,
            "task": task,
            "architecture": FUSION,
            "twin": None,
            "default": default,
            "repo_id": previous.get("repo_id"),
            "revision": None,
            "path": f"models/{name}",
            "files": _hash_folder(folder),
            "license": "mit",
            "metrics": previous.get("metrics", {}),
            "description": _description(card),
            "source": "faceres eval fuse (members: " + ", ".join(m["model"] for m in members) + ")",
        }
        _store(entries, entry)
    return folder


def _fused_config(task: str, members: list[dict]) -> dict:
    """The config.json of a fused model of `task` (see `save_fused`)."""
    if task == "identity":
        return {
            "architecture": FUSION,
            "faceres": {
                "task": "identity",
                "members": members,
                "embedding_size": sum(int(m["dim"]) for m in members),
                "metric": "cosine",
            },
        }
    configs = [model_config(m["model"]) for m in members]
    shared = {
        "classes": [c["label_names"] for c in configs],
        "input": [
            {k: c["pretrained_cfg"][k] for k in ("input_size", "mean", "std")} for c in configs
        ],
        "framing": [c.get("faceres", {}).get("alignment") for c in configs],
    }
    for what, values in shared.items():
        if any(v != values[0] for v in values) or values[0] is None:
            raise ModelError(
                f"The members of an expression ensemble must share their {what}; "
                f"{', '.join(m['model'] for m in members)} do not."
            )
    first = configs[0]
    return {
        "architecture": FUSION,
        "num_classes": first["num_classes"],
        "label_names": first["label_names"],
        "pretrained_cfg": {k: first["pretrained_cfg"][k] for k in ("input_size", "mean", "std")},
        "faceres": {
            "task": "expression",
            "members": members,
            "labels": first["label_names"],
            "datasets": first["faceres"].get("datasets", []),
            "training_labels": first["faceres"].get("training_labels"),
            "alignment": first["faceres"]["alignment"],
        },
    }


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
    write_atomic(path, json.dumps(config, indent=2) + "\n")
    update_entry(name)
    return config


def update_card_section(name: str, heading: str, text: str) -> None:
    """Put `text` under `## heading` in `name`'s model card (replacing that section, keeping every
    other one and the front matter), then re-hash the folder.

    >>> update_card_section("resnet20-fer", "Depth study", table_markdown)
    """
    from huggingface_hub import ModelCard

    entry = get_entry(name)
    if not entry.get("path"):
        raise ModelError(f"{name} is not a committed registry folder; its card cannot change.")
    path = registry_dir() / entry["path"] / "README.md"
    card = ModelCard.load(path)
    card.text = with_section(card.text, heading, text)
    write_atomic(path, str(card))
    update_entry(name)


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
        repo_id=repo_id,
        folder_path=folder,
        repo_type="model",
        allow_patterns=list(entry["files"]),
        commit_message=f"faceres: upload {name}",
    )
    update_entry(name, repo_id=repo_id, revision=commit.oid)
    return commit.oid


def results_section(history: dict, metrics: dict) -> str:
    """The card's "Results" section body: the metrics table (each split's recall per class in a
    table of its own) and the training summary."""
    rows = "\n".join(f"| {k} | {v:.4f} |" for k, v in metrics.items() if "/recall_" not in k)
    cfg = history["config"]
    return f"""| metric | value |
|---|---|
{rows}
{_recall_table(metrics)}
Best epoch {history["best_epoch"]} of {cfg["epochs"]}; final training error (clean Training set,
last epoch) {history["train_error_final"]:.4f}; {history["train_seconds"] / 60:.1f} min of
training on {history["device"]}{_cpu_hours_text(history)}.
"""


def _recall_table(metrics: dict) -> str:
    """Recall per class, one row per split: from the `<split>/recall_<class>` metrics ("" if
    none)."""
    splits: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        split, _, metric = key.rpartition("/")
        if metric.startswith("recall_"):
            splits.setdefault(split, {})[metric.removeprefix("recall_")] = value
    if not splits:
        return ""
    classes = list(dict.fromkeys(c for row in splits.values() for c in row))
    head = f"| recall | {' | '.join(classes)} |\n|---|{'---|' * len(classes)}\n"
    body = "\n".join(
        f"| {split} | {' | '.join(f'{row[c]:.3f}' if c in row else '–' for c in classes)} |"
        for split, row in splits.items()
    )
    return f"\n{head}{body}\n"


def wall_seconds(history: dict) -> float:
    """Wall time of training: every epoch's, over every session of a resumed run."""
    return sum(epoch["seconds"] for epoch in history["epochs"])


def cpu_hours(history: dict) -> float | None:
    """Hours of the whole machine (all its cores) that training on the CPU takes: the median
    epoch's wall time × the epochs, so that epochs slowed by other jobs, or paused, do not
    count (None for a GPU run). The wall time (`wall_seconds`) counts them."""
    if history["device"] != "cpu":
        return None
    seconds = [epoch["seconds"] for epoch in history["epochs"]]
    return statistics.median(seconds) * len(seconds) / 3600


def _cpu_hours_text(history: dict) -> str:
    """ " (N CPU-hours: the median epoch × E epochs, T threads)" for a CPU run, "" otherwise;
    with teacher views, the hours computing them (once for a model and its twin) beside."""
    hours = cpu_hours(history)
    if hours is None:
        return ""
    threads = f", {history['threads']} threads" if history.get("threads") else ""
    epochs = len(history["epochs"])
    views = history.get("teacher_views")
    extra = (
        f"; and {views['seconds'] / 3600:.2f} CPU-hours computing the teachers' {views['k']} "
        "views of each image, once for this model and its twin"
        if views
        else ""
    )
    return f" ({hours:.2f} CPU-hours: the median epoch × {epochs} epochs{threads}{extra})"
