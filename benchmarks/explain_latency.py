"""Latency of the verification maps, models warm: `explain_crops` on two already aligned crops,
and `explain_verify` end to end (decode, detect, align, embed, maps), with `verify` alone for
comparison.

The photos are scikit-image's astronaut and camera man (512×512, as PNG bytes so decoding is
measured). Prints the median and 90th percentile of each call in milliseconds.

    python benchmarks/explain_latency.py [--model NAME] [--detector yunet|dlib] [--runs 50]

The result is written to benchmarks/results/explain_latency.json (`--out`).
"""

from __future__ import annotations

import io
import statistics
import time
from collections.abc import Callable

import numpy as np
from PIL import Image
from skimage import data
from stages import parse_args, print_stages, record, setup

from faceres import registry
from faceres.identity import verify
from faceres.identity.explain import explain_crops, explain_verify


def photos() -> tuple[bytes, bytes]:
    """The astronaut and the camera man (grey, as RGB) as PNG bytes."""
    out = []
    for pixels in (data.astronaut(), np.repeat(data.camera()[..., None], 3, axis=2)):
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="PNG")
        out.append(buf.getvalue())
    return out[0], out[1]


def timed(call: Callable[[], object], runs: int, warmup: int) -> list[float]:
    """Milliseconds of each of `runs` calls after `warmup` untimed ones."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000.0)
    return times


def main() -> None:
    model_help = "identity model (default: the registry's default)"
    args = parse_args(__doc__.splitlines()[0], model_help, "explain_latency")
    a, b = photos()
    result = explain_verify(a, b, model=args.model, detector=args.detector)
    loaded = registry.load_task("identity", result.model)
    crops = result.crops
    calls = {
        "explain_crops": lambda: explain_crops(*crops, loaded),
        "explain_verify": lambda: explain_verify(a, b, model=args.model, detector=args.detector),
        "verify": lambda: verify(a, b, model=args.model, detector=args.detector),
    }
    times = {name: timed(call, args.runs, args.warmup) for name, call in calls.items()}
    median = {name: statistics.median(t) for name, t in times.items()}
    p90 = {name: float(np.percentile(t, 90)) for name, t in times.items()}
    record(
        result.verify,
        args,
        median,
        p90,
        photos="scikit-image astronaut and camera man, 512x512 PNG",
        similarity=result.similarity,
        verdict=result.verify.verdict,
    )
    if args.json:
        return
    print(
        f"explain on the astronaut and the camera man, model {result.model}, detector "
        f"{result.verify.detector}, {setup(args)}"
    )
    print_stages(median, p90)


if __name__ == "__main__":
    main()
