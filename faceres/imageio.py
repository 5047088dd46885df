"""Decode any image a user may hand us into an RGB uint8 array, or say clearly why not.

>>> rgb = load_image("photo.jpg")          # path, bytes, PIL image or numpy array
>>> rgb.shape, rgb.dtype
((480, 640, 3), dtype('uint8'))
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from faceres.errors import ImageError

MAX_PIXELS = 40_000_000
"""Largest image accepted (width × height), e.g. 8000 × 5000; larger ones are refused unread."""
MAX_FILE_BYTES = 50 * 1024 * 1024
"""Largest file accepted."""

ImageInput = str | Path | bytes | np.ndarray | Image.Image


def load_image(src: ImageInput) -> np.ndarray:
    """Return `src` as an H×W×3 RGB uint8 array, EXIF orientation applied (first frame if animated).

    Raises `ImageError` for empty, corrupt, non-image, tiny or oversized inputs.
    """
    if isinstance(src, np.ndarray):
        return _from_array(src)
    if isinstance(src, Image.Image):
        return _from_pil(src)
    if isinstance(src, (str, Path)):
        path = Path(src)
        if path.is_dir():
            raise ImageError(f"{path} is a folder; give an image file.")
        if not path.is_file():
            raise ImageError(f"Image file not found: {path}")
        size = path.stat().st_size
        if size == 0:
            raise ImageError(f"Image file is empty: {path.name}")
        if size > MAX_FILE_BYTES:
            raise ImageError(
                f"Image file is too large ({size / 2**20:.0f} MB > {MAX_FILE_BYTES // 2**20} MB): "
                f"{path.name}"
            )
        data = path.read_bytes()
        name = path.name
    elif isinstance(src, (bytes, bytearray)):
        data, name = bytes(src), "upload"
        if not data:
            raise ImageError("Image is empty (0 bytes).")
        if len(data) > MAX_FILE_BYTES:
            raise ImageError(f"Image is too large (> {MAX_FILE_BYTES // 2**20} MB).")
    else:
        raise ImageError(f"Expected an image path, bytes or array, got {type(src).__name__}.")
    return _decode(data, name)


def _decode(data: bytes, name: str) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")  # bad EXIF
            image = Image.open(io.BytesIO(data))
            w, h = image.size
            if w * h > MAX_PIXELS:
                raise ImageError(
                    f"{name}: {w}×{h} is too large ({w * h / 1e6:.0f} MP); the limit is "
                    f"{MAX_PIXELS / 1e6:.0f} megapixels."
                )
            image.load()
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(
            f"{name}: image is too large to decode safely; the limit is "
            f"{MAX_PIXELS / 1e6:.0f} megapixels."
        ) from exc
    except UnidentifiedImageError as exc:
        raise ImageError(f"{name}: not a recognised image format.") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"{name}: image is truncated or corrupt ({exc}).") from exc
    return _from_pil(image)


def _from_pil(image: Image.Image) -> np.ndarray:
    w, h = image.size
    if w * h > MAX_PIXELS:
        raise ImageError(f"Image {w}×{h} exceeds the {MAX_PIXELS / 1e6:.0f}-megapixel limit.")
    if min(w, h) < 8:
        raise ImageError(f"Image is too small ({w}×{h}); faces need at least 8×8 pixels.")
    try:
        with warnings.catch_warnings():  # nor print Pillow's "Corrupt EXIF data" warnings
            warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
            image = ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - a broken EXIF block must not reject a readable image
        pass
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(image, dtype=np.float64)
        top = 65535.0 if arr.max() > 255 else 255.0
        image = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8))
    elif image.mode == "F":
        arr = np.asarray(image, dtype=np.float64)
        image = Image.fromarray(
            np.clip(arr * (255.0 if arr.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
        )
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))


def _from_array(arr: np.ndarray) -> np.ndarray:
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
        raise ImageError(f"Array of shape {arr.shape} is not an image (expected H×W, H×W×3 or ×4).")
    if arr.shape[0] * arr.shape[1] > MAX_PIXELS:
        raise ImageError(f"Image exceeds the {MAX_PIXELS / 1e6:.0f}-megapixel limit.")
    if arr.dtype == np.uint16:
        arr = (arr.astype(np.float64) / 257.0 + 0.5).astype(np.uint8)
    elif arr.dtype.kind == "f":
        arr = np.clip(np.nan_to_num(arr.astype(np.float64)), -1.0, 1e6)
        scale = 255.0 if float(arr.max(initial=0.0)) <= 1.0 else 1.0
        arr = np.clip(arr * scale + 0.5, 0, 255).astype(np.uint8)
    elif arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.shape[2] == 4:
        arr = arr[:, :, :3]
    if min(arr.shape[:2]) < 8:
        raise ImageError(f"Image is too small ({arr.shape[1]}×{arr.shape[0]}).")
    return np.ascontiguousarray(arr)
