"""The lesion study: every deletable block of each trained model deleted alone, then k at random,
and the gradient along paths of each length of one ResNet (Veit et al. 2016, Figures 3, 5, 6).

Measurements:

- expression models: FER2013 PublicTest accuracy of the face alone (the registry's figure,
  `faceres.eval.fer.predict_faces`, also averages each face with its mirror image: the precision
  check does, and `LesionSettings.mirror` makes the lesions do it too, at twice the time).
- identity model: LFW View 1's pairsDevTest, 10-fold accuracy (each fold's threshold best on the
  other nine, chosen again for every lesion), which needs its 1,549 images only; or, with
  `lfw_protocol="devtrain-threshold"`, accuracy at the threshold best on pairsDevTrain (all 4,992
  images of View 1, 3.2× the time). Faces are detected once (`detect_images`, centre face) and
  aligned once onto the model's template: the primary view only, no mirror image (the registry's
  DevTest figure uses a second alignment and the mirror image as well).
- speed: every model's lesions share one forward pass of the whole network per batch (each
  lesion restarts before its first deleted block) and run under bfloat16 autocast, channels-last
  (as `faceres.models.fer_resnet.predict`), as long as the whole network's score in bfloat16 is
  within `PRECISION_TOLERANCE` of the reference (expression: the registry's PublicTest accuracy,
  with the mirror image; identity: the same measurement in float32); otherwise in float32, on a copy
  with the normalisations folded into the convolutions (`choose_precision`).

>>> results = run_lesion_study(["resnet20-fer", "plain20-fer"])       # doctest: +SKIP
>>> results["models"][0]["single"][0]
{'block': 'layer1.0', 'index': 1, 'accuracy': 0.517...}
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from faceres import registry
from faceres.datasets.fer import FERPLUS_LABELS, dataset_key, load_fer2013
from faceres.datasets.lfw import lfw_dir, read_lfw_pairs
from faceres.detect import select_detector
from faceres.errors import DataError, ModelError
from faceres.eval.lfw import centre_face, detect_images, read_image
from faceres.eval.metrics import accuracy, best_threshold, kfold_accuracy
from faceres.face.align import align, model_template
from faceres.models.blocks import blocks, same_shape
from faceres.models.fer_resnet import normalize
from faceres.study.lesion.fast import (
    folded_copy,
    lesion_outputs,
    path_gradients,
    path_length_distribution,
)

log = logging.getLogger(__name__)

DEFAULT_MODELS = (
    "dlib-resnet29-face",
    "resnet18-fer",
    "plain18-fer",
    "resnet20-fer",
    "plain20-fer",
    "resnet56-fer",
    "plain56-fer",
)
"""The trained residual models and their plain twins."""
PATH_MODEL = "resnet56-fer"
"""The ResNet whose paths are measured (27 residual blocks: 2^27 paths)."""
PRECISION_TOLERANCE = 0.001
"""Largest baseline difference (0.1 point) under which bfloat16 is used."""


@dataclass(frozen=True)
class LesionSettings:
    """How much the study measures.

    draws: random lesions per k (all of them when there are no more than that).
    all_pairs_max: delete every pair of blocks (k = 2 exactly) when there are at most this many.
    k_points: how many values of k, at most (all k = 1..n when n is no larger).
    mirror: expression accuracy of each face averaged with its mirror image (the registry's
    figure; twice the time). The precision check always uses it.
    lfw_protocol: how the identity model is scored (`LFW_PROTOCOLS`).
    path_images / path_samples: images of the path measurement, sampled paths per length.
    """

    draws: int = 5
    seed: int = 0
    all_pairs_max: int = 21
    k_points: int = 10
    batch_size: int = 64
    mirror: bool = False
    lfw_protocol: str = "devtest-10fold"
    path_images: int = 16
    path_samples: int = 10


# -- what is deleted ------------------------------------------------------------------------------


def k_values(n: int, points: int) -> list[int]:
    """The numbers of deleted blocks measured: 1..n when n ≤ `points`, else `points` values
    spaced evenly on a log scale from 1 to n (rounded; duplicates dropped)."""
    if n <= points:
        return list(range(1, n + 1))
    return sorted({int(round(v)) for v in np.geomspace(1, n, points)})


def k_lesions(deletable: Sequence[int], k: int, settings: LesionSettings) -> list[frozenset[int]]:
    """The lesions of k blocks among `deletable`: all of them when there are at most `draws`
    (for k = 1, and for k = 2 when there are at most `all_pairs_max` pairs), else `draws`
    distinct ones drawn with a seed of (seed, n, k) (a residual net and its twin get the same)."""
    n = len(deletable)
    count = math.comb(n, k)
    if k == 1 or count <= settings.draws or (k == 2 and count <= settings.all_pairs_max):
        return [frozenset(c) for c in itertools.combinations(deletable, k)]
    rng = np.random.default_rng([settings.seed, n, k])
    chosen: list[frozenset[int]] = []
    while len(chosen) < settings.draws:
        lesion = frozenset(int(deletable[i]) for i in rng.choice(n, k, replace=False))
        if lesion not in chosen:
            chosen.append(lesion)
    return chosen


def model_kind(name: str) -> tuple[str, str]:
    """(task, "residual" or "plain") from the model's registry config (identity: residual)."""
    meta = registry.model_config(name)["faceres"]
    task = meta["task"]
    if task == "identity":
        return task, "residual"
    if task != "expression":
        raise ModelError(f"{name} is a {task} model; the lesion study takes classifiers.")
    return task, "residual" if meta["residual"] else "plain"


# -- data -----------------------------------------------------------------------------------------


@dataclass
class Task:
    """What a model is scored on: its input batches (normalised), a per-batch transform of the
    outputs, the metric of the concatenated outputs, chance level and the registry's figure."""

    metric: str
    batches: Callable[[], Iterator[torch.Tensor]]
    finish: Callable[[torch.Tensor], torch.Tensor]
    score: Callable[[torch.Tensor], float]
    chance: float
    reference: float | None


@cache
def _fer(labels: str, data: str | None) -> tuple[np.ndarray, np.ndarray]:
    faces = load_fer2013("PublicTest", data, labels, protocol="majority")
    return faces.images, faces.labels


def _fer_labels(config: dict) -> str:
    return "ferplus" if len(config["label_names"]) == len(FERPLUS_LABELS) else "fer"


def expression_task(name: str, data: str | None, batch_size: int, mirror: bool) -> Task:
    """FER2013 (or FER+) PublicTest accuracy; with `mirror`, each face's probabilities averaged
    with its mirror image's (the registry's measurement, `predict_faces`)."""
    config = registry.model_config(name)
    labels = _fer_labels(config)
    images, targets = _fer(labels, data)
    cfg = config["pretrained_cfg"]
    mean, std = float(cfg["mean"][0]), float(cfg["std"][0])
    x = torch.from_numpy(images).unsqueeze(1)
    y = torch.from_numpy(targets)

    def batches() -> Iterator[torch.Tensor]:
        for i in range(0, len(x), batch_size):
            b = normalize(x[i : i + batch_size], mean, std)
            yield torch.cat([b, b.flip(3)]) if mirror else b

    def finish(out: torch.Tensor) -> torch.Tensor:
        p = out.softmax(1)
        return (p[: len(p) // 2] + p[len(p) // 2 :]) / 2 if mirror else p

    metrics = registry.get_entry(name).get("metrics", {})
    return Task(
        metric=f"{dataset_key(labels)} PublicTest accuracy"
        + (" (face + mirror image)" if mirror else " (no mirror image)"),
        batches=batches,
        finish=finish,
        score=lambda probs: float((probs.argmax(1) == y).float().mean()),
        chance=float(np.bincount(targets).max() / len(targets)),
        reference=metrics.get(f"{dataset_key(labels)}-publictest/accuracy") if mirror else None,
    )


LFW_PROTOCOLS = {
    "devtest-10fold": "LFW pairsDevTest, 10-fold accuracy (each fold's threshold best on the "
    "other nine, as in View 2's protocol)",
    "devtrain-threshold": "LFW pairsDevTest accuracy at the threshold best on pairsDevTrain",
}
"""How the identity model is scored on View 1, chosen again for every lesion. "devtest-10fold"
embeds pairsDevTest's 1,549 images, "devtrain-threshold" all 4,992 of View 1 (3.2× the time)."""


@cache
def _lfw_view1(name: str, protocol: str, detector: str | None, data: str | None) -> tuple:
    """Aligned crops for identity model `name` (N×H×W×3 uint8, primary view) of the images
    `protocol` needs, View 1's pair lists (train: pairsDevTrain, or None when not needed; test:
    pairsDevTest) as index arrays (left, right, same), and how many images had no face."""
    if protocol not in LFW_PROTOCOLS:
        raise DataError(f"Unknown LFW protocol {protocol!r}; choose from {list(LFW_PROTOCOLS)}.")
    template = model_template(registry.model_config(name))
    root = lfw_dir(Path(data) if data else None)
    images = root / "lfw-deepfunneled"
    test = read_lfw_pairs(root / "pairsDevTest.txt", images)
    train = (
        read_lfw_pairs(root / "pairsDevTrain.txt", images) if protocol != "devtest-10fold" else []
    )
    paths = list(dict.fromkeys(p for pair in (*train, *test) for p in (pair.left, pair.right)))
    log.info("LFW View 1: detecting faces in %d images (%s)", len(paths), select_detector(detector))
    faces = detect_images(paths, detector, pick="center")
    crops = []
    for path in paths:
        image = read_image(path)
        crops.append(align(image, faces[path] or centre_face(image.shape, template), template))
    where = {p: i for i, p in enumerate(paths)}

    def index(pairs: list) -> tuple[np.ndarray, ...]:
        return (
            np.array([where[p.left] for p in pairs]),
            np.array([where[p.right] for p in pairs]),
            np.array([p.same for p in pairs]),
        )

    undetected = sum(f is None for f in faces.values())
    return np.stack(crops), index(train) if train else None, index(test), undetected


def identity_task(
    name: str,
    data: str | None,
    batch_size: int,
    protocol: str = "devtest-10fold",
    detector: str | None = None,
) -> Task:
    """LFW View 1 accuracy by `protocol` (`LFW_PROTOCOLS`), primary view, no mirror image."""
    config = registry.model_config(name)
    crops, train, test, undetected = _lfw_view1(name, protocol, detector, data)
    cfg = config["pretrained_cfg"]
    mean = torch.tensor(cfg["mean"], dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(cfg["std"], dtype=torch.float32).view(1, 3, 1, 1)
    folds = np.arange(len(test[2])) % 10  # 50 same and 50 different pairs per fold

    def batches() -> Iterator[torch.Tensor]:
        for i in range(0, len(crops), batch_size):
            b = torch.from_numpy(crops[i : i + batch_size]).permute(0, 3, 1, 2).float() / 255.0
            yield (b - mean) / std

    def score(emb: torch.Tensor) -> float:
        e = emb.numpy()

        def scores(pairs: tuple[np.ndarray, ...]) -> np.ndarray:
            return (e[pairs[0]] * e[pairs[1]]).sum(1)

        if train is None:
            return kfold_accuracy(scores(test), test[2], folds)["accuracy_mean"]
        threshold, _ = best_threshold(scores(train), train[2])
        return accuracy(scores(test), test[2], threshold)

    return Task(
        metric=(
            f"{LFW_PROTOCOLS[protocol]}; cosine similarity, primary alignment view, no mirror "
            f"image ({len(crops)} images, {undetected} without a detected face: centre crop)"
        ),
        batches=batches,
        finish=lambda out: F.normalize(out, dim=1),
        score=score,
        chance=float(np.mean(test[2])),
        reference=None,
    )


# -- one model ------------------------------------------------------------------------------------


def _scores(model, task: Task, lesions: list[frozenset[int]], bf16: bool) -> list[float]:
    outs = lesion_outputs(model, task.batches(), lesions, bf16=bf16, finish=task.finish)
    return [task.score(o) for o in outs]


def choose_precision(model: torch.nn.Module, check: Task) -> tuple[torch.nn.Module, bool, dict]:
    """The network and numerics the lesions run with: `model` itself under bfloat16 autocast
    (channels-last, as `predict`) when its score on `check` is within `PRECISION_TOLERANCE` of
    the reference (the registry's figure, else the same measurement in float32); otherwise a
    copy with the normalisations folded into the convolutions (exact), in float32."""
    bf16 = _scores(model, check, [frozenset()], bf16=True)[0]
    folded = None
    if check.reference is None:
        folded = folded_copy(model)
        reference = _scores(folded, check, [frozenset()], bf16=False)[0]
    else:
        reference = check.reference
    ok = abs(bf16 - reference) <= PRECISION_TOLERANCE + 1e-9
    record = {
        "measurement": check.metric,
        "against": "registry" if check.reference is not None else "float32",
        "reference": reference,
        "bfloat16": bf16,
        "tolerance": PRECISION_TOLERANCE,
    }
    return (model if ok else folded or folded_copy(model)), ok, record


def study_model(
    name: str,
    settings: LesionSettings,
    data: str | None = None,
    with_paths: bool = False,
) -> dict:
    """Baseline, every single deletion, and k random deletions of registry model `name`; with
    `with_paths`, its path lengths and the gradient per path length."""
    t0, c0 = time.perf_counter(), time.process_time()
    task_name, kind = model_kind(name)
    if task_name == "identity":
        task = check = identity_task(name, data, settings.batch_size, settings.lfw_protocol)
    else:
        task = expression_task(name, data, settings.batch_size, settings.mirror)
        check = expression_task(name, data, settings.batch_size, mirror=True)
    runner, bf16, precision = choose_precision(registry.load(name, device="cpu").model, check)
    log.info(
        "%s: %.4f in bfloat16 vs %.4f (%s): lesions in %s",
        name,
        precision["bfloat16"],
        precision["reference"],
        precision["against"],
        "bfloat16" if bf16 else "float32",
    )
    every = blocks(runner)
    deletable = [j for j, (_, b) in enumerate(every) if same_shape(b)]
    log.info("%s (%s): %d blocks, %d deletable", name, kind, len(every), len(deletable))

    ks = k_values(len(deletable), settings.k_points)
    per_k = {k: k_lesions(deletable, k, settings) for k in ks}
    singles = [frozenset({j}) for j in deletable]
    drawn = [les for lesions in per_k.values() for les in lesions]
    unique = list(dict.fromkeys([frozenset(), *singles, *drawn]))
    log.info("%s: %d lesions", name, len(unique))
    found = dict(zip(unique, _scores(runner, task, unique, bf16), strict=True))

    result = {
        "model": name,
        "kind": kind,
        "task": task_name,
        "depth": registry.model_config(name)["faceres"].get("depth"),
        "metric": task.metric,
        "baseline": found[frozenset()],
        "precision": "bfloat16" if bf16 else "float32",
        "baseline_check": precision,
        "chance": task.chance,
        "blocks": [n for n, _ in every],
        "deletable": [every[j][0] for j in deletable],
        "single": [
            {"block": every[j][0], "index": j + 1, "accuracy": found[frozenset({j})]}
            for j in deletable
        ],
        "k": [
            {
                "k": k,
                "mean": float(np.mean([found[les] for les in lesions])),
                "std": float(np.std([found[les] for les in lesions])),
                "draws": len(lesions),
                "all": len(lesions) == math.comb(len(deletable), k),
            }
            for k, lesions in per_k.items()
        ],
    }
    if 2 in per_k and len(per_k[2]) == math.comb(len(deletable), 2):
        result["pairs"] = [
            {"blocks": [every[j][0] for j in sorted(les)], "accuracy": found[les]}
            for les in per_k[2]
        ]
    if with_paths:
        result["paths"] = study_paths(
            runner if not bf16 else folded_copy(runner), name, data, settings
        )
    result["seconds"] = round(time.perf_counter() - t0, 1)
    result["cpu_seconds"] = round(time.process_time() - c0, 1)
    log.info("%s done in %.0f s", name, result["seconds"])
    return result


def study_paths(
    model: torch.nn.Module, name: str, data: str | None, settings: LesionSettings
) -> dict:
    """Path-length distribution and gradient per path length of expression ResNet `model`
    (`path_images` seeded PublicTest images, float32, no mirror image)."""
    config = registry.model_config(name)
    images, targets = _fer(_fer_labels(config), data)
    pick = np.random.default_rng(settings.seed).choice(
        len(images), settings.path_images, replace=False
    )
    cfg = config["pretrained_cfg"]
    x = normalize(
        torch.from_numpy(images[pick]).unsqueeze(1), float(cfg["mean"][0]), float(cfg["std"][0])
    )
    n = len(blocks(model))
    log.info("%s: gradient along paths of each length (%d blocks)", name, n)
    gradients = path_gradients(
        model, x, torch.from_numpy(targets[pick]), settings.path_samples, settings.seed
    )
    distribution = path_length_distribution(n)
    total = [d["paths"] * g["gradient"] for d, g in zip(distribution, gradients, strict=True)]
    return {
        "model": name,
        "blocks": n,
        "images": settings.path_images,
        "samples_per_length": settings.path_samples,
        "method": (
            "one float32 forward pass of the whole network; for a sampled path of length k the "
            "backward pass goes through the residual branch of k random blocks and the shortcut "
            "of the others, from the gradient of the summed cross-entropy at the logits; gradient "
            "= L2 norm of the input gradient, mean over the images"
        ),
        "distribution": distribution,
        "gradient": gradients,
        "total_gradient": [
            {"length": d["length"], "total": t, "share": t / sum(total)}
            for d, t in zip(distribution, total, strict=True)
        ],
    }


# -- the study ------------------------------------------------------------------------------------


def run_lesion_study(
    models: Sequence[str] = DEFAULT_MODELS,
    settings: LesionSettings | None = None,
    path_model: str | None = PATH_MODEL,
    data: str | None = None,
) -> dict:
    """Study every model of `models` (registry names) and the paths of `path_model`."""
    settings = settings or LesionSettings()
    t0, c0 = time.perf_counter(), time.process_time()
    results = [study_model(m, settings, data, with_paths=m == path_model) for m in models]
    return {
        "study": "lesion",
        "reference": "Veit, Wilber & Belongie, NeurIPS 2016, 'Residual networks behave like "
        "ensembles of relatively shallow networks'",
        "settings": asdict(settings),
        "path_model": path_model if path_model in models else None,
        "models": results,
        "wall_seconds": round(time.perf_counter() - t0, 1),
        "cpu_seconds": round(time.process_time() - c0, 1),
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
    }
