"""Build registry models: `load` makes the timm model from a resolved folder (safetensors only),
once per process and device.

>>> load("dlib-resnet29-face", device="cpu").config["faceres"]["task"]
'identity'
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import timm
import torch
from safetensors import SafetensorError

from faceres import models  # noqa: F401  (registers every faceres architecture with timm)
from faceres.errors import ModelError
from faceres.registry.index import _PICKLE_SUFFIXES, get_entry, registry_dir, task_model
from faceres.registry.resolve import resolve


@dataclass
class LoadedModel:
    """A registry model ready to run: the timm module in eval mode and its config.json; called
    on a numpy batch like an ONNX Runtime model (`faceres.registry.runtime.Runner`)."""

    name: str
    model: torch.nn.Module
    config: dict
    device: torch.device

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """The model's float32 outputs for a standardised N×C×H×W float32 batch.

        >>> load("resnet18-fer")(np.zeros((1, 1, 48, 48), np.float32)).shape
        (1, 7)
        """
        with torch.inference_mode():
            out = self.model(torch.from_numpy(batch).to(self.device))
        return out.float().cpu().numpy()


def default_device(device: str | torch.device | None = None) -> torch.device:
    """`device` if given, else `cuda` when available, else `cpu`."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


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
    device = default_device(device)
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
    return load(task_model(task, name), device)


def _forget(name: str) -> None:
    with _LOAD_LOCK:
        for key in [k for k in _LOADED if k[1] == name]:
            del _LOADED[key]
