"""Shared by the latency benchmarks: run a call repeatedly and summarise its `timings` (ms)."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

import numpy as np


def time_stages(call: Callable[[], Any], runs: int, warmup: int) -> tuple[Any, dict, dict]:
    """Call `call` `warmup` times, then `runs` times; return the last result and the median and
    90th percentile of each stage of its `.timings`."""
    for _ in range(warmup):
        result = call()
    timings = []
    for _ in range(runs):
        result = call()
        timings.append(result.timings)
    stages = list(timings[0])
    median = {s: statistics.median(t[s] for t in timings) for s in stages}
    p90 = {s: float(np.percentile([t[s] for t in timings], 90)) for s in stages}
    return result, median, p90


def print_stages(median: dict, p90: dict) -> None:
    """The stage table: median and p90 in milliseconds."""
    print(f"{'stage':<9}{'median ms':>10}{'p90 ms':>9}")
    for stage in median:
        print(f"{stage:<9}{median[stage]:>10.1f}{p90[stage]:>9.1f}")
