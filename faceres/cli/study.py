"""`faceres study depth`: run or report the ResNet-vs-plain depth study."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    study = sub.add_parser("study", help="experiments across models")
    kinds = study.add_subparsers(dest="kind", required=True, metavar="KIND")
    p = kinds.add_parser(
        "depth",
        help="residual vs plain networks at several depths",
        description="Train the sweep (or, with --report, read it from the "
        "registry) and print the table; save the plots.",
    )
    p.add_argument("--config", help="JSON sweep config (default: faceres.study.depth.DEPTH_SWEEP)")
    p.add_argument("--resume", action="store_true", help="continue interrupted runs")
    p.add_argument("--jobs", type=int, default=1, help="models trained at once")
    p.add_argument(
        "--time-budget",
        type=float,
        help="seconds per model: lower the epochs to what fits (see train)",
    )
    p.add_argument("--report", action="store_true", help="no training: table from the registry")
    p.add_argument(
        "--out",
        type=Path,
        default=Path("runs/study"),
        help="folder for the PNG plots (default runs/study)",
    )
    p.add_argument(
        "--update-registry",
        action="store_true",
        help="with --report: put the table and findings into the models' cards",
    )
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.set_defaults(func=run_depth)


def run_depth(args: argparse.Namespace) -> int:
    from faceres.study.depth import (
        DEPTH_SWEEP,
        depth_report,
        format_table,
        run_depth_study,
        save_plots,
    )

    config = dict(json.loads(Path(args.config).read_text()) if args.config else DEPTH_SWEEP)
    if args.time_budget:
        config["time_budget"] = args.time_budget
    rows = (
        depth_report(config)
        if args.report
        else run_depth_study(config, resume=args.resume, jobs=args.jobs)
    )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from faceres.study.depth import findings, write_study_cards

    if args.report and args.update_registry and rows:
        write_study_cards(rows)
    print(format_table(rows))
    for line in findings(rows):
        print(f"- {line}")
    if rows:
        for path in save_plots(rows, args.out):
            print(f"saved {path}")
    return 0
