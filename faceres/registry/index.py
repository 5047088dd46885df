"""The registry index: `registry/index.json`, one entry per model (read and locked here; written
by `faceres.registry.publish`).

>>> list_models("detector")[0]["name"]
'yunet-2026may'
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import tempfile
from pathlib import Path

from faceres import settings
from faceres.errors import ModelError

TASKS = ("identity", "expression", "detector", "landmarks")
ENTRY_KEYS = (
    "name",
    "task",
    "architecture",
    "twin",
    "default",
    "repo_id",
    "revision",
    "path",
    "files",
    "license",
    "metrics",
    "description",
    "source",
    "local_candidates",
)
FUSION = "fusion"
"""The `architecture` of a fused identity model: its members' weights, none of its own."""
HUB_TIMEOUT = 3.0
"""Seconds to wait for the Hub before calling it unreachable (the offline error comes in < 5 s)."""
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".tar")
_TASK_PIPELINES = {"identity": "image-feature-extraction", "expression": "image-classification"}


# -- index -----------------------------------------------------------------------------------


def registry_dir() -> Path:
    """The registry folder in use (`faceres.settings.REGISTRY_DIR`, read at each call)."""
    return Path(settings.REGISTRY_DIR)


def _index_path() -> Path:
    return registry_dir() / "index.json"


def _read_index() -> list[dict]:
    path = _index_path()
    if not path.is_file():
        return []
    try:
        return json.loads(path.read_text(encoding="utf-8"))["models"]
    except (ValueError, KeyError) as exc:
        raise ModelError(f"The registry index {path} is not valid: {exc}") from exc


def _write_index(entries: list[dict]) -> None:
    path = _index_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"models": entries}, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _index_lock():
    """A file lock around read-modify-write of the index (several writers may train at once)."""
    from filelock import FileLock

    key = hashlib.sha256(str(_index_path().resolve()).encode()).hexdigest()[:16]
    return FileLock(Path(tempfile.gettempdir()) / f"faceres-registry-{key}.lock", timeout=60)


def list_models(task: str | None = None) -> list[dict]:
    """Every index entry (copies), or those of one task.

    >>> [e["name"] for e in list_models("detector")]
    ['yunet-2026may']
    """
    return [copy.deepcopy(e) for e in _read_index() if task is None or e["task"] == task]


def get_entry(name: str) -> dict:
    """The index entry of `name` (a copy); ModelError naming the known models otherwise.

    >>> get_entry("yunet-2026may")["repo_id"]
    'opencv/face_detection_yunet'
    """
    entries = _read_index()
    for entry in entries:
        if entry["name"] == name:
            return copy.deepcopy(entry)
    known = ", ".join(e["name"] for e in entries) or "none"
    raise ModelError(f"Unknown model {name!r}; the registry has: {known}.")


def task_model(task: str, name: str | None = None) -> str:
    """`name` checked to be a `task` model in the index; without `name`, the task's default.

    >>> task_model("expression")
    'resnet18-fer'
    """
    name = name or default_model(task)
    if get_entry(name).get("task") != task:
        article = "an" if task[0] in "aeiou" else "a"
        raise ModelError(
            f"{name} is not {article} {task} model; pick one from `faceres registry list`."
        )
    return name


def default_model(task: str) -> str:
    """The name of the model marked `default` for `task`.

    >>> default_model("detector")
    'yunet-2026may'
    """
    for entry in _read_index():
        if entry["task"] == task and entry.get("default"):
            return entry["name"]
    raise ModelError(f"No default {task} model is in the registry yet; see docs/models.md.")
