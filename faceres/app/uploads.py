"""What the public app may read: this page's own uploads, or inline data URIs.

Gradio copies any file a request names into its cache *before* a handler runs, so the check has
to come first: `UploadsOnly` is a `gr.Blocks` that admits a request only when every file it names
is an upload this server handed out and nobody has used yet, a photo this browser session
uploaded before (held in memory, `faceres.app.held`), or an inline `data:` URI within the size
limit, and only where a file input expects one. Anything else (a server path, `..`, a symlink,
another session's upload, a `file:` or `http(s):` URL, a FileData with a `url` but no upload, a
file reference hidden in a JSON input) gets the same one-line `REFUSED`, before Gradio opens,
copies or fetches anything. A photo upload is then read into the session's memory and deleted
from disk, and the handler gets its bytes (a `HeldPhoto`); after the request, the event's values are
dropped from the session state, so only the held photos stay, and only as long as
`faceres.app.held` allows.

>>> with UploadsOnly() as demo:
...     photo = gr.Image(type="filepath")
>>> admit([{"path": "/etc/hosts", "meta": {"_type": "gradio.FileData"}}], [photo], set())
Traceback (most recent call last):
UploadRefused: Photos are read only from this page's own uploads, held in memory for at most ...
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Collection, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from faceres.app.held import PhotoStore
from faceres.errors import ImageError
from faceres.imageio import MAX_FILE_BYTES, load_image

REFUSED = (
    "Photos are read only from this page's own uploads, held in memory for at most 15 idle "
    "minutes: upload the photo again (server files, links and other pages' uploads are refused)."
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
    refs = _listed(value)
    multiple = getattr(component, "file_count", "") == "multiple"
    if multiple and len(refs) > MAX_MULTIPLE_FILES:
        raise ImageError(f"At most {MAX_MULTIPLE_FILES} photos at a time ({len(refs)} given).")
    if len(refs) > (MAX_MULTIPLE_FILES if multiple else MAX_FILES):
        return None
    if not all(isinstance(ref, dict) for ref in refs):
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
    values: list[Any],
    components: list[Any],
    uploads: set[str],
    folder: str | Path | None = None,
    held: Collection[str] = (),
) -> list[str]:
    """Check a request's raw input `values` (one per input component) before Gradio reads any
    file; returns the upload paths it names, UploadRefused otherwise.

    A file may be named only as the whole value of a file input: an upload listed in `uploads`
    (see `is_own_upload`), a path in `held` (this session's held photos), or a `data:` URI of at
    most `MAX_DATA_URI` characters.
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
            elif ref.get("path") in held or is_own_upload(ref.get("path"), uploads, folder):
                paths.append(ref["path"])
            else:
                raise UploadRefused()
    return paths


_HELD: ContextVar[list[Any] | None] = ContextVar("faceres_held_inputs", default=None)
"""This request's input values with its photos inline (`hold_photos`), for `preprocess_data`."""


class UploadsOnly(gr.Blocks):
    """A `gr.Blocks` whose events read only this session's uploads (`admit`, before Gradio moves
    any file), hold photos in memory for the session (`photos`, a `PhotoStore`), and leave no
    input or output value in the session state."""

    def __init__(self, *args: Any, photos: PhotoStore | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.photos = photos or PhotoStore.from_settings()

    def drop_photos(self, request: gr.Request) -> None:
        """The page closed: forget its photos (bound to `demo.unload`)."""
        if request is not None and request.session_hash:
            self.photos.drop(request.session_hash)

    async def process_api(
        self,
        block_fn: Any,
        inputs: list[Any],
        state: Any = None,
        request: Any = None,
        *args: Any,
        explicit_call: bool = False,
        **kwargs: Any,
    ) -> dict:
        fn = self.fns[block_fn] if isinstance(block_fn, int) else block_fn
        token = None
        if not explicit_call:
            session = kwargs.get("session_hash") or getattr(request, "session_hash", None)
            try:
                held = hold_photos(inputs, fn.inputs, session, self.photos, self.upload_file_set)
            except ImageError as exc:
                raise gr.Error(str(exc), print_exception=False) from None
            token = _HELD.set(held)
            # Gradio itself sees no photo file: the handler gets them inline (`preprocess_data`)
            inputs = [None if is_photo_input(c) else v for v, c in zip(inputs, fn.inputs)]
        try:
            return await super().process_api(
                block_fn, inputs, state, request, *args, explicit_call=explicit_call, **kwargs
            )
        finally:
            if token is not None:
                _HELD.reset(token)
            values = getattr(state, "config_values", None)
            if isinstance(values, dict):
                for component in (*fn.inputs, *fn.outputs):
                    values.pop(component._id, None)

    async def preprocess_data(
        self, block_fn: Any, inputs: list[Any], state: Any, explicit_call: bool = False
    ) -> list[Any]:
        """Gradio's preprocessing, then each photo input's value as `hold_photos` made it."""
        processed = await super().preprocess_data(block_fn, inputs, state, explicit_call)
        held = _HELD.get()
        if held is None:
            return processed
        return [
            value if is_photo_input(component) else given
            for given, value, component in zip(processed, held, block_fn.inputs, strict=True)
        ]


def hold_photos(
    values: list[Any],
    components: list[Any],
    session: str | None,
    store: PhotoStore,
    uploads: set[str],
    folder: str | Path | None = None,
) -> list[Any]:
    """`admit` the request, then give each photo it names to the handler as a `HeldPhoto`: a new
    upload is read into `store` for `session` and deleted from disk at once, a photo this session
    sent before comes from `store`. A video's upload is only marked as used (its handler reads
    the file, then deletes it).

    >>> hold_photos([{"path": upload, "meta": FILE_META}], [photo], "s1", store, {upload})[0].data[:2]
    b'\\xff\\xd8'
    """  # noqa: E501
    folder = folder or gr.utils.get_upload_folder()
    held = store.keys(session) if session else set()
    used = admit(values, components, uploads, folder, held)
    fresh = uploads.intersection(used)  # on disk now (an upload again of held bytes, too)
    uploads.difference_update(used)
    photos = [is_photo_input(c) and any(file_references(v)) for v, c in zip(values, components)]
    paths = {
        ref["path"]
        for value, photo in zip(values, photos, strict=False)
        if photo
        for ref in _listed(value)
        if not _is_data_uri(ref)
    }
    data = {path: _photo_bytes(path, session, store, path in fresh) for path in sorted(paths)}
    out = []
    for value, photo in zip(values, photos, strict=False):
        if photo:
            refs = [ref if _is_data_uri(ref) else _inline(ref, data) for ref in _listed(value)]
            # (an inline data URI stays as it came: `take_photo` decodes it)
            value = refs if isinstance(value, list) else refs[0]
        out.append(value)
    return out


def is_photo_input(component: Any) -> bool:
    """Whether `component` takes photos, whose uploads are held for the session (a `gr.Image`,
    or a `gr.File` of images); a video is read from its file by its own request, then deleted."""
    if isinstance(component, gr.Image):
        return True
    return isinstance(component, gr.File) and list(component.file_types or []) == ["image"]


def _listed(value: Any) -> list[dict]:
    return value if isinstance(value, list) else [value]


def _photo_bytes(path: str, session: str | None, store: PhotoStore, fresh: bool) -> bytes:
    """A photo's bytes: a `fresh` upload read (then deleted, and held for `session`), else what
    `session` holds."""
    if fresh:
        try:
            data = Path(path).read_bytes()
        except OSError:
            raise UploadRefused() from None
        finally:
            forget_upload(path)
        if session:
            store.hold(session, path, data)
        return data
    data = store.get(session, path) if session else None
    if data is None:  # dropped since `admit`
        raise UploadRefused()
    return data


@dataclass(frozen=True)
class HeldPhoto:
    """A photo as a handler gets it from the app: the bytes of this page's upload (read from
    disk once, or held in memory since) and the file's name."""

    data: bytes
    orig_name: str | None = None


def _inline(ref: dict, data: dict[str, bytes]) -> HeldPhoto:
    name = ref.get("orig_name")
    return HeldPhoto(data[ref["path"]], name if isinstance(name, str) else None)


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
    if isinstance(value, HeldPhoto):
        return load_image(value.data)
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
