"""faceres architectures, registered with timm when this package is imported."""

from . import dlib_landmarks, dlib_mmod, dlib_resnet, expression  # noqa: F401
