"""The ResNet vs plain tab: one face through a ResNet and its plain twin, and the depth study.

>>> compare_models(upload)[-1]["resnet"]["model"]
'resnet18-fer'
"""

from __future__ import annotations

import time
from typing import Any

import gradio as gr
import numpy as np
import pandas as pd

from faceres import registry
from faceres.app.common import (
    detector_input,
    missing_models,
    model_choices,
    ms_text,
    photo_input,
    resend_photos_js,
    user_errors,
)
from faceres.app.render import figures_html
from faceres.app.uploads import take_photo
from faceres.errors import FaceresError
from faceres.explain import explain_expression
from faceres.expression import analyze_expression
from faceres.study.depth import depth_report, format_table, load_report, training_curves

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
    detail = {
        "model": r.model,
        "label": face.label,
        "latency_ms": round(total_ms, 1),
        "probabilities": {k: round(float(p), 4) for k, p in probs.items()},
    }
    return gr.Label(value=probs, label=f"{r.model}: {face.label}"), text, detail, cam.overlay()


@user_errors
def compare_models(
    photo: Any, resnet: str | None = None, plain: str | None = None, detector: str | None = None
) -> tuple:
    """ResNet vs plain tab: the largest face (found by `detector`, default auto) through a ResNet
    and its plain twin.

    Returns (ResNet label, ResNet summary, plain label, plain summary, maps HTML: where each
    looked for the class it chose (Grad-CAM), side by side, details dict).
    """
    if not resnet or not plain:
        pairs = twin_pairs()
        if not pairs:
            raise FaceresError("No ResNet / plain twin pair is in the registry yet.")
        resnet = resnet or pairs[0][0]
        plain = plain or registry.get_entry(resnet).get("twin") or pairs[0][1]
    image = take_photo(photo)
    res_label, res_text, res_detail, res_map = _run_one(image, resnet, detector or None)
    plain_label, plain_text, plain_detail, plain_map = _run_one(image, plain, detector or None)
    maps = "<b>Where each looked</b> (Grad-CAM of the class it chose; red: most)<br>" + (
        figures_html(
            [res_map, plain_map],
            [f"{d['model']}: {d['label']}" for d in (res_detail, plain_detail)],
        )
    )
    return (
        res_label,
        res_text,
        plain_label,
        plain_text,
        maps,
        {"resnet": res_detail, "plain": plain_detail},
    )


def plain_twin(resnet: str) -> gr.Dropdown:
    """The plain dropdown set to `resnet`'s twin from the registry."""
    return gr.Dropdown(value=registry.get_entry(resnet).get("twin"))


def study_report() -> tuple[str, list[str], list[str], str]:
    """(table Markdown, findings, plot paths, note) of the depth study; only a note when absent."""
    try:
        report = load_report()
    except FaceresError as exc:
        return "", [], [], f"The depth study is not available yet: {exc} (`faceres study depth`)."
    except (OSError, KeyError, ValueError) as exc:
        return "", [], [], f"The depth study could not be read: {exc}"
    return format_table(report["table"]), report["findings"], report["plots"], ""


def build() -> None:
    """The tab's inputs, outputs and events (inside a `gr.Tab`)."""
    pairs = twin_pairs()
    if not pairs:
        gr.Markdown(missing_models("No expression ResNet with its plain twin", "the comparison"))
    else:
        residual = [p[0] for p in pairs]
        plains = sorted({p[1] for p in pairs})
        gr.Markdown(
            "One face through a ResNet and its plain twin: the same network, the same "
            "training recipe, only the identity shortcuts removed."
        )
        with gr.Row():
            photo = photo_input("Face photo", "compare-photo")
            with gr.Column():
                resnet = gr.Dropdown(residual, value=pairs[0][0], label="ResNet")
                plain = gr.Dropdown(plains, value=pairs[0][1], label="Plain twin")
                detector = detector_input()
                button = gr.Button("Compare", variant="primary")
        with gr.Row():
            with gr.Column():
                res_label = gr.Label(label="ResNet")
                res_text = gr.Markdown()
            with gr.Column():
                plain_label = gr.Label(label="Plain")
                plain_text = gr.Markdown()
        maps = gr.HTML(elem_id="compare-maps")
        with gr.Accordion("Details", open=False):
            details = gr.JSON()
        resnet.change(plain_twin, resnet, plain, api_name="plain_twin")
        button.click(
            compare_models,
            [photo, resnet, plain, detector],
            [res_label, res_text, plain_label, plain_text, maps, details],
            api_name="compare",
            preprocess=False,
            js=resend_photos_js([photo, resnet, plain, detector]),
        )
    gr.Markdown(EXPLANATION)
    table, findings, plots, note = study_report()
    if note:
        gr.Markdown(note)
        return
    gr.Markdown("### The depth study: training error first")
    gr.LinePlot(
        pd.DataFrame(training_curves(depth_report())),
        x="epoch",
        y="training error (%)",
        color="model",
        title="Training error per epoch (augmented, running): hover to read, click a legend "
        "entry to hide a model",
        height=360,
    )
    gr.Markdown(
        "**What this run shows** (computed from the table):\n\n"
        + "\n".join(f"- {line}" for line in findings)
    )
    gr.Markdown(table)
    gr.Gallery(
        value=plots, label="Depth study plots", columns=2, height="auto", object_fit="contain"
    )
