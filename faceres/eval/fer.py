"""Evaluate expression models and write their registry entries.

>>> report = evaluate_expression("resnet18-fer", split="PrivateTest")
>>> round(report["accuracy"], 3), report["faces"]
(0.71, 'crop')
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from faceres import registry
from faceres.datasets.fer import (
    FERPLUS_LABELS,
    FaceSet,
    dataset_key,
    load_fer2013,
    load_image_folder,
)
from faceres.errors import DataError
from faceres.expression import analyze_expression, classify
from faceres.face.align import resize_faces
from faceres.imageio import load_image
from faceres.models.fer_resnet import predict
from faceres.registry.publish import results_section
from faceres.registry.runtime import load_runner, mirror_views

SYNONYMS = {"anger": "angry", "happiness": "happy", "sadness": "sad"}
"""FER+ label → FER2013 label, so either kind of model can be scored on either kind of folder."""


def _canonical(label: str) -> str:
    return SYNONYMS.get(label, label)


def model_labels(config: dict) -> list[str]:
    """The class names of an expression model's config."""
    return list(config.get("label_names") or config["faceres"]["labels"])


def score(
    probs: np.ndarray, targets: np.ndarray, model_names: list[str], data_names: tuple[str, ...]
) -> dict:
    """Accuracy, per-class precision/recall, macro recall (the mean recall of the classes
    present) and the confusion matrix (rows: true class of the data, columns: predicted class of
    the model). A row of NaN (no face found) gets no class:
    it counts wrong in `accuracy` (over all images), is left out of `accuracy_detected`, of the
    confusion matrix and of precision, and is counted in `no_face`."""
    probs, targets = np.asarray(probs, np.float64), np.asarray(targets)
    found = ~np.isnan(probs).any(1)
    pred = np.where(found, np.nan_to_num(probs, nan=-np.inf).argmax(1), -1)
    data_canon = [_canonical(n) for n in data_names]
    as_data = np.asarray(
        [
            data_canon.index(_canonical(n)) if _canonical(n) in data_canon else -1
            for n in model_names
        ]
    )
    pred_as_data = np.where(found, as_data[np.maximum(pred, 0)], -2)  # -2: no face, no class
    conf = np.zeros((len(data_names), len(model_names)), np.int64)
    np.add.at(conf, (targets[found], pred[found]), 1)
    per_class = {}
    for i, name in enumerate(data_names):
        tp = int(((pred_as_data == i) & (targets == i)).sum())
        predicted, actual = int((pred_as_data == i).sum()), int((targets == i).sum())
        per_class[name] = {
            "precision": tp / predicted if predicted else 0.0,
            "recall": tp / actual if actual else 0.0,
            "support": actual,
            "no_face": int((~found & (targets == i)).sum()),
        }
    correct = pred_as_data == targets
    recalls = [row["recall"] for row in per_class.values() if row["support"]]
    return {
        "accuracy": float(correct.mean()) if len(targets) else 0.0,
        "macro_recall": float(np.mean(recalls)) if recalls else 0.0,
        "accuracy_all": float(correct.mean()) if len(targets) else 0.0,
        "accuracy_detected": float(correct[found].mean()) if found.any() else 0.0,
        "n": int(len(targets)),
        "no_face": int((~found).sum()),
        "detection_rate": float(found.mean()) if len(targets) else 0.0,
        "per_class": per_class,
        "confusion": conf.tolist(),
        "true_labels": list(data_names),
        "predicted_labels": list(model_names),
    }


def model_sized(images: np.ndarray, config: dict) -> np.ndarray:
    """N×H×W grayscale crops resized (area) to the model's input size, when they differ."""
    return resize_faces(images, int(config["pretrained_cfg"]["input_size"][-1]))


def predict_faces(name: str, faces: FaceSet, views: str | None = None) -> np.ndarray:
    """Class probabilities of registry model `name` for already-cropped grayscale faces (an
    ensemble: its members' weighted mean), read with the model's test-time views or `views`."""
    config = registry.model_config(name)
    flip = mirror_views(config, views)
    if config["architecture"] == registry.FUSION:
        parts = config["faceres"]["members"]
        views = "mirror" if flip else "single"
        return sum(float(m["weight"]) * predict_faces(m["model"], faces, views) for m in parts)
    loaded = registry.load(name)
    cfg = loaded.config["pretrained_cfg"]
    x = torch.from_numpy(model_sized(faces.images, loaded.config)).unsqueeze(1)
    return predict(loaded.model, x, float(cfg["mean"][0]), float(cfg["std"][0]), flip=flip).numpy()


def runtime_agreement(
    name: str, faces: FaceSet, batch_probs: np.ndarray, views: str | None = None
) -> dict:
    """Accuracy of the same faces as the app scores them (`faceres.expression.classify` on this
    machine's engine: ONNX Runtime in float32 on a CPU), and how often its class agrees with the
    batch prediction's (bfloat16 autocast), which the registry's figures come from."""
    runner = load_runner("expression", name)
    images = model_sized(faces.images, runner.config)
    probs = np.concatenate(
        [classify(images[i : i + 256], runner, views) for i in range(0, len(images), 256)]
    )
    labels = model_labels(runner.config)
    return {
        "engine": runner.backend,
        "precision": "float32",
        "accuracy": score(probs, faces.labels, labels, faces.label_names)["accuracy"],
        "class_agreement": float((probs.argmax(1) == batch_probs.argmax(1)).mean()),
    }


def detect_and_predict(name: str, folder: Path, files: list[str]) -> np.ndarray:
    """Probabilities for photos (largest detected face of each); the rows of images without a
    face are NaN: they get no class (`score` counts them wrong and reports them)."""

    labels = model_labels(registry.model_config(name))
    probs = np.full((len(files), len(labels)), np.nan, np.float32)
    for i, rel in enumerate(files):
        result = analyze_expression(load_image(folder / rel), model=name)
        if result.faces:
            probs[i] = [result.faces[0].probabilities[label] for label in labels]
    return probs


def evaluate_expression(
    name: str,
    folder: str | Path | None = None,
    split: str | None = None,
    faces: str | None = None,
    data: str | Path | None = None,
    plot: str | Path | None = None,
    views: str | None = None,
) -> dict:
    """Score registry model `name` on a class-named `folder`, or on a FER2013 `split` with the
    model's own label set (FER+ models: majority vote). `faces`: "crop" (images are face crops
    like FER2013's) or "detect" (photos: find the face first); by default "crop" for images of
    at most 64 px, else "detect". `plot` saves the confusion matrix as an image. `views`
    ("mirror" or "single", face crops only) overrides the model's test-time views."""
    config = registry.model_config(name)
    labels = model_labels(config)
    if split:
        kind = "ferplus" if len(labels) == len(FERPLUS_LABELS) else "fer"
        faceset = load_fer2013(split, data, kind, protocol="majority")
        source, root = f"{'FER+' if kind == 'ferplus' else 'FER2013'} {split}", None
    elif folder:
        root = Path(folder)
        faceset = load_image_folder(root, size=48)
        source = str(root)
    else:
        raise DataError("Give a folder of class-named sub-folders or a FER2013 split.")
    canon = [_canonical(n) for n in labels]
    missing = [n for n in faceset.label_names if _canonical(n) not in canon]
    if missing:
        raise DataError(f"Classes {missing} of the data are not among the model's labels {labels}.")
    if faces is None:
        faces = "crop" if root is None or _largest_side(root, faceset.files[0]) <= 64 else "detect"
    runtime = None
    if faces == "crop":
        probs = predict_faces(name, faceset, views)
        runtime = runtime_agreement(name, faceset, probs, views)
    elif faces == "detect":
        if root is None:
            raise DataError("--faces detect needs a folder of photos.")
        if views:
            raise DataError("--views applies to face crops; photos are read as the model says.")
        probs = detect_and_predict(name, root, faceset.files)
    else:
        raise DataError(f"faces must be 'crop' or 'detect', not {faces!r}.")
    report = score(probs, faceset.labels, labels, faceset.label_names)
    views = "mirror" if mirror_views(config, views) else "single"
    report.update(model=name, data=source, faces=faces, views=views)
    if runtime:
        report["runtime"] = runtime
    if plot:
        save_confusion_plot(report, Path(plot))
        report["plot"] = str(plot)
    return report


def _largest_side(root: Path, rel: str) -> int:
    with Image.open(root / rel) as im:
        return max(im.size)


def save_confusion_plot(report: dict, path: Path) -> None:
    """The confusion matrix, row-normalised, as an image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conf = np.asarray(report["confusion"], float)
    norm = conf / np.maximum(conf.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(conf.shape[1]), report["predicted_labels"], rotation=45, ha="right")
    ax.set_yticks(range(conf.shape[0]), report["true_labels"])
    for (i, j), v in np.ndenumerate(conf):
        ax.text(
            j,
            i,
            int(v),
            ha="center",
            va="center",
            fontsize=7,
            color="white" if norm[i, j] > 0.5 else "black",
        )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{report['model']} on {report['data']}: accuracy {report['accuracy']:.2%}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def format_report(report: dict) -> str:
    """The report as text: accuracy, per-class table and confusion matrix."""
    missed = f", no face in {report['no_face']}" if report["no_face"] else ""
    detected = (
        f" (over the {report['n'] - report['no_face']} with a face: "
        f"{report['accuracy_detected']:.4f})"
        if report["no_face"]
        else ""
    )
    lines = [
        f"{report['model']} on {report['data']} ({report['n']} images, faces: "
        f"{report['faces']}{missed}; test-time views: {report['views']})",
        f"accuracy: {report['accuracy']:.4f}{detected} (batch, bfloat16 autocast); "
        f"macro recall {report['macro_recall']:.4f}",
        *(
            [
                f"accuracy as the app computes it ({rt['engine']}, {rt['precision']}): "
                f"{rt['accuracy']:.4f}; same class for {rt['class_agreement']:.2%} of faces"
            ]
            if (rt := report.get("runtime"))
            else []
        ),
        "",
        f"{'class':<10} {'precision':>9} {'recall':>7} {'support':>8}",
    ]
    for name, row in report["per_class"].items():
        lines.append(
            f"{name:<10} {row['precision']:>9.3f} {row['recall']:>7.3f} {row['support']:>8d}"
        )
    lines += [
        "",
        "confusion (rows true, columns predicted): "
        + " ".join(p[:4] for p in report["predicted_labels"]),
    ]
    for name, row in zip(report["true_labels"], report["confusion"]):
        lines.append(f"{name[:8]:<8} " + " ".join(f"{v:>4d}" for v in row))
    return "\n".join(lines)


# -- registry entries ---------------------------------------------------------------------------


def record_metric(name: str, split: str, report: dict) -> None:
    """Merge `<dataset>-<split>/accuracy`, `/macro_recall` and each class's `/recall_<class>`
    from `report` (`score`) into `name`'s index entry, card metadata and card "Results" section
    (the weights and every other section stay as they are)."""
    history = json.loads((registry.resolve(name) / "training.json").read_text())
    prefix = f"{dataset_key(history['config']['labels'])}-{split.lower()}"
    metrics = dict(registry.get_entry(name)["metrics"])
    metrics[f"{prefix}/accuracy"] = round(float(report["accuracy"]), 5)
    metrics[f"{prefix}/macro_recall"] = round(float(report["macro_recall"]), 5)
    for label, row in report["per_class"].items():
        if row["support"]:
            metrics[f"{prefix}/recall_{label}"] = round(float(row["recall"]), 5)
    registry.update_entry(name, metrics=metrics)
    registry.update_card_section(name, "Results", results_section(history, metrics))
