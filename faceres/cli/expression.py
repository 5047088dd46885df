"""`faceres expression IMG|VIDEO...`: the expression of every face in photos, and per frame and
tracked face in videos (told apart by their file ending)."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter

from faceres.detect import DETECTORS


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "expression",
        help="facial expression of every face in photos or videos",
        description="Photos: every face's expression. Videos (.mp4, .webm, .mov, ...; at most "
        "60 s, 1800 frames, 50 MB, 1920x1080): every frame's faces, tracked across frames.",
    )
    p.add_argument("images", nargs="+", metavar="IMG|VIDEO")
    p.add_argument("--model", help="registry model (default: the default expression model)")
    p.add_argument("--detector", choices=DETECTORS)
    p.add_argument(
        "--max-fps",
        type=float,
        help="videos: analyse at most this many frames per second of video (default: every frame)",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run, task="expression")


def photo_record(path: str, model: str | None, detector: str | None) -> dict:
    """One photo's faces as JSON."""
    from faceres.expression import analyze_expression

    result = analyze_expression(path, model=model, detector=detector)
    return {"image": path, **result.to_dict()}


def video_record(path: str, model: str | None, detector: str | None, max_fps: float | None) -> dict:
    """One video's frames, each with its tracked faces, as JSON."""
    from faceres.expression.live import analyze_video, frame_record
    from faceres.expression.video import frame_step, video_info

    info = video_info(path)
    frames, used, name = [], detector, model
    for frame in analyze_video(path, model=model, detector=detector, max_fps=max_fps):
        frames.append(frame_record(frame))
        used, name = frame.result.detector, frame.result.model
    return {
        "video": path,
        "model": name,
        "detector": used,
        "fps": round(info.fps, 3),
        "analysed_fps": round(info.fps / frame_step(info.fps, max_fps), 3),
        "frames": frames,
    }


def run(args: argparse.Namespace) -> int:
    from faceres.expression.video import is_video

    out = [
        video_record(path, args.model, args.detector, args.max_fps)
        if is_video(path)
        else photo_record(path, args.model, args.detector)
        for path in args.images
    ]
    faceless = [item.get("image") or item.get("video") for item in out if not _any_face(item)]
    for name in faceless:
        print(f"faceres: {name}: no face found", file=sys.stderr)
    status = 1 if faceless else 0  # as docs/cli.md says: no face is a non-zero exit
    if args.json:
        print(json.dumps(out, indent=2))
        return status
    for item in out:
        if "video" in item:
            print_video(item)
            continue
        if not item["faces"]:
            print(f"{item['image']}: no face found")
        for face in item["faces"]:
            top = sorted(face["probabilities"].items(), key=lambda kv: -kv[1])[:3]
            print(
                f"{item['image']} face {face['face']} at {face['box']}: {face['label']} ("
                + ", ".join(f"{k} {v:.2f}" for k, v in top)
                + ")"
            )
    return status


def _any_face(item: dict) -> bool:
    """Whether a photo's or a video's record holds at least one face."""
    if "frames" in item:
        return any(frame["faces"] for frame in item["frames"])
    return bool(item["faces"])


def print_video(item: dict) -> None:
    """One line per tracked face of a video: its span and most frequent class."""
    seen: dict[int, list] = {}
    for frame in item["frames"]:
        for face in frame["faces"]:
            seen.setdefault(face["track"], []).append((frame["time"], face["label"]))
    if not seen:
        print(f"{item['video']}: no face found in {len(item['frames'])} frames")
    for track, rows in seen.items():
        label, count = Counter(label for _, label in rows).most_common(1)[0]
        print(
            f"{item['video']} face {track}: {rows[0][0]:.1f}-{rows[-1][0]:.1f} s, "
            f"{len(rows)} frames, mostly {label} ({count / len(rows):.0%})"
        )
