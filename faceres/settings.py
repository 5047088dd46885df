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
REGISTRY_DIR = Path(os.environ.get("FACERES_REGISTRY", PROJECT_ROOT / "registry"))


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
