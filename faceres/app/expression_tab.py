"""The Expression tab: every face of a photo boxed and labelled, with its class probabilities;
the same live on the webcam (faces tracked, probabilities smoothed) and on an uploaded video.

>>> analyze_photo(upload)[-1]["faces"][0]["label"]
'happy'
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import gradio as gr
import numpy as np

from faceres import registry
from faceres.app.common import (
    announce_first_use,
    clear_then_run,
    detector_input,
    missing_models,
    ms_text,
    photo_input,
    user_errors,
    wired,
)
from faceres.app.render import (
    draw_faces,
    figures_html,
    image_html,
    timeline_html,
    video_html,
)
from faceres.app.studies import load_study
from faceres.app.uploads import UploadRefused, forget_upload, in_upload_folder, take_photo
from faceres.detect import fallback_note
from faceres.errors import FaceresError
from faceres.expression import analyze_expression
from faceres.expression.live import analyze_frame, analyze_video, frame_record
from faceres.expression.video import (
    MAX_VIDEO_BYTES,
    MAX_VIDEO_FRAMES,
    MAX_VIDEO_SECONDS,
    VideoError,
    WebmWriter,
    frame_step,
    video_info,
)
from faceres.identity.explain import explain_expression

MAX_FACE_LABELS = 6
"""Faces of one photo given their own probability panel (largest first)."""
STREAM_EVERY_S = 0.1
"""How often the browser sends a webcam frame (10 per second); a frame that arrives while the
last one is still being analysed replaces any waiting one, so a slow server drops frames."""
STREAM_TIME_LIMIT_S = 60
"""A live session stops after this long (start it again to go on): one runs at a time, and
one whose browser left holds its place until then."""
LIVE_MAX_SIDE = 640
"""Longer side of the annotated frames sent back live."""
VIDEO_MAX_SIDE = 480
"""Longer side of the annotated video sent back (its size grows with its pixels)."""
VIDEO_FPS = 10
"""Frames per second of video analysed (and of the annotated video sent back)."""
MAX_TIMELINES = 4
"""Tracked faces of a video given a timeline plot (the longest tracks)."""
DATASET_NAMES = {"fer2013": "FER2013", "ferplus": "FER+"}
"""Registry metric prefixes → dataset names shown with each model's accuracy."""


def study_models() -> set[str]:
    """Names of the depth study's models, as committed (`faceres.app.studies.load_study`)."""
    try:
        return {row["name"] for row in load_study("depth")["rows"]}
    except (FaceresError, KeyError):
        return set()


def accuracy_text(metrics: dict) -> str:
    """A model's measured test accuracy in words, from its registry metrics.

    >>> accuracy_text({"fer2013-privatetest/accuracy": 0.72694})
    'FER2013 PrivateTest 72.7%'
    """
    for key, value in metrics.items():
        data, _, metric = key.partition("-privatetest/")
        if metric == "accuracy":
            return f"{DATASET_NAMES.get(data, data)} PrivateTest {100 * value:.1f}%"
    return "accuracy not measured"


def model_options(study: bool = False) -> list[tuple[str, str]]:
    """(label, name) of the registry's expression models for the dropdown: production models
    first (the default one leading), each with its measured accuracy; the depth study's models
    after them when `study`."""
    entries = sorted(registry.list_models("expression"), key=lambda e: not e.get("default"))
    studied = study_models()
    production = [e for e in entries if e["name"] not in studied]
    options = [
        (f"{e['name']} — {accuracy_text(e.get('metrics', {}))}", e["name"]) for e in production
    ]
    if study or not production:
        options += [
            (f"{e['name']} — {accuracy_text(e.get('metrics', {}))} · depth study", e["name"])
            for e in entries
            if e["name"] in studied
        ]
    return options


def show_study_models(study: bool, model: str | None = None) -> gr.Dropdown:
    """The model dropdown with or without the depth study's models (keeping the choice while it
    is listed)."""
    options = model_options(study)
    names = [name for _, name in options]
    return gr.Dropdown(choices=options, value=model if model in names else names[0])


class PhotoAnalysis(NamedTuple):
    """`analyze_photo`'s outputs: the annotated photo, one probability panel per face (the
    `MAX_FACE_LABELS` largest; the rest hidden), the summary, the maps (Grad-CAM of the class
    chosen, per face) and the details (`ExpressionResult.to_dict`)."""

    shown: str
    face1: gr.Label
    face2: gr.Label
    face3: gr.Label
    face4: gr.Label
    face5: gr.Label
    face6: gr.Label
    summary: str
    maps: str
    details: dict | None


def clear_photo_results() -> PhotoAnalysis:
    """The photo's results emptied (a new photo, or before each run)."""
    return PhotoAnalysis("", *[gr.Label(value=None, visible=False)] * MAX_FACE_LABELS, "", "", None)


class VideoAnalysis(NamedTuple):
    """`analyze_video_file`'s outputs: the annotated video, the timeline, summary and details."""

    annotated: str
    timeline: str
    summary: str
    details: dict | None


def clear_video_results() -> VideoAnalysis:
    """The video's results emptied."""
    return VideoAnalysis("", "", "", None)


def _labels(faces: list) -> list[gr.Label]:
    """One probability panel per face (the `MAX_FACE_LABELS` largest), the rest hidden."""
    labels = [
        gr.Label(value=dict(f.probabilities), label=f"Face {i + 1}: {f.label}", visible=True)
        for i, f in enumerate(faces[:MAX_FACE_LABELS])
    ]
    return labels + [gr.Label(value=None, visible=False)] * (MAX_FACE_LABELS - len(labels))


def _summary(r: Any, timings: dict[str, float], detector: str | None) -> str:
    """The photo's one-line summary (faces, model, timings) and the detector fallback note."""
    if not r.faces:
        summary = "No face found. Try a photo where the face is larger, frontal and well lit."
    else:
        more = len(r.faces) > MAX_FACE_LABELS
        shown = f" (probabilities for the {MAX_FACE_LABELS} largest)" if more else ""
        summary = f"{len(r.faces)} face(s){shown} · model `{r.model}` · {ms_text(timings)}"
    note = fallback_note(detector, r.detector)
    return summary + (f"\n\n{note}" if note else "")


def _maps(r: Any) -> str:
    """Where the model looked for the class it chose, per face (Grad-CAM), as HTML."""
    cams = explain_expression(r).faces[:MAX_FACE_LABELS]
    if not cams:
        return ""
    return "<b>Where the model looked</b> (Grad-CAM of the class it chose; red: most)<br>" + (
        figures_html(
            [c.overlay() for c in cams],
            [f"face {n}: {c.label}" for n, c in enumerate(cams, start=1)],
            width=150,
        )
    )


@user_errors
def analyze_photo(
    photo: Any, model: str | None = None, detector: str | None = None
) -> PhotoAnalysis:
    """Expression tab: every face (found by `detector`, default auto) boxed and labelled,
    probabilities for the largest ones, and where the model looked (`PhotoAnalysis`)."""
    start = time.perf_counter()
    image = take_photo(photo)
    read_ms = 1000 * (time.perf_counter() - start)
    announce_first_use("expression", model)
    r = analyze_expression(image, model=model or None, detector=detector or None)
    timings = {"read": read_ms, **r.timings}
    faces = r.faces
    drawn = draw_faces(
        image,
        [f.face for f in faces],
        [f"{i + 1}: {f.label} {f.probabilities[f.label]:.0%}" for i, f in enumerate(faces)],
    )
    labels = _labels(faces)
    summary = _summary(r, timings, detector)
    maps = _maps(r)
    details = replace(r, timings=timings).to_dict()
    return PhotoAnalysis(
        image_html(drawn, f"{len(faces)} face(s) with expressions"),
        *labels,
        summary,
        maps,
        details,
    )


@user_errors
def stream_frame(
    frame: Any, model: str | None = None, detector: str | None = None, state: Any = None
) -> tuple[str, str, dict]:
    """Live camera: one webcam frame (an inline JPEG from the browser), every face boxed and
    labelled with its smoothed expression, faces tracked from the frame before through `state`
    (the JSON this returned last time, kept by the browser: boxes, track ids, smoothed
    probabilities, no pixels).

    Returns (annotated frame HTML, frame rate and timing Markdown, the state for the next frame).
    """
    start = time.perf_counter()
    image = take_photo(frame)
    live = analyze_frame(image, state, model or None, detector or None)
    drawn = draw_faces(
        image,
        [f.expression.face for f in live.faces],
        [f"{f.track}: {f.label} {f.smoothed[f.label]:.0%}" for f in live.faces],
    )
    shown = image_html(drawn, f"{len(live.faces)} face(s) live", max_side=LIVE_MAX_SIDE)
    rate = f"{live.fps:.1f} frames/s" if live.fps else "starting"
    faces = ", ".join(f"{f.track}: {f.label}" for f in live.faces)
    text = (
        f"**{rate}** · {len(live.faces)} face(s){f' ({faces})' if faces else ''} · "
        f"{1000 * (time.perf_counter() - start):.0f} ms this frame · model `{live.result.model}`"
    )
    return shown, text, live.state


def video_upload(value: Any) -> str:
    """The path of an uploaded video (Gradio's VideoData or FileData; a path from Python), only
    from Gradio's upload folder when it comes from a request."""
    if isinstance(value, dict) and isinstance(value.get("video"), dict):
        value = value["video"]
    if value is None:
        raise VideoError("Upload a video first.")
    if isinstance(value, (str, Path)):
        return str(value)
    path = value.get("path") if isinstance(value, dict) else None
    if not isinstance(path, str) or not in_upload_folder(path):
        raise UploadRefused()
    if not Path(path).exists():
        raise VideoError("Videos are not kept after a request: upload the video again.")
    return path


def _small(image: np.ndarray, side: int) -> np.ndarray:
    """`image` scaled to at most `side` pixels on its longer side."""
    h, w = image.shape[:2]
    scale = min(1.0, side / max(h, w))
    if scale == 1.0:
        return image
    size = (round(w * scale), round(h * scale))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


@user_errors
def analyze_video_file(
    video: Any, model: str | None = None, detector: str | None = None
) -> VideoAnalysis:
    """Video: `VIDEO_FPS` frames per second of an uploaded video analysed, faces tracked, and
    an annotated video (WebM, inline) and a timeline of each tracked face's probabilities sent
    back (`VideoAnalysis`; its details hold per-frame, per-face results). The upload is deleted
    once read; the annotated video's file exists only while it is encoded.
    """
    start = time.perf_counter()
    path = video_upload(video)
    announce_first_use("expression", model)
    try:
        info = video_info(path)
        rate = info.fps / frame_step(info.fps, VIDEO_FPS)  # frames analysed per second
        records, used, name = [], None, None
        with WebmWriter(rate) as writer:
            for frame in analyze_video(path, model or None, detector or None, VIDEO_FPS):
                drawn = draw_faces(
                    frame.image,
                    [f.expression.face for f in frame.faces],
                    [f"{f.track}: {f.label} {f.smoothed[f.label]:.0%}" for f in frame.faces],
                )
                writer.write(_small(drawn, VIDEO_MAX_SIDE))
                records.append(frame_record(frame))
                used, name = frame.result.detector, frame.result.model
            webm = writer.finish()
    finally:
        forget_upload(path)
    tracks = _tracks(records)
    seconds = time.perf_counter() - start
    summary = (
        f"{len(records)} frames analysed ({rate:.3g} per second of video, "
        f"{info.seconds:.1f} s) · {len(tracks)} tracked face(s) · model `{name}` · "
        f"{seconds:.1f} s"
    )
    if not tracks:
        summary = "No face found in the video. " + summary
    note = fallback_note(detector, used)
    summary += f"\n\n{note}" if note else ""
    details = {
        "model": name,
        "detector": used,
        "video": {
            "fps": round(info.fps, 3),
            "frames": info.frames,
            "seconds": round(info.seconds, 2),
            "analysed_fps": round(rate, 3),
        },
        "tracks": [
            {k: v for k, v in t.items() if k not in ("times", "probabilities")} for t in tracks
        ],
        "frames": records,
    }
    return VideoAnalysis(video_html(webm, "annotated video"), _timeline(tracks), summary, details)


def _timeline(tracks: list[dict]) -> str:
    """The `MAX_TIMELINES` longest tracks' probabilities over time, as HTML."""
    longest = sorted(tracks, key=lambda t: -len(t["times"]))[:MAX_TIMELINES]
    return timeline_html(
        [
            (
                f"face {t['track']}: mostly {t['mostly']} ({t['first_s']:.1f}–{t['last_s']:.1f} s)",
                t["times"],
                t["probabilities"],
            )
            for t in longest
        ]
    )


def _tracks(records: list[dict]) -> list[dict]:
    """Per track of `frame_record`s: its frames, span, most frequent class and the series of
    its probabilities (per class, this frame's)."""
    tracks: dict[int, dict] = {}
    for record in records:
        for face in record["faces"]:
            t = tracks.setdefault(
                face["track"],
                {"track": face["track"], "first_s": record["time"], "times": [], "labels": []},
            )
            t["last_s"] = record["time"]
            t["times"].append(record["time"])
            t["labels"].append(face["label"])
            for k, v in face["probabilities"].items():
                t.setdefault("probabilities", {}).setdefault(k, []).append(v)
    for t in tracks.values():
        labels = t.pop("labels")
        t["mostly"], count = Counter(labels).most_common(1)[0]
        t["frames"] = len(labels)
        t["mostly_share"] = round(count / len(labels), 3)
    return list(tracks.values())


def build() -> None:
    """The tab's inputs, outputs and events (inside a `gr.Tab`)."""
    options = model_options()
    if not options:
        gr.Markdown(missing_models("No expression model", "expression recognition"))
        return
    gr.Markdown(
        "A photo, your webcam live, or a video: every face is boxed and labelled with its most "
        "likely expression, with the probability of every class of the model."
    )
    with gr.Row():
        model = gr.Dropdown(
            options,
            value=options[0][1],
            label="Expression model",
            info="measured accuracy on the test set the model was not trained on",
            elem_id="expression-model",
            scale=3,
        )
        study = gr.Checkbox(label="show the depth study's models", value=False, scale=1)
        detector = detector_input("expression-detector")
    study.change(
        show_study_models, [study, model], model, api_name="expression_models", preprocess=False
    )
    with gr.Tabs():
        with gr.Tab("Photo"):
            _photo_tab(model, detector)
        with gr.Tab("Live camera"):
            _live_tab(model, detector)
        with gr.Tab("Video"):
            _video_tab(model, detector)


def _photo_tab(model: gr.Dropdown, detector: gr.Dropdown) -> None:
    with gr.Row():
        with gr.Column():
            photo = photo_input("Photo", "expression-photo")
            button = gr.Button("Analyse", variant="primary", elem_id="expression-run")
        with gr.Column():
            shown = gr.HTML(elem_id="expression-shown")
            summary = gr.Markdown(elem_id="expression-summary")
            maps = gr.HTML(elem_id="expression-maps")
    with gr.Row():
        labels = [gr.Label(visible=False) for _ in range(MAX_FACE_LABELS)]
    with gr.Accordion("Details", open=False):
        details = gr.JSON()
    named = {"shown": shown, "summary": summary, "maps": maps, "details": details}
    named |= {f"face{i}": label for i, label in enumerate(labels, start=1)}
    outputs = wired(PhotoAnalysis, named)
    photo.change(clear_photo_results, None, outputs, api_visibility="private")
    clear_then_run(
        button.click,
        clear_photo_results,
        analyze_photo,
        [photo, model, detector],
        outputs,
        api_name="expression",
        main=shown,
    )


def _live_tab(model: gr.Dropdown, detector: gr.Dropdown) -> None:
    gr.Markdown(
        "Start the webcam: about 10 frames a second are analysed, faces followed from "
        "frame to frame and their probabilities averaged over the last frames. Frames "
        "are analysed in memory and not kept."
    )
    with gr.Row():
        webcam = gr.Image(
            sources=["webcam"], streaming=True, label="Webcam", elem_id="expression-webcam"
        )
        with gr.Column():
            live = gr.HTML(elem_id="expression-live")
            rate = gr.Markdown(elem_id="expression-live-rate")
    tracking = gr.JSON(visible=False, elem_id="expression-live-state")
    webcam.stream(
        stream_frame,
        [webcam, model, detector, tracking],
        [live, rate, tracking],
        api_name="expression_live",
        preprocess=False,
        stream_every=STREAM_EVERY_S,
        time_limit=STREAM_TIME_LIMIT_S,
        concurrency_limit=1,
        show_progress="hidden",
    )


def _video_tab(model: gr.Dropdown, detector: gr.Dropdown) -> None:
    gr.Markdown(
        f"A short video (at most {MAX_VIDEO_SECONDS:.0f} s, {MAX_VIDEO_FRAMES} frames, "
        f"{MAX_VIDEO_BYTES // 2**20} MB, 1920×1080): {VIDEO_FPS} frames per second are "
        "analysed. The video is deleted once read; the annotated one is sent back "
        "inline, not stored."
    )
    with gr.Row():
        with gr.Column():
            video = gr.File(  # no player: browsers cannot preview every codec
                label="Video (mp4, webm, mov, avi, mkv)",
                file_types=["video"],
                elem_id="expression-video",
            )
            button = gr.Button("Analyse video", variant="primary", elem_id="expression-video-run")
        with gr.Column():
            annotated = gr.HTML(elem_id="expression-video-out")
            summary = gr.Markdown(elem_id="expression-video-summary")
    timeline = gr.HTML(elem_id="expression-timeline")
    with gr.Accordion("Per-frame results", open=False):
        details = gr.JSON()
    named = {"annotated": annotated, "timeline": timeline, "summary": summary, "details": details}
    outputs = wired(VideoAnalysis, named)
    video.change(clear_video_results, None, outputs, api_visibility="private")
    clear_then_run(
        button.click,
        clear_video_results,
        analyze_video_file,
        [video, model, detector],
        outputs,
        api_name="expression_video",
        main=annotated,
    )
