"""Time of each bad (or merely unusual) input through `faceres.verify` and
`faceres.analyze_expression`, models warm: which input is the slowest to answer, and how slow.

The inputs are those of `tests/test_bad_inputs.py` (`tests/badinputs.py`, written into a temporary
folder: empty and truncated files, decompression bombs, 16-bit, CMYK, palette, EXIF-rotated and
animated images, no face, 30 faces, ...). Each call is timed `--repeats` times (median); an input
that is refused counts as answered when the `FaceresError` is raised.

    python benchmarks/bad_inputs_latency.py [--repeats 3]

The result is written to benchmarks/results/bad_inputs_latency.json (`--out`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from record import HERE, add_out_argument, save

from faceres.errors import FaceresError
from faceres.expression import analyze_expression
from faceres.identity import verify
from faceres.imageio import MAX_PIXELS

sys.path.insert(0, str(HERE.parent / "tests"))
from badinputs import EXPECT, make_inputs  # noqa: E402

REFERENCE = "astronaut.jpg"


def seconds(call, repeats: int) -> tuple[float, str]:
    """Median seconds of `call()` and what it gave: "result" or the error's class name."""
    times, outcome = [], "result"
    for _ in range(repeats):
        start = time.perf_counter()
        try:
            call()
            outcome = "result"
        except FaceresError as exc:
            outcome = type(exc).__name__
        times.append(time.perf_counter() - start)
    return statistics.median(times), outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    add_out_argument(parser, "bad_inputs_latency")
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        inputs = make_inputs(Path(tmp), MAX_PIXELS)
        reference = inputs[REFERENCE]
        verify(reference, reference)  # models and detector loaded: time the inputs alone
        analyze_expression(reference)
        for name in EXPECT:
            for call_name, call in (
                ("verify", lambda p=inputs[name]: verify(reference, p)),
                ("analyze_expression", lambda p=inputs[name]: analyze_expression(p)),
            ):
                median, outcome = seconds(call, args.repeats)
                rows.append(
                    {"input": name, "call": call_name, "seconds": median, "outcome": outcome}
                )
    slowest = max(rows, key=lambda r: r["seconds"])
    data = {"repeats": args.repeats, "inputs": len(EXPECT), "slowest": slowest, "calls": rows}
    save(data, args.out)
    for row in sorted(rows, key=lambda r: -r["seconds"])[:8]:
        print(f"{row['seconds']:7.3f} s  {row['call']:<19} {row['input']:<26} {row['outcome']}")
    print(json.dumps({"slowest": slowest}))


if __name__ == "__main__":
    main()
