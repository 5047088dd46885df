"""`faceres study depth` and `faceres study lesion`: run or report the ResNet-vs-plain depth
study and the lesion study."""

from __future__ import annotations

import argparse
import json
import logging
import sys
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
        help="with --report: put the table and findings into the models' cards and "
        "registry/studies/depth/depth.json (what the app shows)",
    )
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.set_defaults(func=run_depth)
    add_lesion_parser(kinds)


def add_lesion_parser(kinds: argparse._SubParsersAction) -> None:
    """`faceres study lesion`: delete blocks of trained networks at test time (Veit et al.)."""
    p = kinds.add_parser(
        "lesion",
        help="delete blocks of trained ResNets and their plain twins at test time",
        description="Delete each deletable block, then k random ones, of every model and measure "
        "its accuracy; measure the gradient along paths of each length of one ResNet "
        "(Veit, Wilber & Belongie 2016). Saves lesion.json and the plots; prints the table and "
        "findings.",
    )
    p.add_argument(
        "--models",
        nargs="+",
        help="registry models (default: dlib-resnet29-face and the FER ResNets 18/20/56 with "
        "their plain twins)",
    )
    p.add_argument(
        "--path-model",
        default="resnet56-fer",
        help="the ResNet whose paths are measured, when it is among the models; 'none' for "
        "none (default resnet56-fer)",
    )
    p.add_argument("--draws", type=int, default=5, help="random lesions per k (default 5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the draws (default 0)")
    p.add_argument(
        "--mirror",
        action="store_true",
        help="expression accuracy with each face's mirror image averaged in (twice the time)",
    )
    p.add_argument(
        "--lfw-protocol",
        choices=["devtest-10fold", "devtrain-threshold"],
        default="devtest-10fold",
        help="identity score: pairsDevTest 10-fold (1,549 images, default) or pairsDevTest at "
        "the pairsDevTrain threshold (4,992 images)",
    )
    p.add_argument("--data", help="research data folder (default $FACERES_DATA)")
    p.add_argument(
        "--report",
        action="store_true",
        help="read lesion.json back, no computing: from --out, else the study committed in the "
        "registry (registry/studies/lesion)",
    )
    p.add_argument(
        "--out",
        type=Path,
        help="folder for lesion.json and the plots (default runs/study/lesion)",
    )
    p.add_argument(
        "--update-registry",
        action="store_true",
        help="put the table and findings into each studied model's card and the results into "
        "registry/studies/lesion/lesion.json (what the app shows)",
    )
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=run_lesion)


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
        print(json.dumps({"protocol": config.get("protocol", ""), "rows": rows}, indent=2))
        return 0
    from faceres.study.depth import findings, save_study, write_study_cards

    if args.report and args.update_registry and rows:
        write_study_cards(rows)
        print(f"saved {save_study(rows, config)}", file=sys.stderr)
    print(format_table(rows))
    for line in findings(rows):
        print(f"- {line}")
    if rows:
        for path in save_plots(rows, args.out):
            print(f"saved {path}")
    return 0


def run_lesion(args: argparse.Namespace) -> int:
    from faceres.registry import registry_dir
    from faceres.study.lesion.report import (
        findings,
        format_table,
        load_results,
        save_plots,
        save_results,
        write_cards,
    )
    from faceres.study.lesion.run import DEFAULT_MODELS, LesionSettings, run_lesion_study

    out = args.out or Path("runs/study/lesion")
    if args.report:
        results = load_results(args.out or registry_dir() / "studies" / "lesion")
    else:
        logging.basicConfig(
            level=logging.WARNING if args.json else logging.INFO,
            format="%(asctime)s %(message)s",
            datefmt="%H:%M:%S",
        )
        results = run_lesion_study(
            args.models or DEFAULT_MODELS,
            LesionSettings(
                draws=args.draws,
                seed=args.seed,
                mirror=args.mirror,
                lfw_protocol=args.lfw_protocol,
            ),
            path_model=None if args.path_model == "none" else args.path_model,
            data=args.data,
        )
        print(f"saved {save_results(results, out)}", file=sys.stderr)
    if args.update_registry:
        for name in write_cards(results):
            print(f"updated the card of {name}")
        print(f"saved {save_results(results, registry_dir() / 'studies' / 'lesion')}")
    if args.json:
        print(json.dumps({**results, "findings": findings(results)}, indent=2))
        return 0
    print(format_table(results))
    for line in findings(results):
        print(f"- {line}")
    for path in save_plots(results, out):
        print(f"saved {path}")
    return 0
