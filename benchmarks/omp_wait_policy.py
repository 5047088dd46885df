"""What OMP_WAIT_POLICY does to torch CPU inference, on a quiet machine and on a busy one.

`faceres/__init__.py` sets OMP_WAIT_POLICY=PASSIVE unless it is set. This runs
`benchmarks/detect_latency.py` (the dlib detector + landmarks: torch convolutions; YuNet runs in
OpenCV) in a fresh process per setting, since OpenMP reads the variable when torch loads: PASSIVE
and ACTIVE, each with the machine left alone ("quiet": whatever else runs on it, its load average
is recorded) and with `--busy` processes spinning on the CPUs. Prints the dlib medians and the
ratio ACTIVE / PASSIVE of each.

    python benchmarks/omp_wait_policy.py [--runs 15] [--busy 2]

The result is written to benchmarks/results/omp_wait_policy.json (`--out`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from record import HERE, add_out_argument, save

POLICIES = ("PASSIVE", "ACTIVE")


def detect(policy: str, runs: int, busy: int) -> dict:
    """detect_latency.py's result with OMP_WAIT_POLICY=`policy`, `busy` spinners running."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "detect.json"
            subprocess.run(
                [
                    sys.executable,
                    str(HERE / "detect_latency.py"),
                    "--runs",
                    str(runs),
                    "--out",
                    str(out),
                ],
                env={**os.environ, "OMP_WAIT_POLICY": policy},
                check=True,
                stdout=subprocess.DEVNULL,
            )
            return json.loads(out.read_text())
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument(
        "--busy", type=int, default=os.cpu_count() or 2, help="spinning processes (busy case)"
    )
    add_out_argument(parser, "omp_wait_policy")
    args = parser.parse_args()

    cases = {}
    for load, busy in (("quiet", 0), ("busy", args.busy)):
        for policy in POLICIES:
            result = detect(policy, args.runs, busy)
            cases[f"{load}/{policy}"] = {
                "dlib_median_ms": result["results"]["dlib"]["median_ms"],
                "yunet_median_ms": (result["results"].get("yunet") or {}).get("median_ms"),
                "load_1min": result["machine"]["load_1min"],
                "busy_processes": busy,
            }
    ratios = {
        load: cases[f"{load}/ACTIVE"]["dlib_median_ms"] / cases[f"{load}/PASSIVE"]["dlib_median_ms"]
        for load in ("quiet", "busy")
    }
    data = {"runs": args.runs, "busy": args.busy, "cases": cases, "active_over_passive": ratios}
    save(data, args.out)
    for name, case in cases.items():
        print(f"{name:<14} dlib median {case['dlib_median_ms']:8.1f} ms")
    print(json.dumps({"active_over_passive": ratios}))


if __name__ == "__main__":
    main()
