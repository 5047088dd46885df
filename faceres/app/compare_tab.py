"""The ResNet vs plain tab: one face through a ResNet and its plain twin, and the depth study.

>>> compare_models(upload)[-1]["resnet"]["model"]
'resnet18-fer'
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import gradio as gr
import numpy as np
import pandas as pd

from faceres import registry
from faceres.app.blocks import expression_probabilities
from faceres.app.common import (
    announce_first_use,
    block_choices,
    clear_then_run,
    detector_input,
    missing_models,
    model_choices,
    ms_text,
    photo_input,
    user_errors,
    wired,
)
from faceres.app.render import figures_html, on_plot_thread, plots_html
from faceres.app.studies import (
    depth_figures,
    lesion_figures,
    load_study,
    study_file,
    training_curves,
)
from faceres.app.uploads import take_photo
from faceres.detect import fallback_note
from faceres.errors import FaceresError, ModelError
from faceres.expression import analyze_expression, class_names
from faceres.identity.explain import explain_expression
from faceres.models.blocks import block_names

EXPLANATION = """
**What the evidence is about.** He et al. (2015) found that deeper *plain* networks, even *with*
BatchNorm, reach a **higher training error** than shallower ones: the *degradation problem*. It is
an optimisation difficulty: not overfitting (the training error itself is worse), and not vanishing
gradients (BatchNorm keeps gradient norms healthy). Residual networks of the same depths did not
degrade there: the deeper ResNet reached the lower training error.

**Without BatchNorm** it is a different effect: a deep plain network's gradient norms shrink or
grow geometrically with depth at initialisation (vanishing or exploding gradients).

The study below repeats both experiments on FER2013, one identical recipe per pair. Its table and
plots, read from the study's files and the registry, show what this run found: the training-error
curves per depth (degradation) and the gradient norm per layer (the no-BatchNorm pair).
"""


_PLOT_LOCK = threading.Lock()
"""Pages loading at once draw the study plots once."""
_DRAWN: dict[str, str] = {}
"""The studies' plots as inline HTML, by the key of the results they show (drawn once per
process: a page load only sends them)."""


def _drawn(key: str, draw: Callable[[], dict], alt: str) -> str:
    """The plots `draw` makes, as inline HTML, drawn the first time `key` (the results' hash) is
    asked for."""
    with _PLOT_LOCK:
        if key not in _DRAWN:
            _DRAWN[key] = on_plot_thread(lambda: plots_html(draw(), alt))
        return _DRAWN[key]


def twin_pairs() -> list[tuple[str, str]]:
    """(residual, plain) expression model pairs from the registry, the default model's first."""
    entries = {e["name"]: e for e in registry.list_models()}
    return [
        (name, entries[name]["twin"])
        for name in model_choices("expression")
        if entries[name].get("twin") in entries
        and registry.model_config(name)["faceres"].get("residual")
    ]


def _run_one(
    image: np.ndarray, model: str, detector: str | None
) -> tuple[gr.Label, str, dict, np.ndarray]:
    start = time.perf_counter()
    r = analyze_expression(image, model=model, detector=detector)
    total_ms = 1000 * (time.perf_counter() - start)
    if not r.faces:
        raise FaceresError("No face found in the photo; try a larger, frontal face.")
    cam = explain_expression(r).faces[0]
    face = r.faces[0]
    probs = dict(face.probabilities)
    text = (
        f"**{face.label}** ({probs[face.label]:.0%}) · `{r.model}` · "
        f"{total_ms:.0f} ms in all ({ms_text(r.timings)})"
    )
    note = fallback_note(detector, r.detector)
    if note:
        text += f"\n\n{note}"
    detail = {
        "model": r.model,
        "label": face.label,
        "latency_ms": round(total_ms, 1),
        "probabilities": {k: round(float(p), 4) for k, p in probs.items()},
    }
    return gr.Label(value=probs, label=f"{r.model}: {face.label}"), text, detail, cam.overlay()


def _without_block(
    image: np.ndarray, name: str, block: Any, detector: str | None
) -> tuple[str, dict]:
    """Model `name` on the photo's largest face, whole and without deletable block `block`: a
    table row (HTML) and its details."""
    r = analyze_expression(image, model=name, detector=detector)
    if not r.faces:
        raise FaceresError("No face found in the photo; try a larger, frontal face.")
    labels = class_names(registry.model_config(name))
    try:
        block_name = block_names(registry.load(name).model, [int(block or 0)])[0]
    except (ModelError, ValueError, IndexError, TypeError) as exc:
        raise FaceresError(f"{name} has no such block: {exc}") from None
    crop = r.faces[0].crop[None]
    whole = expression_probabilities(name, crop)[0]
    cut = expression_probabilities(name, crop, [block_name])[0]
    a, b = int(whole.argmax()), int(cut.argmax())
    row = (
        f"<tr><td><code>{name}</code></td><td>{block_name}</td>"
        f"<td>{labels[a]} {whole[a]:.0%}</td><td>{labels[b]} {cut[b]:.0%}</td>"
        f"<td>{np.abs(whole - cut).sum() / 2:.2f}</td></tr>"
    )
    detail = {
        "model": name,
        "block": block_name,
        "whole": {"label": labels[a], "probabilities": dict(zip(labels, whole.round(4).tolist()))},
        "removed": {"label": labels[b], "probabilities": dict(zip(labels, cut.round(4).tolist()))},
    }
    return row, detail


class Compared(NamedTuple):
    """`compare_models`' outputs: each network's probabilities and summary, the maps (where each
    looked for the class it chose, Grad-CAM, side by side) and the details."""

    res_label: gr.Label | None
    res_text: str
    plain_label: gr.Label | None
    plain_text: str
    maps: str
    details: dict | None


class Removed(NamedTuple):
    """`remove_block`'s outputs: the table and its details."""

    lesion: str
    lesion_details: dict | None


def clear_comparison() -> Compared:
    """The comparison emptied (before each run)."""
    return Compared(None, "", None, "", "", None)


def clear_photo() -> tuple:
    """A new photo: `clear_comparison` and `clear_removal`, every result of the old photo."""
    return *clear_comparison(), *clear_removal()


def clear_removal() -> Removed:
    """The block removal's results emptied."""
    return Removed("", None)


@user_errors
def compare_models(
    photo: Any, resnet: str | None = None, plain: str | None = None, detector: str | None = None
) -> Compared:
    """ResNet vs plain tab: the largest face (found by `detector`, default auto) through a ResNet
    and its plain twin."""
    if not resnet or not plain:
        pairs = twin_pairs()
        if not pairs:
            raise FaceresError("No ResNet / plain twin pair is in the registry yet.")
        resnet = resnet or pairs[0][0]
        plain = plain or registry.get_entry(resnet).get("twin") or pairs[0][1]
    image = take_photo(photo)
    for name in (resnet, plain):
        announce_first_use("expression", name)
    res_label, res_text, res_detail, res_map = _run_one(image, resnet, detector or None)
    plain_label, plain_text, plain_detail, plain_map = _run_one(image, plain, detector or None)
    maps = "<b>Where each looked</b> (Grad-CAM of the class it chose; red: most)<br>" + (
        figures_html(
            [res_map, plain_map],
            [f"{d['model']}: {d['label']}" for d in (res_detail, plain_detail)],
        )
    )
    details = {"resnet": res_detail, "plain": plain_detail}
    return Compared(res_label, res_text, plain_label, plain_text, maps, details)


def block_picker(resnet: str) -> gr.Dropdown:
    """The block dropdown for `resnet` (its plain twin has its blocks in the same places)."""
    choices = block_choices(resnet)
    return gr.Dropdown(choices=choices, value=choices[0][1] if choices else None)


@user_errors
def remove_block(
    photo: Any,
    resnet: str | None = None,
    plain: str | None = None,
    block: int | None = 0,
    detector: str | None = None,
) -> Removed:
    """ResNet vs plain tab, "remove a block": the largest face through the ResNet and its plain
    twin, whole and with deletable block number `block` (from 0) removed at test time (Veit et
    al. 2016; `faceres.models.blocks`): `Removed`."""
    if not resnet or not plain:
        pairs = twin_pairs()
        if not pairs:
            raise FaceresError("No ResNet / plain twin pair is in the registry yet.")
        resnet, plain = resnet or pairs[0][0], plain or pairs[0][1]
    image = take_photo(photo)
    start = time.perf_counter()
    rows, details = [], {"block": block, "models": []}
    for name in (resnet, plain):
        row, detail = _without_block(image, name, block, detector or None)
        rows.append(row)
        details["models"].append(detail)
    details["ms"] = round(1000 * (time.perf_counter() - start), 1)
    html = (
        "<table><tr><th>model</th><th>block removed</th><th>whole network</th>"
        "<th>without the block</th><th>probability moved</th></tr>"
        + "".join(rows)
        + f"</table><div style='color:#777'>{details['ms']:.0f} ms</div>"
    )
    return Removed(html, details)


def committed_study(name: str) -> tuple[str, list[str], Callable[[], str] | None, str]:
    """(table Markdown, findings, plots, note) of study `name` as committed in the registry
    (`faceres.app.studies.load_study`); only a note when absent or unreadable. `plots` gives the
    plots as inline HTML (drawn once per process and version of the study)."""
    try:
        study = load_study(name)
        report = study["report"]
    except FaceresError as exc:
        return "", [], None, f"The {name} study is not available here: {exc}"
    except (OSError, KeyError, ValueError) as exc:
        return "", [], None, f"The {name} study could not be read: {exc}"
    key = hashlib.sha256(study_file(name).read_bytes()).hexdigest()[:12]
    draw = depth_figures if name == "depth" else lesion_figures

    def plots() -> str:
        return _drawn(f"{name}-{key}", lambda: draw(study), f"{name} study")

    return report["table"], report["findings"], plots, ""


def plain_twin(resnet: str) -> gr.Dropdown:
    """The plain dropdown set to `resnet`'s twin from the registry."""
    return gr.Dropdown(value=registry.get_entry(resnet).get("twin"))


def build() -> None:
    """The tab's inputs, outputs and events (inside a `gr.Tab`)."""
    pairs = twin_pairs()
    if pairs:
        _comparison(pairs)
    else:
        gr.Markdown(missing_models("No expression ResNet with its plain twin", "the comparison"))
    gr.Markdown(EXPLANATION)
    _depth_study()
    _lesion_study()


def _comparison(pairs: list[tuple[str, str]]) -> None:
    """One face through a chosen ResNet and its plain twin, and the block removal below."""
    gr.Markdown(
        "One face through a ResNet and its plain twin: the same network, the same "
        "training recipe, only the identity shortcuts removed."
    )
    with gr.Row():
        photo = photo_input("Face photo", "compare-photo")
        with gr.Column():
            resnet = gr.Dropdown([p[0] for p in pairs], value=pairs[0][0], label="ResNet")
            plains = sorted({p[1] for p in pairs})
            plain = gr.Dropdown(plains, value=pairs[0][1], label="Plain twin")
            detector = detector_input()
            button = gr.Button("Compare", variant="primary", elem_id="compare-run")
    with gr.Row():
        with gr.Column():
            res_label = gr.Label(label="ResNet")
            res_text = gr.Markdown(elem_id="compare-resnet-text")
        with gr.Column():
            plain_label = gr.Label(label="Plain")
            plain_text = gr.Markdown()
    maps = gr.HTML(elem_id="compare-maps")
    with gr.Accordion("Details", open=False):
        details = gr.JSON()
    removal = _removal(photo, resnet, plain, detector, pairs[0][0])
    named = {
        "res_label": res_label,
        "res_text": res_text,
        "plain_label": plain_label,
        "plain_text": plain_text,
        "maps": maps,
        "details": details,
    }
    outputs = wired(Compared, named)
    photo.change(clear_photo, None, [*outputs, *removal], api_visibility="private")
    resnet.change(plain_twin, resnet, plain, api_name="plain_twin")
    clear_then_run(
        button.click,
        clear_comparison,
        compare_models,
        [photo, resnet, plain, detector],
        outputs,
        api_name="compare",
        main=res_text,
    )


def _removal(
    photo: gr.Image,
    resnet: gr.Dropdown,
    plain: gr.Dropdown,
    detector: gr.Dropdown,
    first_resnet: str,
) -> list:
    """The block removal's inputs, outputs and events; returns its outputs (a new photo clears
    them too)."""
    gr.Markdown(
        "**Remove a block** (Veit et al. 2016): the same face through both networks with "
        "one block deleted at test time. A residual block's output becomes its shortcut; a "
        "plain block becomes the identity."
    )
    with gr.Row(equal_height=True):
        first = block_choices(first_resnet)
        block = gr.Dropdown(
            first, value=first[0][1] if first else None, label="Block", elem_id="lesion-block"
        )
        remove = gr.Button("Remove and compare", elem_id="lesion-run")
    lesion = gr.HTML(elem_id="lesion-result")
    with gr.Accordion("Block removal details", open=False):
        lesion_details = gr.JSON()
    removal = wired(Removed, {"lesion": lesion, "lesion_details": lesion_details})
    clear_then_run(
        remove.click,
        clear_removal,
        remove_block,
        [photo, resnet, plain, block, detector],
        removal,
        api_name="remove_block",
        main=lesion,
    )
    resnet.change(block_picker, resnet, block, api_name="block_picker")
    return removal


def _depth_study() -> None:
    """The depth study's training-error curves, findings, table and plots (or why absent)."""
    table, findings, plots, note = committed_study("depth")
    if note:
        gr.Markdown(note)
        return
    study = load_study("depth")
    gr.Markdown("### The depth study: training error first")
    gr.Markdown(f"*Protocol*: {study['protocol']}", elem_id="depth-protocol")
    gr.LinePlot(
        pd.DataFrame(training_curves(study)),
        x="epoch",
        y="training error (%)",
        color="model",
        title="Training error per epoch (augmented, running): hover to read, click a legend "
        "entry to hide a model",
        height=360,
    )
    study_results(table, findings, plots, "Depth study plots", "depth")


def _lesion_study() -> None:
    """The lesion study's findings, table and plots (or why absent)."""
    table, findings, plots, note = committed_study("lesion")
    gr.Markdown("### The lesion study: delete a block of a trained network")
    if note:
        gr.Markdown(note)
        return
    study_results(table, findings, plots, "Lesion study plots", "lesion")


def study_results(
    table: str, findings: list[str], plots: Callable[[], str], label: str, name: str
) -> None:
    """A study's findings (computed from its table), the table, and its plots: inline pictures
    sent when a page loads (drawn the first time), not at start-up."""
    gr.Markdown(
        "**What this run shows** (computed from the table):\n\n"
        + "\n".join(f"- {line}" for line in findings)
    )
    gr.Markdown(table)
    gr.Markdown(f"**{label}**")
    shown = gr.HTML(elem_id=f"{name}-plots")
    gr.on(None, plots, None, shown, api_name=f"{name}_plots", api_visibility="private")
