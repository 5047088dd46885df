"""Converters of third-party weights (dlib's models) into timm models in the registry."""
