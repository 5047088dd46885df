"""The faceres demo: one `gr.Blocks` with the Verify, Expression, ResNet vs plain and Models tabs.

Every handler is a plain module-level function (callable from tests and, through its `api_name`,
from `gradio_client`). Uploaded photos are decoded once, then Gradio's temporary copy is deleted;
the decoded array lives only in the session's memory (`gr.State`, expiring) so that a rerun with
another model or face works. Results are sent back as inline HTML, so no derived image is written.

>>> from faceres.app import build_demo
>>> build_demo().queue(default_concurrency_limit=2).launch()   # what `python app.py` does
"""

from __future__ import annotations

import base64
import functools
import html
import time
from pathlib import Path
from typing import Any

import cv2
import gradio as gr
import numpy as np

from . import registry
from .errors import FaceresError, ImageError
from .expression import analyze_expression
from .imageio import load_image
from .verify import verify

MAX_FACE_LABELS = 6
"""Faces of one photo given their own probability panel in the Expression tab (largest first)."""
SESSION_PHOTOS = 4
"""Decoded photos a session keeps in memory for reruns (never on disk)."""
SESSION_TTL_S = 900
"""Seconds after its last use that a session's decoded photos are dropped."""
DELETE_CACHE = (60, 300)
"""Every 60 s, Gradio deletes its temporary files older than 300 s (uploads never submitted)."""
PREVIEW_MAX_SIDE = 1024
CHOSEN, OTHER = (46, 204, 113), (241, 196, 15)

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


def take_photo(value: Any, memory: dict | None = None) -> np.ndarray:
    """Decode a photo from Gradio (a FileData dict, which must name an upload), or from Python
    (a path, bytes or an array).

    A file in Gradio's upload folder is deleted once read, whether or not it decodes; the array is
    remembered in `memory` (the session's state) under the upload's path for reruns.
    """
    if value is None:
        raise ImageError("Upload a photo first.")
    if isinstance(value, dict):
        path = value.get("path")
        url = value.get("url") or ""
        if path is None and url.startswith("data:"):
            try:
                data = base64.b64decode(url.partition(",")[2], validate=True)
            except ValueError as exc:  # binascii.Error
                raise ImageError("The uploaded image data is not valid base64.") from exc
            return load_image(data)
        if path is None:
            raise ImageError("The upload did not arrive; please upload the photo again.")
        if not _in_upload_folder(path):  # a client may name any path: read uploads only
            raise ImageError("Photos must be uploaded; server files cannot be used.")
    elif isinstance(value, (str, Path)):
        path = value
    else:
        return load_image(value)
    key = str(path)
    try:
        if memory is not None and key in memory:
            image = memory.pop(key)  # a rerun: use the session's copy
        else:
            image = load_image(key)
    except ImageError as exc:
        if not Path(key).exists() and _in_upload_folder(key):
            raise ImageError("This upload has expired; please upload the photo again.") from exc
        raise
    finally:
        forget_upload(key)  # also a re-upload of a photo the session already holds
    if memory is not None:
        memory[key] = image
        while len(memory) > SESSION_PHOTOS:
            memory.pop(next(iter(memory)))
    return image


def take_photos(values: list[Any], memory: dict) -> list[np.ndarray]:
    """`take_photo` for each value; every upload is deleted even when an earlier one fails."""
    try:
        return [take_photo(value, memory) for value in values]
    finally:
        for value in values:
            path = value.get("path") if isinstance(value, dict) else value
            if isinstance(path, (str, Path)):
                forget_upload(path)


def _in_upload_folder(path: str | Path) -> bool:
    root = Path(gr.utils.get_upload_folder()).resolve()
    return Path(path).resolve().is_relative_to(root)


def forget_upload(path: str | Path) -> None:
    """Delete an uploaded file and its (then empty) folder; files outside Gradio's are kept."""
    if not _in_upload_folder(path):
        return
    file = Path(path).resolve()
    file.unlink(missing_ok=True)
    root = Path(gr.utils.get_upload_folder()).resolve()
    if file.parent != root:
        try:
            file.parent.rmdir()
        except OSError:  # not empty: another upload shares the folder
            pass


def image_html(image: np.ndarray, alt: str, max_side: int = PREVIEW_MAX_SIDE) -> str:
    """An RGB array as an inline `<img>` (JPEG data URI): shown to the user, never written."""
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        size = (round(w * scale), round(h * scale))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, 88])
    if not ok:
        raise ImageError("Could not encode the result image.")
    data = base64.b64encode(jpeg.tobytes()).decode("ascii")
    return (f'<img src="data:image/jpeg;base64,{data}" alt="{html.escape(alt)}" '
            'style="max-width:100%;height:auto;border-radius:6px">')


def draw_faces(image: np.ndarray, faces: list, labels: list[str], chosen: int | None = None
               ) -> np.ndarray:
    """A copy of `image` with every face boxed and labelled; the `chosen` one in green."""
    out = image.copy()
    thick = max(2, round(max(image.shape[:2]) / 300))
    scale = max(0.5, max(image.shape[:2]) / 900)
    for i, (face, label) in enumerate(zip(faces, labels, strict=True)):
        x, y, w, h = (round(v) for v in face.box)
        color = CHOSEN if chosen is None or i == chosen else OTHER
        cv2.rectangle(out, (x, y), (x + w, y + h), color, thick)
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        top = y - th - base - 4 if y - th - base - 4 >= 0 else y + h
        cv2.rectangle(out, (x, top), (x + tw + 6, top + th + base + 4), color, -1)
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


def _face_picker(faces: list, chosen: int, label: str) -> gr.Dropdown:
    choices = [(f"Face {i + 1}" + (" (largest)" if i == 0 else ""), i) for i in range(len(faces))]
    return gr.Dropdown(choices=choices, value=chosen, label=label, visible=len(faces) > 1)


def _face_index(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise FaceresError(f"Face index {value!r} is not a number (0: the largest).") from None


def reset_picker() -> gr.Dropdown:
    """A face picker emptied for a new photo (the largest face is used until a run lists them)."""
    return gr.Dropdown(choices=[], value=None, visible=False)


@user_errors
def verify_photos(photo1: Any, photo2: Any, model: str | None = None, face1: int | None = None,
                  face2: int | None = None, memory: dict | None = None) -> tuple:
    """Verify tab: are the chosen faces of two photos the same person?

    Returns (verdict HTML, photo 1 HTML, photo 2 HTML, aligned crops HTML, face picker 1,
    face picker 2, details dict, memory).

    >>> verify_photos("a.jpg", "b.jpg")[6]["verdict"]
    'same'
    """
    memory = {} if memory is None else memory
    start = time.perf_counter()
    images = take_photos([photo1, photo2], memory)
    read_ms = 1000 * (time.perf_counter() - start)
    r = verify(images[0], images[1], model=model or None, face1=_face_index(face1),
               face2=_face_index(face2))
    timings = {"read": read_ms, **r.timings}
    photos = []
    for i, image in enumerate(images):
        faces, chosen = r.faces[i], r.chosen[i]
        drawn = draw_faces(image, faces, [str(k + 1) for k in range(len(faces))], chosen)
        photos.append(image_html(drawn, f"photo {i + 1}: {len(faces)} face(s), face "
                                        f"{chosen + 1} used"))
    crops = "".join(
        f'<figure style="display:inline-block;margin:4px">{image_html(c, f"aligned face {i + 1}")}'
        f"<figcaption>photo {i + 1}, face {r.chosen[i] + 1}</figcaption></figure>"
        for i, c in enumerate(r.crops)
    )
    band = (r.threshold - r.band, r.threshold + r.band)
    verdict = gauge_html(r.similarity, r.threshold, band, r.verdict, r.model)
    verdict += f'<div style="color:#777;font-size:.9em">{_ms(timings)}</div>'
    details = r.to_dict()
    details["timings_ms"] = {k: round(v, 1) for k, v in timings.items()}
    return (verdict, photos[0], photos[1], crops,
            _face_picker(r.faces[0], r.chosen[0], "Face in photo 1"),
            _face_picker(r.faces[1], r.chosen[1], "Face in photo 2"), details, memory)


# -- Expression ----------------------------------------------------------------------------------


@user_errors
def analyze_photo(photo: Any, model: str | None = None, memory: dict | None = None) -> tuple:
    """Expression tab: every face boxed and labelled, probabilities for the largest ones.

    Returns (annotated photo HTML, `MAX_FACE_LABELS` gr.Label updates, summary Markdown,
    details dict, memory).
    """
    memory = {} if memory is None else memory
    start = time.perf_counter()
    image = take_photo(photo, memory)
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
            details, memory)


# -- ResNet vs plain -----------------------------------------------------------------------------


def twin_pairs() -> list[tuple[str, str]]:
    """(residual, plain) expression model pairs from the registry, the default model's first."""
    pairs = []
    for name in model_choices("expression"):
        entry = registry.get_entry(name)
        twin = entry.get("twin")
        if twin and not _is_plain(entry) and twin in {e["name"] for e in registry.list_models()}:
            pairs.append((name, twin))
    return pairs


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
def compare_models(photo: Any, resnet: str | None = None, plain: str | None = None,
                   memory: dict | None = None) -> tuple:
    """ResNet vs plain tab: the largest face through a ResNet and its plain twin.

    Returns (ResNet label, ResNet summary, plain label, plain summary, details dict, memory).
    """
    memory = {} if memory is None else memory
    if not resnet or not plain:
        pairs = twin_pairs()
        if not pairs:
            raise FaceresError("No ResNet / plain twin pair is in the registry yet.")
        resnet = resnet or pairs[0][0]
        plain = plain or registry.get_entry(resnet).get("twin") or pairs[0][1]
    image = take_photo(photo, memory)
    res_label, res_text, res_detail = _run_one(image, resnet)
    plain_label, plain_text, plain_detail = _run_one(image, plain)
    return (res_label, res_text, plain_label, plain_text,
            {"resnet": res_detail, "plain": plain_detail}, memory)


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
    text = card.read_text(encoding="utf-8")
    if text.startswith("---"):
        text = text.split("---", 2)[2]
    return text.strip()


# -- the Blocks ----------------------------------------------------------------------------------


def _photo_input(label: str, elem_id: str) -> gr.Image:
    return gr.Image(label=label, type="filepath", image_mode=None, height=320,
                    sources=["upload", "webcam", "clipboard"], elem_id=elem_id)


def _verify_tab(memory: gr.State) -> None:
    models = model_choices("identity")
    if not models:
        gr.Markdown(_missing("No identity model", "face verification"))
        return
    gr.Markdown("Two photos: are they the same person? Every face found is boxed; the green one "
                "is compared (the largest by default, pick another below after a first run).")
    with gr.Row():
        with gr.Column():
            photo1 = _photo_input("Photo 1", "verify-photo1")
            face1 = gr.Dropdown(choices=[], value=None, label="Face in photo 1", visible=False)
        with gr.Column():
            photo2 = _photo_input("Photo 2", "verify-photo2")
            face2 = gr.Dropdown(choices=[], value=None, label="Face in photo 2", visible=False)
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
    photo1.change(reset_picker, None, face1, api_name="reset_face1", api_visibility="private")
    photo2.change(reset_picker, None, face2, api_name="reset_face2", api_visibility="private")
    gr.on([button.click, face1.input, face2.input], verify_photos,
          [photo1, photo2, model, face1, face2, memory],
          [verdict, shown1, shown2, crops, face1, face2, details, memory],
          api_name="verify", preprocess=False)


def _expression_tab(memory: gr.State) -> None:
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
    button.click(analyze_photo, [photo, model, memory],
                 [shown, *labels, summary, details, memory],
                 api_name="expression", preprocess=False)


def _compare_tab(memory: gr.State) -> None:
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
        button.click(compare_models, [photo, resnet, plain, memory],
                     [res_label, res_text, plain_label, plain_text, details, memory],
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
    with gr.Blocks(title="faceres", analytics_enabled=False, delete_cache=DELETE_CACHE) as demo:
        gr.Markdown("# faceres\nResidual networks for faces: verification, expressions, and why "
                    "skip connections matter. Photos are processed in memory and not kept.")
        memory = gr.State({}, time_to_live=SESSION_TTL_S)
        with gr.Tabs():
            with gr.Tab("Verify"):
                _verify_tab(memory)
            with gr.Tab("Expression"):
                _expression_tab(memory)
            with gr.Tab("ResNet vs plain"):
                _compare_tab(memory)
            with gr.Tab("Models"):
                _models_tab()
    return demo
