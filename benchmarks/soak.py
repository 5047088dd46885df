"""Soak a running faceres app: `--clients` `gradio_client` sessions for `--minutes`, every event of
the app mixed, while the server's memory, open files and latency are sampled over time.

Each client is its own browser session with photos of its own (the astronaut rotated, rescaled
and re-lit by the client's number, beside a second face; a four-second video of it; webcam
frames), and loops over: verify, a face pick, explain, expression on a photo, a live frame, the
ResNet-vs-plain comparison, find, group and the short video. Every `--sample` seconds the server's
resident memory (with its child processes) and open file descriptors are read.

Writes the JSON (`--out`, default benchmarks/results/soak.json) and a plot beside it (RSS and
open files; p50 / p95 latency per minute). The verdicts scale with `--minutes` (for 60: memory
growth from minute 5 to the end ≤ 10 %, p95 of the last 10 minutes ≤ 1.2 × that of minutes
5–15, open files flat). Exit code 1 on any failed request.

    python app.py &
    python benchmarks/soak.py --minutes 60 --clients 4 [--url http://127.0.0.1:7860/]
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import cv2
import httpx
import numpy as np
import psutil
from load import percentile
from record import add_out_argument, save

EVENTS = (
    "/verify",
    "/pick_faces",
    "/explain",
    "/expression",
    "/expression_live",
    "/compare",
    "/find",
    "/group",
    "/expression_video",
)
VIDEO_SECONDS, VIDEO_FPS = 4, 8
GROWTH_LIMIT, P95_LIMIT = 0.10, 1.2
REQUEST_TIMEOUT_S = 120


def client_photos(folder: Path, index: int) -> dict[str, Path]:
    """The photos, video and frame of client `index`: its own edit of the astronaut, that face
    beside a smaller copy (two faces), a short video of the edit and one webcam frame."""
    from skimage.data import astronaut

    rgb = astronaut()
    h, w = rgb.shape[:2]
    turn = cv2.getRotationMatrix2D((w / 2, h / 2), 4.0 * (index + 1), 1.0 - 0.05 * index)
    edit = cv2.warpAffine(rgb, turn, (w, h), borderMode=cv2.BORDER_REFLECT)
    edit = np.clip(edit * (0.8 + 0.05 * index), 0, 255).astype(np.uint8)
    head = edit[0:300, 100:400]
    pair = np.full((300, 560, 3), 255, np.uint8)
    pair[:, :300], pair[30:270, 310:550] = head, cv2.resize(head, (240, 240))
    paths = {"photo": folder / f"c{index}.jpg", "pair": folder / f"c{index}-pair.jpg"}
    for key, image in (("photo", edit), ("pair", pair)):
        cv2.imwrite(str(paths[key]), image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
    paths["frame"] = folder / f"c{index}-frame.jpg"
    small = cv2.resize(edit, (320, 320))
    cv2.imwrite(str(paths["frame"]), small[..., ::-1])
    paths["video"] = folder / f"c{index}.mp4"
    writer = cv2.VideoWriter(
        str(paths["video"]), cv2.VideoWriter_fourcc(*"mp4v"), VIDEO_FPS, (320, 320)
    )
    for k in range(VIDEO_SECONDS * VIDEO_FPS):
        writer.write(np.roll(small, 2 * k, axis=1)[..., ::-1].copy())
    writer.release()
    return paths


def ask(client, *args, api_name: str):
    """`client.predict`, but a request unanswered after `REQUEST_TIMEOUT_S` is an error, not a
    client waiting for ever (the first soaks found requests that were never answered)."""
    return client.submit(*args, api_name=api_name).result(timeout=REQUEST_TIMEOUT_S)


def call(client, event: str, files: dict[str, Path], state: dict):
    """One request of `event` with the client's files; `state` carries the last verify's faces
    JSON (for the pick and explain) and the live stream's state, as a browser does."""
    from gradio_client import handle_file

    photo, pair = handle_file(str(files["photo"])), handle_file(str(files["pair"]))
    if event == "/verify" or "faces" not in state and event in ("/pick_faces", "/explain"):
        out = ask(client, photo, pair, None, None, None, None, api_name="/verify")
        state["faces"] = out[7]
        return out
    if event == "/pick_faces":
        return ask(client, state["faces"], 1, 2, api_name=event)
    if event == "/explain":
        return ask(client, state["faces"], 1, 1, api_name=event)
    if event == "/expression_live":
        state["live"] = live_frame(client, files["frame"], state.get("live"))
        return state["live"]
    if event == "/expression_video":
        return ask(client, handle_file(str(files["video"])), None, None, api_name=event)
    if event == "/find":
        return ask(client, photo, [pair, photo], None, None, api_name=event)
    if event == "/group":
        return ask(client, [pair, photo], None, None, api_name=event)
    if event == "/compare":
        return ask(client, photo, None, None, None, api_name=event)
    return ask(client, photo, None, None, api_name=event)


def live_frame(client, frame: Path, state: dict | None) -> dict:
    """One webcam frame to the live stream, as the browser streams it (a JPEG data URI over
    Gradio's HTTP API: gradio_client does not take stream events), then the stream closed as
    when the webcam stops; the stream's new state."""
    uri = "data:image/jpeg;base64," + base64.b64encode(frame.read_bytes()).decode()
    api = f"{client.src.rstrip('/')}/gradio_api"
    body = {"data": [{"url": uri}, None, None, state]}  # in the client's session, the stream
    # outlives its close and every frame waits for the 60 s time limit
    reply = httpx.post(f"{api}/call/expression_live", json=body, timeout=60)
    reply.raise_for_status()
    event_id = reply.json()["event_id"]
    event = ""
    try:
        with httpx.stream("GET", f"{api}/call/expression_live/{event_id}", timeout=120) as stream:
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and event in ("generating", "complete"):
                    return json.loads(line.split(":", 1)[1])[-1]
                elif line.startswith("data:") and event == "error":
                    raise RuntimeError(f"live frame: {line[5:300]}")
    finally:
        httpx.post(f"{api}/stream/{event_id}/close", timeout=30)
    raise RuntimeError("live frame: no answer")


def run_client(
    url: str, index: int, folder: Path, deadline: float, events: list, out: list
) -> None:
    """Loop over `events` until `deadline`, one request at a time: (time, event, s, error)."""
    from gradio_client import Client

    files = client_photos(folder, index)
    client = Client(url, verbose=False, download_files=False, analytics_enabled=False)
    state: dict = {}
    k = index
    while time.monotonic() < deadline:
        event = events[k % len(events)]
        k += 1
        start = time.monotonic()
        try:
            call(client, event, files, state)
            error = None
        except Exception as exc:  # noqa: BLE001 - every failure is counted and reported
            error = f"{type(exc).__name__}: {exc}"[:300]
        out.append((start, event, time.monotonic() - start, error))


def server_process(url: str, pid: int | None) -> psutil.Process:
    """The app's process: `pid`, else the one listening on the URL's port."""
    if pid:
        return psutil.Process(pid)
    port = urlparse(url).port or 80
    for conn in psutil.net_connections("tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
            return psutil.Process(conn.pid)
    raise SystemExit(f"no process listens on port {port}; pass --pid")


def sample(process: psutil.Process) -> tuple[float, int]:
    """Resident MiB of the server and its children, and the server's open file descriptors."""
    procs = [process, *process.children(recursive=True)]
    rss = 0
    for p in procs:
        try:
            rss += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return rss / 2**20, process.num_fds()


def sampler(process: psutil.Process, every: float, stop: threading.Event, out: list) -> None:
    """(time, RSS MiB, open fds) every `every` seconds until `stop`."""
    while not stop.is_set():
        out.append((time.monotonic(), *sample(process)))
        stop.wait(every)


def verdicts(minutes: float, t0: float, requests: list, samples: list) -> dict:
    """Memory growth after the warm-up, p95 of the last sixth against minutes 5–15 (scaled to
    `minutes`), open files after the warm-up."""
    warm, early_end, last = minutes / 12, minutes / 4, minutes * 5 / 6

    def window(rows: list, lo: float, hi: float) -> list:
        return [r for r in rows if lo <= (r[0] - t0) / 60 < hi]

    after = window(samples, warm, minutes + 1)
    rss_start = statistics.median(r[1] for r in after[:3])
    rss_end = statistics.median(r[1] for r in after[-3:])
    ok = [r for r in requests if r[3] is None]
    early = [r[2] for r in window(ok, warm, early_end)]
    late = [r[2] for r in window(ok, last, minutes + 1)]
    p95_early = percentile(early, 95) if len(early) > 1 else float("nan")
    p95_late = percentile(late, 95) if len(late) > 1 else float("nan")
    fds = [r[2] for r in after]
    growth = rss_end / rss_start - 1
    return {
        "windows_min": {"warm_up": warm, "early": [warm, early_end], "last": [last, minutes]},
        "rss_after_warm_up_mib": round(rss_start, 1),
        "rss_end_mib": round(rss_end, 1),
        "rss_growth": round(growth, 4),
        "rss_ok": growth <= GROWTH_LIMIT,
        "p95_early_ms": round(1000 * p95_early, 1),
        "p95_last_ms": round(1000 * p95_late, 1),
        "p95_ratio": round(p95_late / p95_early, 3),
        "p95_ok": p95_late <= P95_LIMIT * p95_early,
        "fds_min": min(fds),
        "fds_max": max(fds),
        "fds_first": fds[0],
        "fds_last": fds[-1],
    }


def per_minute(t0: float, requests: list) -> list[dict]:
    """p50 / p95 latency (ms) and requests of every minute."""
    rows = []
    for minute in range(int((max(r[0] for r in requests) - t0) // 60) + 1):
        took = [r[2] * 1000 for r in requests if r[3] is None and int((r[0] - t0) // 60) == minute]
        if took:
            rows.append(
                {
                    "minute": minute,
                    "requests": len(took),
                    "p50_ms": round(percentile(took, 50), 1),
                    "p95_ms": round(percentile(took, 95), 1),
                }
            )
    return rows


def plot(result: dict, samples: list, t0: float, path: Path) -> None:
    """RSS and open files over time; p50 / p95 latency per minute."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    minutes = [(s[0] - t0) / 60 for s in samples]
    top.plot(minutes, [s[1] for s in samples], label="server RSS (MiB)")
    top.set_ylabel("MiB")
    fds = top.twinx()
    fds.plot(minutes, [s[2] for s in samples], color="grey", linestyle=":", label="open files")
    fds.set_ylabel("open files")
    top.legend(loc="upper left")
    fds.legend(loc="lower right")
    rows = result["per_minute"]
    for key in ("p50_ms", "p95_ms"):
        bottom.plot(
            [r["minute"] + 0.5 for r in rows], [r[key] for r in rows], marker=".", label=key
        )
    bottom.set_xlabel("minutes")
    bottom.set_ylabel("latency (ms)")
    bottom.legend()
    v = result["verdicts"]
    fig.suptitle(
        f"{result['clients']} clients, {result['minutes']:g} min, {result['requests']} requests, "
        f"{result['errors']} errors; RSS {v['rss_growth']:+.1%}, p95 ×{v['p95_ratio']:.2f}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:7860/")
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--pid", type=int, help="the app's process (default: found by its port)")
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    add_out_argument(parser, "soak")
    args = parser.parse_args(argv)

    from gradio_client import Client

    process = server_process(args.url, args.pid)
    served = Client(args.url, verbose=False, download_files=False, analytics_enabled=False)
    named = set(served.view_api(print_info=False, return_format="dict")["named_endpoints"])
    events = [e for e in EVENTS if e in named]
    requests: list = []
    samples: list = []
    stop = threading.Event()
    t0 = time.monotonic()
    watcher = threading.Thread(target=sampler, args=(process, args.sample, stop, samples))
    watcher.start()
    with tempfile.TemporaryDirectory() as tmp:
        deadline = t0 + 60 * args.minutes
        clients = [
            threading.Thread(
                target=run_client, args=(args.url, i, Path(tmp), deadline, events, requests)
            )
            for i in range(args.clients)
        ]
        for t in clients:
            t.start()
        for t in clients:
            t.join()
    stop.set()
    watcher.join()
    errors = [r for r in requests if r[3]]
    result = {
        "url": args.url,
        "minutes": args.minutes,
        "clients": args.clients,
        "events": events,
        "requests": len(requests),
        "errors": len(errors),
        "first_errors": sorted({f"{r[1]}: {r[3]}" for r in errors})[:5],
        "per_event": {
            e: {
                "requests": len(took := [r[2] * 1000 for r in requests if r[1] == e and not r[3]]),
                "p50_ms": round(percentile(took, 50), 1) if took else None,
                "p95_ms": round(percentile(took, 95), 1) if took else None,
            }
            for e in events
        },
        "per_minute": per_minute(t0, requests),
        "samples": [
            {"minute": round((s[0] - t0) / 60, 3), "rss_mib": round(s[1], 1), "fds": s[2]}
            for s in samples
        ],
        "verdicts": verdicts(args.minutes, t0, requests, samples),
    }
    figure = args.out.with_suffix(".png")
    plot(result, samples, t0, figure)
    result["plot"] = str(figure)
    save(result, args.out)
    v = result["verdicts"]
    print(
        f"{result['requests']} requests, {result['errors']} errors; RSS "
        f"{v['rss_after_warm_up_mib']} → {v['rss_end_mib']} MiB ({v['rss_growth']:+.1%}, "
        f"{'ok' if v['rss_ok'] else 'over ' + format(GROWTH_LIMIT, '.0%')}); p95 "
        f"{v['p95_early_ms']} → {v['p95_last_ms']} ms (×{v['p95_ratio']}, "
        f"{'ok' if v['p95_ok'] else 'over ×' + str(P95_LIMIT)}); open files {v['fds_min']}–"
        f"{v['fds_max']}; plot {figure}"
    )
    for error in result["first_errors"]:
        print(f"error: {error}")
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
