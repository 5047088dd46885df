"""What every tab shares: errors shown in the UI, the registry's model choices, timing text, and
the photo input.

>>> model_choices("identity")
['dlib-resnet29-face']
"""

from __future__ import annotations

import functools
import html
from typing import Any

import gradio as gr

from faceres import registry
from faceres.detect import DETECTORS
from faceres.errors import FaceresError
from faceres.models.blocks import deletable_blocks
from faceres.registry.runtime import first_use


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


def announce_first_use(task: str, model: str | None) -> None:
    """A notice (toast) when this run first prepares `model` on this server: its ONNX export
    takes seconds, once, and the answer would otherwise seem slow for no reason."""
    try:
        needed = first_use(task, model or None)
    except FaceresError:  # an unknown model: the run itself says so
        return
    if needed:
        name = registry.task_model(task, model or None)
        gr.Info(f"Preparing {name} for its first use on this server (a few seconds, once).")


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
        "Add one (see docs/models.md), then restart the app."
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
    (`faceres.models.blocks.deletable_blocks`), numbered from 1: the block pickers' choices.

    >>> block_choices("resnet18-fer")[0]
    ('block 1 (layer1.0)', 0)
    """
    if registry.get_entry(model)["architecture"] == registry.FUSION:
        return []  # no network of its own
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


ERROR_JS = """
(shown) => {
  const toasts = document.querySelectorAll('[data-testid="toast-text"].error');
  return toasts.length ? toasts[toasts.length - 1].innerText : "";
}
"""
"""Browser code run when an event fails: the message Gradio just showed in its toast."""


def notes_html(lines: list[str]) -> str:
    """Notes beside an answer (a detector fallback, a skipped photo) as HTML lines, empty ones
    left out."""
    return "".join(
        f'<div style="color:#b9770e">{html.escape(line)}</div>' for line in lines if line
    )


def error_html(message: str | None) -> str:
    """A failed run's message as it stays in the tab's result area (escaped).

    >>> error_html("No face found in image 2.")
    '<div class="faceres-error" ...>No face found in image 2.</div>'
    """
    text = (message or "").strip() or "Something went wrong on the server: try again."
    return (
        '<div class="faceres-error" role="alert" style="border-left:4px solid #c0392b;'
        'padding:6px 10px;background:#fdecea;color:#7b241c">'
        f"{html.escape(text)}</div>"
    )


def keep_errors(event, outputs: list, main) -> None:
    """When `event` fails, its message stays readable in `main` (one of its `outputs`: the tab's
    result area), and the other outputs keep what the clear before the run left, without
    Gradio's bare "Error" badges (the toast still shows the message too)."""
    where = outputs.index(main)

    def failed(message: str | None) -> Any:
        values = [gr.skip()] * len(outputs)
        values[where] = error_html(message)
        return values[0] if len(values) == 1 else tuple(values)

    event.failure(failed, [main], outputs, js=ERROR_JS, api_visibility="private")


def wired(kind: type, components: dict[str, Any]) -> list:
    """The output components of a handler's named outputs `kind` (a NamedTuple), in its field
    order, from `components` by name: a handler's outputs are wired by name, never by position.

    >>> wired(Found, {"details": details, "shown": shown})
    [shown, details]
    """
    return [components[name] for name in kind._fields]


def clear_then_run(
    trigger: Any,
    clear: Any,
    fn: Any,
    inputs: list,
    outputs: list,
    *,
    api_name: str,
    main: Any,
    cleared: list | None = None,
) -> None:
    """The one way a tab runs a handler: `trigger` (a button's `click`) first empties
    `cleared` (default `outputs`) with `clear`, so no earlier answer stays on screen; then `fn`
    fills `outputs` (its API endpoint `api_name`, raw inputs); a failure leaves its message in
    `main` (`keep_errors`)."""
    run = trigger(clear, None, cleared or outputs, api_visibility="private").then(
        fn, inputs, outputs, api_name=api_name, preprocess=False
    )
    keep_errors(run, outputs, main)
