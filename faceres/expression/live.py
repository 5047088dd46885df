"""Expressions on moving pictures (a camera, a video file): each frame's faces tracked from the
frame before by box overlap, their class probabilities smoothed over time (an exponential moving
average), and the frame rate.

The tracking state is plain JSON (track ids, boxes, smoothed probabilities, the last frame's time
and the frame rate; no pixels), passed in and returned by `analyze_frame`, so the app can keep
it in the browser and the server keeps nothing between frames.

>>> state = None
>>> for frame in frames:
...     live = analyze_frame(frame, state)
...     state = live.state
>>> [(f.track, f.label) for f in live.faces]
[(1, 'happy')]
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from faceres.expression import ExpressionResult, FaceExpression, analyze_expression
from faceres.expression.video import read_frames

Box = Sequence[float]
"""x, y, width, height."""
IOU_MATCH = 0.3
"""Least box overlap (intersection over union) for a face to continue a track."""
SMOOTHING = 0.4
"""Weight of the newest frame in a track's moving average of probabilities."""
FPS_SMOOTHING = 0.3
"""Weight of the newest frame interval in the moving average of the frame rate."""
MAX_MISSED = 5
"""Frames a track waits for its face to come back (a missed detection) before it is dropped."""
MAX_GAP_S = 2.0
"""Longer between two frames and the frame rate starts again."""
CUT_DIFFERENCE = 40.0
"""Mean absolute difference (of 255) between two analysed frames' 32×32 grey thumbnails above
which the second starts a new shot: no face is tracked across a cut, so a clip of one person
followed by another gives two tracks even where the two faces stand at the same place. (A
person replaced without a cut, against the same background, is not told apart.)"""
MAX_TRACKS = 32
MAX_CLASSES = 64
"""Most tracks, and classes per track, read back from a client's state (the rest is ignored)."""


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (x, y, width, height); 0 when either is empty.

    >>> iou((0, 0, 10, 10), (5, 0, 10, 10))   # 50 shared / 150 covered
    0.3333333333333333
    """
    dx = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    dy = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    shared = max(0.0, dx) * max(0.0, dy)
    union = a[2] * a[3] + b[2] * b[3] - shared
    return shared / union if union > 0 else 0.0


def match(old: Sequence[Box], new: Sequence[Box], threshold: float = IOU_MATCH) -> dict[int, int]:
    """Which old box each new box continues: {new index: old index}, pairs taken greedily from the
    highest overlap down, each box used once, only pairs with `iou` ≥ `threshold`.

    >>> match([(0, 0, 10, 10), (50, 0, 10, 10)], [(52, 0, 10, 10), (100, 0, 10, 10)])
    {0: 1}
    """
    pairs = sorted(
        ((iou(o, n), j, i) for i, o in enumerate(old) for j, n in enumerate(new)), reverse=True
    )
    taken: dict[int, int] = {}
    used: set[int] = set()
    for overlap, j, i in pairs:
        if overlap < threshold:
            break
        if j not in taken and i not in used:
            taken[j] = i
            used.add(i)
    return taken


def smooth(old: Sequence[float], new: Sequence[float], weight: float = SMOOTHING) -> list[float]:
    """Exponential moving average: `weight` × new + (1 − `weight`) × old, element by element.

    >>> smooth([0.2, 0.8], [0.6, 0.4])
    [0.36, 0.64]
    """
    return [round(weight * n + (1 - weight) * o, 6) for o, n in zip(old, new, strict=True)]


def empty_state(model: str) -> dict[str, Any]:
    """The state before the first frame: no track, no frame rate yet."""
    return {"model": model, "next_id": 1, "tracks": [], "time": None, "fps": None}


def _number(value: Any, low: float = -math.inf, high: float = math.inf) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) and low <= value <= high else None


def read_state(value: Any, model: str) -> dict[str, Any]:
    """A client's state checked field by field: what is malformed is dropped, a state of another
    model starts afresh (its classes differ), and anything else in it is ignored."""
    if not isinstance(value, dict) or value.get("model") != model:
        return empty_state(model)
    state = empty_state(model)
    next_id = _number(value.get("next_id"), 1, 2**31)
    state["next_id"] = int(next_id) if next_id else 1
    state["time"] = _number(value.get("time"))
    state["fps"] = _number(value.get("fps"), 0, 1000)
    tracks = value.get("tracks")
    for track in tracks[:MAX_TRACKS] if isinstance(tracks, list) else []:
        if not isinstance(track, dict):
            continue
        box, probs = track.get("box"), track.get("probabilities")
        ident = _number(track.get("id"), 1, state["next_id"] - 1)
        missed = _number(track.get("missed"), 0, MAX_MISSED)
        if (
            ident is None
            or missed is None
            or not isinstance(box, list)
            or len(box) != 4
            or not isinstance(probs, list)
            or not 0 < len(probs) <= MAX_CLASSES
        ):
            continue
        box = [_number(v) for v in box]
        probs = [_number(p, 0, 1) for p in probs]
        if None in box or None in probs:
            continue
        state["tracks"].append(
            {"id": int(ident), "box": box, "probabilities": probs, "missed": int(missed)}
        )
    return state


def frame_rate(state: dict[str, Any], now: float) -> float | None:
    """Frames per second so far (moving average of the intervals), from the last frame's time in
    `state`; None for a first frame or after a pause longer than `MAX_GAP_S`.

    >>> frame_rate({"time": 10.0, "fps": 8.0}, 10.1)   # 0.3 × 10 + 0.7 × 8
    8.6
    """
    last, fps = state.get("time"), state.get("fps")
    if last is None or not 0 < now - last <= MAX_GAP_S:
        return None
    rate = 1.0 / (now - last)
    return round(rate if fps is None else FPS_SMOOTHING * rate + (1 - FPS_SMOOTHING) * fps, 3)


@dataclass
class TrackedFace:
    """One face of a frame: its track, this frame's result, and the smoothed probabilities."""

    track: int
    expression: FaceExpression
    smoothed: dict[str, float]

    @property
    def label(self) -> str:
        """The most likely class after smoothing."""
        return max(self.smoothed, key=self.smoothed.__getitem__)


def update_tracks(
    state: dict[str, Any], faces: Sequence[FaceExpression]
) -> tuple[list[TrackedFace], dict[str, Any]]:
    """This frame's faces given tracks: a face overlapping a track's last box (`match`)
    continues it, its probabilities averaged in (`smooth`); others start new tracks; tracks not
    seen for more than `MAX_MISSED` frames end. Returns the faces (in `faces` order) and the new
    state (`state` is not changed)."""
    tracks = state["tracks"]
    found = match([t["box"] for t in tracks], [f.face.box for f in faces])
    next_id, kept, out = state["next_id"], [], []
    for j, face in enumerate(faces):
        names = list(face.probabilities)
        probs = [round(float(face.probabilities[n]), 6) for n in names]
        old = tracks[found[j]] if j in found else None
        if old is not None and len(old["probabilities"]) == len(probs):
            ident, probs = old["id"], smooth(old["probabilities"], probs)
        else:
            ident, next_id = next_id, next_id + 1
        box = [round(float(v), 1) for v in face.face.box]
        kept.append({"id": ident, "box": box, "probabilities": probs, "missed": 0})
        out.append(TrackedFace(ident, face, dict(zip(names, probs, strict=True))))
    seen = set(found.values())
    for i, track in enumerate(tracks):
        if i not in seen and track["missed"] < MAX_MISSED:
            kept.append({**track, "missed": track["missed"] + 1})
    return out, {**state, "next_id": next_id, "tracks": kept[:MAX_TRACKS]}


@dataclass
class LiveFrame:
    """One analysed frame: tracked faces (largest first), the model's result, the state to pass
    with the next frame, and the frame rate (None until two frames are in)."""

    faces: list[TrackedFace]
    result: ExpressionResult
    state: dict[str, Any]
    fps: float | None


def analyze_frame(
    image: np.ndarray,
    state: Any = None,
    model: str | None = None,
    detector: str | None = None,
    now: float | None = None,
) -> LiveFrame:
    """Expressions of one RGB frame, continuing the tracks of `state` (`read_state` checks it;
    None: the first frame). `now` is the frame's time in seconds (default: this clock's)."""
    now = time.monotonic() if now is None else now
    result = analyze_expression(image, model=model, detector=detector)
    faces, new_state = update_tracks(read_state(state, result.model), result.faces)
    fps = frame_rate(new_state, now)
    return LiveFrame(faces, result, {**new_state, "time": now, "fps": fps}, fps)


@dataclass
class VideoFrame:
    """One analysed frame of a video file: its number, time (s), pixels and tracked faces."""

    index: int
    seconds: float
    image: np.ndarray
    faces: list[TrackedFace]
    result: ExpressionResult


def analyze_video(
    path: str | Path,
    model: str | None = None,
    detector: str | None = None,
    max_fps: float | None = None,
) -> Iterator[VideoFrame]:
    """`analyze_frame` on the frames of a video file (at most `max_fps` per second of video, all
    when None), faces tracked across them; `faceres.expression.video.read_frames` gives its
    limits."""
    state, last = None, None
    for index, seconds, image in read_frames(path, max_fps):
        thumb = thumbnail(image)
        if state is not None and is_cut(last, thumb):
            state = {**state, "tracks": []}  # a new shot: new tracks (their ids go on counting)
        last = thumb
        live = analyze_frame(image, state, model, detector, now=seconds)
        state = live.state
        yield VideoFrame(index, seconds, image, live.faces, live.result)


def thumbnail(image: np.ndarray) -> np.ndarray:
    """An RGB frame as a 32×32 grey float32 thumbnail (what `is_cut` compares)."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)


def is_cut(before: np.ndarray, after: np.ndarray) -> bool:
    """Whether two consecutive thumbnails differ by more than `CUT_DIFFERENCE` (a new shot).

    >>> is_cut(np.zeros((32, 32)), np.full((32, 32), 100.0)), is_cut(np.zeros((32, 32)), np.ones((32, 32)))
    (True, False)
    """  # noqa: E501
    return float(np.abs(before - after).mean()) > CUT_DIFFERENCE


def frame_record(frame: VideoFrame) -> dict[str, Any]:
    """One video frame as JSON: number, time, and per face its track, box, class (this frame's
    most likely), probabilities, and the smoothed class and probabilities shown on the video."""
    return {
        "frame": frame.index,
        "time": round(frame.seconds, 3),
        "faces": [
            {
                "track": f.track,
                "box": [round(v, 1) for v in f.expression.face.box],
                "label": f.expression.label,
                "probabilities": {k: round(v, 4) for k, v in f.expression.probabilities.items()},
                "smoothed_label": f.label,
                "smoothed": {k: round(v, 4) for k, v in f.smoothed.items()},
            }
            for f in frame.faces
        ],
    }
