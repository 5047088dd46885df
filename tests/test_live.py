"""Expressions on moving pictures: tracking and smoothing (`faceres.expression.live`) checked
against values computed by hand, the live camera and video handlers of the Expression tab, video
limits, the `faceres expression VIDEO` command, and face labels drawn inside the picture, clear of
each other.
"""

from __future__ import annotations

import base64
import io
import json
import math

import cv2
import gradio as gr
import numpy as np
import pytest
from PIL import Image

from faceres.app import expression_tab, render
from faceres.app.uploads import REFUSED
from faceres.cli import main as cli
from faceres.detect import Face
from faceres.expression import FaceExpression, live, video
from tests.test_app import has_default, serve_app

skimage_data = pytest.importorskip("skimage.data")
needs_expression = pytest.mark.skipif(
    not has_default("expression"), reason="no default expression model in the registry yet"
)
PLACES = ((40, 110, 220), (330, 50, 180), (440, 300, 150))
"""(x, y, side) of the heads of `moving_faces`: the first from frame 0, then two, then three."""


def moving_faces(frames: int = 30, period: int = 10) -> list[np.ndarray]:
    """640×480 RGB frames of the astronaut's head pasted at `PLACES`: one head for `period`
    frames, then two, then three; each moves sideways by up to 8 px."""
    head = skimage_data.astronaut()[0:300, 100:400]
    out = []
    for i in range(frames):
        frame = np.full((480, 640, 3), 110, np.uint8)
        for k, (x, y, s) in enumerate(PLACES[: min(3, 1 + i // period)]):
            dx = round(8 * math.sin(2 * math.pi * (i / 12 + k / 3)))
            pasted = cv2.resize(head, (s, s), interpolation=cv2.INTER_AREA)
            frame[y : y + s, x + dx : x + dx + s] = pasted[: 480 - y, : 640 - x - dx]
        out.append(frame)
    return out


def write_video(path, frames: list[np.ndarray], fps: float = 10.0, fourcc: str = "MJPG"):
    """`frames` as a video file (Motion JPEG in AVI unless told), for the test only."""
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def expression(box, probs: list[float]) -> FaceExpression:
    """A stand-in analysed face: `box` and two classes' probabilities."""
    face = Face(tuple(map(float, box)), np.zeros((5, 2), np.float32), "yunet5", 0.9, "yunet")
    p = dict(zip(("happy", "sad"), probs, strict=True))
    return FaceExpression(face, p, max(p, key=p.get), np.zeros((48, 48), np.uint8))


def jpeg_uri(rgb: np.ndarray) -> dict:
    """A frame as the browser streams it (a JPEG data URI)."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=92)
    return {"url": "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()}


# -- tracking and smoothing, by hand ---------------------------------------------------------------


@pytest.mark.parametrize(
    "a, b, expected",
    [
        ((0, 0, 10, 10), (5, 0, 10, 10), 50 / 150),  # half overlapping side by side
        ((0, 0, 10, 10), (0, 0, 5, 5), 25 / 100),  # one inside the other
        ((0, 0, 10, 10), (5, 5, 10, 10), 25 / 175),  # corners
        ((0, 0, 10, 10), (10, 0, 10, 10), 0.0),  # touching edges
        ((3, 4, 8, 6), (3, 4, 8, 6), 1.0),
        ((0, 0, 0, 0), (0, 0, 0, 0), 0.0),
    ],
)
def test_iou_matches_hand_computed_values(a, b, expected):
    assert live.iou(a, b) == pytest.approx(expected)
    assert live.iou(b, a) == pytest.approx(expected)


def test_match_takes_the_best_overlaps_first_each_box_once():
    old = [(0, 0, 10, 10), (8, 0, 10, 10)]
    # new 0 overlaps old 1 by 90/110 (old 0 by 30/170); new 1 overlaps old 0 by 80/120 (old 1
    # by 40/160): the best pairs first, each box once.
    new = [(7, 0, 10, 10), (2, 0, 10, 10), (300, 0, 10, 10)]
    assert live.match(old, new) == {0: 1, 1: 0}
    assert live.match(old, new, threshold=0.7) == {0: 1}  # 80/120 < 0.7 < 90/110
    assert live.match([], new) == {} and live.match(old, []) == {}


def test_probabilities_are_an_exponential_moving_average():
    state = live.empty_state("m")
    frames = [[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.5, 0.5]]
    # by hand, weight 0.4 on the new frame: [1, 0] → [0.6, 0.4] → [0.36, 0.64] → [0.416, 0.584]
    expected = [[1.0, 0.0], [0.6, 0.4], [0.36, 0.64], [0.416, 0.584]]
    for i, (probs, smoothed) in enumerate(zip(frames, expected, strict=True)):
        faces, state = live.update_tracks(state, [expression((100 + i, 50, 40, 40), probs)])
        assert faces[0].track == 1
        assert list(faces[0].smoothed.values()) == pytest.approx(smoothed)
        assert faces[0].expression.probabilities == dict(zip(("happy", "sad"), probs))
    assert faces[0].label == "sad" and faces[0].expression.label == "happy"  # tie → first


def test_tracks_start_continue_wait_and_end():
    a, b = (0, 0, 50, 50), (200, 0, 50, 50)
    faces, state = live.update_tracks(live.empty_state("m"), [expression(a, [0.9, 0.1])])
    faces, state = live.update_tracks(
        state, [expression(b, [0.2, 0.8]), expression((4, 2, 50, 50), [0.7, 0.3])]
    )
    assert [f.track for f in faces] == [2, 1]  # b is new; a moved a little
    assert faces[0].smoothed == {"happy": 0.2, "sad": 0.8}  # a new track is not averaged
    for missed in range(1, live.MAX_MISSED + 1):  # a leaves; its track waits, not shown
        faces, state = live.update_tracks(state, [expression(b, [0.2, 0.8])])
        assert [f.track for f in faces] == [2]
        assert [t["missed"] for t in state["tracks"] if t["id"] == 1] == [missed]
    faces, state = live.update_tracks(state, [expression((4, 2, 50, 50), [0.7, 0.3])])
    assert [f.track for f in faces] == [1]  # came back within MAX_MISSED frames
    for _ in range(live.MAX_MISSED + 1):
        faces, state = live.update_tracks(state, [])
    assert state["tracks"] == [] and state["next_id"] == 3
    faces, _ = live.update_tracks(state, [expression(a, [0.5, 0.5])])
    assert faces[0].track == 3


def test_frame_rate_is_a_moving_average_of_intervals():
    state = {"time": None, "fps": None}
    assert live.frame_rate(state, 5.0) is None
    assert live.frame_rate({"time": 5.0, "fps": None}, 5.25) == pytest.approx(4.0)
    assert live.frame_rate({"time": 5.0, "fps": 4.0}, 5.1) == pytest.approx(0.3 * 10 + 0.7 * 4)
    assert live.frame_rate({"time": 5.0, "fps": 4.0}, 5.0 + live.MAX_GAP_S + 1) is None
    assert live.frame_rate({"time": 9.0, "fps": 4.0}, 5.0) is None  # a clock that went back


@pytest.mark.parametrize(
    "value",
    [
        None,
        "tracks",
        [],
        {
            "model": "other",
            "next_id": 5,
            "tracks": [{"id": 1, "box": [0, 0, 9, 9], "probabilities": [1.0], "missed": 0}],
        },
        {"model": "m", "next_id": "x", "tracks": "y", "time": "z", "fps": -3},
        {"model": "m", "next_id": 3, "tracks": [{"id": 1, "box": [0, 0, 1], "probabilities": [1]}]},
        {
            "model": "m",
            "next_id": 3,
            "tracks": [{"id": 9, "box": [0, 0, 1, 1], "probabilities": [1], "missed": 0}],
        },  # noqa: E501
        {
            "model": "m",
            "next_id": 3,
            "tracks": [
                {"id": 1, "box": [0, 0, 1, 1], "probabilities": [float("nan")], "missed": 0}
            ],
        },  # noqa: E501
        {
            "model": "m",
            "next_id": 3,
            "tracks": [{"id": 1, "box": [0, 0, 1, 1], "probabilities": [2.0], "missed": 0}],
        },  # noqa: E501
        {
            "model": "m",
            "next_id": 3,
            "tracks": [{"id": True, "box": [0, 0, 1, 1], "probabilities": [1], "missed": 0}],
        },  # noqa: E501
    ],
)
def test_a_malformed_client_state_is_dropped(value):
    state = live.read_state(value, "m")
    assert state["tracks"] == [] and state["model"] == "m"
    assert state["time"] is None and state["fps"] is None


def test_a_client_state_keeps_only_checked_fields():
    track = {"id": 2, "box": [1, 2, 3, 4], "probabilities": [0.25, 0.75], "missed": 1}
    value = {
        "model": "m",
        "next_id": 3,
        "time": 12.5,
        "fps": 9.0,
        "tracks": [{**track, "pixels": "data:image/jpeg;base64,AAAA"}] * (live.MAX_TRACKS + 5),
        "extra": {"path": "/etc/passwd"},
    }
    state = live.read_state(value, "m")
    assert set(state) == {"model", "next_id", "tracks", "time", "fps"}
    assert state["tracks"] == [track] * live.MAX_TRACKS
    assert (state["next_id"], state["time"], state["fps"]) == (3, 12.5, 9.0)


# -- the live camera -------------------------------------------------------------------------------


@needs_expression
def test_faces_keep_their_track_through_a_clip():
    """Each pasted head keeps one track id from the frame it appears in, the state going through
    JSON between frames as it does through the browser."""
    state, seen = None, []
    for i, frame in enumerate(moving_faces(30, period=10)):
        result = live.analyze_frame(frame, json.loads(json.dumps(state)), now=i / 10)
        state = result.state
        seen.append(sorted(f.track for f in result.faces))
        assert len(result.faces) == min(3, 1 + i // 10)
    assert seen[0] == [1] and seen[10] == [1, 2] and seen[29] == [1, 2, 3]
    assert state["next_id"] == 4 and result.fps == pytest.approx(10.0)


@needs_expression
def test_stream_frame_draws_labels_and_returns_a_state_without_pixels():
    frames = moving_faces(12, period=6)
    state = None
    for frame in frames:
        html, text, state = expression_tab.stream_frame(jpeg_uri(frame), None, None, state)
        state = json.loads(json.dumps(state))
    assert html.startswith('<img src="data:image/jpeg;base64,') and "frames/s" in text
    assert "2 face(s)" in text and [t["id"] for t in state["tracks"]] == [1, 2]
    encoded = json.dumps(state)
    assert "data:" not in encoded and len(encoded) < 2000, "the state must hold no pixels"


@pytest.mark.parametrize(
    "value", [{"path": "/etc/hosts", "meta": {"_type": "gradio.FileData"}}, {"url": "file:///x"}]
)
def test_stream_frame_reads_only_uploads_or_inline_frames(value, upload_dir):
    with pytest.raises(gr.Error, match="read only from this page's own uploads"):
        expression_tab.stream_frame(value)


# -- video files -----------------------------------------------------------------------------------


@needs_expression
def test_video_gives_an_annotated_video_and_a_timeline_and_keeps_nothing(
    tmp_path, upload_dir, monkeypatch
):
    import tempfile

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    source = tmp_path / "clip.avi"
    write_video(source, moving_faces(40, period=12), fps=20.0)  # 2 s at 20 fps
    folder = upload_dir / "abc"
    folder.mkdir()
    uploaded = folder / "clip.avi"
    uploaded.write_bytes(source.read_bytes())
    data = {"video": {"path": str(uploaded), "meta": {"_type": "gradio.FileData"}}}
    shown, timeline, summary, details = expression_tab.analyze_video_file(data)
    assert not uploaded.exists() and not any(scratch.iterdir()), "a video file was kept"
    webm = base64.b64decode(shown.split("base64,", 1)[1].split('"', 1)[0])
    assert webm[:4] == b"\x1aE\xdf\xa3"  # EBML: a WebM file
    assert timeline.startswith('<img src="data:image/png;base64,')
    assert details["video"] == {"fps": 20.0, "frames": 40, "seconds": 2.0, "analysed_fps": 10.0}
    frames = details["frames"]
    assert [f["frame"] for f in frames] == list(range(0, 40, 2))
    assert [len(f["faces"]) for f in frames] == [min(3, 1 + 2 * i // 12) for i in range(20)]
    assert sorted(t["track"] for t in details["tracks"]) == [1, 2, 3]
    assert "20 frames analysed" in summary and "3 tracked face(s)" in summary
    face = frames[-1]["faces"][0]
    assert face["label"] == max(face["probabilities"], key=face["probabilities"].get)
    # The same upload named again: it is gone.
    with pytest.raises(gr.Error, match="not kept"):
        expression_tab.analyze_video_file(data)


def test_video_from_outside_the_upload_folder_is_refused(tmp_path, upload_dir):
    source = write_video(tmp_path / "clip.avi", moving_faces(4))
    with pytest.raises(gr.Error, match="read only from this page's own uploads"):
        expression_tab.analyze_video_file({"path": str(source), "meta": {}})
    assert source.exists()


@pytest.mark.parametrize(
    "limit, value, message",
    [
        ("MAX_VIDEO_SECONDS", 1.0, "too long"),
        ("MAX_VIDEO_FRAMES", 10, "too long"),
        ("MAX_VIDEO_BYTES", 1000, "too large"),
        ("MAX_VIDEO_PIXELS", 320 * 240, "too large"),
    ],
)
def test_video_limits_are_explained(tmp_path, monkeypatch, limit, value, message):
    path = write_video(tmp_path / "clip.avi", moving_faces(15), fps=10.0)  # 1.5 s, 640×480
    monkeypatch.setattr(video, limit, value)
    with pytest.raises(video.VideoError, match=message) as caught:
        list(video.read_frames(path))
    assert "\n" not in str(caught.value)


def test_a_video_longer_than_its_header_says_is_stopped(tmp_path, monkeypatch):
    path = write_video(tmp_path / "clip.avi", moving_faces(15), fps=10.0)
    monkeypatch.setattr(video, "check_limits", lambda info, name: None)  # the header passes
    frames = video.read_frames(path)
    assert next(frames)[0] == 0
    monkeypatch.undo()
    monkeypatch.setattr(video, "MAX_VIDEO_FRAMES", 6)
    with pytest.raises(video.VideoError, match="too long"):
        list(frames)


@pytest.mark.parametrize(
    "content", [b"", b"\x00\x00\x00 ftypisom" + bytes(range(256)) * 20, b"not a video at all"]
)
def test_corrupt_video_is_one_line(tmp_path, capfd, content):
    path = tmp_path / "broken.mp4"
    path.write_bytes(content)
    assert cli(["expression", str(path), "--json"]) == 2
    err = capfd.readouterr().err
    assert err.startswith("faceres: error: ") and err.count("\n") == 1, err


def test_a_truncated_video_is_explained(tmp_path):
    whole = write_video(tmp_path / "clip.webm", moving_faces(10), fourcc="VP80")
    cut = tmp_path / "cut.webm"
    cut.write_bytes(whole.read_bytes()[:3000])
    with pytest.raises(video.VideoError, match="corrupt"):
        list(video.read_frames(cut))


@needs_expression
def test_cli_gives_every_frame_and_tracked_face_of_a_video(tmp_path, capsys):
    path = write_video(tmp_path / "clip.avi", moving_faces(9, period=3), fps=10.0)
    assert cli(["expression", str(path), "--json"]) == 0
    (out,) = json.loads(capsys.readouterr().out)
    assert out["video"] == str(path) and out["fps"] == 10.0 and out["analysed_fps"] == 10.0
    assert [f["frame"] for f in out["frames"]] == list(range(9))
    assert [f["time"] for f in out["frames"]] == pytest.approx([i / 10 for i in range(9)])
    assert [sorted(x["track"] for x in f["faces"]) for f in out["frames"]] == (
        [[1]] * 3 + [[1, 2]] * 3 + [[1, 2, 3]] * 3
    )
    face = out["frames"][0]["faces"][0]
    assert len(face["probabilities"]) == 7 and sum(face["probabilities"].values()) == (
        pytest.approx(1.0, abs=1e-3)
    )
    assert cli(["expression", str(path)]) == 0
    assert capsys.readouterr().out.count("mostly") == 3


def test_a_cut_between_two_shots_starts_new_tracks(tmp_path, capsys):
    """One person, then (a cut to another shot) another at the same place: two tracks, not
    one; a continuous shot keeps its track (the clip above)."""
    head = cv2.resize(skimage_data.astronaut()[0:300, 100:400], (240, 240))
    shots = []
    for background, face in ((110, head), (30, head[:, ::-1] // 2 + 60)):
        frame = np.full((480, 640, 3), background, np.uint8)
        frame[100:340, 200:440] = face
        shots += [frame] * 5
    path = write_video(tmp_path / "two-shots.avi", shots, fps=10.0)
    assert cli(["expression", str(path), "--json"]) == 0
    (out,) = json.loads(capsys.readouterr().out)
    tracks = [[x["track"] for x in f["faces"]] for f in out["frames"]]
    assert tracks == [[1]] * 5 + [[2]] * 5, tracks


def first_answer(url: str, api: str, data: list) -> tuple[str, str]:
    """POST an event as any HTTP client can (gradio_client does not take stream events); the
    (event, payload) of its first answer: a stream answers each frame and waits for the next."""
    import httpx

    base = f"{url}gradio_api/call/{api}"
    reply = httpx.post(base, json={"data": data}, timeout=30)
    reply.raise_for_status()
    event = ""
    with httpx.stream("GET", f"{base}/{reply.json()['event_id']}", timeout=120) as stream:
        for line in stream.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event in ("generating", "complete", "error"):
                return event, line.split(":", 1)[1].strip()
    raise AssertionError(f"/{api} gave no answer")


@needs_expression
def test_launched_app_refuses_server_files_and_keeps_no_frame_or_video(tmp_path):
    """Through the server (`UploadsOnly` first): a server path is refused by the live and video
    events; a streamed frame and an uploaded video are answered and leave no file behind."""
    from gradio_client import Client, handle_file

    folders = {name: tmp_path / name for name in ("gradio", "tmp", "home")}
    for folder in folders.values():
        folder.mkdir()
    env = {"GRADIO_TEMP_DIR": str(folders["gradio"]), "TMPDIR": str(folders["tmp"])}
    env["HOME"] = str(folders["home"])
    clip = write_video(tmp_path / "clip.avi", moving_faces(20, period=10))
    secret = {"path": str(clip), "meta": {"_type": "gradio.FileData"}}
    with serve_app(env) as url:
        before = {p for f in folders.values() for p in f.rglob("*") if p.is_file()}
        for api, data in (
            ("expression_live", [secret, None, None, None]),
            ("expression_video", [{"video": secret, "subtitles": None}, None, None]),
        ):
            event, payload = first_answer(url, api, data)
            assert event == "error" and json.loads(payload)["error"] == REFUSED, payload[:300]
        frame = jpeg_uri(moving_faces(1)[0])
        event, payload = first_answer(url, "expression_live", [frame, None, None, None])
        shown, text, state = json.loads(payload)
        assert event == "generating" and shown.startswith("<img") and "1 face(s)" in text
        assert state["tracks"]
        client = Client(url, verbose=False, download_files=False, analytics_enabled=False)
        video_out, timeline, summary, details = client.predict(
            handle_file(str(clip)), None, None, api_name="/expression_video"
        )
        assert "<video" in video_out and len(details["frames"]) == 20
        after = {p for f in folders.values() for p in f.rglob("*") if p.is_file()}
    new = sorted(str(p) for p in after - before if folders["home"] not in p.parents)
    assert not new, f"files left after the requests: {new}"
    assert clip.exists()


# -- labels drawn on pictures ----------------------------------------------------------------------


def box_face(x: float, y: float, w: float, h: float) -> Face:
    return Face((x, y, w, h), np.zeros((5, 2), np.float32), "yunet5", 0.9, "yunet")


def disjoint(a, b) -> bool:
    """By hand: one rectangle entirely left of, right of, above or below the other."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    return ax + aw <= bx or bx + bw <= ax or ay + ah <= by or by + bh <= ay


EDGE_CASES = {
    "top-left corner": [(0, 0, 60, 60)],
    "right edge": [(270, 5, 50, 50)],
    "bottom edge": [(100, 190, 60, 50)],
    "wider than the box at the right edge": [(300, 100, 20, 20)],
    "two adjacent faces": [(100, 60, 40, 40), (142, 60, 40, 40)],
    "three in a row at the top": [(0, 0, 30, 30), (32, 0, 30, 30), (64, 0, 30, 30)],
    "a crowd": [(x, y, 36, 36) for x in range(0, 300, 40) for y in (40, 160)],
}


@pytest.mark.parametrize("boxes", EDGE_CASES.values(), ids=EDGE_CASES.keys())
def test_labels_stay_inside_the_image_and_clear_of_each_other(boxes):
    width, height = 320, 240
    sizes = [(90, 22)] * len(boxes)
    rects = render.place_labels(boxes, sizes, width, height)
    for x, y, w, h in rects:
        assert 0 <= x and 0 <= y and x + w <= width and y + h <= height
        assert (w, h) == (90, 22)
    for i, a in enumerate(rects):
        for b in rects[i + 1 :]:
            assert disjoint(a, b), (a, b)


def test_labels_prefer_above_then_below_then_inside():
    place = render.place_labels
    assert place([(50, 100, 40, 40)], [(60, 20)], 320, 240) == [(50, 80, 60, 20)]  # above
    assert place([(50, 10, 40, 40)], [(60, 20)], 320, 240) == [(50, 50, 60, 20)]  # below
    assert place([(50, 10, 40, 225)], [(60, 20)], 320, 240) == [(50, 10, 60, 20)]  # inside


def test_draw_faces_paints_each_label_where_it_was_placed():
    image = np.zeros((240, 320, 3), np.uint8)
    faces = [box_face(*b) for b in EDGE_CASES["two adjacent faces"] + EDGE_CASES["right edge"]]
    labels = ["1: happy 93%", "2: surprise 61%", "3: neutral 50%"]
    out = render.draw_faces(image, faces, labels)
    thick = max(2, round(320 / 300))
    font_scale = max(0.5, 320 / 900)
    sizes = []
    for label in labels:
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thick // 2)
        sizes.append((tw + 6, th + base + 6))
    rects = render.place_labels([tuple(round(v) for v in f.box) for f in faces], sizes, 320, 240)
    for x, y, w, h in rects:
        corners = [out[y, x], out[y, x + w - 1], out[y + h - 1, x], out[y + h - 1, x + w - 1]]
        assert all(tuple(c) == render.CHOSEN for c in corners)
        assert (out[y : y + h, x : x + w] == 0).all(axis=2).any(), "no text in the label"
    assert not image.any()


def test_a_label_wider_than_the_image_is_drawn_smaller_not_clipped():
    image = np.full((60, 80, 3), 90, np.uint8)
    out = render.draw_faces(image, [box_face(10, 20, 30, 30)], ["1: surprise 100%"])
    text = ~(out == render.CHOSEN).all(axis=2) & ~(out == 90).all(axis=2)
    assert text.sum() > 50, "no text drawn"
    assert not text[:, 0].any() and not text[:, -1].any(), "text runs off the picture"
