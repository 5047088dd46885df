"""faceres: residual networks for faces, shown honestly."""

from . import models  # noqa: F401  (registers every faceres architecture with timm)

__version__ = "0.1.0"
