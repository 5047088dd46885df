"""Publish a trained expression model into the registry: weights, config, card, training.json.

>>> publish_expression_model(model, "resnet18-fer", history, {"fer2013/accuracy": 0.71})
PosixPath('.../registry/models/resnet18-fer')
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from faceres import registry
from faceres.datasets.fer import FER_LABELS, FERPLUS_LABELS
from faceres.registry.publish import results_section

AUGMENTATION_TEXT = {
    "full": "flip, rotation ±15°, scale 0.85–1.15, shift ±10%, brightness/contrast ±20%, "
    "erasing (p 0.25)",
    "light": "flip and a shift of up to 1/8 of the side (He et al.'s pad-and-crop)",
}
"""The card's words for each policy of `faceres.train.augment.POLICIES`."""


def expression_card(name: str, history: dict, metrics: dict, residual: bool) -> str:
    """Model card body for a trained expression model, from its training history."""
    cfg = history["config"]
    arch, plain = cfg["arch"], not residual
    dataset = "FER2013" if cfg["labels"] == "fer" else "FER+ (vote shares)"
    command = (
        f"faceres train expression --arch {arch} --labels {cfg['labels']} "
        f"--epochs {cfg['epochs']} --batch-size {cfg['batch_size']} --lr {cfg['lr']} "
        f"--seed {cfg['seed']} --augment {cfg.get('augment', 'full')} "
        f"--label-smoothing {cfg['label_smoothing']} --out registry/models/{name}"
        + (f" --twin {cfg['twin']}" if cfg.get("twin") else "")
        + (" --default" if cfg.get("default") else "")
        + recipe_flags(cfg)
    )
    size = history.get("input_size", 48)
    augmentation = AUGMENTATION_TEXT[cfg.get("augment", "full")]
    origin = f"fine-tuned from `{cfg['init']}`" if cfg.get("init") else "trained from scratch"
    selected = "the SWA average" if history.get("selected") == "swa" else "the epoch"
    kind = (
        "plain network: the residual architecture with every shortcut removed (identity "
        "additions and 1×1 projection shortcuts alike)"
        if plain
        else "residual network"
    )
    return f"""# {name}

Facial expression classifier for {size}×{size} grayscale face crops framed like FER2013's: a {kind},
{origin} by faceres on {dataset} Training, {selected} selected on PublicTest.
Twin: `{cfg.get("twin") or "none"}` (same recipe, same initialisation scheme).

## Results

{results_section(history, metrics)}
## Training

```
{command}
```

SGD (Nesterov, momentum {cfg["momentum"]}, weight decay {cfg["weight_decay"]}), batch
{cfg["batch_size"]}, learning rate {cfg["lr"]} with {cfg["warmup_epochs"]} warm-up epochs then
cosine decay, label smoothing {cfg["label_smoothing"] if cfg["labels"] == "fer" else 0}, bf16
autocast, channels_last. Augmentation on the training device: {augmentation}. Seed {cfg["seed"]}.
{recipe_text(cfg, history)}
Test metrics use flip test-time augmentation; `training.json` holds per-epoch loss, accuracy and
per-layer gradient norms (at initialisation, during and after training).

Evaluate: `faceres eval expression --model {name} --split PrivateTest`.

## Limits

FER2013 is small, noisy and skewed (few `disgust` images); its faces are mostly frontal, and
accuracy on other photos, ages, and cultures is lower than the test number. Expressions are not
emotions: the model sees facial configuration, not feeling.
"""


def recipe_flags(cfg: dict) -> str:
    """The command-line flags of a run's recipe beyond plain SGD (warm start, distillation,
    mixup, SWA), as `faceres train expression` takes them."""
    flags = f" --init {cfg['init']}" if cfg.get("init") else ""
    if cfg.get("teachers"):
        flags += f" --teachers {' '.join(cfg['teachers'])} --distill {cfg['distill']}"
    if cfg.get("teacher_views"):
        flags += f" --teacher-views {cfg['teacher_views']}"
    if cfg.get("mixup"):
        flags += f" --mixup {cfg['mixup']}"
    if cfg.get("swa_epochs"):
        flags += f" --swa-epochs {cfg['swa_epochs']} --swa-lr {cfg['swa_lr']}"
    return flags


def recipe_text(cfg: dict, history: dict) -> str:
    """The card's sentences for the recipe beyond plain SGD, with the SWA average's PublicTest
    accuracy beside the best epoch's."""
    parts = []
    if cfg.get("init"):
        parts.append(f"Started from the weights of `{cfg['init']}`.")
    if cfg.get("teachers"):
        parts.append(
            f"Distilled: the target is {1 - cfg['distill']:g} × the label and {cfg['distill']:g} × "
            f"the mean probabilities of {', '.join(f'`{t}`' for t in cfg['teachers'])} on the "
            + (
                f"same augmented image: {cfg['teacher_views']} fixed augmented views of each "
                "image, the teachers run once on each, one view per image drawn each epoch."
                if cfg.get("teacher_views")
                else "same augmented image."
            )
        )
    if cfg.get("mixup"):
        parts.append(f"Mixup of image pairs with λ ~ Beta({cfg['mixup']:g}, {cfg['mixup']:g}).")
    swa = history.get("swa")
    if swa:
        best = history["epochs"][history["best_epoch"] - 1]["val_acc"]
        parts.append(
            f"SWA: the last {swa['epochs']} epochs at learning rate {swa['lr']:g}, their weights "
            f"averaged and BatchNorm refitted on Training; PublicTest {swa['val_acc']:.4f} "
            f"(best single epoch {best:.4f}), so {history['selected']} was kept."
        )
    return " ".join(parts)


def publish_expression_model(
    model: torch.nn.Module, name: str, history: dict, metrics: dict, alignment: dict | None = None
) -> Path:
    """Save a trained expression model (weights, config, card, training.json) to the registry."""
    cfg = history["config"]
    labels = list(FER_LABELS if cfg["labels"] == "fer" else FERPLUS_LABELS)
    faceres_cfg = {
        "labels": labels,
        "datasets": ["fer2013"] + (["ferplus"] if cfg["labels"] == "ferplus" else []),
        "residual": model.residual,
        "batchnorm": model.batchnorm,
        "depth": model.depth,
        "training_labels": cfg["labels"],
    }
    if alignment:
        faceres_cfg["alignment"] = alignment
    return registry.save_model(
        model,
        name,
        task="expression",
        config={"label_names": labels, "faceres": faceres_cfg},
        card=expression_card(name, history, metrics, model.residual),
        metrics=metrics,
        twin=cfg.get("twin"),
        default=bool(cfg.get("default")),
        license="mit",
        source="trained by faceres (faceres train expression)",
        files={"training.json": json.dumps(history)},
    )
