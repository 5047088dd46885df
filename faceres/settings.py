"""Where data lives and which device runs the models.

>>> import os; os.environ["FACERES_DATA"] = "/data/faces"
>>> str(data_dir())
'/data/faces'
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from faceres.errors import DataError

PACKAGE_ROOT = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_ROOT.parent
SHIPPED_REGISTRY_DIR = PACKAGE_ROOT / "_registry"
"""The registry an installed wheel carries: the checkout's `registry/index.json`, copied in by
the build (setup.py), without the model folders (those come from the Hub at pinned revisions).
A source checkout never has this folder."""


def _registry_dir() -> Path:
    """`$FACERES_REGISTRY`; else, from a source checkout (editable install, the repo as working
    directory, a built Space), its `registry/`; else, from an installed wheel, the shipped index."""
    env = os.environ.get("FACERES_REGISTRY")
    if env:
        return Path(env)
    if (SHIPPED_REGISTRY_DIR / "index.json").is_file():
        return SHIPPED_REGISTRY_DIR
    return PROJECT_ROOT / "registry"


REGISTRY_DIR = _registry_dir()
"""The registry folder (index.json and models/), chosen on import by `_registry_dir`."""


def data_dir(required: bool = False) -> Path | None:
    """The research-data folder: `$FACERES_DATA`, else `../shared/data` beside the checkout."""
    env = os.environ.get("FACERES_DATA")
    candidates = [Path(env)] if env else [PROJECT_ROOT.parent / "shared" / "data"]
    for path in candidates:
        if path.is_dir():
            return path
    if required:
        raise DataError(
            "Research data not found: set FACERES_DATA to the folder holding fer2013/, lfw/ "
            "and models/ (see README, 'Data')."
        )
    return None


def default_device(device: str | torch.device | None = None) -> torch.device:
    """`device` if given, else `cuda` when available, else `cpu`."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
