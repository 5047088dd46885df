"""Face datasets as in-memory uint8 arrays: FER2013 (image folders or Kaggle csv), FER+ votes, and
any folder of class-named sub-folders.

>>> train = load_fer2013("Training", labels="fer")
>>> train.images.shape, train.images.dtype, train.label_names[:3]
((28709, 48, 48), dtype('uint8'), ('angry', 'disgust', 'fear'))
"""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from faceres.errors import DataError
from faceres.labels import FER_LABELS, FERPLUS_LABELS
from faceres.settings import cache_dir, data_dir

FER_SPLITS = ("Training", "PublicTest", "PrivateTest")


def dataset_key(labels: str) -> str:
    """The dataset name in metric keys for a label set: "fer2013" ("fer") or "ferplus"."""
    return "ferplus" if labels == "ferplus" else "fer2013"


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".tif", ".tiff", ".webp"}


@dataclass
class FaceSet:
    """Grayscale face images (N×H×W uint8) with integer labels or per-class probabilities."""

    images: np.ndarray
    targets: np.ndarray
    label_names: tuple[str, ...]
    files: list[str]

    @property
    def labels(self) -> np.ndarray:
        """Integer labels (the majority class when targets are probabilities)."""
        return self.targets if self.targets.ndim == 1 else self.targets.argmax(1)

    def __len__(self) -> int:
        return len(self.images)


def _read_gray(path: Path, size: int) -> np.ndarray:
    with Image.open(path) as im:
        im = im.convert("L")
        if im.size != (size, size):
            im = im.resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(im, dtype=np.uint8)


def _decode_cached(root: Path, files: list[str], size: int) -> np.ndarray:
    """Decode `files` under `root` once; later calls read a cached .npy (keyed by the folder,
    the file names and the first file's mtime)."""
    key = hashlib.sha256(str(root.resolve()).encode())
    for name in files:
        key.update(name.encode())
    key.update(str(size).encode())
    key.update(str((root / files[0]).stat().st_mtime_ns if files else 0).encode())
    cached = cache_dir() / f"faces-{key.hexdigest()[:20]}.npy"
    if cached.is_file():
        return np.load(cached, allow_pickle=False)
    images = (
        np.stack([_read_gray(root / name, size) for name in files])
        if files
        else (np.zeros((0, size, size), np.uint8))
    )
    tmp = cached.with_suffix(f".{os.getpid()}.tmp.npy")
    np.save(tmp, images, allow_pickle=False)
    tmp.replace(cached)
    return images


def load_image_folder(
    root: str | Path, label_names: tuple[str, ...] | None = None, size: int = 48
) -> FaceSet:
    """Any folder of class-named sub-folders (`root/<class>/<image>`), as grayscale size×size.

    `label_names` fixes the class order (sub-folders not in it are an error); by default the
    sub-folder names, sorted.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"Image folder not found: {root}")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise DataError(f"{root} has no class sub-folders (expected {root}/<class>/<image>).")
    names = tuple(label_names) if label_names else tuple(classes)
    unknown = [c for c in classes if c not in names]
    if unknown:
        raise DataError(f"{root}: sub-folders {unknown} are not among the labels {list(names)}.")
    files, targets = [], []
    for cls in classes:
        for path in sorted((root / cls).iterdir()):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                files.append(f"{cls}/{path.name}")
                targets.append(names.index(cls))
    if not files:
        raise DataError(f"{root}: no images found.")
    images = _decode_cached(root, files, size)
    return FaceSet(images, np.asarray(targets, np.int64), names, files)


def _fer_root(data: str | Path | None) -> Path:
    root = Path(data) if data else data_dir(required=True) / "fer2013"
    if (root / "fer2013").is_dir():
        root = root / "fer2013"
    if not (root / "Training").is_dir():
        raise DataError(f"FER2013 image folders not found under {root} (expected Training/ etc.).")
    return root


def load_fer2013(
    split: str, data: str | Path | None = None, labels: str = "fer", protocol: str = "majority"
) -> FaceSet:
    """FER2013 `split` from the Kaggle image-folder layout.

    labels="fer": the 7 FER2013 classes. labels="ferplus": FER+ votes from the dataset's
    `index.csv`; protocol "majority" gives integer labels (images whose top vote is unknown or
    not-a-face are dropped), "probability" gives vote shares over the 8 emotions.
    """
    if split not in FER_SPLITS:
        raise DataError(f"Unknown FER2013 split {split!r}; choose from {FER_SPLITS}.")
    root = _fer_root(data)
    if labels == "fer":
        faces = load_image_folder(root / split, label_names=tuple(sorted(FER_LABELS)))
        order = np.asarray([FER_LABELS.index(c) for c in faces.label_names])
        return FaceSet(
            faces.images, order[faces.targets], FER_LABELS, [f"{split}/{f}" for f in faces.files]
        )
    if labels != "ferplus":
        raise DataError(f"labels must be 'fer' or 'ferplus', not {labels!r}.")
    index = root / "index.csv"
    if not index.is_file():
        raise DataError(f"FER+ votes need {index} (file → votes); or use load_fer2013_csv.")
    files, votes = [], []
    with index.open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row["split"] == split and row["fp_neutral"] != "":
                files.append(row["file"])
                votes.append([float(row[f"fp_{name}"]) for name in _FERPLUS_VOTE_COLUMNS])
    images = _decode_cached(root, files, 48)
    keep, targets = ferplus_targets(np.asarray(votes), protocol)
    return FaceSet(images[keep], targets, FERPLUS_LABELS, [f for f, k in zip(files, keep) if k])


_FERPLUS_VOTE_COLUMNS = (*FERPLUS_LABELS, "unknown", "NF")


def ferplus_targets(votes: np.ndarray, protocol: str) -> tuple[np.ndarray, np.ndarray]:
    """From N×10 FER+ votes, a keep-mask and targets (majority labels or 8-class vote shares).

    An image is kept when its most-voted column is one of the 8 emotions.
    """
    votes = np.asarray(votes, np.float64)
    keep = (votes.sum(1) > 0) & (votes.argmax(1) < len(FERPLUS_LABELS))
    emotions = votes[keep, : len(FERPLUS_LABELS)]
    if protocol == "majority":
        return keep, emotions.argmax(1).astype(np.int64)
    if protocol == "probability":
        return keep, (emotions / emotions.sum(1, keepdims=True)).astype(np.float32)
    raise DataError(f"FER+ protocol must be 'majority' or 'probability', not {protocol!r}.")


def load_fer2013_csv(
    path: str | Path, ferplus_csv: str | Path | None = None, protocol: str = "majority"
) -> dict[str, FaceSet]:
    """The original Kaggle `fer2013.csv` (`emotion,pixels,Usage`), split by Usage.

    With `ferplus_csv` (`fer2013new.csv`, row-aligned with fer2013.csv) the targets are FER+ ones.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"FER2013 csv not found: {path}")
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or not {"emotion", "pixels", "Usage"} <= set(rows[0]):
        raise DataError(f"{path} is not fer2013.csv (needs columns emotion, pixels, Usage).")
    images = np.stack([np.asarray(r["pixels"].split(), np.uint8).reshape(48, 48) for r in rows])
    usage = np.asarray([r["Usage"] for r in rows])
    files = [f"fer2013.csv#{i}" for i in range(len(rows))]
    if ferplus_csv is None:
        targets = np.asarray([int(r["emotion"]) for r in rows], np.int64)
        return {
            s: FaceSet(
                images[usage == s],
                targets[usage == s],
                FER_LABELS,
                [f for f, u in zip(files, usage) if u == s],
            )
            for s in FER_SPLITS
        }
    with Path(ferplus_csv).open(newline="") as fh:
        plus = list(csv.reader(fh))[1:]
    if len(plus) != len(rows):
        raise DataError(f"{ferplus_csv} has {len(plus)} rows, fer2013.csv has {len(rows)}.")
    votes = np.asarray([[float(v or 0) for v in r[2:12]] for r in plus])
    out = {}
    for split in FER_SPLITS:
        sel = usage == split
        keep, targets = ferplus_targets(votes[sel], protocol)
        out[split] = FaceSet(
            images[sel][keep],
            targets,
            FERPLUS_LABELS,
            [f for f, s, k in zip(np.asarray(files)[sel], sel[sel], keep) if k],
        )
    return out
