"""LFW and other pair lists: the official pair files (View 1 and View 2), CSV pair lists, and the
image pairs of a folder.

>>> pairs = read_lfw_pairs(lfw_dir() / "pairs.txt", lfw_dir() / "lfw-deepfunneled")
>>> len(pairs), pairs[0].same
(6000, True)
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceres.errors import DataError
from faceres.settings import data_dir

TUNE_DIFFERENT_PAIRS = 100_000
"""Different-person pairs drawn (seeded) from View 1's images for tuning, beside all same-person
pairs."""


@dataclass(frozen=True)
class Pair:
    """Two images, whether they show the same person, and the fold (None when unfolded)."""

    left: Path
    right: Path
    same: bool
    fold: int | None = None


# --- pair lists ------------------------------------------------------------------------------


def read_lfw_pairs(path: Path, images: Path) -> list[Pair]:
    """Pairs of an LFW list (`pairs.txt`: header "10 300", folds of 300 same + 300 different;
    `pairsDev*.txt`: header "N", N same then N different), paths under `images`.

    >>> len(read_lfw_pairs(lfw / "pairs.txt", lfw / "lfw-deepfunneled"))
    6000
    """
    lines = [line.split() for line in Path(path).read_text().splitlines() if line.strip()]
    if not lines:
        raise DataError(f"{path} is empty.")
    header, rows = lines[0], lines[1:]
    folds, per_fold = (int(header[0]), int(header[1])) if len(header) == 2 else (1, int(header[0]))
    if len(rows) != folds * 2 * per_fold:
        raise DataError(f"{path}: expected {folds * 2 * per_fold} pairs, found {len(rows)}.")

    def image(name: str, number: str) -> Path:
        return images / name / f"{name}_{int(number):04d}.jpg"

    pairs = []
    for i, row in enumerate(rows):
        fold = i // (2 * per_fold) if folds > 1 else None
        if len(row) == 3:
            pairs.append(Pair(image(row[0], row[1]), image(row[0], row[2]), True, fold))
        elif len(row) == 4:
            pairs.append(Pair(image(row[0], row[1]), image(row[2], row[3]), False, fold))
        else:
            raise DataError(f"{path}, pair {i + 1}: expected 3 or 4 fields, got {row}.")
    return pairs


_TRUE = {"1", "true", "yes", "same", "match"}
_FALSE = {"0", "false", "no", "different", "mismatch"}


def read_pairs_csv(path: Path, root: Path) -> list[Pair]:
    """Pairs of a CSV with a header `left,right,same[,fold]`; image paths relative to `root`.

    `same` is 1/0 (or true/false, same/different); `fold` is an optional integer.

    >>> read_pairs_csv("pairs.csv", "photos/")[0]
    Pair(left=PosixPath('photos/a1.jpg'), right=PosixPath('photos/a2.jpg'), same=True, fold=None)
    """
    path, root = Path(path), Path(root)
    if not path.is_file():
        raise DataError(f"Pair list not found: {path}")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = {"left", "right", "same"} - set(reader.fieldnames or [])
        if missing:
            raise DataError(f"{path.name} needs columns left,right,same[,fold]; missing {missing}.")
        pairs = []
        for line, row in enumerate(reader, start=2):
            same = row["same"].strip().lower()
            if same not in _TRUE | _FALSE:
                raise DataError(f"{path.name}, line {line}: 'same' must be 1/0, got {same!r}.")
            fold = row.get("fold")
            pairs.append(
                Pair(
                    root / row["left"],
                    root / row["right"],
                    same in _TRUE,
                    int(fold) if fold not in (None, "") else None,
                )
            )
    if not pairs:
        raise DataError(f"{path.name} has no pairs.")
    return pairs


def lfw_dir(data: Path | None = None) -> Path:
    """The LFW folder (`pairs.txt`, `pairsDev*.txt`, `lfw-deepfunneled/`)."""
    root = Path(data) if data else data_dir(required=True) / "lfw"
    if (root / "lfw").is_dir() and not (root / "pairs.txt").is_file():
        root = root / "lfw"
    if not (root / "pairs.txt").is_file():
        raise DataError(
            f"LFW not found in {root}: expected pairs.txt, pairsDevTrain.txt, "
            "pairsDevTest.txt and lfw-deepfunneled/."
        )
    return root


def image_pairs(
    paths: Sequence[Path], different: int = TUNE_DIFFERENT_PAIRS, seed: int = 0
) -> list[Pair]:
    """Every same-person pair among LFW image `paths` (the folder names the person) and
    `different` seeded different-person pairs: View 1's 4,992 images give 3,192 same-person
    pairs, twice the 1,600 View 1 lists, so tuning choices are less noisy."""
    people: dict[str, list[Path]] = {}
    for path in paths:
        people.setdefault(path.parent.name, []).append(path)
    pairs = [
        Pair(group[i], group[j], True)
        for group in people.values()
        for i in range(len(group))
        for j in range(i + 1, len(group))
    ]
    if len(people) < 2:
        return pairs
    rng = np.random.default_rng(seed)
    wanted = len(pairs) + different
    while len(pairs) < wanted:
        left, right = rng.integers(0, len(paths), 2)
        if paths[left].parent != paths[right].parent:
            pairs.append(Pair(paths[left], paths[right], False))
    return pairs
