"""Build registry models: `load` makes the timm model from a resolved folder (safetensors only),
once per process and device.

>>> load("dlib-resnet29-face", device="cpu").config["faceres"]["task"]
'identity'
"""

from __future__ import annotations

import copy
import functools
import json
import threading
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError

from faceres import settings
from faceres.errors import ModelError
from faceres.registry.index import _PICKLE_SUFFIXES, default_model, get_entry, registry_dir
from faceres.registry.resolve import resolve


@dataclass
class LoadedModel:
    """A registry model ready to run: the timm module in eval mode and its config.json."""

    name: str
    model: torch.nn.Module
    config: dict
    device: torch.device


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


def load_task(
    task: str, name: str | None = None, device: str | torch.device | None = None
) -> LoadedModel:
    """`load(name)` checked to be a `task` model; without `name`, the task's default model.

    >>> load_task("expression").name
    'resnet18-fer'
    """
    name = name or default_model(task)
    loaded = load(name, device)
    if loaded.config.get("faceres", {}).get("task") != task:
        raise ModelError(
            f"{name} is not an {task} model; pick one from `faceres registry list`."
            if task[0] in "aeiou"
            else f"{name} is not a {task} model; pick one from `faceres registry list`."
        )
    return loaded


def model_config(name: str) -> dict:
    """`name`'s config.json (architecture, pretrained_cfg, the `faceres` block), without building
    the model.

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


def _forget(name: str) -> None:
    with _LOAD_LOCK:
        for key in [k for k in _LOADED if k[1] == name]:
            del _LOADED[key]
