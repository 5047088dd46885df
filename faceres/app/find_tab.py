"""The Find tab: where is this person among some photos, and who is in them.

Every face of every photo goes through the face pipeline (`faceres.face.pipeline`) and is searched
with the index's FAISS search, or grouped by person (`faceres.search.query.cluster_embeddings`), in
the request: nothing is indexed, kept or written.

>>> find_person(probe, [photo1, photo2])[1]["matches"][0]["verdict"]
'same'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import gradio as gr
import numpy as np

from faceres.app.common import (
    announce_first_use,
    clear_then_run,
    detector_input,
    missing_models,
    model_choices,
    notes_html,
    user_errors,
    wired,
)
from faceres.app.render import figures_html
from faceres.app.uploads import MAX_MULTIPLE_FILES, take_photo
from faceres.detect import fallback_note
from faceres.errors import FaceresError, ImageError, NoFaceError
from faceres.face.pipeline import FacePipeline, FaceRecord
from faceres.identity import calibration, judge
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


@dataclass(frozen=True)
class Photo:
    """One photo that decoded: its number as uploaded (from 1), its name and pixels."""

    number: int
    name: str
    image: np.ndarray


def _name(value: Any, number: int) -> str:
    name = value.get("orig_name") if isinstance(value, dict) else getattr(value, "orig_name", None)
    return f"photo {number}" + (f" ({name})" if isinstance(name, str) and name else "")


def _read(values: list[Any]) -> tuple[list[Photo], list[str]]:
    """The photos that decode, and a note per photo that does not (skipped: one bad file does
    not fail the others)."""
    read, skipped = [], []
    for number, value in enumerate(values, start=1):
        try:
            read.append(Photo(number, _name(value, number), take_photo(value)))
        except ImageError as exc:
            skipped.append(f"{_name(value, number)} skipped: {exc}")
    if not read:
        raise ImageError("None of the photos could be read: " + " · ".join(skipped))
    if sum(p.image.shape[0] * p.image.shape[1] for p in read) > MAX_TOTAL_PIXELS:
        raise FaceresError(
            f"The photos hold more than {MAX_TOTAL_PIXELS // 1_000_000} megapixels together; "
            "send fewer or smaller photos."
        )
    return read, skipped


def face_crop(image: np.ndarray, box: list[float], margin: float = 0.25) -> np.ndarray:
    """The face's box with a margin, clipped to the image (for display)."""
    x, y, w, h = box
    x0, y0 = max(0, int(x - margin * w)), max(0, int(y - margin * h))
    x1, y1 = (
        min(image.shape[1], int(x + w * (1 + margin))),
        min(image.shape[0], int(y + h * (1 + margin))),
    )
    return np.ascontiguousarray(image[y0:y1, x0:x1])


def _faces(
    photos: list[Photo], model: str | None, detector: str | None
) -> tuple[FacePipeline, list[tuple[Photo, FaceRecord]]]:
    """The face pipeline and every face of `photos`, as (photo, face record) pairs."""
    announce_first_use("identity", model)
    pipeline = FacePipeline.for_model(model, detector)
    found = pipeline.read([p.image for p in photos])
    return pipeline, [(p, r) for p, records in zip(photos, found, strict=True) for r in records]


class Found(NamedTuple):
    """`find_person`'s and `group_photos`' outputs: the faces shown, and the details."""

    shown: str
    details: dict | None


def clear_results() -> Found:
    """The tab's results emptied (new photos, or before each run)."""
    return Found("", None)


@user_errors
def find_person(
    probe: Any, photos: Any, model: str | None = None, detector: str | None = None
) -> Found:
    """Find tab: the faces among `photos` most like the probe photo's largest face, best first,
    with verification's verdict (`faceres.identity.judge`)."""
    values = _photos(photos)
    probe_photo = Photo(0, "probe", take_photo(probe))
    read, skipped = _read(values)
    pipeline, probe_faces = _faces([probe_photo], model, detector or None)
    if not probe_faces:
        raise NoFaceError("No face found in the probe photo; use one where the face is clear.")
    _, faces = _faces(read, pipeline.model, detector or None)
    if not faces:
        raise NoFaceError("No face found in any of the photos.")
    probe_face = probe_faces[0][1]
    index = build_faiss(
        np.arange(len(faces), dtype=np.int64),
        np.stack([f.embedding for _, f in faces]).astype(np.float32),
    )
    _, ids = index.search(probe_face.embedding[None].astype(np.float32), min(TOP, len(faces)))
    found = [faces[int(i)] for i in ids[0]]
    meta = calibration(pipeline.model)
    verdicts = [
        judge(probe_face.embedding, face.embedding, (probe_face.quality, face.quality), meta)
        for _, face in found
    ]
    matches = [
        {
            "photo": photo.number,
            "name": photo.name,
            "face": face.number,
            "box": face.to_dict()["box"],
            "similarity": round(v.similarity, 6),
            "verdict": v.verdict,
        }
        for (photo, face), v in zip(found, verdicts, strict=True)
    ]
    shown = (
        "<b>Best matches for the probe's face</b> (cosine similarity, verdict)<br>"
        + figures_html(
            [face_crop(photo.image, face.face.box) for photo, face in found],
            [
                f"{m['name']}, face {m['face']}: {m['similarity']:.3f} {m['verdict']}"
                for m in matches
            ],
            width=150,
        )
        + notes_html([*skipped, fallback_note(detector, faces[0][1].face.detector)])
    )
    details = {
        "model": pipeline.model,
        "faces_searched": len(faces),
        "matches": matches,
        "skipped": skipped,
    }
    return Found(shown, details)


@user_errors
def group_photos(photos: Any, model: str | None = None, detector: str | None = None) -> Found:
    """Find tab, "group": every face of `photos` grouped by person (`cluster_embeddings` with
    the model's `cluster_settings`; faces matching nobody are unassigned)."""
    read, skipped = _read(_photos(photos))
    pipeline, faces = _faces(read, model, detector or None)
    if not faces:
        raise NoFaceError("No face found in any of the photos.")
    threshold, linkage = cluster_settings(pipeline.model)
    labels = cluster_embeddings(np.stack([f.embedding for _, f in faces]), threshold, linkage)
    rows, groups = [], []
    for g in [*range(int(labels.max(initial=-1)) + 1), -1]:
        members = [faces[i] for i in np.flatnonzero(labels == g)]
        if not members:
            continue
        title = f"person {g + 1}" if g >= 0 else "unassigned (like no other face here)"
        groups.append(
            {
                "group": title,
                "faces": [
                    {"photo": p.number, "name": p.name, "face": f.number} for p, f in members
                ],
            }
        )
        rows.append(
            f"<div><b>{title}</b>: {len(members)} face(s)<br>"
            + figures_html(
                [face_crop(p.image, f.face.box) for p, f in members],
                [f"{p.name}, face {f.number}" for p, f in members],
                width=110,
            )
            + "</div>"
        )
    details = {
        "model": pipeline.model,
        "threshold": threshold,
        "linkage": linkage,
        "groups": groups,
        "skipped": skipped,
    }
    notes = notes_html([*skipped, fallback_note(detector, faces[0][1].face.detector)])
    return Found("".join(rows) + notes, details)


def build() -> None:
    """The tab's inputs, outputs and events (inside a `gr.Tab`)."""
    models = model_choices("identity")
    if not models:
        gr.Markdown(missing_models("No identity model", "finding people"))
        return
    gr.Markdown(
        f"Where is this person among your photos, and who is in them? Up to "
        f"{MAX_MULTIPLE_FILES} photos, held in memory for this page only (at most 15 idle "
        "minutes), never written to disk."
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
    outputs = wired(Found, {"shown": shown, "details": details})
    gr.on([probe.change, photos.change], clear_results, None, outputs, api_visibility="private")
    clear_then_run(
        find.click,
        clear_results,
        find_person,
        [probe, photos, model, detector],
        outputs,
        api_name="find",
        main=shown,
    )
    clear_then_run(
        group.click,
        clear_results,
        group_photos,
        [photos, model, detector],
        outputs,
        api_name="group",
        main=shown,
    )
