"""The model registry: `registry/index.json` plus one Hub-shaped folder per model.

Each entry pins every file by sha256. `resolve` returns the committed folder when it matches,
else the Hugging Face Hub snapshot at the pinned revision (checked the same way); `load` builds
the timm model from that folder, safetensors only (torch and timm, imported on first use);
`faceres.registry.runtime.load_runner` runs a model on ONNX Runtime on CPUs (its `model.onnx`, or
an export in the cache) and on torch where an NVIDIA GPU is. Third-party files (path null) resolve
from their `local_candidates`, else from the Hub.

>>> from faceres import registry
>>> registry.default_model("detector")
'yunet-2026may'
>>> loaded = registry.load("dlib-resnet29-face", device="cpu")
>>> loaded.model.training, loaded.config["faceres"]["task"]
(False, 'identity')

The registry folder is `faceres.settings.REGISTRY_DIR` (env `FACERES_REGISTRY`), read at call time.
"""

import importlib

from faceres.registry.index import (
    ENTRY_KEYS,
    FUSION,
    TASKS,
    default_model,
    get_entry,
    list_models,
    registry_dir,
    task_model,
)
from faceres.registry.resolve import (
    model_config,
    pull,
    resolve,
    resolve_file,
    sha256_file,
    verify,
)

_TORCH_NAMES = {
    "LoadedModel": "weights",
    "default_device": "weights",
    "load": "weights",
    "load_task": "weights",
    "push": "publish",
    "save_model": "publish",
    "save_fused": "publish",
    "update_card_section": "publish",
    "update_config": "publish",
    "update_entry": "publish",
    "export_onnx": "export",
    "publish_onnx": "export",
}
"""Names whose modules import torch and timm: imported on first use (PEP 562), so that reading
the registry, resolving files and running ONNX models start without them."""


def __getattr__(name: str):
    if name in _TORCH_NAMES:
        return getattr(importlib.import_module(f"{__name__}.{_TORCH_NAMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ENTRY_KEYS",
    "FUSION",
    "TASKS",
    "LoadedModel",
    "default_device",
    "default_model",
    "export_onnx",
    "get_entry",
    "list_models",
    "load",
    "load_task",
    "model_config",
    "publish_onnx",
    "pull",
    "push",
    "registry_dir",
    "resolve",
    "resolve_file",
    "save_fused",
    "save_model",
    "task_model",
    "sha256_file",
    "update_card_section",
    "update_config",
    "update_entry",
    "verify",
]
