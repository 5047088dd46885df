"""The model registry: `registry/index.json` plus one Hub-shaped folder per model.

Each entry pins every file by sha256. `resolve` returns the committed folder when it matches,
else the Hugging Face Hub snapshot at the pinned revision (checked the same way); `load` builds
the timm model from that folder, safetensors only. Third-party files (path null) resolve from
their `local_candidates`, else from the Hub.

>>> from faceres import registry
>>> registry.default_model("detector")
'yunet-2026may'
>>> loaded = registry.load("dlib-resnet29-face", device="cpu")
>>> loaded.model.training, loaded.config["faceres"]["task"]
(False, 'identity')

The registry folder is `faceres.settings.REGISTRY_DIR` (env `FACERES_REGISTRY`), read at call time.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import string
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError

from . import settings
from .errors import IntegrityError, ModelError, OfflineError

TASKS = ("identity", "expression", "detector", "landmarks")
ENTRY_KEYS = (
    "name", "task", "architecture", "twin", "default", "repo_id", "revision", "path", "files",
    "license", "metrics", "description", "source", "local_candidates",
)
HUB_TIMEOUT = 3.0
"""Seconds to wait for the Hub before calling it unreachable (the offline error comes in < 5 s)."""
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".tar")
_TASK_PIPELINES = {"identity": "image-feature-extraction", "expression": "image-classification"}


@dataclass
class LoadedModel:
    """A registry model ready to run: the timm module in eval mode and its config.json."""

    name: str
    model: torch.nn.Module
    config: dict
    device: torch.device


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


def default_model(task: str) -> str:
    """The name of the model marked `default` for `task`.

    >>> default_model("detector")
    'yunet-2026may'
    """
    for entry in _read_index():
        if entry["task"] == task and entry.get("default"):
            return entry["name"]
    raise ModelError(
        f"No default {task} model is in the registry yet; see the README, 'Models'."
    )


# -- integrity ---------------------------------------------------------------------------------


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks.

    >>> sha256_file("registry/index.json")  # doctest: +SKIP
    '3f2a...'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _hash_folder(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): sha256_file(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.relative_to(folder).parts[0].startswith(".")
    }


def _check_folder(entry: dict, folder: Path) -> None:
    """ModelError naming the first file of `entry` missing from `folder`, IntegrityError the
    first whose sha256 differs."""
    for rel, expected in entry["files"].items():
        path = folder / rel
        if not path.is_file():
            raise ModelError(f"{entry['name']}: {rel} is missing from {folder}.")
        actual = sha256_file(path)
        if actual != expected:
            raise IntegrityError(
                f"{entry['name']}: {rel} in {folder} has sha256 {actual[:12]}…, the registry pins "
                f"{expected[:12]}…; the file was altered or is stale: refusing to use it."
            )


def verify(name: str | None = None) -> list[tuple[str, str, str]]:
    """Check every locally present file: rows (model, file, status), status one of "ok",
    "mismatch", "missing" (a committed file is absent) or "not here" (a third-party file
    that is not on this machine, which is allowed).

    >>> [row for row in verify() if row[2] in ("mismatch", "missing")]
    []
    """
    rows = []
    for entry in [get_entry(name)] if name else _read_index():
        for rel, expected in entry["files"].items():
            if entry.get("path"):
                path = registry_dir() / entry["path"] / rel
                if not path.is_file():
                    rows.append((entry["name"], rel, "missing"))
                    continue
                candidates = [path]
            else:
                candidates = [p for p in _candidate_paths(entry) if p.name == Path(rel).name]
                if not candidates:
                    rows.append((entry["name"], rel, "not here"))
                    continue
            ok = all(sha256_file(p) == expected for p in candidates)
            rows.append((entry["name"], rel, "ok" if ok else "mismatch"))
    return rows


# -- resolving files ---------------------------------------------------------------------------


def _candidate_paths(entry: dict) -> list[Path]:
    """The existing files among the entry's `local_candidates` ($VARS expanded; FACERES_DATA
    defaults to `settings.data_dir()`)."""
    env = dict(os.environ)
    data = settings.data_dir()
    if "FACERES_DATA" not in env and data is not None:
        env["FACERES_DATA"] = str(data)
    paths = []
    for candidate in entry.get("local_candidates") or []:
        expanded = string.Template(candidate).safe_substitute(env)
        if "$" not in expanded and Path(expanded).expanduser().is_file():
            paths.append(Path(expanded).expanduser())
    return paths


def _offline_error(name: str, why: str) -> OfflineError:
    return OfflineError(
        f"Model {name!r} is not available locally (registry folder or Hugging Face cache) and "
        f"{why}; run `faceres registry pull {name}` where the Hub is reachable (HF_HUB_OFFLINE "
        f"unset), or restore its files under {registry_dir()}."
    )


def _check_pinned(entry: dict, local_problem: str = "") -> None:
    """ModelError unless the entry names a Hub repo and revision to fall back on."""
    if not entry.get("repo_id") or not entry.get("revision"):
        suffix = f" ({local_problem})" if local_problem else ""
        raise ModelError(
            f"Model {entry['name']!r} is not available locally and has no pinned Hub revision"
            f"{suffix}; restore its files or `faceres registry push {entry['name']} --repo-id ID`."
        )


def _check_hub(name: str, local_problem: str = "") -> None:
    """OfflineError, in at most `HUB_TIMEOUT` s, unless the Hub endpoint answers."""
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    suffix = f" ({local_problem})" if local_problem else ""
    if constants.HF_HUB_OFFLINE:
        raise _offline_error(name, f"HF_HUB_OFFLINE is set{suffix}")
    try:
        get_session().head(constants.ENDPOINT, timeout=HUB_TIMEOUT)
    except Exception as exc:  # any failure to get an HTTP answer means "unreachable"
        raise _offline_error(
            name, f"the Hub ({constants.ENDPOINT}) cannot be reached: {type(exc).__name__}{suffix}"
        ) from exc


def _hub_call(entry: dict, fn, **kwargs) -> Path:
    """Run a huggingface_hub download for `entry`, its errors turned into faceres errors."""
    from huggingface_hub.errors import (
        EntryNotFoundError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        return Path(fn(entry["repo_id"], revision=entry["revision"], **kwargs))
    except LocalEntryNotFoundError as exc:
        raise _offline_error(entry["name"], "the Hub download did not complete") from exc
    except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError) as exc:
        raise ModelError(
            f"Model {entry['name']!r}: {entry['repo_id']}@{entry['revision']} is not on the Hub: "
            f"{str(exc).splitlines()[0]}"
        ) from exc


def _from_hub(entry: dict, fn, local_problem: str = "", **kwargs) -> Path:
    """`fn` (snapshot_download or hf_hub_download) at the pinned revision: the Hugging Face
    cache's copy, else a download once the Hub answers."""
    _check_pinned(entry, local_problem)
    try:
        return _hub_call(entry, fn, local_files_only=True, **kwargs)
    except OfflineError:
        _check_hub(entry["name"], local_problem)
        return _hub_call(entry, fn, etag_timeout=HUB_TIMEOUT, **kwargs)


def _hub_snapshot(entry: dict, local_problem: str = "") -> Path:
    """The entry's files in the Hugging Face cache (downloaded when absent), sha256-checked."""
    from huggingface_hub import snapshot_download

    folder = _from_hub(entry, snapshot_download, local_problem, allow_patterns=list(entry["files"]))
    _check_folder(entry, folder)
    return folder


def pull(name: str) -> Path:
    """Download `name` at its pinned revision into the Hugging Face cache (HF_HOME) and check
    every file; returns the snapshot folder.

    >>> pull("dlib-resnet29-face")  # doctest: +SKIP
    PosixPath('~/.cache/huggingface/hub/models--faceres--dlib-resnet29-face/snapshots/4c1e...')
    """
    return _hub_snapshot(get_entry(name))


def resolve(name: str) -> Path:
    """The folder holding `name`'s files: the committed one when every sha256 matches the index,
    else the Hub snapshot at the pinned revision (IntegrityError naming a bad file, OfflineError
    when it is neither here nor reachable).

    >>> resolve("dlib-resnet29-face").name
    'dlib-resnet29-face'
    """
    entry = get_entry(name)
    if not entry.get("path"):
        raise ModelError(f"{name!r} is a third-party file entry: use resolve_file({name!r}, FILE).")
    folder = registry_dir() / entry["path"]
    try:
        _check_folder(entry, folder)
        return folder
    except ModelError as exc:
        if folder.is_dir() and not entry.get("revision"):
            raise
        local_problem = f"local copy unusable: {exc}" if folder.is_dir() else ""
    return _hub_snapshot(entry, local_problem)


def resolve_file(name: str, filename: str) -> Path:
    """One file of `name`, sha256-checked. Third-party entries (path null) try their
    `local_candidates` first, then `hf_hub_download` at the pinned revision.

    >>> resolve_file("yunet-2026may", "face_detection_yunet_2026may.onnx").name
    'face_detection_yunet_2026may.onnx'
    """
    from huggingface_hub import hf_hub_download

    entry = get_entry(name)
    if filename not in entry["files"]:
        raise ModelError(f"{name!r} has no file {filename!r}; it has: {', '.join(entry['files'])}.")
    if entry.get("path"):
        return resolve(name) / filename
    expected = entry["files"][filename]
    bad = []
    for path in _candidate_paths(entry):
        if path.name == Path(filename).name:
            if sha256_file(path) == expected:
                return path
            bad.append(str(path))
    problem = f"{', '.join(bad)} fails its sha256 check" if bad else ""
    single = {**entry, "files": {filename: expected}}
    try:
        path = _from_hub(single, hf_hub_download, problem, filename=filename)
    except ModelError as exc:
        if bad and not isinstance(exc, IntegrityError):
            raise IntegrityError(f"{name}: {problem}; refusing to use it.") from exc
        raise
    _check_folder(single, path.parents[len(Path(filename).parts) - 1])
    return path


# -- loading -----------------------------------------------------------------------------------

_LOADED: dict[tuple[str, str, str], LoadedModel] = {}
_LOAD_LOCK = threading.Lock()


def load(name: str, device: str | torch.device | None = None) -> LoadedModel:
    """The timm model of `name` (eval mode, on `device`, default cuda when available), built
    from its resolved folder with `timm.create_model("local-dir:…")`; cached per process.

    >>> loaded = load("dlib-resnet29-face", device="cpu")
    >>> loaded.config["faceres"]["task"]
    'identity'
    """
    import timm

    device = settings.default_device(device)
    key = (str(registry_dir().resolve()), name, str(device))
    with _LOAD_LOCK:
        if key in _LOADED:
            return _LOADED[key]
        entry = get_entry(name)
        if not entry.get("path") or not entry.get("architecture"):
            raise ModelError(f"{name!r} is not a timm model; use resolve_file for its files.")
        if any(Path(f).suffix in _PICKLE_SUFFIXES for f in entry["files"]):
            raise ModelError(f"{name!r} lists pickle files; only safetensors are loaded.")
        folder = resolve(name)
        if not (folder / "model.safetensors").is_file():
            raise ModelError(f"{name!r} has no model.safetensors in {folder}.")
        try:
            config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
            model = timm.create_model(f"local-dir:{folder}", pretrained=True)
        except (RuntimeError, ValueError, SafetensorError) as exc:  # a corrupt file, sha256 kept
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{name!r} could not be built from {folder}: {reason}") from exc
        model = model.to(device).eval()
        _LOADED[key] = LoadedModel(name=name, model=model, config=config, device=device)
        return _LOADED[key]


def load_task(task: str, name: str | None = None, device: str | torch.device | None = None
              ) -> LoadedModel:
    """`load(name)` checked to be a `task` model; without `name`, the task's default model.

    >>> load_task("expression").name
    'resnet18-fer'
    """
    name = name or default_model(task)
    loaded = load(name, device)
    if loaded.config.get("faceres", {}).get("task") != task:
        raise ModelError(f"{name} is not an {task} model; pick one from `faceres registry list`."
                         if task[0] in "aeiou" else
                         f"{name} is not a {task} model; pick one from `faceres registry list`.")
    return loaded


def _forget(name: str) -> None:
    with _LOAD_LOCK:
        for key in [k for k in _LOADED if k[1] == name]:
            del _LOADED[key]


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
    import shutil

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
