"""Typed errors. Their message is meant for the user: one line, saying what to do."""


class FaceresError(Exception):
    """Base class of every error faceres raises on purpose."""


class ImageError(FaceresError, ValueError):
    """The input is not an image we can read (empty, corrupt, too large, wrong type)."""


class NoFaceError(FaceresError):
    """No face was found where one was needed."""


class ModelError(FaceresError):
    """A model is unknown, missing, or its files cannot be used."""


class IntegrityError(ModelError):
    """A model file does not match the sha256 pinned in the registry."""


class OfflineError(ModelError):
    """A model is not available locally and the Hub cannot be reached."""


class DataError(FaceresError):
    """A dataset is missing or not laid out as expected."""
