"""Latency of face detection on a 640×480 photo, models warm: YuNet and dlib (+ landmarks).

Prints the median and 90th percentile per detector, with the torch thread count and the load
average at the time (2 shared cores: quote numbers with the load). The photo is scikit-image's
astronaut (public domain) resized to 480×480 and padded to 640×480; nothing is read from disk.
YuNet is skipped, with a message, when its ONNX file does not resolve through the registry.

    python benchmarks/detect_latency.py [--runs 30] [--warmup 3] [--json] [--out F]

The result is written to benchmarks/results/detect_latency.json (`--out`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np
from PIL import Image
from record import add_out_argument, save

from faceres.detect import detect_faces
from faceres.detect.yunet import YUNET_FILE, yunet_path


def photo() -> np.ndarray:
    """scikit-image's astronaut as a 640×480 RGB photo (grey bars left and right)."""
    from skimage import data

    face = np.asarray(Image.fromarray(data.astronaut()).resize((480, 480), Image.BILINEAR))
    image = np.full((480, 640, 3), 128, np.uint8)
    image[:, 80:560] = face
    return image


def measure(image: np.ndarray, detector: str, runs: int, warmup: int) -> dict:
    """Median and p90 milliseconds of `detect_faces(image, detector)` over `runs` calls."""
    for _ in range(warmup):
        faces = detect_faces(image, detector)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        detect_faces(image, detector)
        times.append((time.perf_counter() - start) * 1000)
    return {
        "median_ms": statistics.median(times),
        "p90_ms": float(np.percentile(times, 90)),
        "faces": len(faces),
        "detector": faces[0].detector if faces else detector,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the results as JSON only")
    add_out_argument(parser, "detect_latency")
    args = parser.parse_args()

    import torch

    image = photo()
    results: dict[str, dict | None] = {}
    for name in ("yunet", "dlib"):
        if name == "yunet" and yunet_path() is None:
            results[name] = None
            continue
        results[name] = measure(image, name, args.runs, args.warmup)
    env = {
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "load_1min": round(os.getloadavg()[0], 2),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
    }
    data = {
        "image": [640, 480],
        "runs": args.runs,
        "warmup": args.warmup,
        **env,
        "results": results,
    }
    save(data, args.out)
    if args.json:
        print(json.dumps(data))
        return
    print(
        f"detection on a 640x480 photo (scikit-image astronaut), {args.runs} runs after "
        f"{args.warmup} warm-up; torch threads {env['torch_threads']}, CPUs {env['cpus']}, "
        f"load {env['load_1min']}"
    )
    print(f"{'detector':<18}{'median ms':>11}{'p90 ms':>9}{'faces':>7}")
    labels = {"yunet": "yunet", "dlib": "dlib + landmarks"}
    for name, r in results.items():
        if r is None:
            print(
                f"{labels[name]:<18} skipped: {YUNET_FILE} is not available here "
                "(registry entry yunet-2026may; set FACERES_DATA)"
            )
            continue
        print(f"{labels[name]:<18}{r['median_ms']:>11.1f}{r['p90_ms']:>9.1f}{r['faces']:>7}")


if __name__ == "__main__":
    main()
