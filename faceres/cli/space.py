"""`faceres space build|sync`: the Hugging Face Space.

faceres space sync                 # refresh spaces/README.md and spaces/requirements.txt
faceres space build out/space      # assemble a deployable Space folder
hf upload OWNER/NAME out/space --repo-type space
"""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add `space` and its subcommands."""
    parser = subparsers.add_parser("space", help="build the Hugging Face Space")
    sub = parser.add_subparsers(dest="space_command", required=True, metavar="SUBCOMMAND")

    p = sub.add_parser("build", help="assemble a deployable Space folder")
    p.add_argument("out", help="new or empty folder to write the Space into")
    p.add_argument(
        "--no-weights",
        action="store_true",
        help="leave model folders out; the Space pulls them by pinned revision",
    )
    p.set_defaults(func=build_command)

    p = sub.add_parser("sync", help="regenerate spaces/README.md and spaces/requirements.txt")
    p.set_defaults(func=sync_command)


def build_command(args: argparse.Namespace) -> int:
    from faceres import space

    out = space.build(args.out, weights=not args.no_weights)
    print(f"Space written to {out}; deploy with: hf upload OWNER/NAME {out} --repo-type space")
    return 0


def sync_command(args: argparse.Namespace) -> int:
    from faceres import space

    changed = space.sync()
    for path in changed:
        print(f"updated {path}")
    if not changed:
        print("spaces/ is up to date")
    return 0
