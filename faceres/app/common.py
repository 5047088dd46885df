"""What every tab shares: errors shown in the UI, the registry's model choices, timing text, and
the photo input.

>>> model_choices("identity")
['dlib-resnet29-face']
"""

from __future__ import annotations

import functools
import json

import gradio as gr

from faceres import registry
from faceres.detect import BACKENDS, DETECTORS, backend
from faceres.errors import FaceresError
from faceres.study.lesion import deletable_blocks


def user_errors(fn):
    """Turn a `FaceresError` (bad input, missing model) into a visible `gr.Error`, no traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except FaceresError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        except MemoryError:
            raise gr.Error("Out of memory: try a smaller photo.", print_exception=False) from None

    return wrapper


def ms_text(timings: dict[str, float]) -> str:
    """Stage timings as "decode 2 ms · detect 10 ms · ..."."""
    return " · ".join(f"{k} {v:.0f} ms" for k, v in timings.items())


def model_choices(task: str) -> list[str]:
    """Names of the registry's models for `task`, the default one first."""
    entries = registry.list_models(task)
    return [e["name"] for e in sorted(entries, key=lambda e: not e.get("default"))]


def missing_models(what: str, feature: str) -> str:
    """What a tab says instead of inputs when its models are not in the registry."""
    return (
        f"**{what} is in the registry yet**, so {feature} is not available here. "
        "Add one (see the README, 'Models'), then restart the app."
    )


def photo_input(label: str, elem_id: str) -> gr.Image:
    """A photo input (upload, webcam or clipboard) whose value is the upload's FileData."""
    return gr.Image(
        label=label,
        type="filepath",
        image_mode=None,
        height=320,
        sources=["upload", "webcam", "clipboard"],
        elem_id=elem_id,
    )


def block_choices(model: str) -> list[tuple[str, int]]:
    """(label, position) of every deletable block of registry model `model`
    (`faceres.study.lesion.deletable_blocks`), numbered from 1: the block pickers' choices.

    >>> block_choices("resnet18-fer")[0]
    ('block 1 (layer1.0)', 0)
    """
    names = deletable_blocks(registry.load(model).model)
    return [(f"block {k} ({name})", k - 1) for k, name in enumerate(names, start=1)]


def detector_input(elem_id: str | None = None) -> gr.Dropdown:
    """The face detector picker: every name of `faceres.detect.DETECTORS`, "auto" first."""
    return gr.Dropdown(
        list(DETECTORS),
        elem_id=elem_id,
        value="auto",
        label="Face detector",
        info="auto: YuNet when its model file is here, else dlib's detector",
    )


def fallback_note(requested: str | None, used: str) -> str:
    """What the app says when "auto" could not run the preferred detector, naming the one that
    ran and its limits; "" otherwise.

    >>> fallback_note("auto", "dlib")   # YuNet's model file is not on this server
    'yunet is not available on this server, so the dlib detector ran: it misses faces ...'
    """
    preferred = next(iter(BACKENDS))
    if (requested or "auto") != "auto" or used == preferred or used not in BACKENDS:
        return ""
    return (
        f"{preferred} is not available on this server, so the {used} detector ran: it "
        f"{backend(used).LIMITS}."
    )


RESEND_JS = """
(...values) => {
  const sent = (window.faceresSent ??= new Set());
  const ids = %s;
  return values.map((value, i) => {
    if (!ids[i] || !value || typeof value.path !== "string") return value;
    if (!sent.has(value.path)) { sent.add(value.path); return value; }
    const img = document.querySelector(`#${ids[i]} img`);
    if (!img || !img.complete || !img.naturalWidth) return value;
    const canvas = document.createElement("canvas");
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    canvas.getContext("2d").drawImage(img, 0, 0);
    return {...value, path: null, url: canvas.toDataURL("image/png")};
  });
}
"""


def resend_photos_js(inputs: list) -> str:
    """Browser code run before an event: a photo input whose upload was already used (the server
    deleted it) is sent again from the picture the browser still shows, as an inline PNG data URI,
    so another model or detector runs without a new upload and the server keeps no photo.

    >>> "verify-photo1" in resend_photos_js([photo1, photo2, model])
    True
    """
    ids = [c.elem_id if isinstance(c, gr.Image) and c.elem_id else None for c in inputs]
    return RESEND_JS % json.dumps(ids)
