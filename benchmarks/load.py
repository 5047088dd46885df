"""Drive a running faceres app with N concurrent `gradio_client` clients for a bounded time.

Each client is its own session and loops over the app's endpoints (verify, explain, expression,
find and group, mixed, whichever the app serves), uploading a real face photo each time (explain
sends back the faces JSON of the client's last verify, as the browser does). Prints throughput, p50
/ p95 latency and the error count, overall and per endpoint; exits non-zero when any request
failed.

    python app.py &                                  # the app, queue and concurrency as deployed
    python benchmarks/load.py --clients 8 --duration 60 [--url http://127.0.0.1:7860/] [--json]

The summary is written to benchmarks/results/load.json (`--out`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

from record import add_out_argument, save

ENDPOINTS = ("/verify", "/explain", "/expression", "/find", "/group")
FIND_PHOTOS = 4
"""Photos each /find and /group request looks in (the client's photo, uploaded again each time)."""


def face_photo(folder: Path, src: str | None) -> bytes:
    """JPEG bytes of `src`, or of scikit-image's astronaut photo."""
    from PIL import Image

    if src:
        return Path(src).read_bytes()
    from skimage.data import astronaut

    path = folder / "astronaut.jpg"
    Image.fromarray(astronaut()).save(path, quality=92)
    return path.read_bytes()


def call(client, endpoint: str, photo: str, state: dict):
    """One request to `endpoint` with the app's default model; `state["faces"]` keeps the last
    `/verify` answer's faces JSON for `/explain`."""
    from gradio_client import handle_file

    if endpoint == "/verify":
        out = client.predict(
            handle_file(photo), handle_file(photo), None, None, None, api_name=endpoint
        )
        state["faces"] = out[7]
        return out
    if endpoint == "/explain":
        return client.predict(state["faces"], 1, 1, api_name=endpoint)
    if endpoint in ("/find", "/group"):
        photos = [handle_file(photo) for _ in range(FIND_PHOTOS)]
        probe = [handle_file(photo)] if endpoint == "/find" else []
        return client.predict(*probe, photos, None, None, api_name=endpoint)
    return client.predict(handle_file(photo), None, api_name=endpoint)


def run_client(
    url: str,
    index: int,
    photo: bytes,
    folder: Path,
    deadline: float,
    endpoints: list[str],
    results: list,
    lock: threading.Lock,
) -> None:
    """Loop until `deadline`: one request at a time, alternating the endpoints."""
    from gradio_client import Client

    # A file of its own, as different people send different photos: Gradio stores uploads under
    # a folder named by the content's hash, and the app removes that folder with the upload, so
    # identical bytes uploaded by two clients at once can race for it (see the README's Limits).
    # Bytes after the JPEG's end marker make each client's file distinct; decoders ignore them.
    path = folder / f"client{index}.jpg"
    path.write_bytes(photo + f"client {index}".encode())
    client = Client(url, verbose=False, download_files=False, analytics_enabled=False)
    state: dict = {}
    k = index
    while time.monotonic() < deadline:
        endpoint = endpoints[k % len(endpoints)]
        k += 1
        if endpoint == "/explain" and "faces" not in state:
            endpoint = "/verify"  # nothing to explain yet
        start = time.perf_counter()
        try:
            call(client, endpoint, str(path), state)
            error = None
        except Exception as exc:  # noqa: BLE001 - every failure is counted and reported
            error = f"{type(exc).__name__}: {exc}"
        with lock:
            results.append((endpoint, time.perf_counter() - start, error))


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1]


def summarise(results: list, wall: float) -> dict:
    """Throughput, latency percentiles (ms) and errors, overall and per endpoint."""
    groups = defaultdict(list)
    for endpoint, seconds, error in results:
        groups["all"].append((seconds, error))
        groups[endpoint].append((seconds, error))
    summary = {}
    for name, rows in groups.items():
        ok = [s * 1000 for s, e in rows if e is None]
        summary[name] = {
            "requests": len(rows),
            "errors": sum(e is not None for _, e in rows),
            "throughput_rps": round(len(ok) / wall, 3),
            "p50_ms": round(percentile(ok, 50), 1) if ok else None,
            "p95_ms": round(percentile(ok, 95), 1) if ok else None,
        }
    summary["first_errors"] = sorted({e for _, _, e in results if e})[:5]
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:7860/")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--image", help="face photo to send (default: skimage's astronaut)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON only")
    add_out_argument(parser, "load")
    args = parser.parse_args(argv)

    from gradio_client import Client

    api = Client(args.url, verbose=False, download_files=False, analytics_enabled=False)
    served = set(api.view_api(print_info=False, return_format="dict")["named_endpoints"])
    endpoints = [e for e in ENDPOINTS if e in served]
    if not endpoints:
        parser.error(f"{args.url} serves none of {', '.join(ENDPOINTS)} (no models yet?)")
    results: list = []
    lock = threading.Lock()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        photo = face_photo(folder, args.image)
        start = time.monotonic()
        threads = [
            threading.Thread(
                target=run_client,
                args=(args.url, i, photo, folder, start + args.duration, endpoints, results, lock),
            )
            for i in range(args.clients)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - start
    if not results:
        print("no request completed")
        return 1
    summary = {
        "url": args.url,
        "clients": args.clients,
        "duration_s": round(wall, 1),
        "endpoints": endpoints,
        **summarise(results, wall),
    }
    save(summary, args.out)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{args.clients} clients, {wall:.1f} s against {args.url}")
        for name in ["all", *endpoints]:
            if name in summary:
                s = summary[name]
                print(
                    f"{name:12s} {s['requests']:5d} requests  {s['throughput_rps']:6.2f} req/s  "
                    f"p50 {s['p50_ms']} ms  p95 {s['p95_ms']} ms  errors {s['errors']}"
                )
        for error in summary["first_errors"]:
            print(f"error: {error}")
    return 1 if summary["all"]["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
