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

from faceres.registry.index import (
    ENTRY_KEYS,
    TASKS,
    default_model,
    get_entry,
    list_models,
    registry_dir,
)
from faceres.registry.load import LoadedModel, load, load_task, model_config
from faceres.registry.publish import (
    push,
    save_model,
    update_card_section,
    update_config,
    update_entry,
)
from faceres.registry.resolve import pull, resolve, resolve_file, sha256_file, verify

__all__ = [
    "ENTRY_KEYS",
    "TASKS",
    "LoadedModel",
    "default_model",
    "get_entry",
    "list_models",
    "load",
    "load_task",
    "model_config",
    "pull",
    "push",
    "registry_dir",
    "resolve",
    "resolve_file",
    "save_model",
    "sha256_file",
    "update_card_section",
    "update_config",
    "update_entry",
    "verify",
]
