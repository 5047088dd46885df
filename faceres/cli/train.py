"""`faceres train expression`: train an expression model into the registry."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train", help="train models")
    kinds = train.add_subparsers(dest="kind", required=True, metavar="KIND")
    p = kinds.add_parser(
        "expression",
        help="train an expression model on FER2013 / FER+",
        description="Train from scratch (or from --init), select on PublicTest, save to the "
        "registry folder given by --out.",
    )
    p.add_argument("--arch", required=True, help="timm architecture, e.g. faceres_resnet18_48")
    p.add_argument("--out", required=True, help="registry folder, e.g. registry/models/NAME")
    p.add_argument("--labels", choices=("fer", "ferplus"), default="fer")
    p.add_argument("--data", help="FER2013 image folders (default $FACERES_DATA/fer2013)")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--augment",
        choices=("full", "light"),
        default="full",
        help="full: flip, rotation, scale, shift, brightness/contrast, erasing; light: flip and "
        "a shift of up to 1/8 (the depth study's protocol)",
    )
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--twin", help="registry name of this model's plain or residual twin")
    p.add_argument("--default", action="store_true", help="make it the default expression model")
    p.add_argument("--device", help="cuda or cpu (default: cuda when available)")
    p.add_argument("--workdir", help="checkpoints (default runs/NAME)")
    p.add_argument(
        "--time-budget",
        type=float,
        help="seconds: lower --epochs to what fits, timed before training",
    )
    _add_recipe(p)
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run_expression)
    _add_framing(kinds)


def _add_recipe(p: argparse.ArgumentParser) -> None:
    """The recipe beyond plain SGD: warm start, distillation, mixup, SWA."""
    p.add_argument("--init", metavar="NAME", help="start from this registry model's weights")
    p.add_argument(
        "--teachers",
        nargs="+",
        default=[],
        metavar="NAME",
        help="registry models to distil from: their mean probabilities on each augmented batch "
        "make up --distill of the target",
    )
    p.add_argument("--distill", type=float, default=0.5, help="teachers' share of the target")
    p.add_argument(
        "--teacher-views",
        type=int,
        default=0,
        metavar="K",
        help="run the teachers once, on K fixed augmented views of each image (stored in "
        "runs/teacher-views/, shared with the twin); each epoch trains on one view per image",
    )
    p.add_argument("--mixup", type=float, default=0.0, help="mixup's Beta(α, α); 0: off")
    p.add_argument(
        "--swa-epochs",
        type=int,
        default=0,
        help="average the weights of the last N epochs, at a constant --swa-lr (SWA)",
    )
    p.add_argument("--swa-lr", type=float, default=0.01)


def _add_framing(kinds: argparse._SubParsersAction) -> None:
    """`faceres train framing`: measure how FER2013 frames faces."""
    f = kinds.add_parser(
        "framing",
        help="measure how FER2013 frames faces, per detector",
        description="Run each detector on upscaled FER2013 Training images and "
        "write the median landmarks (the crop template) into the "
        "config of expression models.",
    )
    f.add_argument(
        "models",
        nargs="*",
        metavar="NAME",
        help="expression models to update (default: every one in the registry)",
    )
    f.add_argument("--detectors", nargs="+", default=["yunet", "dlib"], choices=("yunet", "dlib"))
    f.add_argument("--count", type=int, default=1000, help="FER2013 images measured")
    f.add_argument("--data", help="FER2013 image folders (default $FACERES_DATA/fer2013)")
    f.set_defaults(func=run_framing)


def run_expression(args: argparse.Namespace) -> int:
    from faceres import registry
    from faceres.errors import DataError
    from faceres.train.classifier import TrainConfig, train_expression

    models = (registry.registry_dir() / "models").resolve()
    if Path(args.out).resolve().parent != models:
        raise DataError(
            f"--out must be a folder in {models} (registry/models/NAME); set "
            "FACERES_REGISTRY to train into another registry."
        )
    cfg = TrainConfig(
        arch=args.arch,
        name=Path(args.out).name,
        labels=args.labels,
        data=args.data,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        augment=args.augment,
        label_smoothing=args.label_smoothing,
        twin=args.twin,
        default=args.default,
        device=args.device,
        workdir=args.workdir,
        time_budget=args.time_budget,
        init=args.init,
        teachers=args.teachers,
        distill=args.distill,
        teacher_views=args.teacher_views,
        mixup=args.mixup,
        swa_epochs=args.swa_epochs,
        swa_lr=args.swa_lr,
    )
    summary = train_expression(cfg, resume=args.resume, progress=not args.json)
    print(
        json.dumps(summary, indent=2)
        if args.json
        else "\n".join(f"{k}: {v}" for k, v in summary.items())
    )
    return 0


def run_framing(args: argparse.Namespace) -> int:
    from faceres import registry
    from faceres.train.framing import measure_framing

    template: dict = {}
    for detector in args.detectors:
        measured = measure_framing(detector, data=args.data, count=args.count)
        template.update(measured)
        print(f"{detector}: " + json.dumps({k: v for k, v in measured.items() if k != "size"}))
    names = args.models or [e["name"] for e in registry.list_models("expression")]
    for name in names:
        registry.update_config(name, alignment=template)
        print(f"updated {name}")
    return 0
