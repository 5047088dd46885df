"""`faceres convert`: bring dlib's published models into the registry.

    faceres convert dlib-resnet [PATH]       # dlib_face_recognition_resnet_model_v1.dat
    faceres convert dlib-landmarks5 [PATH]   # shape_predictor_5_face_landmarks.dat
    faceres convert dlib-mmod [PATH]         # mmod_human_face_detector.dat

PATH defaults to the file installed by `pip install face_recognition_models`.
"""

from __future__ import annotations

import argparse

KINDS = {
    "dlib-resnet": "convert_dlib_resnet",
    "dlib-landmarks5": "convert_dlib_landmarks5",
    "dlib-mmod": "convert_dlib_mmod",
}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert dlib's models (face_recognition_models) into registry entries",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("kind", choices=sorted(KINDS), help="which dlib model")
    parser.add_argument("path", nargs="?", default=None, help="the .dat file (default: installed)")
    parser.add_argument("--name", default=None, help="registry name (default: the standard one)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import faceres.convert.dlib as convert

    fn = getattr(convert, KINDS[args.kind])
    folder = fn(args.path, name=args.name) if args.name else fn(args.path)
    print(f"wrote {folder}")
    return 0
