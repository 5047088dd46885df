"""Run a registry model on the engine that suits this machine: ONNX Runtime on a CPU (no torch
or timm to import: a one-shot command starts in about a second), torch where an NVIDIA GPU is
(or where `FACERES_BACKEND=torch` asks for it).

With `FACERES_BACKEND=auto` (the default), a model whose registry folder has no `model.onnx`
is exported to ONNX into the cache on its first use on a CPU (`faceres.registry.export`, a few
seconds once, torch needed that time); later processes start from the file. Where the export
cannot be made or stored, the model runs on torch (with `FACERES_BACKEND=onnx`: an error). Both
engines compute in float32 and agree to `faceres.registry.export.PARITY_TOLERANCE`.

>>> runner = load_runner("identity")
>>> runner.backend, runner(batch).shape
('onnx', (8, 128))
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from faceres import registry
from faceres.errors import IntegrityError, ModelError, OfflineError
from faceres.registry.onnx import ONNX_FILE, load_onnx, onnx_path
from faceres.settings import backend_setting, has_nvidia_gpu


@dataclass(frozen=True)
class Runner:
    """A registry model ready to run on a standardised N×C×H×W float32 batch, whichever engine
    runs it: `backend` is "onnx" or "torch"."""

    name: str
    config: dict
    backend: str
    run: Callable[[np.ndarray], np.ndarray]

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.run(batch)


def standardise(crops: Sequence[np.ndarray], config: dict) -> np.ndarray:
    """uint8 crops, RGB (N, H, W, 3) or grey (N, H, W), → the N×C×H×W float32 batch the model's
    `pretrained_cfg` asks for: (pixel / 255 − mean) / std per channel.

    >>> standardise([np.full((2, 2, 3), 255, np.uint8)], {"pretrained_cfg": {"mean": [0.5] * 3,
    ...     "std": [0.5] * 3}})[0, :, 0, 0].tolist()
    [1.0, 1.0, 1.0]
    """
    cfg = config["pretrained_cfg"]
    mean = np.asarray(cfg["mean"], np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(cfg["std"], np.float32).reshape(1, -1, 1, 1)
    batch = np.stack(crops)
    batch = batch[..., None] if batch.ndim == 3 else batch
    return (batch.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255.0) - mean) / std


VIEWS = ("mirror", "single")
"""How an expression model reads a face at test time (its config's `faceres.views`): "mirror"
averages the probabilities of the face and of its mirror image (the default), "single" reads the
face alone (half the compute)."""


def mirror_views(config: dict, views: str | None = None) -> bool:
    """Whether the model reads each face with its mirror image: `views` when given, else its
    config's `faceres.views` ("mirror" when absent).

    >>> mirror_views({"faceres": {"views": "single"}})
    False
    """
    chosen = views or config.get("faceres", {}).get("views", "mirror")
    if chosen not in VIEWS:
        raise ModelError(f"Test-time views must be one of {VIEWS}, not {chosen!r}.")
    return chosen == "mirror"


log = logging.getLogger(__name__)
_LOCKS: dict[str, threading.Lock] = {}
"""One lock per model: a model being exported makes only its own callers wait."""
_LOCKS_LOCK = threading.Lock()
_BUILT: set[str] = set()
"""Models whose runner this process has built (see `first_use`)."""


def choose_backend() -> str:
    """ "onnx" or "torch" for this machine and the `FACERES_BACKEND` setting.

    >>> choose_backend()  # a CPU-only machine
    'onnx'
    """
    setting = backend_setting()
    if setting != "auto":
        return setting
    return "torch" if has_nvidia_gpu() else "onnx"


def first_use(task: str, name: str | None = None) -> bool:
    """Whether running `task`'s model `name` now first exports it to ONNX (seconds, once per
    machine): an ONNX engine, the runner not built in this process, and no ONNX file yet (the
    index pins none and the cache has none); for a fused model, that of any member. A cheap
    check, no session is made."""
    name = registry.task_model(task, name)
    if registry.get_entry(name)["architecture"] == registry.FUSION:
        members = registry.model_config(name)["faceres"]["members"]
        return any(first_use(task, member["model"]) for member in members)
    if choose_backend() != "onnx" or name in _BUILT:
        return False
    return ONNX_FILE not in registry.get_entry(name).get("files", {}) and not (
        onnx_path(name).is_file()
    )


def load_runner(task: str, name: str | None = None) -> Runner:
    """`task`'s model `name` (default: the task's default model) on `choose_backend()`'s engine;
    one runner per model and engine in a process.

    Examples:
        >>> load_runner("expression", "resnet18-fer").config["faceres"]["task"]
        'expression'
    """
    name = registry.task_model(task, name)
    with _LOCKS_LOCK:
        lock = _LOCKS.setdefault(name, threading.Lock())
    with lock:
        runner = _runner(name, choose_backend(), str(registry.registry_dir()))
    _BUILT.add(name)
    return runner


@functools.lru_cache(maxsize=32)
def _runner(name: str, backend: str, registry_dir: str) -> Runner:
    config = registry.model_config(name)
    if config.get("architecture") == registry.FUSION:
        return _ensemble(name, config, backend, registry_dir)
    if backend == "onnx":
        try:
            model = load_onnx(name)
            if model is None:
                registry.export_onnx(name)
                model = load_onnx(name)
            if model is None:
                raise ModelError("its exported file does not match its sidecar")
            return Runner(name, config, "onnx", model)
        except (IntegrityError, OfflineError):  # the model's files: torch needs them too
            raise
        except (ModelError, OSError) as exc:  # e.g. no writable cache: torch still works
            if backend_setting() == "onnx":
                raise ModelError(f"{name} cannot run on ONNX Runtime: {exc}") from exc
            log.warning("%s runs on torch: no ONNX file (%s)", name, exc)
    return Runner(name, config, "torch", registry.load(name))


def _ensemble(name: str, config: dict, backend: str, registry_dir: str) -> Runner:
    """An expression ensemble (`registry.save_fused`) as one runner: the log of its members'
    weighted mean probabilities, so that the softmax a caller takes of them gives that mean.

    >>> run = _ensemble("ensemble", {"faceres": {"members": [...]}}, "onnx", "registry")
    >>> np.allclose(softmax(run(batch)), 0.5 * softmax(a(batch)) + 0.5 * softmax(b(batch)))
    True
    """
    parts = config["faceres"]["members"]
    if config["faceres"].get("task") != "expression":
        raise ModelError(f"{name} is a fused identity model: run its members (FacePipeline).")
    members = [(_runner(m["model"], backend, registry_dir), float(m["weight"])) for m in parts]

    def run(batch: np.ndarray) -> np.ndarray:
        mean = sum(weight * softmax(member(batch)) for member, weight in members)
        return np.log(np.maximum(mean, np.finfo(np.float32).tiny))

    engines = {member.backend for member, _ in members}
    return Runner(name, config, engines.pop() if len(engines) == 1 else "mixed", run)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, C) logits, float32.

    >>> softmax(np.log(np.array([[1.0, 3.0]]))).tolist()
    [[0.25, 0.75]]
    """
    e = np.exp(logits - logits.max(1, keepdims=True))
    return (e / e.sum(1, keepdims=True)).astype(np.float32)
