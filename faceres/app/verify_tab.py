"""The Verify tab: two photos, every face boxed, the chosen faces compared.

What the face pickers need (each face's embedding and aligned crop) travels to the browser with
the response and comes back with a pick (`pick_faces`): no photo is kept on the server.

>>> verify_photos(upload_a, upload_b)[6]["verdict"]
'same'
"""

from __future__ import annotations

import base64
import html
import time
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import gradio as gr
import numpy as np

from faceres import registry
from faceres.app.blocks import identity_embeddings
from faceres.app.common import (
    announce_first_use,
    block_choices,
    clear_then_run,
    detector_input,
    error_html,
    keep_errors,
    missing_models,
    model_choices,
    ms_text,
    notes_html,
    photo_input,
    user_errors,
    wired,
)
from faceres.app.render import (
    JPEG_URI,
    data_uri,
    figures_html,
    img_tag,
    photo_html,
    score_plot,
    verdict_html,
)
from faceres.app.uploads import REFUSED, take_photos
from faceres.detect import Face, fallback_note, score_text
from faceres.errors import FaceresError, ModelError
from faceres.face.pipeline import FaceRecord
from faceres.face.quality import FaceQuality
from faceres.identity import MAX_FACES, VerifyResult, compare, judge, verify
from faceres.identity.explain import explain_crops
from faceres.imageio import load_image
from faceres.models.blocks import block_names

NOT_RUN = (
    "Run Verify first: picking another face, Explain and removing a block work on the faces "
    "that Verify found."
)
PICKS_RESET = (
    "The face detector changed: each detector numbers faces its own way, so the face picks "
    "were reset. Run Verify to compare the largest faces, then pick again."
)
EXPIRED_PAIR = (
    "Photos are not kept after a comparison: upload the photos again to compare with "
    "another model (the face pickers work without a new upload)."
)


class Comparison(NamedTuple):
    """What the tab shows of one comparison: the verdict, both photos with their faces boxed,
    the aligned crops, and the details (`VerifyResult.to_dict`)."""

    verdict: str
    shown1: str
    shown2: str
    crops: str
    details: dict | None


class Verified(NamedTuple):
    """`verify_photos`' outputs: the comparison, both face pickers and the faces state."""

    verdict: str
    shown1: str
    shown2: str
    crops: str
    picker1: gr.Dropdown
    picker2: gr.Dropdown
    details: dict | None
    faces: dict | None


class Picked(NamedTuple):
    """`pick_faces`' outputs: the comparison, and the maps and block removal emptied."""

    verdict: str
    shown1: str
    shown2: str
    crops: str
    details: dict | None
    maps: str
    lesion: str


class Cleared(NamedTuple):
    """Every result that depended on the photos, emptied."""

    verdict: str
    shown1: str
    shown2: str
    crops: str
    details: dict | None
    faces: dict | None
    maps: str
    lesion: str


class Reset(NamedTuple):
    """A photo replaced or the detector changed: `Cleared` and both face pickers reset."""

    verdict: str
    shown1: str
    shown2: str
    crops: str
    details: dict | None
    faces: dict | None
    maps: str
    lesion: str
    picker1: gr.Dropdown
    picker2: gr.Dropdown


def _face_picker(count: int, chosen: int, label: str) -> gr.Dropdown:
    choices = [(f"Face {n}" + (" (largest)" if n == 1 else ""), n) for n in range(1, count + 1)]
    return gr.Dropdown(choices=choices, value=chosen, label=label, visible=count > 1)


def _face_number(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise FaceresError(f"Face number {value!r} is not a number (1: the largest).") from None
    if number > MAX_FACES:
        raise FaceresError(
            f"Only the {MAX_FACES} largest faces of a photo can be compared "
            f"(faces 1 to {MAX_FACES})."
        )
    return number


def reset_picker() -> gr.Dropdown:
    """A face picker emptied for a new photo (the largest face is used until a run lists them)."""
    return gr.Dropdown(choices=[], value=None, visible=False)


def clear_results() -> Cleared:
    """Every result that depended on the photos, emptied. Runs before each Verify, so an error
    leaves no earlier answer on screen, and a face pick without a fresh run says "Run Verify
    first"."""
    return Cleared("", "", "", "", None, None, "", "")


def clear_html() -> str:
    """One HTML result emptied (the maps, the block removal) before its run."""
    return ""


def clear_photo() -> Reset:
    """A photo replaced or removed: `clear_results` and both face pickers reset."""
    return Reset(*clear_results(), reset_picker(), reset_picker())


def change_detector(face1: Any = None, face2: Any = None) -> Reset:
    """Another detector chosen: `clear_photo`, saying so when a face other than the largest was
    picked (the new detector may number it differently, so the pick cannot stand)."""
    picked = any(_face_number(n) not in (None, 1) for n in (face1, face2))
    reset = clear_photo()
    return reset._replace(verdict=error_html(PICKS_RESET)) if picked else reset


def faces_state(images: list[np.ndarray], result: VerifyResult) -> dict:
    """What the face pickers need once the photo is gone, for the browser: the model, and per
    photo a preview, its size and the records `result` holds of its `MAX_FACES` largest faces
    (`verify(..., every_face=True)`), each with its embedding and aligned crop.

    >>> faces_state([a, b], verify(a, b, every_face=True))["photos"][0]["faces"][0].keys()
    dict_keys(['face', 'box', 'landmarks', 'score', 'detector', 'quality', 'scheme', ...])
    """
    return {
        "model": result.model,
        "detector": result.detector,
        "photos": [
            {
                "preview": data_uri(image),
                "size": [image.shape[1], image.shape[0]],
                "faces": [
                    r.to_dict()
                    | {
                        "scheme": r.face.scheme,
                        "embedding": [round(float(v), 6) for v in r.embedding],
                        "crop": data_uri(r.crop),
                    }
                    | (
                        {"member_crops": [data_uri(c) for c in r.member_crops]}
                        if r.member_crops
                        else {}
                    )
                    for r in records
                ],
            }
            for image, records in zip(images, result.records, strict=True)
        ],
    }


def _record(face: dict) -> FaceRecord:
    """A face record from `faces_state`'s JSON (no pixels: the crop stays a data URI)."""
    found = Face(
        tuple(float(v) for v in face["box"]),
        np.asarray(face["landmarks"], np.float32),
        str(face["scheme"]),
        float(face["score"]),
        str(face["detector"]),
    )
    embedding = np.asarray(face["embedding"], np.float64)
    return FaceRecord(int(face["face"]), found, (), embedding, FaceQuality(**face["quality"]))


def _compared(state: dict, face1: Any, face2: Any) -> VerifyResult:
    """`faceres.identity.compare` on the records the browser sent back (checked)."""
    try:
        photos = state["photos"]
        records = tuple([_record(f) for f in photo["faces"]] for photo in photos)
        pictures = [photo["preview"] for photo in photos]
        pictures += [face["crop"] for photo in photos for face in photo["faces"]]
        pictures += [
            c for photo in photos for f in photo["faces"] for c in f.get("member_crops", [])
        ]
        model = str(state["model"])
    except (KeyError, TypeError, ValueError, IndexError):
        raise FaceresError(NOT_RUN) from None
    if len(records) != 2 or not all(isinstance(p, str) and JPEG_URI.fullmatch(p) for p in pictures):
        raise FaceresError(REFUSED)
    return compare(records, model, _face_number(face1), _face_number(face2))


def _comparison(state: dict, result: VerifyResult) -> Comparison:
    """What the tab shows of `result`: its verdict and details (`VerifyResult.to_dict`), over the
    previews and crops of `state` (`faces_state`)."""
    photos = state["photos"]
    shown = [
        photo_html(photo, n, f"photo {k}: {len(photo['faces'])} face(s), face {n} used")
        for k, (photo, n) in enumerate(zip(photos, result.chosen, strict=True), start=1)
    ]
    crops = "".join(
        f'<figure style="display:inline-block;margin:4px">'
        f"{img_tag(photo['faces'][n - 1]['crop'], f'aligned face {k}')}"
        f"<figcaption>photo {k}, face {n}<br>{_quality_text(r.quality, r.face.detector)}"
        "</figcaption></figure>"
        for k, (photo, n, r) in enumerate(
            zip(photos, result.chosen, result.compared, strict=True), start=1
        )
    )
    details = result.to_dict()
    scores = registry.model_config(result.model)["faceres"].get("scores")
    plot = score_plot(scores, result.similarity, result.threshold, result.band) if scores else None
    return Comparison(verdict_html(details, plot), shown[0], shown[1], crops, details)


def _quality_text(q: FaceQuality, detector: str) -> str:
    return (
        f"{q.eye_distance:.0f} px between the eyes · sharpness {q.sharpness:.0f} · "
        f"yaw {q.yaw:.0f}° · {score_text(detector, q.score)}"
    )


@user_errors
def verify_photos(
    photo1: Any,
    photo2: Any,
    model: str | None = None,
    face1: int | None = None,
    face2: int | None = None,
    detector: str | None = None,
) -> Verified:
    """Verify tab: are the chosen faces of two photos the same person? (faces found by
    `detector`, default auto)

    Returns `Verified`: its `faces` (`faces_state`) is all `pick_faces` needs; it goes to the
    browser and the server keeps none of it.

    >>> verify_photos("a.jpg", "b.jpg")[6]["verdict"]
    'same'
    """
    start = time.perf_counter()
    images = take_photos([photo1, photo2], EXPIRED_PAIR)
    read_ms = 1000 * (time.perf_counter() - start)
    announce_first_use("identity", model)
    r = verify(
        images[0],
        images[1],
        model=model or None,
        face1=_face_number(face1),
        face2=_face_number(face2),
        detector=detector or None,
        every_face=True,
    )
    faces = faces_state(images, r)
    stages = {k: v for k, v in r.timings.items() if k != "total"}
    timings = {"read": read_ms, **stages}
    timings["total"] = sum(timings.values())
    shown = _comparison(faces, replace(r, timings=timings))
    gauge = shown.verdict + f'<div style="color:#777;font-size:.9em">{ms_text(timings)}</div>'
    note = fallback_note(detector, r.detector)
    if note:
        gauge += notes_html([note])
        shown.details["detector_note"] = note
    counts = [len(photo["faces"]) for photo in faces["photos"]]
    return Verified(
        gauge,
        shown.shown1,
        shown.shown2,
        shown.crops,
        _face_picker(counts[0], r.chosen[0], "Face in photo 1"),
        _face_picker(counts[1], r.chosen[1], "Face in photo 2"),
        shown.details,
        faces,
    )


@user_errors
def pick_faces(faces: dict | None, face1: int | None = None, face2: int | None = None) -> Picked:
    """Verify tab, another face picked: the comparison recomputed from the `faces` that
    `verify_photos` returned alone (no photo, no model run).

    Returns `Picked`: the maps and block removal emptied (they were of the previous faces).

    >>> pick_faces(verify_photos("group.jpg", "b.jpg")[7], face1=2)[4]["images"][0]["chosen"]
    2
    """
    if not faces:
        raise FaceresError(NOT_RUN)
    return Picked(*_comparison(faces, _compared(faces, face1, face2)), "", "")


@user_errors
def explain_faces(faces: dict | None, face1: int | None = None, face2: int | None = None) -> str:
    """Verify tab, "Explain": for the chosen faces, which regions raise the similarity (green) and
    which lower it (red), over the aligned crops `verify_photos` sent to the browser (no photo
    needed; `faceres.identity.explain.explain_crops`).

    Returns the maps as HTML.

    >>> "supporting" in explain_faces(verify_photos("a.jpg", "b.jpg")[7])
    True
    """
    result, networks = _chosen_crops(faces, face1, face2)
    start = time.perf_counter()
    shown = [
        _network_maps(name, crops, result.chosen, len(networks) > 1) for name, crops in networks
    ]
    ms = 1000 * (time.perf_counter() - start)
    return (
        '<div style="font-family:sans-serif"><b>Why this score</b>: green regions raise the '
        "similarity, red ones pull it down (gradient of the cosine similarity times each pixel's "
        "difference from the face's mean colour: how much the similarity would change, to first "
        "order, without them; <code>faceres eval explain</code> measures how much more masking "
        "the green lowers the similarity than masking random pixels; masking the red does not "
        f"raise it). Maps in {ms:.0f} ms.{''.join(shown)}</div>"
    )


def _network_maps(name: str, crops: list[np.ndarray], chosen: tuple[int, int], named: bool) -> str:
    """One network's maps of the two crops, as HTML (headed by its name when `named`)."""
    ex = explain_crops(crops[0], crops[1], registry.load_task("identity", name))
    captions = [
        f"photo {k}, face {n}: supporting {stats['supporting']:+.3f}, opposing "
        f"{stats['opposing']:+.3f}"
        for k, (stats, n) in enumerate(zip(ex.to_dict()["maps"], chosen, strict=True), 1)
    ]
    label = f"<code>{html.escape(name)}</code>: similarity" if named else "Similarity"
    return (
        f"<br>{label} of these two crops <b>{ex.similarity:.3f}</b> (the verdict also "
        f"averages a second alignment)<br>{figures_html(list(ex.overlays()), captions)}"
    )


def _chosen_crops(
    faces: dict | None, face1: Any, face2: Any
) -> tuple[VerifyResult, list[tuple[str, list[np.ndarray]]]]:
    """The comparison and, per network (the model, or each member of a fused model), its name
    and the two chosen aligned crops, decoded from the faces JSON."""
    if not faces:
        raise FaceresError(NOT_RUN)
    result = _compared(faces, face1, face2)  # checks the JSON and the picks
    chosen = [
        photo["faces"][n - 1] for photo, n in zip(faces["photos"], result.chosen, strict=True)
    ]
    if not result.members:
        return result, [(result.model, [_decode(face["crop"]) for face in chosen])]
    return result, [
        (name, [_decode(face["member_crops"][i]) for face in chosen])
        for i, (name, _) in enumerate(result.members)
    ]


def _decode(uri: str) -> np.ndarray:
    """A crop from its data URI (checked by `_compared`)."""
    return load_image(base64.b64decode(uri.partition(",")[2]))


@user_errors
def remove_identity_block(
    faces: dict | None, face1: int | None = None, face2: int | None = None, block: int | None = 0
) -> str:
    """Verify tab, "remove a block": the chosen faces' similarity with deletable block number
    `block` (from 0) of the identity network removed at test time (Veit et al. 2016), next to
    the whole network's, from the crops the browser holds.

    Returns HTML.
    """
    result, networks = _chosen_crops(faces, face1, face2)
    model = result.model
    if result.members:
        raise FaceresError(
            f"{model} fuses {', '.join(name for name, _ in result.members)}: it has no blocks of "
            "its own. Choose one of them as the model to remove a block."
        )
    crops = networks[0][1]
    try:
        name = block_names(registry.load(model).model, [int(block or 0)])[0]
    except (ModelError, ValueError, IndexError, TypeError) as exc:
        raise FaceresError(f"{model} has no such block: {exc}") from None
    whole = identity_embeddings(model, crops)
    cut = identity_embeddings(model, crops, [name])
    meta = registry.model_config(model)["faceres"]
    a, b = judge(whole[0], whole[1], [], meta), judge(cut[0], cut[1], [], meta)
    return (
        f"<div>Without block <code>{name}</code> of <code>{html.escape(model)}</code>: "
        f"similarity <b>{b.similarity:.3f}</b> ({b.verdict}) against {a.similarity:.3f} for the "
        "whole network on the "
        "same crops (the verdict above averages a second alignment).</div>"
    )


@dataclass
class VerifyUI:
    """The tab's components, as `_layout` made them (what `_events` wires together); a handler's
    named outputs (`Verified`, `Picked`, ...) are wired to the components of the same names."""

    photos: list[gr.Image]
    picker1: gr.Dropdown
    picker2: gr.Dropdown
    model: gr.Dropdown
    detector: gr.Dropdown
    run: gr.Button
    verdict: gr.HTML
    shown1: gr.HTML
    shown2: gr.HTML
    crops: gr.HTML
    explain: gr.Button
    maps: gr.HTML
    block: gr.Dropdown
    remove: gr.Button
    lesion: gr.HTML
    details: gr.JSON
    faces: gr.JSON

    def outputs(self, kind: type) -> list:
        """The components of the named outputs `kind` (a NamedTuple), in its order."""
        return wired(kind, vars(self))


def build() -> None:
    """The tab's inputs, outputs and events (inside a `gr.Tab`)."""
    models = model_choices("identity")
    if not models:
        gr.Markdown(missing_models("No identity model", "face verification"))
        return
    gr.Markdown(
        "Two photos: are they the same person? Every face found is boxed; the green one "
        "is compared (the largest by default, pick another below after a first run). "
        "Run again with another model or detector without uploading again: the photos stay "
        "in memory for this page (never on disk) until it closes or for 15 idle minutes."
    )
    _events(_layout(models))


def _layout(models: list[str]) -> VerifyUI:
    photos, pickers = [], []
    with gr.Row():
        for i in (1, 2):
            with gr.Column():
                photos.append(photo_input(f"Photo {i}", f"verify-photo{i}"))
                pickers.append(
                    gr.Dropdown(
                        choices=[],
                        value=None,
                        label=f"Face in photo {i}",
                        visible=False,
                        elem_id=f"verify-face{i}",
                    )
                )
    with gr.Row(equal_height=True):
        model = gr.Dropdown(models, value=models[0], label="Identity model", scale=2)
        detector = detector_input("verify-detector")
        run = gr.Button("Verify", variant="primary", elem_id="verify-run", scale=1)
    verdict = gr.HTML(elem_id="verify-verdict")
    with gr.Row():
        shown = [gr.HTML(), gr.HTML()]
    with gr.Row():
        crops = gr.HTML()
        with gr.Column():
            explain = gr.Button("Explain: why this score?", elem_id="verify-explain")
            maps = gr.HTML(elem_id="verify-maps")
            with gr.Row(equal_height=True):
                blocks = block_choices(models[0])
                block = gr.Dropdown(
                    blocks,
                    value=blocks[0][1] if blocks else None,
                    label="Remove a block of the identity network (Veit et al. 2016)",
                    elem_id="verify-block",
                )
                remove = gr.Button("Remove and compare", elem_id="verify-remove")
            lesion = gr.HTML(elem_id="verify-lesion")
    with gr.Accordion("Details", open=False):
        details = gr.JSON(elem_id="verify-details")
    faces = gr.JSON(visible=False)  # in the browser only: what a new face pick needs
    return VerifyUI(
        photos,
        *pickers,
        model,
        detector,
        run,
        verdict,
        *shown,
        crops,
        explain,
        maps,
        block,
        remove,
        lesion,
        details,
        faces,
    )


def _events(ui: VerifyUI) -> None:
    face1, face2 = ui.picker1, ui.picker2
    gr.on(
        [photo.change for photo in ui.photos],
        clear_photo,
        None,
        ui.outputs(Reset),
        api_name="clear_photo",
        api_visibility="private",
    )
    ui.detector.input(
        change_detector,
        [face1, face2],
        ui.outputs(Reset),
        api_name="change_detector",
        api_visibility="private",
        preprocess=False,
    )
    clear_then_run(
        ui.run.click,
        clear_results,
        verify_photos,
        [*ui.photos, ui.model, face1, face2, ui.detector],
        ui.outputs(Verified),
        api_name="verify",
        main=ui.verdict,
        cleared=ui.outputs(Cleared),
    )
    pick = gr.on(
        [face1.input, face2.input],
        pick_faces,
        [ui.faces, face1, face2],
        ui.outputs(Picked),
        api_name="pick_faces",
        preprocess=False,
    )
    keep_errors(pick, ui.outputs(Picked), ui.verdict)
    clear_then_run(
        ui.explain.click,
        clear_html,
        explain_faces,
        [ui.faces, face1, face2],
        [ui.maps],
        api_name="explain",
        main=ui.maps,
    )
    clear_then_run(
        ui.remove.click,
        clear_html,
        remove_identity_block,
        [ui.faces, face1, face2, ui.block],
        [ui.lesion],
        api_name="remove_identity_block",
        main=ui.lesion,
    )
