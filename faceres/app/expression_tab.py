"""The Expression tab: every face of a photo boxed and labelled, with its class probabilities.

>>> analyze_photo(upload)[-1]["faces"][0]["label"]
'happy'
"""

from __future__ import annotations

import time
from typing import Any

import gradio as gr

from faceres.app.common import (
    detector_input,
    fallback_note,
    missing_models,
    model_choices,
    ms_text,
    photo_input,
    resend_photos_js,
    user_errors,
)
from faceres.app.render import draw_faces, figures_html, image_html
from faceres.app.uploads import take_photo
from faceres.explain import explain_expression
from faceres.expression import analyze_expression

MAX_FACE_LABELS = 6
"""Faces of one photo given their own probability panel (largest first)."""


@user_errors
def analyze_photo(photo: Any, model: str | None = None, detector: str | None = None) -> tuple:
    """Expression tab: every face (found by `detector`, default auto) boxed and labelled,
    probabilities for the largest ones.

    Returns (annotated photo HTML, `MAX_FACE_LABELS` gr.Label updates, summary Markdown, maps
    HTML: where the model looked for the class it chose, per face (Grad-CAM), details dict).
    """
    start = time.perf_counter()
    image = take_photo(photo)
    read_ms = 1000 * (time.perf_counter() - start)
    r = analyze_expression(image, model=model or None, detector=detector or None)
    timings = {"read": read_ms, **r.timings}
    faces = r.faces
    drawn = draw_faces(
        image,
        [f.face for f in faces],
        [f"{i + 1}: {f.label} {f.probabilities[f.label]:.0%}" for i, f in enumerate(faces)],
    )
    labels = [
        gr.Label(value=dict(f.probabilities), label=f"Face {i + 1}: {f.label}", visible=True)
        for i, f in enumerate(faces[:MAX_FACE_LABELS])
    ]
    labels += [gr.Label(value=None, visible=False)] * (MAX_FACE_LABELS - len(labels))
    if not faces:
        summary = "No face found. Try a photo where the face is larger, frontal and well lit."
    else:
        shown = (
            ""
            if len(faces) <= MAX_FACE_LABELS
            else (f" (probabilities for the {MAX_FACE_LABELS} largest)")
        )
        summary = f"{len(faces)} face(s){shown} · model `{r.model}` · {ms_text(timings)}"
    note = fallback_note(detector, r.detector)
    if note:
        summary += f"\n\n{note}"
    cams = explain_expression(r).faces[:MAX_FACE_LABELS]
    maps = (
        "<b>Where the model looked</b> (Grad-CAM of the class it chose; red: most)<br>"
        + figures_html(
            [c.overlay() for c in cams],
            [f"face {n}: {c.label}" for n, c in enumerate(cams, start=1)],
            width=150,
        )
        if cams
        else ""
    )
    details = {
        "model": r.model,
        "detector": r.detector,
        "faces": [
            {
                "face": number,
                "box": [round(v, 1) for v in f.face.box],
                "label": f.label,
                "probabilities": {k: round(float(p), 4) for k, p in f.probabilities.items()},
            }
            for number, f in enumerate(faces, start=1)
        ],
        "timings_ms": {k: round(v, 1) for k, v in timings.items()},
    }
    return (
        image_html(drawn, f"{len(faces)} face(s) with expressions"),
        *labels,
        summary,
        maps,
        details,
    )


def build() -> None:
    """The tab's inputs, outputs and events (inside a `gr.Tab`)."""
    models = model_choices("expression")
    if not models:
        gr.Markdown(missing_models("No expression model", "expression recognition"))
        return
    gr.Markdown(
        "Upload a photo or use the webcam: every face is boxed and labelled with its most "
        "likely expression, with the probability of every class of the model below."
    )
    with gr.Row():
        with gr.Column():
            photo = photo_input("Photo", "expression-photo")
            model = gr.Dropdown(models, value=models[0], label="Expression model")
            detector = detector_input()
            button = gr.Button("Analyse", variant="primary", elem_id="expression-run")
        with gr.Column():
            shown = gr.HTML()
            summary = gr.Markdown(elem_id="expression-summary")
            maps = gr.HTML(elem_id="expression-maps")
    with gr.Row():
        labels = [gr.Label(visible=False) for _ in range(MAX_FACE_LABELS)]
    with gr.Accordion("Details", open=False):
        details = gr.JSON()
    button.click(
        analyze_photo,
        [photo, model, detector],
        [shown, *labels, summary, maps, details],
        api_name="expression",
        preprocess=False,
        js=resend_photos_js([photo, model, detector]),
    )
