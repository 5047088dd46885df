"""The faceres demo: one `gr.Blocks` with the Verify, Expression, ResNet vs plain and Models tabs.

Every handler is a plain module-level function (callable from tests and, through its `api_name`,
from `gradio_client`). Uploaded photos are decoded once, then Gradio's temporary copy is deleted,
and the server keeps nothing once the request ends: no session state, no cache of photos. Results
are sent back as inline HTML, so no derived image is written. What the Verify tab's face pickers
need (every face's embedding and aligned crop) travels to the browser in the response and comes
back with a pick; another model needs the photos uploaded again.

>>> from faceres.app import build_demo
>>> build_demo().queue(default_concurrency_limit=2).launch()   # what `python app.py` does
"""

from __future__ import annotations

import base64
import functools
import html
import re
import time
from pathlib import Path
from typing import Any

import cv2
import gradio as gr
import numpy as np

from . import registry
from .alignment import model_template, views
from .errors import FaceresError, ImageError
from .expression import analyze_expression
from .uploads import REFUSED, UploadsOnly, take_photo, take_photos
from .verify import (
    VerifyResult,
    decide,
    embed_crops,
    embed_views,
    load_identity_model,
    pick_face,
    verify,
)

MAX_FACE_LABELS = 6
"""Faces of one photo given their own probability panel in the Expression tab (largest first)."""
MAX_PICK_FACES = 12
"""Faces of one photo (largest first) whose embedding and crop go to the browser for the picker."""
DELETE_CACHE = (60, 300)
"""Every 60 s, Gradio deletes its temporary files older than 300 s (uploads never submitted)."""
PREVIEW_MAX_SIDE = 1024
NOT_RUN = "Run Verify first: the face pickers compare the faces it found."
EXPIRED_PAIR = ("Photos are not kept after a comparison: upload the photos again to compare with "
                "another model (the face pickers work without a new upload).")
CHOSEN, OTHER = (46, 204, 113), (241, 196, 15)
JPEG_URI = re.compile(r"data:image/jpeg;base64,[A-Za-z0-9+/]+={0,2}")
"""The only pictures a client may send back in the faces JSON: the JPEG data URIs we made."""

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


# -- photos in, pictures out ---------------------------------------------------------------------


def data_uri(image: np.ndarray, max_side: int = PREVIEW_MAX_SIDE) -> str:
    """An RGB array as a JPEG data URI (at most `max_side` pixels a side): sent, never written.

    >>> data_uri(np.zeros((8, 8, 3), np.uint8))[:23]
    'data:image/jpeg;base64,'
    """
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        size = (round(w * scale), round(h * scale))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, 88])
    if not ok:
        raise ImageError("Could not encode the result image.")
    return "data:image/jpeg;base64," + base64.b64encode(jpeg.tobytes()).decode("ascii")


def img_tag(src: str, alt: str) -> str:
    """An `<img>` of a data URI, scaled to its container."""
    return (f'<img src="{src}" alt="{html.escape(alt)}" '
            'style="display:block;max-width:100%;height:auto;border-radius:6px">')


def image_html(image: np.ndarray, alt: str, max_side: int = PREVIEW_MAX_SIDE) -> str:
    """An RGB array as an inline `<img>` (JPEG data URI): shown to the user, never written."""
    return img_tag(data_uri(image, max_side), alt)


def draw_faces(image: np.ndarray, faces: list, labels: list[str]) -> np.ndarray:
    """A copy of `image` with every face boxed and labelled."""
    out = image.copy()
    thick = max(2, round(max(image.shape[:2]) / 300))
    scale = max(0.5, max(image.shape[:2]) / 900)
    for face, label in zip(faces, labels, strict=True):
        x, y, w, h = (round(v) for v in face.box)
        cv2.rectangle(out, (x, y), (x + w, y + h), CHOSEN, thick)
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        top = y - th - base - 4 if y - th - base - 4 >= 0 else y + h
        cv2.rectangle(out, (x, top), (x + tw + 6, top + th + base + 4), CHOSEN, -1)
        cv2.putText(out, label, (x + 3, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (0, 0, 0), max(1, thick // 2), cv2.LINE_AA)
    return out


def _ms(timings: dict[str, float]) -> str:
    return " · ".join(f"{k} {v:.0f} ms" for k, v in timings.items())


# -- registry ------------------------------------------------------------------------------------


def model_choices(task: str) -> list[str]:
    """Names of the registry's models for `task`, the default one first."""
    entries = registry.list_models(task)
    return [e["name"] for e in sorted(entries, key=lambda e: not e.get("default"))]


def _missing(what: str, feature: str) -> str:
    return (f"**{what} is in the registry yet**, so {feature} is not available here. "
            "Add one (see the README, 'Models'), then restart the app.")


# -- Verify --------------------------------------------------------------------------------------


def gauge_html(similarity: float, threshold: float, band: tuple[float, float], verdict: str,
               model: str) -> str:
    """Similarity on a 0-1 bar with the calibrated threshold and its uncertainty band marked."""
    def pct(v: float) -> float:
        return 100 * min(1.0, max(0.0, v))

    lo, hi = band
    color = {"same": "#2ecc71", "different": "#e74c3c"}.get(verdict, "#f1c40f")
    text = {"same": "Same person", "different": "Different people"}.get(
        verdict, "Uncertain: too close to the threshold to call")
    return f"""
<div style="font-family:sans-serif">
  <div style="font-size:1.4em;font-weight:600;color:{color}">{text}</div>
  <div style="position:relative;height:22px;background:#eee;border-radius:4px;margin:10px 0">
    <div style="position:absolute;left:{pct(lo)}%;width:{pct(hi) - pct(lo)}%;height:100%;
         background:#f9e79f" title="uncertain band"></div>
    <div style="position:absolute;left:0;width:{pct(similarity)}%;height:8px;top:7px;
         background:{color};border-radius:4px"></div>
    <div style="position:absolute;left:{pct(threshold)}%;width:2px;height:100%;
         background:#333" title="threshold"></div>
  </div>
  <div>similarity <b>{similarity:.3f}</b> · threshold {threshold:.3f} (calibrated) ·
       uncertain band {lo:.3f} – {hi:.3f} · model <code>{html.escape(model)}</code></div>
</div>"""


def _face_picker(count: int, chosen: int, label: str) -> gr.Dropdown:
    choices = [(f"Face {i + 1}" + (" (largest)" if i == 0 else ""), i) for i in range(count)]
    return gr.Dropdown(choices=choices, value=chosen, label=label, visible=count > 1)


def _face_index(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        index = int(value)
    except (TypeError, ValueError):
        raise FaceresError(f"Face index {value!r} is not a number (0: the largest).") from None
    if index >= MAX_PICK_FACES:
        raise FaceresError(f"Only the {MAX_PICK_FACES} largest faces of a photo can be compared "
                           f"(index 0 to {MAX_PICK_FACES - 1}).")
    return index


def reset_picker() -> gr.Dropdown:
    """A face picker emptied for a new photo (the largest face is used until a run lists them)."""
    return gr.Dropdown(choices=[], value=None, visible=False)


def pickable_faces(images: list[np.ndarray], result: VerifyResult) -> list[dict]:
    """Per photo, what the face pickers need once the photo is gone: a preview, its size, and for
    each of its `MAX_PICK_FACES` largest faces the box, the embedding (by `result`'s model) and
    the aligned crop. The faces `result` compared are not embedded again.

    >>> pickable_faces([a, b], verify(a, b))[0]["faces"][0].keys()
    dict_keys(['box', 'score', 'detector', 'embedding', 'crop'])
    """
    loaded = load_identity_model(result.model)
    template = model_template(loaded.config)
    photos = []
    for i, (image, found) in enumerate(zip(images, result.faces, strict=True)):
        found = found[:MAX_PICK_FACES]
        others = [j for j in range(len(found)) if j != result.chosen[i]]
        other_views = [views(image, found[j], template) for j in others]
        crops = {j: v[0] for j, v in zip(others, other_views)}
        embeddings = {}
        if result.chosen[i] < len(found):
            crops[result.chosen[i]] = result.crops[i]
            embeddings[result.chosen[i]] = result.embeddings[i]
        if others:
            embeddings.update(zip(others, embed_views(
                other_views, lambda batch: embed_crops(batch, loaded))))
        photos.append({
            "preview": data_uri(image),
            "size": [image.shape[1], image.shape[0]],
            "faces": [{"box": [round(v, 1) for v in face.box], "score": round(face.score, 4),
                       "detector": face.detector,
                       "embedding": [round(float(v), 6) for v in embeddings[j]],
                       "crop": data_uri(crops[j])}
                      for j, face in enumerate(found)],
        })
    return photos


def photo_html(photo: dict, chosen: int, alt: str) -> str:
    """A photo of `pickable_faces` with every face boxed and numbered, the `chosen` one in green
    (boxes drawn by the browser over the preview, so a new pick needs no pixels)."""
    width, height = photo["size"]
    marks = []
    for i, face in enumerate(photo["faces"]):
        x, y, w, h = face["box"]
        x0, y0 = max(0.0, x), max(0.0, y)
        x1, y1 = min(width, x + w), min(height, y + h)
        color = f"rgb{CHOSEN if i == chosen else OTHER}"
        marks.append(
            f'<div style="position:absolute;box-sizing:border-box;left:{100 * x0 / width:.2f}%;'
            f"top:{100 * y0 / height:.2f}%;width:{100 * (x1 - x0) / width:.2f}%;"
            f'height:{100 * (y1 - y0) / height:.2f}%;border:3px solid {color}">'
            f'<span style="position:absolute;left:0;top:0;padding:0 5px;background:{color};'
            f'color:#000;font:600 13px sans-serif">{i + 1}</span></div>')
    return ('<div style="position:relative;display:inline-block;max-width:100%">'
            + img_tag(photo["preview"], alt) + "".join(marks) + "</div>")


def _comparison(faces: dict, face1: Any, face2: Any) -> tuple[str, str, str, str, dict]:
    """(verdict HTML, photo 1 HTML, photo 2 HTML, crops HTML, details) of the chosen faces, from
    what `verify_photos` sent to the browser alone (cosine similarity of the stored embeddings)."""
    try:
        photos = faces["photos"]
        pictures = [photo["preview"] for photo in photos]
        pictures += [face["crop"] for photo in photos for face in photo["faces"]]
        chosen = [pick_face(photo["faces"], _face_index(index), f"photo {i + 1}")
                  for i, (photo, index) in enumerate(zip(photos, (face1, face2), strict=True))]
        a, b = (np.asarray(photo["faces"][i]["embedding"], np.float64)
                for photo, i in zip(photos, chosen, strict=True))
        similarity = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
        threshold, band, model = float(faces["threshold"]), float(faces["band"]), faces["model"]
        shown = [photo_html(photo, i, f"photo {k + 1}: {len(photo['faces'])} face(s), face "
                                      f"{i + 1} used")
                 for k, (photo, i) in enumerate(zip(photos, chosen, strict=True))]
        crops = "".join(
            f'<figure style="display:inline-block;margin:4px">'
            f"{img_tag(photo['faces'][i]['crop'], f'aligned face {k + 1}')}"
            f"<figcaption>photo {k + 1}, face {i + 1}</figcaption></figure>"
            for k, (photo, i) in enumerate(zip(photos, chosen, strict=True)))
        images = [{"faces": [{k: v for k, v in face.items() if k not in ("embedding", "crop")}
                             for face in photo["faces"]], "chosen": i}
                  for photo, i in zip(photos, chosen, strict=True)]
    except (KeyError, TypeError, ValueError, IndexError):
        raise FaceresError(NOT_RUN) from None
    if not all(isinstance(p, str) and JPEG_URI.fullmatch(p) for p in pictures):
        raise FaceresError(REFUSED)
    verdict = decide(similarity, threshold, band)
    details = {"verdict": verdict, "similarity": round(similarity, 6), "threshold": threshold,
               "band": band, "model": model, "detector": faces.get("detector"), "images": images}
    gauge = gauge_html(similarity, threshold, (threshold - band, threshold + band), verdict, model)
    return gauge, shown[0], shown[1], crops, details


@user_errors
def verify_photos(photo1: Any, photo2: Any, model: str | None = None, face1: int | None = None,
                  face2: int | None = None) -> tuple:
    """Verify tab: are the chosen faces of two photos the same person?

    Returns (verdict HTML, photo 1 HTML, photo 2 HTML, aligned crops HTML, face picker 1,
    face picker 2, details dict, faces): `faces` (model, threshold, band and `pickable_faces`)
    is all `pick_faces` needs; it goes to the browser and the server keeps none of it.

    >>> verify_photos("a.jpg", "b.jpg")[6]["verdict"]
    'same'
    """
    start = time.perf_counter()
    images = take_photos([photo1, photo2], EXPIRED_PAIR)
    read_ms = 1000 * (time.perf_counter() - start)
    r = verify(images[0], images[1], model=model or None, face1=_face_index(face1),
               face2=_face_index(face2))
    start = time.perf_counter()
    faces = {"model": r.model, "detector": r.detector, "threshold": r.threshold, "band": r.band,
             "photos": pickable_faces(images, r)}
    pick_ms = 1000 * (time.perf_counter() - start)
    stages = {k: v for k, v in r.timings.items() if k != "total"}
    timings = {"read": read_ms, **stages, "all faces": pick_ms}
    timings["total"] = sum(timings.values())
    gauge, shown1, shown2, crops, details = _comparison(faces, *r.chosen)
    gauge += f'<div style="color:#777;font-size:.9em">{_ms(timings)}</div>'
    details["timings_ms"] = {k: round(v, 1) for k, v in timings.items()}
    counts = [len(photo["faces"]) for photo in faces["photos"]]
    return (gauge, shown1, shown2, crops,
            _face_picker(counts[0], r.chosen[0], "Face in photo 1"),
            _face_picker(counts[1], r.chosen[1], "Face in photo 2"), details, faces)


@user_errors
def pick_faces(faces: dict | None, face1: int | None = None, face2: int | None = None) -> tuple:
    """Verify tab, another face picked: the comparison recomputed from the `faces` that
    `verify_photos` returned alone (no photo, no model run).

    Returns (verdict HTML, photo 1 HTML, photo 2 HTML, aligned crops HTML, details dict).

    >>> pick_faces(verify_photos("group.jpg", "b.jpg")[7], face1=1)[4]["images"][0]["chosen"]
    1
    """
    if not faces:
        raise FaceresError(NOT_RUN)
    return _comparison(faces, face1, face2)


# -- Expression ----------------------------------------------------------------------------------


@user_errors
def analyze_photo(photo: Any, model: str | None = None) -> tuple:
    """Expression tab: every face boxed and labelled, probabilities for the largest ones.

    Returns (annotated photo HTML, `MAX_FACE_LABELS` gr.Label updates, summary Markdown,
    details dict).
    """
    start = time.perf_counter()
    image = take_photo(photo)
    read_ms = 1000 * (time.perf_counter() - start)
    r = analyze_expression(image, model=model or None)
    timings = {"read": read_ms, **r.timings}
    faces = r.faces
    drawn = draw_faces(image, [f.face for f in faces],
                       [f"{i + 1}: {f.label} {f.probabilities[f.label]:.0%}"
                        for i, f in enumerate(faces)])
    labels = [
        gr.Label(value=dict(f.probabilities), label=f"Face {i + 1}: {f.label}", visible=True)
        for i, f in enumerate(faces[:MAX_FACE_LABELS])
    ]
    labels += [gr.Label(value=None, visible=False)] * (MAX_FACE_LABELS - len(labels))
    if not faces:
        summary = "No face found. Try a photo where the face is larger, frontal and well lit."
    else:
        shown = "" if len(faces) <= MAX_FACE_LABELS else (
            f" (probabilities for the {MAX_FACE_LABELS} largest)")
        summary = f"{len(faces)} face(s){shown} · model `{r.model}` · {_ms(timings)}"
    details = {
        "model": r.model, "detector": r.detector,
        "faces": [{"box": [round(v, 1) for v in f.face.box], "label": f.label,
                   "probabilities": {k: round(float(p), 4) for k, p in f.probabilities.items()}}
                  for f in faces],
        "timings_ms": {k: round(v, 1) for k, v in timings.items()},
    }
    return (image_html(drawn, f"{len(faces)} face(s) with expressions"), *labels, summary,
            details)


# -- ResNet vs plain -----------------------------------------------------------------------------


def twin_pairs() -> list[tuple[str, str]]:
    """(residual, plain) expression model pairs from the registry, the default model's first."""
    entries = {e["name"]: e for e in registry.list_models()}
    return [(name, entries[name]["twin"]) for name in model_choices("expression")
            if entries[name].get("twin") in entries and not _is_plain(entries[name])]


def _is_plain(entry: dict) -> bool:
    return "plain" in entry["architecture"].lower() or "plain" in entry["name"].lower()


def _run_one(image: np.ndarray, model: str) -> tuple[gr.Label, str, dict]:
    start = time.perf_counter()
    r = analyze_expression(image, model=model)
    total_ms = 1000 * (time.perf_counter() - start)
    if not r.faces:
        raise FaceresError("No face found in the photo; try a larger, frontal face.")
    face = r.faces[0]
    probs = dict(face.probabilities)
    text = (f"**{face.label}** ({probs[face.label]:.0%}) · `{r.model}` · "
            f"{total_ms:.0f} ms in all ({_ms(r.timings)})")
    detail = {"model": r.model, "label": face.label, "latency_ms": round(total_ms, 1),
              "probabilities": {k: round(float(p), 4) for k, p in probs.items()}}
    return gr.Label(value=probs, label=f"{r.model}: {face.label}"), text, detail


@user_errors
def compare_models(photo: Any, resnet: str | None = None, plain: str | None = None) -> tuple:
    """ResNet vs plain tab: the largest face through a ResNet and its plain twin.

    Returns (ResNet label, ResNet summary, plain label, plain summary, details dict).
    """
    if not resnet or not plain:
        pairs = twin_pairs()
        if not pairs:
            raise FaceresError("No ResNet / plain twin pair is in the registry yet.")
        resnet = resnet or pairs[0][0]
        plain = plain or registry.get_entry(resnet).get("twin") or pairs[0][1]
    image = take_photo(photo)
    res_label, res_text, res_detail = _run_one(image, resnet)
    plain_label, plain_text, plain_detail = _run_one(image, plain)
    return (res_label, res_text, plain_label, plain_text,
            {"resnet": res_detail, "plain": plain_detail})


def plain_twin(resnet: str) -> gr.Dropdown:
    """The plain dropdown set to `resnet`'s twin from the registry."""
    return gr.Dropdown(value=registry.get_entry(resnet).get("twin"))


def study_report() -> tuple[str, list[str], list[str], str]:
    """(table Markdown, findings, plot paths, note) of the depth study; only a note when absent."""
    from .study import format_table, load_report

    try:
        report = load_report()
    except FaceresError as exc:
        return "", [], [], f"The depth study is not available yet: {exc} (`faceres study depth`)."
    except (OSError, KeyError, ValueError) as exc:
        return "", [], [], f"The depth study could not be read: {exc}"
    return format_table(report["table"]), report["findings"], report["plots"], ""


# -- Models --------------------------------------------------------------------------------------

MODEL_COLUMNS = ["name", "task", "architecture", "metrics", "size (MB)", "source", "default"]


def _folder(entry: dict) -> Path | None:
    return registry.registry_dir() / entry["path"] if entry.get("path") else None


def models_table() -> list[list]:
    """The registry as rows of `MODEL_COLUMNS`."""
    rows = []
    for e in registry.list_models():
        folder = _folder(e)
        size = sum((folder / f).stat().st_size for f in e.get("files", {})
                   if (folder / f).is_file()) if folder else None
        metrics = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                            for k, v in (e.get("metrics") or {}).items())
        rows.append([e["name"], e["task"], e["architecture"], metrics,
                     None if size is None else round(size / 2**20, 2),
                     e.get("source") or e.get("repo_id") or "", bool(e.get("default"))])
    return rows


@user_errors
def model_card(name: str | None) -> str:
    """The model card (README.md without its YAML front matter) of a registry model."""
    if not name:
        return ""
    entry = registry.get_entry(name)
    folder = _folder(entry)
    card = folder / "README.md" if folder else None
    if card is None or not card.is_file():
        lines = [f"### {name}", entry.get("description") or "",
                 f"Source: {entry.get('source') or 'unknown'} · licence: "
                 f"{entry.get('license') or 'unknown'}"]
        return "\n\n".join(line for line in lines if line)
    from huggingface_hub import ModelCard

    return ModelCard.load(card).text.strip()


# -- the Blocks ----------------------------------------------------------------------------------


def _photo_input(label: str, elem_id: str) -> gr.Image:
    return gr.Image(label=label, type="filepath", image_mode=None, height=320,
                    sources=["upload", "webcam", "clipboard"], elem_id=elem_id)


def _verify_tab() -> None:
    models = model_choices("identity")
    if not models:
        gr.Markdown(_missing("No identity model", "face verification"))
        return
    gr.Markdown("Two photos: are they the same person? Every face found is boxed; the green one "
                "is compared (the largest by default, pick another below after a first run). "
                "Photos are not kept: another model needs them uploaded again.")
    with gr.Row():
        with gr.Column():
            photo1 = _photo_input("Photo 1", "verify-photo1")
            face1 = gr.Dropdown(choices=[], value=None, label="Face in photo 1", visible=False,
                                elem_id="verify-face1")
        with gr.Column():
            photo2 = _photo_input("Photo 2", "verify-photo2")
            face2 = gr.Dropdown(choices=[], value=None, label="Face in photo 2", visible=False,
                                elem_id="verify-face2")
    with gr.Row(equal_height=True):
        model = gr.Dropdown(models, value=models[0], label="Identity model", scale=2)
        button = gr.Button("Verify", variant="primary", elem_id="verify-run", scale=1)
    verdict = gr.HTML(elem_id="verify-verdict")
    with gr.Row():
        shown1 = gr.HTML()
        shown2 = gr.HTML()
    crops = gr.HTML()
    with gr.Accordion("Details", open=False):
        details = gr.JSON()
    faces = gr.JSON(visible=False)  # in the browser only: what a new face pick needs
    photo1.change(reset_picker, None, face1, api_name="reset_face1", api_visibility="private")
    photo2.change(reset_picker, None, face2, api_name="reset_face2", api_visibility="private")
    button.click(verify_photos, [photo1, photo2, model, face1, face2],
                 [verdict, shown1, shown2, crops, face1, face2, details, faces],
                 api_name="verify", preprocess=False)
    gr.on([face1.input, face2.input], pick_faces, [faces, face1, face2],
          [verdict, shown1, shown2, crops, details], api_name="pick_faces", preprocess=False)


def _expression_tab() -> None:
    models = model_choices("expression")
    if not models:
        gr.Markdown(_missing("No expression model", "expression recognition"))
        return
    gr.Markdown("Upload a photo or use the webcam: every face is boxed and labelled with its most "
                "likely expression, with the probabilities of all seven below.")
    with gr.Row():
        with gr.Column():
            photo = _photo_input("Photo", "expression-photo")
            model = gr.Dropdown(models, value=models[0], label="Expression model")
            button = gr.Button("Analyse", variant="primary", elem_id="expression-run")
        with gr.Column():
            shown = gr.HTML()
            summary = gr.Markdown(elem_id="expression-summary")
    with gr.Row():
        labels = [gr.Label(num_top_classes=7, visible=False) for _ in range(MAX_FACE_LABELS)]
    with gr.Accordion("Details", open=False):
        details = gr.JSON()
    button.click(analyze_photo, [photo, model], [shown, *labels, summary, details],
                 api_name="expression", preprocess=False)


def _compare_tab() -> None:
    pairs = twin_pairs()
    if not pairs:
        gr.Markdown(_missing("No expression ResNet with its plain twin", "the comparison"))
    else:
        residual = [p[0] for p in pairs]
        plains = sorted({p[1] for p in pairs})
        gr.Markdown("One face through a ResNet and its plain twin: the same network, the same "
                    "training recipe, only the identity shortcuts removed.")
        with gr.Row():
            photo = _photo_input("Face photo", "compare-photo")
            with gr.Column():
                resnet = gr.Dropdown(residual, value=pairs[0][0], label="ResNet")
                plain = gr.Dropdown(plains, value=pairs[0][1], label="Plain twin")
                button = gr.Button("Compare", variant="primary")
        with gr.Row():
            with gr.Column():
                res_label = gr.Label(num_top_classes=7, label="ResNet")
                res_text = gr.Markdown()
            with gr.Column():
                plain_label = gr.Label(num_top_classes=7, label="Plain")
                plain_text = gr.Markdown()
        with gr.Accordion("Details", open=False):
            details = gr.JSON()
        resnet.change(plain_twin, resnet, plain, api_name="plain_twin")
        button.click(compare_models, [photo, resnet, plain],
                     [res_label, res_text, plain_label, plain_text, details],
                     api_name="compare", preprocess=False)
    gr.Markdown(EXPLANATION)
    table, findings, plots, note = study_report()
    if note:
        gr.Markdown(note)
        return
    gr.Markdown("### The depth study\n\n" + table)
    gr.Markdown("**What this run shows** (computed from the table):\n\n"
                + "\n".join(f"- {line}" for line in findings))
    gr.Gallery(value=plots, label="Depth study plots", columns=2, height="auto",
               object_fit="contain")


def _models_tab() -> None:
    rows = models_table()
    if not rows:
        gr.Markdown("**The registry is empty.** See the README, 'Models'.")
        return
    gr.Dataframe(value=rows, headers=MODEL_COLUMNS, label="Registry", interactive=False,
                 wrap=True, column_widths=["15%", "8%", "15%", "22%", "7%", "26%", "7%"])
    names = [r[0] for r in rows]
    picked = gr.Dropdown(names, value=names[0], label="Model card")
    card = gr.Markdown(model_card(names[0]))
    picked.change(model_card, picked, card, api_name="model_card")


def build_demo() -> gr.Blocks:
    """The whole demo as one `gr.Blocks` (not launched, no queue set).

    >>> demo = build_demo()
    >>> demo.queue(default_concurrency_limit=2).launch(server_name="127.0.0.1")
    """
    with UploadsOnly(title="faceres", analytics_enabled=False, delete_cache=DELETE_CACHE) as demo:
        gr.Markdown("# faceres\nResidual networks for faces: verification, expressions, and why "
                    "skip connections matter. Photos are processed in memory and not kept.")
        with gr.Tabs():
            with gr.Tab("Verify"):
                _verify_tab()
            with gr.Tab("Expression"):
                _expression_tab()
            with gr.Tab("ResNet vs plain"):
                _compare_tab()
            with gr.Tab("Models"):
                _models_tab()
    return demo
