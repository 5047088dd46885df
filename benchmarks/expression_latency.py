"""Latency of `faceres.analyze_expression` on a 640×480 photo with one face, models warm.

Prints the median (and 90th percentile) of each stage: decode, detect, align, classify, total
(`total_ms_median` in the JSON: the figure the goal of 15 ms is about).
The photo is scikit-image's astronaut, scaled into a 640×480 JPEG (decoding is measured too).

    python benchmarks/expression_latency.py [--model NAME] [--detector yunet|dlib] [--runs 50]

The result is written to benchmarks/results/expression_latency.json (`--out`).
"""

from __future__ import annotations

import io

from PIL import Image
from stages import parse_args, print_stages, record, setup, time_stages

from faceres.expression import analyze_expression


def photo() -> bytes:
    """The astronaut (one frontal face) as a 640×480 JPEG."""
    from skimage import data

    canvas = Image.new("RGB", (640, 480), (128, 128, 128))
    canvas.paste(Image.fromarray(data.astronaut()).resize((480, 480)), (80, 0))
    buf = io.BytesIO()
    canvas.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def main() -> None:
    args = parse_args(
        __doc__.splitlines()[0],
        "expression model (default: the registry's default)",
        "expression_latency",
    )

    image = photo()
    result, median, p90 = time_stages(
        lambda: analyze_expression(image, model=args.model, detector=args.detector),
        args.runs,
        args.warmup,
    )
    record(
        result,
        args,
        median,
        p90,
        total_ms_median=median["total"],
        faces=[{"label": f.label} for f in result.faces],
    )
    if args.json:
        return
    print(
        f"analyze_expression on a 640x480 JPEG (scikit-image astronaut), model {result.model}, "
        f"detector {result.detector}, {setup(args)}"
    )
    print_stages(median, p90)
    faces = ", ".join(f"{f.label} {f.probabilities[f.label]:.2f}" for f in result.faces)
    print(f"faces: {len(result.faces)} ({faces})")


if __name__ == "__main__":
    main()
