"""`faceres registry list|verify|pull|push`: the model registry from the command line.

faceres registry list --json
faceres registry verify
faceres registry pull dlib-resnet29-face
faceres registry push resnet18-fer --repo-id faceres/resnet18-fer
"""

from __future__ import annotations

import argparse
import json

LIST_KEYS = (
    "name",
    "task",
    "default",
    "architecture",
    "twin",
    "metrics",
    "repo_id",
    "revision",
    "license",
    "path",
    "source",
    "description",
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add `registry` and its subcommands."""
    parser = subparsers.add_parser("registry", help="list, verify, pull and push registry models")
    sub = parser.add_subparsers(dest="registry_command", required=True, metavar="SUBCOMMAND")

    p = sub.add_parser("list", help="the registry's models")
    p.add_argument("--task", help="only this task (identity, expression, detector, landmarks)")
    p.add_argument("--json", action="store_true", help="print a JSON list of entries")
    p.set_defaults(func=list_command)

    p = sub.add_parser("verify", help="check the sha256 of every local file (exit 1 on mismatch)")
    p.add_argument("name", nargs="?", help="only this model")
    p.set_defaults(func=verify_command)

    p = sub.add_parser("pull", help="download a model at its pinned revision into the HF cache")
    p.add_argument("name")
    p.set_defaults(func=pull_command)

    p = sub.add_parser("push", help="upload a model folder to the Hub and pin the new revision")
    p.add_argument("name")
    p.add_argument("--repo-id", required=True, help="Hub model repo, e.g. faceres/resnet18-fer")
    p.add_argument("--token", help="Hub token (default: HF_TOKEN or the saved login)")
    p.set_defaults(func=push_command)


def list_command(args: argparse.Namespace) -> int:
    from faceres import registry

    entries = [{k: e.get(k) for k in LIST_KEYS} for e in registry.list_models(args.task)]
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    if not entries:
        print("The registry is empty.")
        return 0
    width = max(len(e["name"]) for e in entries)
    for e in entries:
        metrics = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in (e["metrics"] or {}).items()
        )
        flag = "*" if e["default"] else " "
        print(
            f"{flag} {e['name']:<{width}}  {e['task']:<10}  {e['architecture'] or '-':<24}  "
            f"{metrics}"
        )
    print("(* default for its task)")
    return 0


def verify_command(args: argparse.Namespace) -> int:
    from faceres import registry

    rows = registry.verify(args.name)
    for name, filename, status in rows:
        print(f"{status:<9} {name}/{filename}")
    failed = sum(status in ("mismatch", "missing") for _, _, status in rows)
    print(f"{len(rows)} files, {failed} failed")
    return 1 if failed else 0


def pull_command(args: argparse.Namespace) -> int:
    from faceres import registry

    print(registry.pull(args.name))
    return 0


def push_command(args: argparse.Namespace) -> int:
    from faceres import registry

    revision = registry.push(args.name, args.repo_id, token=args.token)
    print(f"{args.name} -> {args.repo_id}@{revision}")
    return 0
