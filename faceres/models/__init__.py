"""faceres architectures, registered with timm when this package is imported."""

from faceres.models import dlib_landmarks, dlib_mmod, dlib_resnet, fer_resnet, sface  # noqa: F401
