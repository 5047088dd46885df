"""The Find tab: where is this person among some photos, and who is in them.

Every face of every photo is embedded (`faceres.search.embed.embed_images`) and searched with the
index's FAISS search, or grouped by person (`faceres.search.query.cluster_embeddings`), in the
request: nothing is indexed, kept or written.

>>> find_person(probe, [photo1, photo2])[1]["matches"][0]["verdict"]
'same'
"""

from __future__ import annotations

from typing import Any

import gradio as gr
import numpy as np

from faceres import registry
from faceres.app.common import detector_input, missing_models, model_choices, user_errors
from faceres.app.render import figures_html
from faceres.app.uploads import MAX_MULTIPLE_FILES, take_photos
from faceres.errors import FaceresError, NoFaceError
from faceres.identity import decide, load_identity_model
from faceres.search.embed import embed_images
from faceres.search.query import cluster_embeddings, cluster_settings
from faceres.search.store import build_faiss

MAX_TOTAL_PIXELS = 200_000_000
"""Pixels of all the photos of one request together (about 16 twelve-megapixel photos)."""
TOP = 5
"""Matches shown for the probe's face."""


def _photos(values: Any) -> list[dict]:
    photos = values if isinstance(values, list) else [values] if values else []
    if not photos:
        raise FaceresError("Add some photos to look in (up to 30).")
    if len(photos) > MAX_MULTIPLE_FILES:
        raise FaceresError(f"At most {MAX_MULTIPLE_FILES} photos at a time ({len(photos)} given).")
    return photos


def _name(value: Any, number: int) -> str:
    name = value.get("orig_name") if isinstance(value, dict) else None
    return f"photo {number}" + (f" ({name})" if isinstance(name, str) and name else "")


def _read(values: list[Any]) -> list[np.ndarray]:
    images = take_photos(values)
    if sum(image.shape[0] * image.shape[1] for image in images) > MAX_TOTAL_PIXELS:
        raise FaceresError(
            f"The photos hold more than {MAX_TOTAL_PIXELS // 1_000_000} megapixels together; "
            "send fewer or smaller photos."
        )
    return images


def face_crop(image: np.ndarray, box: list[float], margin: float = 0.25) -> np.ndarray:
    """The face's box with a margin, clipped to the image (for display)."""
    x, y, w, h = box
    x0, y0 = max(0, int(x - margin * w)), max(0, int(y - margin * h))
    x1, y1 = (
        min(image.shape[1], int(x + w * (1 + margin))),
        min(image.shape[0], int(y + h * (1 + margin))),
    )
    return np.ascontiguousarray(image[y0:y1, x0:x1])


def _faces(images: list[np.ndarray], names: list[str], model: str | None, detector: str | None):
    loaded = load_identity_model(model)
    found = embed_images(images, names, loaded, detector or None)
    faces = [(i, f) for i, (_, _, records, _) in enumerate(found) for f in records]
    return loaded, faces


@user_errors
def find_person(
    probe: Any, photos: Any, model: str | None = None, detector: str | None = None
) -> tuple[str, dict]:
    """Find tab: the faces among `photos` most like the probe photo's largest face, best first,
    with verification's verdict.

    Returns (matches HTML, details dict).
    """
    values = _photos(photos)
    images = _read([probe, *values])
    names = [_name(v, n) for n, v in enumerate(values, start=1)]
    loaded, probe_faces = _faces(images[:1], ["probe"], model, detector)
    if not probe_faces:
        raise NoFaceError("No face found in the probe photo; use one where the face is clear.")
    _, faces = _faces(images[1:], names, loaded.name, detector)
    if not faces:
        raise NoFaceError("No face found in any of the photos.")
    meta = registry.model_config(loaded.name)["faceres"]
    index = build_faiss(
        np.arange(len(faces), dtype=np.int64), np.stack([f.vector for _, f in faces])
    )
    sims, ids = index.search(probe_faces[0][1].vector[None], min(TOP, len(faces)))
    matches = []
    for s, i in zip(sims[0], ids[0], strict=True):
        photo, face = faces[int(i)]
        matches.append(
            {
                "photo": photo + 1,
                "name": names[photo],
                "face": face.face,
                "box": face.box,
                "similarity": round(float(s), 6),
                "verdict": decide(float(s), meta["threshold"], meta["band"]),
            }
        )
    html = (
        "<b>Best matches for the probe's face</b> (cosine similarity, verdict)<br>"
        + figures_html(
            [face_crop(images[m["photo"]], m["box"]) for m in matches],
            [
                f"{m['name']}, face {m['face']}: {m['similarity']:.3f} {m['verdict']}"
                for m in matches
            ],
            width=150,
        )
    )
    return html, {"model": loaded.name, "faces_searched": len(faces), "matches": matches}


@user_errors
def group_photos(photos: Any, model: str | None = None, detector: str | None = None) -> tuple:
    """Find tab, "group": every face of `photos` grouped by person (`cluster_embeddings` with
    the model's `cluster_settings`; faces matching nobody are unassigned).

    Returns (groups HTML, details dict).
    """
    values = _photos(photos)
    images = _read(values)
    names = [_name(v, n) for n, v in enumerate(values, start=1)]
    loaded, faces = _faces(images, names, model, detector)
    if not faces:
        raise NoFaceError("No face found in any of the photos.")
    threshold, linkage = cluster_settings(loaded.name)
    labels = cluster_embeddings(np.stack([f.vector for _, f in faces]), threshold, linkage)
    rows, groups = [], []
    for g in [*range(int(labels.max(initial=-1)) + 1), -1]:
        members = [faces[i] for i in np.flatnonzero(labels == g)]
        if not members:
            continue
        title = f"person {g + 1}" if g >= 0 else "unassigned (like no other face here)"
        groups.append(
            {
                "group": title,
                "faces": [{"photo": p + 1, "name": names[p], "face": f.face} for p, f in members],
            }
        )
        rows.append(
            f"<div><b>{title}</b>: {len(members)} face(s)<br>"
            + figures_html(
                [face_crop(images[p], f.box) for p, f in members],
                [f"{names[p]}, face {f.face}" for p, f in members],
                width=110,
            )
            + "</div>"
        )
    details = {"model": loaded.name, "threshold": threshold, "linkage": linkage, "groups": groups}
    return "".join(rows), details


def build() -> None:
    """The tab's inputs, outputs and events (inside a `gr.Tab`)."""
    models = model_choices("identity")
    if not models:
        gr.Markdown(missing_models("No identity model", "finding people"))
        return
    gr.Markdown(
        f"Where is this person among your photos, and who is in them? Up to "
        f"{MAX_MULTIPLE_FILES} photos, read in memory for this request only and not kept."
    )
    with gr.Row():
        probe = gr.Image(
            label="The person to find",
            type="filepath",
            height=260,
            sources=["upload", "webcam", "clipboard"],
            elem_id="find-probe",
        )
        photos = gr.File(
            label=f"Photos to look in (up to {MAX_MULTIPLE_FILES})",
            file_count="multiple",
            file_types=["image"],
            elem_id="find-photos",
        )
    with gr.Row(equal_height=True):
        model = gr.Dropdown(models, value=models[0], label="Identity model", scale=2)
        detector = detector_input()
        find = gr.Button("Find", variant="primary", elem_id="find-run", scale=1)
        group = gr.Button("Group by person", elem_id="find-group", scale=1)
    shown = gr.HTML(elem_id="find-result")
    with gr.Accordion("Details", open=False):
        details = gr.JSON()
    find.click(
        find_person,
        [probe, photos, model, detector],
        [shown, details],
        api_name="find",
        preprocess=False,
    )
    group.click(
        group_photos,
        [photos, model, detector],
        [shown, details],
        api_name="group",
        preprocess=False,
    )
