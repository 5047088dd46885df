"""dlib's 5-point face landmarks, from the registry (entry `dlib-landmarks5`), in numpy.

A cascade of regression-tree forests (Kazemi & Sullivan, 2014, as dlib's `shape_predictor`), its
buffers stored by `faceres.models.dlib_landmarks` (timm `faceres_dlib_shape_predictor5`) and read
here straight from the sha256-checked safetensors file, so placing points needs neither torch nor
timm. Points, in dlib's order: the outer and inner corners of the eye on the image's right, of
the eye on the image's left, then the base of the nose.

>>> from faceres.detect.landmarks import load_shape_predictor
>>> load_shape_predictor().predict(image, [(80, 60, 240, 220)]).shape  # doctest: +SKIP
(1, 5, 2)
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
from safetensors.numpy import load_file

from faceres import registry
from faceres.detect.face import Face

REGISTRY_NAME = "dlib-landmarks5"
FIXED_SCALE = np.float32(2.0**-24)
"""The unit of the fixed-point `initial_shape` and `deltas` buffers
(`faceres.models.dlib_landmarks.FIXED_BITS`)."""


def similarity_matrices(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Linear part (N, 2, 2) of the least-squares similarity transforms mapping `src` (P, 2)
    onto each of `dst` (N, P, 2), rotation without reflection, as dlib's
    `find_similarity_transform` (Umeyama)."""
    s = src - src.mean(0)
    d = dst - dst.mean(1, keepdims=True)
    norm = (s * s).sum()
    a = (s[None, :, 0] * d[..., 0] + s[None, :, 1] * d[..., 1]).sum(1) / norm
    b = (s[None, :, 0] * d[..., 1] - s[None, :, 1] * d[..., 0]).sum(1) / norm
    return np.stack([np.stack([a, -b], -1), np.stack([b, a], -1)], -2)


def intensity(pixels: np.ndarray) -> np.ndarray:
    """dlib's `get_pixel_intensity` of (..., C) uint8 pixels (gray or RGB[A]): the integer mean
    of R, G, B, as int32."""
    if pixels.shape[-1] == 1:
        return pixels[..., 0].astype(np.int32)
    return pixels[..., :3].sum(-1, dtype=np.int32) // 3


class ShapeCascade:
    """The cascade's buffers (`faceres.models.dlib_landmarks.ShapePredictor` documents them) as
    numpy arrays, and `predict`. Trees of depth d have 2**d - 1 splits."""

    def __init__(self, state: dict[str, np.ndarray]):
        self.state = state
        self.tree_depth = int(np.log2(state["split_thresholds"].shape[-1] + 1))

    def predict(
        self, image: np.ndarray, boxes: Sequence[Sequence[float]] | np.ndarray
    ) -> np.ndarray:
        """Landmarks (N, P, 2) float32 for an RGB (or gray) uint8 image and dlib rectangles
        (left, top, right, bottom), inclusive pixel coordinates; only the sampled pixels are read.

        >>> load_shape_predictor().predict(image, [(80, 60, 240, 220)])  # doctest: +SKIP
        """
        image = np.asarray(image)
        image = image if image.ndim == 3 else image[..., None]
        state = self.state
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        n, (h, w) = len(boxes), image.shape[:2]
        if n == 0:
            return np.zeros((0, state["initial_shape"].shape[0], 2), np.float32)
        pixels = np.ascontiguousarray(image).reshape(h * w, image.shape[2])
        origin, extent = boxes[:, None, :2], boxes[:, None, 2:] - boxes[:, None, :2]
        initial = state["initial_shape"].astype(np.float32) * FIXED_SCALE
        leaf_scale = np.float32(2.0 ** -int(state["leaf_bits"]))
        shape = np.repeat(initial[None], n, axis=0)
        num_levels, num_trees, num_splits = state["split_thresholds"].shape
        split_rows = np.arange(num_trees) * num_splits  # node k of tree t: row t * S + k
        leaf_rows = np.arange(num_trees) * (num_splits + 1) - num_splits  # leaf = node - S
        face_rows = np.arange(n)[:, None] * state["anchor_idx"].shape[1]
        for level in range(num_levels):
            tform = similarity_matrices(initial, shape)
            anchors = shape[:, state["anchor_idx"][level]]
            deltas = state["deltas"][level].astype(np.float32) * FIXED_SCALE
            points = anchors + deltas @ tform.transpose(0, 2, 1)
            xy = np.floor(origin + points * extent + np.float32(0.5)).astype(np.int64)
            x, y = xy[..., 0], xy[..., 1]
            inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
            index = np.clip(y, 0, h - 1) * w + np.clip(x, 0, w - 1)
            values = np.where(inside, intensity(pixels[index]), 0).ravel()  # (N * F,)
            features = state["split_features"][level].reshape(-1, 2) + face_rows[..., None]
            thresholds = state["split_thresholds"][level].reshape(-1)
            node = np.zeros((n, num_trees), dtype=np.int64)
            for _ in range(self.tree_depth):
                split = split_rows + node
                pair = features[np.arange(n)[:, None], split]  # (N, T, 2) into values
                diff = values[pair[..., 0]] - values[pair[..., 1]]
                node = 2 * node + 2 - (diff > thresholds[split])
            leaves = state["leaf_values"][level].reshape(-1, shape.shape[1], 2)[leaf_rows + node]
            shape = shape + leaves.sum(1, dtype=np.int64).astype(np.float32) * leaf_scale
        return (origin + shape * extent).astype(np.float32)


def load_shape_predictor() -> ShapeCascade:
    """The converted 5-point predictor from the registry, read once per registry folder.

    >>> load_shape_predictor().state["initial_shape"].shape
    (5, 2)
    """
    return _load(str(registry.registry_dir()))


@functools.lru_cache(maxsize=4)
def _load(registry_dir: str) -> ShapeCascade:
    return ShapeCascade(load_file(str(registry.resolve(REGISTRY_NAME) / "model.safetensors")))


def dlib5_in_box(image: np.ndarray, face: Face, box_fit: dict) -> Face:
    """`face` re-landmarked with dlib's 5 points: the predictor runs in the square dlib's
    detector would have drawn around it, placed from `face.box` by `box_fit` (fitted by
    `faceres eval lfw --tune`: `centre_shift` in box widths and heights, `side` in
    sqrt(box area)).

    >>> dlib5_in_box(image, yunet_face, {"centre_shift": [-0.04, -0.01], "side": 0.93}).scheme
    'dlib5'
    """
    x, y, w, h = face.box
    cx = x + w / 2 + box_fit["centre_shift"][0] * w
    cy = y + h / 2 + box_fit["centre_shift"][1] * h
    half = box_fit["side"] * np.sqrt(w * h) / 2
    rect = [round(v) for v in (cx - half, cy - half, cx + half, cy + half)]
    points = load_shape_predictor().predict(image, [rect])[0]
    return Face(face.box, points, "dlib5", face.score, f"{face.detector}+dlib5")
