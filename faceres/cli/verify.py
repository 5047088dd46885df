"""`faceres verify IMG1 IMG2` and `faceres embed IMG... --out F`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from faceres.detect import DETECTORS


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the `verify` and `embed` commands."""
    p = subparsers.add_parser(
        "verify",
        help="are two photos the same person?",
        description="Compare one face of each photo (default: the largest) with an identity model.",
    )
    add_pair_arguments(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON only")
    p.set_defaults(func=run_verify, task="identity")

    e = subparsers.add_parser(
        "embed",
        help="face embeddings of photos, to .npy or .json",
        description="Embed one face per photo (default: the largest), or every face with "
        "--all-faces; rows follow the inputs. A photo that cannot be read or has no face is "
        "reported and skipped (exit code 1), the others are written.",
    )
    e.add_argument("images", metavar="IMG", nargs="+")
    e.add_argument("--out", required=True, type=Path, help="output file, .npy or .json")
    e.add_argument("--model", help="identity model from the registry (default: the default one)")
    e.add_argument(
        "--face",
        type=int,
        metavar="N",
        help="face number in every photo, from 1, largest first (default 1)",
    )
    e.add_argument("--all-faces", action="store_true", help="embed every face of every photo")
    e.add_argument(
        "--detector",
        choices=DETECTORS,
        help="face detector (default: the FACERES_DETECTOR setting, else auto)",
    )
    e.set_defaults(func=run_embed, task="identity")


def add_pair_arguments(p: argparse.ArgumentParser) -> None:
    """IMG1 IMG2 and the options choosing how they are compared (`verify`, `explain`)."""
    p.add_argument("image1", metavar="IMG1")
    p.add_argument("image2", metavar="IMG2")
    p.add_argument("--model", help="identity model from the registry (default: the default one)")
    p.add_argument(
        "--face1", type=int, metavar="N", help="face number in IMG1, largest first (default 1)"
    )
    p.add_argument(
        "--face2", type=int, metavar="N", help="face number in IMG2, largest first (default 1)"
    )
    p.add_argument(
        "--detector",
        choices=DETECTORS,
        help="face detector (default: the FACERES_DETECTOR setting, else auto)",
    )


def pair_arguments(args: argparse.Namespace) -> dict:
    """The keyword arguments of `verify` (and `explain_verify`) that `add_pair_arguments` parsed."""
    names = ("model", "face1", "face2", "detector")
    return {"img1": args.image1, "img2": args.image2} | {k: getattr(args, k) for k in names}


def run_verify(args: argparse.Namespace) -> int:
    from faceres.detect import score_text
    from faceres.identity import verify
    from faceres.identity.calibration import rates_text

    result = verify(**pair_arguments(args))
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    print(
        f"{result.verdict}: similarity {result.similarity:.4f} "
        f"(threshold {result.threshold:.4f}, uncertain within ±{result.band:.4f})"
    )
    for reason in result.reasons:
        print(f"uncertain because {reason}")
    if result.rates:
        print(rates_text(result.rates))
    for name, v in result.members:
        print(
            f"  {name} alone: {v.verdict}, similarity {v.similarity:.4f} "
            f"(threshold {v.threshold:.4f})"
        )
    if result.disagreement:
        print(result.disagreement)
    for i, (faces, number, q) in enumerate(
        zip(result.faces, result.chosen, result.quality, strict=True), start=1
    ):
        x, y, w, h = faces[number - 1].box
        print(
            f"image {i}: {len(faces)} face(s), using face {number} "
            f"at x={x:.0f} y={y:.0f} w={w:.0f} h={h:.0f}; {q.eye_distance:.0f} px between the "
            f"eyes, sharpness {q.sharpness:.0f}, yaw {q.yaw:.0f}°, "
            f"{score_text(faces[number - 1].detector, q.score)}"
        )
    times = ", ".join(f"{k} {v:.1f} ms" for k, v in result.timings.items())
    print(f"model {result.model}, detector {result.detector}; {times}")
    return 0


def run_embed(args: argparse.Namespace) -> int:
    from faceres.errors import FaceresError
    from faceres.face.pipeline import FacePipeline
    from faceres.identity import embed
    from faceres.search.embed import embed_files

    suffix = args.out.suffix.lower()
    if suffix not in (".npy", ".json"):
        raise FaceresError(f"--out must end in .npy or .json, not {suffix or 'nothing'}.")
    pipeline = FacePipeline.for_model(args.model, args.detector)
    rows: list[dict] = []
    failed: list[dict] = []
    if args.all_faces:
        for path, _, faces, error in embed_files(args.images, pipeline):
            if error or not faces:
                failed.append({"image": path, "error": error or "no face found"})
            rows += [
                {"image": path, "face": f.face, "box": f.box, "vector": f.vector} for f in faces
            ]
    else:
        for img in args.images:
            try:
                vector = embed(img, model=pipeline.model, face=args.face, detector=args.detector)
            except FaceresError as exc:
                failed.append({"image": img, "error": str(exc)})
                continue
            rows.append({"image": img, "face": args.face or 1, "vector": vector})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    dim = len(rows[0]["vector"]) if rows else 0
    if suffix == ".npy":
        np.save(args.out, np.array([r["vector"] for r in rows], np.float32).reshape(len(rows), dim))
    else:
        embeddings = [
            {k: v for k, v in r.items() if k != "vector"}
            | {"embedding": [round(float(v), 7) for v in r["vector"]]}
            for r in rows
        ]
        args.out.write_text(
            json.dumps({"model": pipeline.model, "embeddings": embeddings, "failed": failed})
        )
    print(f"wrote {len(rows)} embedding(s) of size {dim} ({pipeline.model}) to {args.out}")
    for f in failed:
        print(f"faceres: {f['image']}: {f['error']}", file=sys.stderr)
    return 1 if failed else 0
