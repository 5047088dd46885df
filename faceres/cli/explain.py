"""`faceres explain IMG1 IMG2 --out DIR`: why two faces match, as images and JSON."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from faceres.cli.verify import add_pair_arguments, pair_arguments


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the `explain` command."""
    p = subparsers.add_parser(
        "explain",
        help="verify two photos and map which face regions support or oppose the match",
        description="Verify one face of each photo, then write each aligned face with the "
        "regions that raise the similarity in green and those that lower it in red (PNG), the "
        "signed maps alone (PNG), and a JSON summary, into DIR.",
    )
    add_pair_arguments(p)
    p.add_argument(
        "--network", help="for a fused model, the member whose maps to draw (default: the first)"
    )
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder for the output")
    p.add_argument("--json", action="store_true", help="print the JSON summary only")
    p.set_defaults(func=run_explain)


def run_explain(args: argparse.Namespace) -> int:
    from faceres.errors import FaceresError
    from faceres.identity.explain import explain_verify

    if args.out.exists() and not args.out.is_dir():
        raise FaceresError(f"--out {args.out} exists and is not a folder.")
    ex = explain_verify(**pair_arguments(args), network=args.network)
    try:
        images = ex.save_images(args.out)
        report = {**ex.to_dict(), "images": [str(path) for path in images]}
        (args.out / "explain.json").write_text(json.dumps(report, indent=2))
    except OSError as exc:
        raise FaceresError(f"Cannot write to {args.out}: {exc.strerror or exc}.") from exc
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    result = ex.verify
    print(
        f"{result.verdict}: similarity {result.similarity:.4f} (threshold {result.threshold:.4f}); "
        f"the maps explain {ex.similarity:.4f}, the aligned crops' similarity "
        "(green: raises it; red: lowers it to first order)"
    )
    print(f"wrote {', '.join(str(path) for path in images)} and {args.out / 'explain.json'}")
    return 0
