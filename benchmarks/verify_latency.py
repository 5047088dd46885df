"""Latency of `faceres.verify.verify` on two 250×250 JPEG photos, models warm.

Prints the median (and 90th percentile) of each stage: decode, detect, align, embed, total.
The photos are two LFW images when `FACERES_DATA` holds LFW, else scikit-image's astronaut and
a rotated, re-lit copy, both resized to 250×250.

    python benchmarks/verify_latency.py [--model NAME] [--detector yunet|dlib] [--runs 50]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics

import numpy as np
from PIL import Image

from faceres.settings import data_dir
from faceres.verify import verify

LFW_PAIR = ("Aaron_Peirsol/Aaron_Peirsol_0001.jpg", "Aaron_Peirsol/Aaron_Peirsol_0002.jpg")


def photos() -> tuple[bytes, bytes, str]:
    """Two 250×250 JPEGs as bytes (so decoding is measured) and where they come from."""
    root = data_dir()
    lfw = root / "lfw" / "lfw-deepfunneled" if root else None
    if lfw is not None and all((lfw / p).is_file() for p in LFW_PAIR):
        return (lfw / LFW_PAIR[0]).read_bytes(), (lfw / LFW_PAIR[1]).read_bytes(), "LFW"
    from skimage import data

    astro = Image.fromarray(data.astronaut())
    other = Image.fromarray(np.clip(np.asarray(astro.rotate(12)) * 0.8, 0, 255).astype(np.uint8))
    out = []
    for image in (astro, other):
        buf = io.BytesIO()
        image.resize((250, 250)).save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out[0], out[1], "scikit-image astronaut"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="identity model (default: the registry's default)")
    parser.add_argument("--detector", choices=("auto", "yunet", "dlib"))
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the medians as JSON only")
    args = parser.parse_args()

    a, b, source = photos()
    for _ in range(args.warmup):
        result = verify(a, b, model=args.model, detector=args.detector)
    runs = [verify(a, b, model=args.model, detector=args.detector).timings
            for _ in range(args.runs)]
    stages = list(runs[0])
    median = {s: statistics.median(r[s] for r in runs) for s in stages}
    p90 = {s: float(np.percentile([r[s] for r in runs], 90)) for s in stages}
    if args.json:
        print(json.dumps({"model": result.model, "detector": result.detector, "runs": args.runs,
                          "median_ms": median, "p90_ms": p90}))
        return
    import torch

    print(f"verify on two 250x250 JPEGs ({source}), model {result.model}, detector "
          f"{result.detector}, {args.runs} runs after {args.warmup} warm-up, "
          f"torch threads {torch.get_num_threads()}, CPUs {os.cpu_count()}")
    print(f"{'stage':<8}{'median ms':>11}{'p90 ms':>9}")
    for stage in stages:
        print(f"{stage:<8}{median[stage]:>11.1f}{p90[stage]:>9.1f}")
    print(f"verdict {result.verdict}, similarity {result.similarity:.4f}")


if __name__ == "__main__":
    main()
