"""Latency of `faceres.identity.verify` on two 250×250 JPEG photos, models warm.

Prints the median (and 90th percentile) of each stage: decode, detect, align, embed, total.
The photos are two LFW images when `FACERES_DATA` holds LFW, else scikit-image's astronaut and
a rotated, re-lit copy, both resized to 250×250.

    python benchmarks/verify_latency.py [--model NAME] [--detector yunet|dlib] [--runs 50]

The result is written to benchmarks/results/verify_latency.json (`--out`).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from stages import parse_args, print_stages, record, setup, time_stages

from faceres.identity import verify
from faceres.settings import data_dir

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
    args = parse_args(
        __doc__.splitlines()[0],
        "identity model (default: the registry's default)",
        "verify_latency",
    )

    a, b, source = photos()
    result, median, p90 = time_stages(
        lambda: verify(a, b, model=args.model, detector=args.detector), args.runs, args.warmup
    )
    record(
        result,
        args,
        median,
        p90,
        photos=source,
        verdict=result.verdict,
        similarity=result.similarity,
    )
    if args.json:
        return
    print(
        f"verify on two 250x250 JPEGs ({source}), model {result.model}, detector "
        f"{result.detector}, {setup(args)}"
    )
    print_stages(median, p90)
    print(f"verdict {result.verdict}, similarity {result.similarity:.4f}")


if __name__ == "__main__":
    main()
