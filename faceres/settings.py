"""Where data and caches live, and which engine runs the models.

>>> import os; os.environ["FACERES_DATA"] = "/data/faces"
>>> str(data_dir())
'/data/faces'
"""

from __future__ import annotations

import os
from pathlib import Path

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
            "and models/ (see docs/architecture.md, 'Data')."
        )
    return None


def cache_dir() -> Path:
    """Where faceres caches what it can rebuild (decoded datasets, ONNX exports, plots):
    `$FACERES_CACHE`, else `~/.cache/faceres`; created on first use."""
    path = Path(os.environ.get("FACERES_CACHE", Path.home() / ".cache" / "faceres"))
    path.mkdir(parents=True, exist_ok=True)
    return path


BACKENDS = ("auto", "onnx", "torch")
"""Engines that may run a registry model (`FACERES_BACKEND`)."""


def backend_setting() -> str:
    """The `FACERES_BACKEND` setting (one of `BACKENDS`), "auto" when unset.

    >>> os.environ["FACERES_BACKEND"] = "torch"
    >>> backend_setting()
    'torch'
    """
    value = os.environ.get("FACERES_BACKEND", "auto").strip().lower() or "auto"
    if value not in BACKENDS:
        raise DataError(f"FACERES_BACKEND={value!r} is not one of {', '.join(BACKENDS)}.")
    return value


def has_nvidia_gpu() -> bool:
    """Whether an NVIDIA driver is loaded here (then torch runs the models on CUDA), found
    without importing torch."""
    return Path("/proc/driver/nvidia/version").is_file()
