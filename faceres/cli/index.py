"""`faceres index build|add|remove`, `faceres search` and `faceres cluster`: 1:N over a photo
collection."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from faceres.detect import DETECTORS


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the `index`, `search` and `cluster` commands."""
    index = subparsers.add_parser("index", help="index every face of a photo collection")
    sub = index.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, text in (
        ("build", "embed every face of every image under PATH... into the index INDEX"),
        ("add", "add (or re-index) images under PATH... in an existing index"),
    ):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("paths", metavar="PATH", nargs="+", help="image files or folders")
        p.add_argument("--out", "--index", dest="index", required=True, type=Path)
        p.add_argument("--model", help="identity model (default: the registry's default)")
        p.add_argument("--detector", choices=DETECTORS, help="face detector (default: auto)")
        p.add_argument("--resume", action="store_true", help="skip images already indexed")
        p.add_argument(
            "--engine",
            choices=("local", "ray"),
            default="local",
            help="where faces are embedded: this process, or Ray Data actors (a local Ray "
            "instance, or the cluster RAY_ADDRESS names; pip install 'faceres[ray]')",
        )
        p.add_argument("--json", action="store_true", help="print the summary as JSON only")
        p.set_defaults(func=run_build)
    p = sub.add_parser("remove", help="remove images (and their faces) from an index")
    p.add_argument("paths", metavar="PATH", nargs="+", help="image paths as indexed")
    p.add_argument("--index", required=True, type=Path)
    p.set_defaults(func=run_remove)

    s = subparsers.add_parser(
        "search",
        help="find the faces of an index most like each probe's face",
        description="For each probe image's largest face (or every face with --all-faces), "
        "the top-K indexed faces by cosine similarity, with verification's verdict.",
    )
    s.add_argument("probes", metavar="PROBE", nargs="+")
    s.add_argument("--index", required=True, type=Path)
    s.add_argument("--top", type=int, default=5, help="matches per probe face (default 5)")
    s.add_argument("--all-faces", action="store_true", help="search with every probe face")
    s.add_argument("--detector", choices=DETECTORS, help="face detector (default: auto)")
    s.add_argument("--json", action="store_true", help="print the matches as JSON only")
    s.set_defaults(func=run_search)

    c = subparsers.add_parser(
        "cluster",
        help="group an index's faces by person",
        description="Agglomerative clustering with the identity model's clustering threshold "
        "and linkage (fitted on LFW View 1 by `faceres eval cluster --fit-view1`; else average "
        "linkage at the verification threshold); faces that match nobody are 'unassigned'.",
    )
    c.add_argument("--index", required=True, type=Path)
    c.add_argument("--json", action="store_true", help="print the groups as JSON only")
    c.set_defaults(func=run_cluster)


def run_build(args: argparse.Namespace) -> int:
    from faceres.search.indexing import build_index
    from faceres.search.store import FaceStore

    if args.action == "add":
        FaceStore.open(args.index).close()  # an existing index only
    summary = build_index(
        args.paths,
        args.index,
        model=args.model,
        detector=args.detector,
        resume=args.resume,
        progress=not args.json,
        engine=args.engine,
    )
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"{summary['images']} image(s) read, {summary['faces']} face(s) indexed, "
            f"{summary['failed']} failed, {summary['skipped']} already indexed; "
            f"{summary['seconds']:.1f} s → {summary['index']}"
        )
    return 0


def run_remove(args: argparse.Namespace) -> int:
    from faceres.search.store import FaceStore

    store = FaceStore.open(args.index, writer=True)
    try:
        removed = store.remove(args.paths)
        store.faiss_index()
    finally:
        store.close()
    print(f"removed {removed} image(s) from {args.index}")
    return 0


def run_search(args: argparse.Namespace) -> int:
    from faceres.search.query import search

    results = search(
        args.probes, args.index, top=args.top, all_faces=args.all_faces, detector=args.detector
    )
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
        return 0
    for r in results:
        print(f"{r.probe} (face at {r.box}):")
        for m in r.matches:
            print(f"  {m.similarity:.4f} {m.verdict:9s} {m.path} face {m.face}")
    return 0


def run_cluster(args: argparse.Namespace) -> int:
    from faceres.search.query import cluster_index

    report = cluster_index(args.index)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(
        f"{report['faces']} face(s): {len(report['groups'])} group(s), "
        f"{len(report['unassigned'])} unassigned ({report['linkage']} linkage, threshold "
        f"{report['threshold']:.4f})"
    )
    for n, group in enumerate(report["groups"], start=1):
        print(f"group {n}: " + ", ".join(f"{f['path']}#{f['face']}" for f in group))
    return 0
