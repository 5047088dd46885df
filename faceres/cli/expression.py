"""`faceres expression IMG...`: the expression of every face in photos."""

from __future__ import annotations

import argparse
import json

from faceres.detect import DETECTORS


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("expression", help="facial expression of every face in photos")
    p.add_argument("images", nargs="+", metavar="IMG")
    p.add_argument("--model", help="registry model (default: the default expression model)")
    p.add_argument("--detector", choices=DETECTORS)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from faceres.expression import analyze_expression

    out = []
    for path in args.images:
        result = analyze_expression(path, model=args.model, detector=args.detector)
        out.append(
            {
                "image": path,
                "model": result.model,
                "detector": result.detector,
                "timings_ms": result.timings,
                "faces": [
                    {
                        "face": number,
                        "box": [round(v, 1) for v in f.face.box],
                        "label": f.label,
                        "probabilities": {k: round(v, 4) for k, v in f.probabilities.items()},
                    }
                    for number, f in enumerate(result.faces, start=1)
                ],
            }
        )
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    for item in out:
        if not item["faces"]:
            print(f"{item['image']}: no face found")
        for face in item["faces"]:
            top = sorted(face["probabilities"].items(), key=lambda kv: -kv[1])[:3]
            print(
                f"{item['image']} face {face['face']} at {face['box']}: {face['label']} ("
                + ", ".join(f"{k} {v:.2f}" for k, v in top)
                + ")"
            )
    return 0
