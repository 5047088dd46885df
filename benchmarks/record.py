"""Where benchmarks keep what they measured: one JSON file per command in `benchmarks/results/`.

Every benchmark script writes its result there (`--out` to write elsewhere), with the command
line, the time, the git commit and the machine (CPU model and count, load average, torch threads),
so that each figure the README quotes can be traced to a file and checked
(`tests/test_readme.py`).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def add_out_argument(parser: argparse.ArgumentParser, name: str) -> None:
    """`--out PATH`, default `benchmarks/results/<name>.json`."""
    parser.add_argument(
        "--out",
        type=Path,
        default=RESULTS / f"{name}.json",
        help=f"where the JSON result goes (default: benchmarks/results/{name}.json)",
    )


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=HERE, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def machine() -> dict[str, Any]:
    """CPU model and count, 1-minute load average, torch threads (when torch is loaded)."""
    torch = sys.modules.get("torch")
    return {
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "load_1min": round(os.getloadavg()[0], 2),
        "torch_threads": torch.get_num_threads() if torch else None,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "python": platform.python_version(),
    }


def save(result: dict[str, Any], out: Path) -> Path:
    """Write `result` with the command, time, commit and machine; returns the path."""
    script = Path(sys.argv[0]).resolve()
    try:
        script_name = script.relative_to(HERE.parent).as_posix()
    except ValueError:
        script_name = script.name
    record = {
        "command": " ".join(["python", script_name, *sys.argv[1:]]),
        "measured_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "git_commit": _git_commit(),
        "machine": machine(),
        **result,
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return out
