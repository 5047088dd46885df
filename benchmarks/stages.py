"""Shared by the latency benchmarks: their options, a call run repeatedly and its `timings`
(ms) summarised."""

from __future__ import annotations

import argparse
import json
import os
import statistics
from collections.abc import Callable
from typing import Any

import numpy as np
from record import add_out_argument, save

from faceres.detect import DETECTORS


def parse_args(description: str, model_help: str, name: str) -> argparse.Namespace:
    """--model, --detector, --runs, --warmup, --json and --out (default
    benchmarks/results/<name>.json), parsed from the command line."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", help=model_help)
    parser.add_argument("--detector", choices=DETECTORS)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the medians as JSON only")
    add_out_argument(parser, name)
    return parser.parse_args()


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


def record(result: Any, args: argparse.Namespace, median: dict, p90: dict, **extra) -> dict:
    """The model, detector, run count, medians and p90s, saved to `args.out`; printed as one
    JSON line with --json."""
    data = {
        "model": result.model,
        "detector": result.detector,
        "runs": args.runs,
        "warmup": args.warmup,
        "median_ms": median,
        "p90_ms": p90,
        **extra,
    }
    save(data, args.out)
    if args.json:
        print(json.dumps(data))
    return data


def setup(args: argparse.Namespace) -> str:
    """How the numbers were taken: runs, warm-up calls, torch threads and CPUs."""
    import torch

    return (
        f"{args.runs} runs after {args.warmup} warm-up, torch threads "
        f"{torch.get_num_threads()}, CPUs {os.cpu_count()}"
    )


def print_stages(median: dict, p90: dict) -> None:
    """The stage table: median and p90 in milliseconds."""
    print(f"{'stage':<9}{'median ms':>10}{'p90 ms':>9}")
    for stage in median:
        print(f"{stage:<9}{median[stage]:>10.1f}{p90[stage]:>9.1f}")
