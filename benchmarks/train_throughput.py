"""Training throughput of an expression architecture on this machine, and what a run would take.

Times `--steps` real training steps (augmentation, bf16 autocast, channels_last, SGD) after
warm-up, on random images of the architecture's input size, and prints images/s and the
projected time of `--epochs` epochs over FER2013 Training (28,709 images).

    python benchmarks/train_throughput.py --arch faceres_resnet18_48 [--device cpu] [--epochs 60]
        [--mixup 0.2] [--teachers resnet18-fer plain18-fer]

Prints one JSON line, also written to benchmarks/results/train_throughput.json (`--out`).
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from record import add_out_argument, save

from faceres.labels import FER_LABELS
from faceres.registry.weights import default_device
from faceres.train.classifier import TrainConfig, build_model, load_teachers, step_seconds

FER_TRAINING = 28_709


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="faceres_resnet18_48")
    parser.add_argument("--device")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--augment", choices=("full", "light"), default="full")
    parser.add_argument("--mixup", type=float, default=0.0, help="mixup's Beta(α, α); 0: off")
    parser.add_argument("--teachers", nargs="*", default=[], help="registry models to distil from")
    add_out_argument(parser, "train_throughput")
    args = parser.parse_args()

    device = default_device(args.device)
    model = build_model(args.arch, 7).to(device).to(memory_format=torch.channels_last)
    size = tuple(model.pretrained_cfg["input_size"][1:])
    x = torch.randint(0, 256, (1024, 1, *size), dtype=torch.uint8, device=device)
    y = torch.randint(0, 7, (1024,), device=device)
    steps_per_epoch = FER_TRAINING // args.batch_size
    cfg = TrainConfig(
        arch=args.arch,
        name="bench",
        batch_size=args.batch_size,
        augment=args.augment,
        mixup=args.mixup,
        teachers=args.teachers,
    )
    teachers = load_teachers(args.teachers, model, FER_LABELS, device)
    t0 = time.perf_counter()
    step = step_seconds(model, x, y, cfg, 0.5, 0.25, steps=args.steps, teachers=teachers)
    seconds_per_epoch = step * steps_per_epoch
    data = {
        "arch": args.arch,
        "device": str(device),
        "input_size": list(size),
        "augment": args.augment,
        "mixup": args.mixup,
        "teachers": args.teachers,
        "threads": torch.get_num_threads(),
        "batch_size": args.batch_size,
        "steps": args.steps,
        "images_per_second": round(args.batch_size / step, 1),
        "projected_hours": round(args.epochs * seconds_per_epoch / 3600, 2),
        "note": "training steps only; validation adds about 5% per epoch",
        "epochs": args.epochs,
        "measured_seconds": round(time.perf_counter() - t0, 1),
    }
    save(data, args.out)
    print(json.dumps(data))


if __name__ == "__main__":
    main()
