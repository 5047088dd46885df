"""`faceres export onnx NAME...`: registry models as ONNX files for ONNX Runtime.

faceres export onnx dlib-resnet29-face            # into the cache, where faceres reads it
faceres export onnx resnet18-fer --out model.onnx
faceres export onnx --all                         # every identity and expression model
faceres export onnx dlib-resnet29-face --registry # commit it: model.onnx in its registry folder
"""

from __future__ import annotations

import argparse
import json


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add `export` and its one format, `onnx`."""
    parser = subparsers.add_parser("export", help="export registry models (ONNX)")
    sub = parser.add_subparsers(dest="export_format", required=True, metavar="FORMAT")
    p = sub.add_parser(
        "onnx",
        help="write ONNX files, checked against torch",
        description="Export with torch's exporter (dynamic batch, opset 18) and check ONNX "
        "Runtime's outputs against torch's. Default destination: the cache "
        "($FACERES_CACHE/onnx), which the CLI, the API and the app read on a CPU.",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="registry model(s)")
    p.add_argument("--all", action="store_true", help="every identity and expression model")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--out", help="output file (one NAME only; default: the cache)")
    where.add_argument(
        "--registry",
        action="store_true",
        help="write model.onnx into the model's registry folder and pin it in the index",
    )
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(func=run_onnx)


def run_onnx(args: argparse.Namespace) -> int:
    from faceres import registry
    from faceres.errors import FaceresError
    from faceres.registry.onnx import sidecar_path

    names = args.names or []
    if args.all:
        entries = registry.list_models()
        names = [  # our timm models; YuNet is ONNX already, the landmark cascade numpy
            e["name"]
            for e in entries
            if e.get("path") and e["task"] not in ("landmarks", "detector")
        ]
    if not names:
        raise FaceresError("Name at least one model, or pass --all.")
    if args.out and len(names) != 1:
        raise FaceresError("--out takes one model; without it each goes into the cache.")
    rows = []
    for name in names:
        if args.registry:
            rows.append({"name": name, "path": str(registry.publish_onnx(name))})
            continue
        path = registry.export_onnx(name, args.out)
        record = json.loads(sidecar_path(path).read_text(encoding="utf-8"))
        rows.append({"name": name, "path": str(path), "max_abs_diff": record["max_abs_diff"]})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            diff = (
                f" (max |onnx - torch| {row['max_abs_diff']:.1e})" if "max_abs_diff" in row else ""
            )
            print(f"{row['name']}: {row['path']}{diff}")
    return 0
