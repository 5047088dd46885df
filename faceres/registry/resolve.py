"""Integrity and resolution: every file pinned by sha256; `resolve` gives the committed folder when
it matches, else the Hugging Face Hub snapshot at the pinned revision, checked the same way.

>>> resolve("dlib-resnet29-face").name
'dlib-resnet29-face'
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import os
import string
from pathlib import Path

from faceres import settings
from faceres.errors import IntegrityError, ModelError, OfflineError
from faceres.registry.index import _read_index, get_entry, registry_dir

HUB_TIMEOUT = 3.0
"""Seconds to wait for the Hub before calling it unreachable (the offline error comes in < 5 s)."""


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
    that is not on this machine, or any weights under an installed wheel's shipped index: both
    are allowed, and come from the Hub).

    Examples:
        >>> [row for row in verify() if row[2] in ("mismatch", "missing")]
        []
    """
    rows = []
    for entry in [get_entry(name)] if name else _read_index():
        for rel, expected in entry["files"].items():
            if entry.get("path"):
                path = registry_dir() / entry["path"] / rel
                if not path.is_file():  # an installed wheel ships the index, not the weights
                    shipped = registry_dir() == settings.SHIPPED_REGISTRY_DIR
                    rows.append((entry["name"], rel, "not here" if shipped else "missing"))
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
    import httpx2  # huggingface_hub's HTTP client: its transport errors (a cut, a stall)
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
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
    except (HfHubHTTPError, httpx2.HTTPError, OSError) as exc:  # an error answer, a cut, a stall
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise _offline_error(entry["name"], f"the Hub download failed ({why})") from exc


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


def model_config(name: str) -> dict:
    """`name`'s config.json (architecture, pretrained_cfg, the `faceres` block), without building
    the model.

    Examples:
        >>> model_config("resnet18-fer")["faceres"]["residual"]
        True
    """
    entry = get_entry(name)
    pinned = entry.get("files", {}).get("config.json", "")
    return copy.deepcopy(_config(str(registry_dir()), name, pinned))


@functools.lru_cache(maxsize=64)
def _config(root: str, name: str, pinned: str) -> dict:
    """config.json of a resolved (sha256-checked) folder, once per registry, model and pinned
    config hash: `resolve` hashes every file of the folder, too slow to repeat per request."""
    return json.loads((resolve(name) / "config.json").read_text(encoding="utf-8"))
