"""Frame rate of the Expression tab's live camera handler (`expression_tab.stream_frame`) on a
640×480 clip with one to three faces (scikit-image's astronaut pasted at three sizes, moving a
few pixels from frame to frame), each frame sent as the browser sends it (a JPEG data URI) with
the tracking state the handler returned for the frame before.

    python benchmarks/stream_fps.py [--frames 150] [--warmup 10] [--model NAME] [--json]

`fps`: frames handled per second, one after the other (what a browser streaming faster than the
server sees; slower frames are dropped, not queued); `p95_ms`: 95th percentile of one frame's
time. The result is written to benchmarks/results/stream_fps.json (`--out`).
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import time

import cv2
import numpy as np
from record import add_out_argument, save

from faceres.app.expression_tab import stream_frame

PLACES = ((40, 110, 220), (330, 50, 180), (440, 300, 150))
"""(x, y, side) of the pasted heads: first one face, then two, then three."""


def clip(frames: int) -> list[np.ndarray]:
    """640×480 RGB frames: a third with one face, a third with two, a third with three, each
    head moving sideways by up to 8 px."""
    from skimage import data

    head = data.astronaut()[0:300, 100:400]
    heads = [cv2.resize(head, (s, s), interpolation=cv2.INTER_AREA) for _, _, s in PLACES]
    out = []
    for i in range(frames):
        frame = np.full((480, 640, 3), 110, np.uint8)
        for k, ((x, y, s), pasted) in enumerate(zip(PLACES, heads, strict=True)):
            if k > 3 * i // frames:
                break
            dx = round(8 * np.sin(2 * np.pi * (i / 30 + k / 3)))
            frame[y : y + s, x + dx : x + dx + s] = pasted[: 480 - y, : 640 - x - dx]
        out.append(frame)
    return out


def data_uri(rgb: np.ndarray) -> dict:
    """A frame as the browser streams it: `{"url": "data:image/jpeg;base64,..."}` (quality 0.92,
    `canvas.toDataURL`'s default)."""
    ok, jpeg = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92]
    )
    return {"url": "data:image/jpeg;base64," + base64.b64encode(jpeg.tobytes()).decode("ascii")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--model", help="expression model (default: the registry's default)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON only")
    add_out_argument(parser, "stream_fps")
    args = parser.parse_args()

    frames = [data_uri(f) for f in clip(args.frames)]
    state = None
    for frame in frames[: args.warmup]:
        _, _, state = stream_frame(frame, args.model, None, state)
    state, times, faces = None, [], []
    start = time.perf_counter()
    for frame in frames:
        t0 = time.perf_counter()
        _, _, state = stream_frame(frame, args.model, None, json.loads(json.dumps(state)))
        times.append(1000 * (time.perf_counter() - t0))
        faces.append(len([t for t in state["tracks"] if not t["missed"]]))
    wall = time.perf_counter() - start
    result = {
        "frames": len(frames),
        "warmup": args.warmup,
        "model": state["model"],
        "fps": round(len(frames) / wall, 2),
        "median_ms": round(statistics.median(times), 2),
        "p95_ms": round(float(np.percentile(times, 95)), 2),
        "faces_per_frame": {str(n): faces.count(n) for n in sorted(set(faces))},
        "tracks_started": state["next_id"] - 1,
    }
    save(result, args.out)
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"stream_frame on {len(frames)} 640x480 frames (1-3 faces), model {result['model']}: "
        f"{result['fps']} frames/s, median {result['median_ms']} ms, p95 {result['p95_ms']} ms; "
        f"faces per frame {result['faces_per_frame']}, {result['tracks_started']} tracks"
    )


if __name__ == "__main__":
    main()
