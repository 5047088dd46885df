"""Bad (and merely unusual) image inputs, written into a folder at test time: nothing is committed.

>>> inputs = make_inputs(tmp_path)
>>> inputs["truncated.jpg"].stat().st_size < inputs["astronaut.jpg"].stat().st_size
True

Every input is built from scikit-image's sample photos or from nothing. `EXPECT` says what each
one must yield: "error" (refused with a `FaceresError`), "noface" (decodes, no face in it) or
"face" (decodes to an upright photo with at least one face).
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data as skdata

BOMB_SIDE = 20_000
"""Width and height that the bomb files' headers claim (400 megapixels, 1.2 GB as RGB)."""
FACE_BOX = (150, 30, 300, 200)
"""(left, top, right, bottom) of the astronaut's face with some margin, in skimage's 512×512."""
GRID = (6, 5)
"""Columns × rows of face crops in the many-faces photo."""
BROKEN_EXIF = b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x05\x01\x12"
"""An EXIF block whose first directory claims five entries and ends inside the first one."""

EXPECT: dict[str, str] = {
    "empty.jpg": "error",
    "truncated.jpg": "error",
    "truncated.png": "error",
    "text.jpg": "error",
    "one_pixel.png": "error",
    "bomb.png": "error",
    "bomb.jpg": "error",
    "over_limit.png": "error",
    "astronaut.jpg": "face",
    "gray16.png": "face",
    "rgb16.png": "face",
    "cmyk.jpg": "face",
    "palette.png": "face",
    "palette_transparent.png": "face",
    "rgba.png": "face",
    "animated.gif": "face",
    "grayscale.jpg": "face",
    "exif_rotate90.jpg": "face",
    "exif_rotate180.jpg": "face",
    "exif_rotate270.jpg": "face",
    "exif_broken.jpg": "face",
    "coffee.jpg": "noface",
    "flat.png": "noface",
    f"faces{GRID[0] * GRID[1]}.jpg": "face",
    "face_cut_left.jpg": "face-or-noface",
    "face_cut_top.jpg": "face-or-noface",
}
ERRORS = [name for name, kind in EXPECT.items() if kind == "error"]
DECODABLE = [name for name in EXPECT if name not in ERRORS]


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header says `width`×`height` RGB but which carries one compressed row only:
    cheap to write, and a decoder that trusts the header allocates width×height×3 bytes."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    row = zlib.compress(b"\x00" * (1 + 3 * width))
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", row) + _chunk(b"IEND", b"")
    )


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small real JPEG whose SOF header is rewritten to say `width`×`height`."""
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (128, 128, 128)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")  # baseline SOF0: marker, length, precision, height, width
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def png_over_limit(max_pixels: int) -> bytes:
    """A valid, fully decodable gray PNG one row taller than `max_pixels` allows (8000 wide)."""
    width = 8000
    height = max_pixels // width + 1
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    compressor = zlib.compressobj(1)
    block = b"\x00" * ((1 + width) * 500)
    rows, parts = height, []
    while rows > 0:
        parts.append(compressor.compress(block[: (1 + width) * min(rows, 500)]))
        rows -= 500
    parts.append(compressor.flush())
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", b"".join(parts))
        + _chunk(b"IEND", b"")
    )


def _encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


def _exif_rotated(photo: Image.Image, orientation: int) -> bytes:
    """`photo` stored turned so that EXIF `orientation` (3, 6 or 8) turns it upright again."""
    stored = {
        3: Image.Transpose.ROTATE_180,
        6: Image.Transpose.ROTATE_90,
        8: Image.Transpose.ROTATE_270,
    }[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _encode(photo.transpose(stored), "JPEG", quality=92, exif=exif.tobytes())


def _grid(face: np.ndarray, cols: int, rows: int) -> np.ndarray:
    return np.concatenate([np.concatenate([face] * cols, axis=1)] * rows, axis=0)


def make_inputs(folder: Path, max_pixels: int) -> dict[str, Path]:
    """Write every input of `EXPECT` into `folder`; returns {name: path}.
    `max_pixels` is the decoder's limit (`faceres.imageio.MAX_PIXELS`), for `over_limit.png`."""
    astronaut = skdata.astronaut()  # 512×512 RGB, one face
    photo = Image.fromarray(astronaut[:, 40:472])  # 432 wide: rotations change the shape
    gray = np.asarray(photo.convert("L"))
    face = astronaut[FACE_BOX[1] : FACE_BOX[3], FACE_BOX[0] : FACE_BOX[2]]
    jpeg = _encode(photo, "JPEG", quality=92)
    png = _encode(photo, "PNG")
    rgba = photo.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(photo.size).point(lambda v: 128 + v // 2))
    palette_t = photo.convert("P", palette=Image.Palette.ADAPTIVE, colors=255)
    frames = [photo, photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT), Image.new("RGB", photo.size)]
    rgb16 = io.BytesIO()
    Image.fromarray(gray.astype(np.uint16) * 257).save(rgb16, "PNG")  # I;16 gray, 16-bit PNG
    contents: dict[str, bytes] = {
        "empty.jpg": b"",
        "truncated.jpg": jpeg[: len(jpeg) // 2],
        "truncated.png": png[: len(png) // 2],
        "text.jpg": b"This is not a photo, only text saved with a .jpg name.\n" * 20,
        "one_pixel.png": _encode(Image.new("RGB", (1, 1), (200, 150, 120)), "PNG"),
        "bomb.png": png_claiming(BOMB_SIDE, BOMB_SIDE),
        "bomb.jpg": jpeg_claiming(BOMB_SIDE, BOMB_SIDE),
        "over_limit.png": png_over_limit(max_pixels),
        "astronaut.jpg": jpeg,
        "gray16.png": rgb16.getvalue(),
        "rgb16.png": _png16_rgb(np.asarray(photo)),
        "cmyk.jpg": _encode(photo.convert("CMYK"), "JPEG", quality=92),
        "palette.png": _encode(photo.convert("P", palette=Image.Palette.ADAPTIVE), "PNG"),
        "palette_transparent.png": _encode(palette_t, "PNG", transparency=0),
        "rgba.png": _encode(rgba, "PNG"),
        "animated.gif": _encode(
            frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0
        ),
        "grayscale.jpg": _encode(Image.fromarray(gray), "JPEG", quality=92),
        "exif_rotate90.jpg": _exif_rotated(photo, 6),
        "exif_rotate180.jpg": _exif_rotated(photo, 3),
        "exif_rotate270.jpg": _exif_rotated(photo, 8),
        "exif_broken.jpg": _encode(photo, "JPEG", quality=92, exif=BROKEN_EXIF),
        "coffee.jpg": _encode(Image.fromarray(skdata.coffee()), "JPEG", quality=92),
        "flat.png": _encode(Image.new("RGB", (320, 240), (127, 127, 127)), "PNG"),
        f"faces{GRID[0] * GRID[1]}.jpg": _encode(
            Image.fromarray(_grid(face, *GRID)), "JPEG", quality=92
        ),
        "face_cut_left.jpg": _encode(Image.fromarray(astronaut[:, 225:]), "JPEG", quality=92),
        "face_cut_top.jpg": _encode(Image.fromarray(astronaut[120:, :]), "JPEG", quality=92),
    }
    assert set(contents) == set(EXPECT)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, blob in contents.items():
        paths[name] = folder / name
        paths[name].write_bytes(blob)
    return paths


def _png16_rgb(rgb: np.ndarray) -> bytes:
    """A 48-bit (16 bits per channel) RGB PNG, which Pillow cannot write itself."""
    import cv2

    ok, buf = cv2.imencode(".png", rgb[:, :, ::-1].astype(np.uint16) * 257)
    assert ok
    return buf.tobytes()


def upright_size() -> tuple[int, int]:
    """(width, height) of the photo that every "face" input shows once decoded upright."""
    return 472 - 40, 512
