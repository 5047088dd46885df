"""What the public app may read: the files uploaded for this request, or inline data URIs.

Gradio copies any file a request names into its cache *before* a handler runs, so the check has
to come first: `UploadsOnly` is a `gr.Blocks` that admits a request only when every file it names
is an upload this server handed out and nobody has used yet (or an inline `data:` URI within the
size limit), and only where a file input expects one. Anything else (a server path, `..`, a
symlink, another request's upload, a `file:` or `http(s):` URL, a FileData with a `url` but no
upload, a file reference hidden in a JSON input) gets the same one-line `REFUSED`, before Gradio
opens, copies or fetches anything. After the request, the event's values are dropped from the
session, so no photo or preview stays in the server's memory.

>>> with UploadsOnly() as demo:
...     photo = gr.Image(type="filepath")
>>> admit([{"path": "/etc/hosts", "meta": {"_type": "gradio.FileData"}}], [photo], set())
Traceback (most recent call last):
UploadRefused: Photos are read only from this request's own uploads, and not kept: ...
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from faceres.errors import ImageError
from faceres.imageio import MAX_FILE_BYTES, load_image

REFUSED = (
    "Photos are read only from this request's own uploads, and not kept: upload the photo "
    "again (server files, links and earlier uploads are refused)."
)
MAX_FILES = 1
"""Files one single-file input may name (one photo)."""
MAX_MULTIPLE_FILES = 30
"""Files one multiple-file input (`file_count="multiple"`, the Find tab's photos) may name."""
MAX_DATA_URI = 4 * (MAX_FILE_BYTES // 3 + 1) + 64
"""Longest inline `data:` URI accepted: a base64 image of `MAX_FILE_BYTES`, plus its header."""
FILE_INPUTS = (gr.Image, gr.File, gr.Video, gr.Audio)
EXPIRED = (
    "Photos are not kept after a request: upload the photo again to run it again "
    "(with another model, for instance)."
)


class UploadRefused(ImageError):
    """A request named a file that is not one of its own uploads."""

    def __init__(self) -> None:
        super().__init__(REFUSED)


def file_references(value: Any) -> Iterator[dict]:
    """Every dict inside `value` that Gradio or a handler could take for a file: a FileData
    (`meta._type`), or anything with a `path` or `url` key.

    >>> list(file_references({"a": [{"path": "/x"}], "b": 1}))
    [{'path': '/x'}]
    """
    if isinstance(value, dict):
        meta = value.get("meta")
        if (
            "path" in value
            or "url" in value
            or (isinstance(meta, dict) and meta.get("_type") == "gradio.FileData")
        ):
            yield value
            return
        for item in value.values():
            yield from file_references(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from file_references(item)


def _is_data_uri(ref: dict) -> bool:
    url = ref.get("url")
    return ref.get("path") is None and isinstance(url, str) and url.startswith("data:")


def _top_level_files(value: Any, component: Any) -> list[dict] | None:
    """The file references `value` may hold as the value of `component`, or None when it may
    hold none there (nested in JSON, or more than the input takes: `MAX_FILES`, or
    `MAX_MULTIPLE_FILES` for a multiple-file input)."""
    if not isinstance(component, FILE_INPUTS):
        return None
    refs = value if isinstance(value, list) else [value]
    limit = MAX_MULTIPLE_FILES if getattr(component, "file_count", "") == "multiple" else MAX_FILES
    if len(refs) > limit or not all(isinstance(ref, dict) for ref in refs):
        return None
    return refs


def is_own_upload(path: Any, uploads: set[str], folder: str | Path) -> bool:
    """Whether `path` is, character for character, a file this server received as an upload and
    nobody has used yet: listed in `uploads`, a regular file, no symlink, inside `folder`."""
    if not isinstance(path, str) or path not in uploads:
        return False
    real, root = os.path.realpath(path), os.path.realpath(folder)
    return (
        real == os.path.abspath(path)
        and os.path.commonpath([real, root]) == root
        and not os.path.islink(path)
        and os.path.isfile(path)
    )


def admit(
    values: list[Any], components: list[Any], uploads: set[str], folder: str | Path | None = None
) -> list[str]:
    """Check a request's raw input `values` (one per input component) before Gradio reads any
    file; returns the upload paths it names, UploadRefused otherwise.

    A file may be named only as the whole value of a file input: an upload listed in `uploads`
    (see `is_own_upload`), or a `data:` URI of at most `MAX_DATA_URI` characters.
    """
    folder = folder or gr.utils.get_upload_folder()
    paths = []
    for value, component in zip(values, components, strict=False):
        refs = list(file_references(value))
        if not refs:
            continue
        allowed = _top_level_files(value, component)
        if allowed is None or len(allowed) != len(refs):
            raise UploadRefused()
        for ref in refs:
            if _is_data_uri(ref):
                if len(ref["url"]) > MAX_DATA_URI:
                    raise ImageError(
                        f"The inline image is too large (> {MAX_FILE_BYTES // 2**20} "
                        "MB); upload a smaller photo."
                    )
            elif is_own_upload(ref.get("path"), uploads, folder):
                paths.append(ref["path"])
            else:
                raise UploadRefused()
    return paths


class UploadsOnly(gr.Blocks):
    """A `gr.Blocks` whose events read only their own uploads (`admit`, before Gradio moves any
    file), use each upload once, and leave no input or output value in the session."""

    async def process_api(
        self,
        block_fn: Any,
        inputs: list[Any],
        state: Any = None,
        *args: Any,
        explicit_call: bool = False,
        **kwargs: Any,
    ) -> dict:
        fn = self.fns[block_fn] if isinstance(block_fn, int) else block_fn
        if not explicit_call:
            try:
                used = admit(inputs, fn.inputs, self.upload_file_set)
            except ImageError as exc:
                raise gr.Error(str(exc), print_exception=False) from None
            self.upload_file_set.difference_update(used)
        try:
            return await super().process_api(
                block_fn, inputs, state, *args, explicit_call=explicit_call, **kwargs
            )
        finally:
            values = getattr(state, "config_values", None)
            if isinstance(values, dict):
                for component in (*fn.inputs, *fn.outputs):
                    values.pop(component._id, None)


# -- reading what was admitted --------------------------------------------------------------------


def decode_data_uri(url: str) -> np.ndarray:
    """An inline `data:<type>;base64,...` image decoded in memory, with the upload limits.

    >>> decode_data_uri("data:image/png;base64," + base64.b64encode(png).decode()).shape
    (64, 64, 3)
    """
    if len(url) > MAX_DATA_URI:
        raise ImageError(
            f"The inline image is too large (> {MAX_FILE_BYTES // 2**20} MB); "
            "upload a smaller photo."
        )
    try:
        data = base64.b64decode(url.partition(",")[2], validate=True)
    except (ValueError, binascii.Error) as exc:
        raise ImageError("The uploaded image data is not valid base64.") from exc
    return load_image(data)


def take_photo(value: Any, expired: str = EXPIRED) -> np.ndarray:
    """Decode a photo from Gradio (a FileData dict naming an upload, or an inline data URI), or
    from Python (a path, bytes or an array).

    A file in Gradio's upload folder is deleted once read, whether or not it decodes, so a second
    request naming the same upload gets the `expired` message.

    >>> take_photo({"path": upload_path}).shape
    (512, 512, 3)
    """
    if value is None:
        raise ImageError("Upload a photo first.")
    if isinstance(value, dict):
        if _is_data_uri(value):
            return decode_data_uri(value["url"])
        path = value.get("path")
        if not isinstance(path, str):
            raise UploadRefused()
        if not in_upload_folder(path):  # a client may name any path: read uploads only
            raise UploadRefused()
    elif isinstance(value, (str, Path)):
        path = value
    else:
        return load_image(value)
    if not Path(path).exists() and in_upload_folder(path):
        raise ImageError(expired)
    try:
        return load_image(path)
    finally:
        forget_upload(path)


def take_photos(values: list[Any], expired: str = EXPIRED) -> list[np.ndarray]:
    """`take_photo` for each value; an upload named twice (Gradio stores one file at one path) is
    decoded once, and every upload is deleted even when an earlier one fails."""
    paths = [
        str(v) if isinstance(v, (str, Path)) else None
        for v in (value.get("path") if isinstance(value, dict) else value for value in values)
    ]
    taken: dict[str, np.ndarray] = {}  # within this call only
    try:
        photos = []
        for value, path in zip(values, paths, strict=True):
            if path is None:
                photos.append(take_photo(value, expired))
                continue
            if path not in taken:
                taken[path] = take_photo(value, expired)
            photos.append(taken[path])
        return photos
    finally:
        for path in paths:
            if path is not None:
                forget_upload(path)


def in_upload_folder(path: str | Path) -> bool:
    """Whether `path`, symlinks resolved, lies inside Gradio's upload folder."""
    root = Path(gr.utils.get_upload_folder()).resolve()
    return Path(path).resolve().is_relative_to(root)


def forget_upload(path: str | Path) -> None:
    """Delete an uploaded file and its (then empty) folder; files outside Gradio's are kept."""
    if not in_upload_folder(path) or Path(path).is_symlink():
        return
    file = Path(path).resolve()
    file.unlink(missing_ok=True)
    root = Path(gr.utils.get_upload_folder()).resolve()
    if file.parent != root:
        try:
            file.parent.rmdir()
        except OSError:  # not empty: another upload shares the folder
            pass
