"""dlib's 5-point face landmarks (`shape_predictor_5_face_landmarks.dat`) as a timm model.

A cascade of regression-tree forests (Kazemi & Sullivan, 2014, as implemented by dlib's
`shape_predictor`): starting from a mean shape in the unit square of the face box, each level
samples pixel intensities at points tied to the current shape, walks every tree by comparing
pixel-pair differences with thresholds, and adds the reached leaves' shape increments.

The module holds the trees as buffers (loaded from safetensors like any timm model); inference is
vectorised numpy over faces and trees on the host: 5 points take about a millisecond, where
per-op dispatch of the same gathers in torch (let alone CUDA launches) costs tens.

Points, in dlib's order: the outer and inner corners of the eye on the image's right, the outer
and inner corners of the eye on the image's left, then the base of the nose.

>>> from faceres import registry
>>> predictor = registry.load("dlib-landmarks5").model
>>> predictor.predict(image, [(80, 60, 240, 220)]).shape  # doctest: +SKIP
(1, 5, 2)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from torch import nn

__all__ = ["ShapePredictor", "state_from_dlib"]

FIXED_BITS = 24
FIXED_SCALE = np.float32(2.0**-FIXED_BITS)


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


class ShapePredictor(nn.Module):
    """A cascade of regression-tree forests predicting `num_parts` points in face boxes.

    Buffers: `initial_shape` (P, 2) in box-normalised coordinates; per level c and tree t,
    `split_features` (C, T, S, 2) indices into the level's feature pixels, `split_thresholds`
    (C, T, S) as integers (pixel differences are integers, so `diff > thr` equals
    `diff > floor(thr)`); `leaf_values` (C, T, S + 1, P, 2); feature pixels as `anchor_idx`
    (C, F) shape points plus `deltas` (C, F, 2) offsets in the mean shape's frame.

    Real values are stored as fixed-point integers (`initial_shape`, `deltas`: int32 in units of
    2**-24; `leaf_values`: int16 in units of 2**-`leaf_bits`): fp16 would move points by up to
    4 px through the cascade, while these match dlib's float32 values to < 1e-6.
    """

    def __init__(
        self,
        num_parts: int = 5,
        cascade_depth: int = 15,
        num_trees: int = 500,
        tree_depth: int = 4,
        feature_pool_size: int = 800,
        num_classes: int = 10,
        in_chans: int = 1,
    ):
        """`num_classes` (timm's output size) must be 2 * `num_parts`; the input is one intensity
        channel (`in_chans` 1)."""
        super().__init__()
        if num_classes != 2 * num_parts or in_chans != 1:
            raise ValueError("ShapePredictor outputs 2 * num_parts values from 1 channel.")
        self.num_classes = 2 * num_parts
        self.num_features = 2 * num_parts
        self.tree_depth = tree_depth
        c, t, s, f = cascade_depth, num_trees, 2**tree_depth - 1, feature_pool_size
        self.register_buffer("initial_shape", torch.zeros(num_parts, 2, dtype=torch.int32))
        self.register_buffer("split_features", torch.zeros(c, t, s, 2, dtype=torch.int16))
        self.register_buffer("split_thresholds", torch.zeros(c, t, s, dtype=torch.int16))
        leaves = torch.zeros(c, t, s + 1, num_parts, 2, dtype=torch.int16)
        self.register_buffer("leaf_values", leaves)
        self.register_buffer("leaf_bits", torch.tensor(0, dtype=torch.int32))
        self.register_buffer("anchor_idx", torch.zeros(c, f, dtype=torch.int16))
        self.register_buffer("deltas", torch.zeros(c, f, 2, dtype=torch.int32))

    def forward(self, gray: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Points (N, P, 2) in pixels for `boxes` (N, 4) = dlib rectangles (left, top, right,
        bottom), inclusive, in the uint8 intensity image `gray` (H, W); on `boxes`' device."""
        image = gray.detach().cpu().numpy().astype(np.uint8)[..., None]
        points = self._run(image, boxes.detach().cpu().numpy())
        return torch.from_numpy(points).to(boxes.device)

    def predict(
        self, image: np.ndarray, boxes: Sequence[Sequence[float]] | np.ndarray
    ) -> np.ndarray:
        """Landmarks (N, P, 2) float32 for an RGB (or gray) uint8 image and dlib rectangles
        (left, top, right, bottom), inclusive pixel coordinates.

        >>> predictor.predict(image, [(80, 60, 240, 220)])  # doctest: +SKIP
        """
        image = np.asarray(image)
        return self._run(image if image.ndim == 3 else image[..., None], boxes)

    def _run(self, image: np.ndarray, boxes: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
        """The cascade on an (H, W, C) uint8 image; only the sampled pixels are read."""
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        n, (h, w) = len(boxes), image.shape[:2]
        if n == 0:
            return np.zeros((0, self.initial_shape.shape[0], 2), np.float32)
        state = {k: v.cpu().numpy() for k, v in self.named_buffers()}
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


def state_from_dlib(sp: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """`ShapePredictor` buffers from `faceres.convert.dlib_format.parse_shape_predictor` arrays."""

    def fixed(x: np.ndarray, bits: int, dtype: type) -> torch.Tensor:
        return torch.from_numpy(np.round(x.astype(np.float64) * 2.0**bits).astype(dtype))

    leaf_max = float(np.abs(sp["leaf_values"]).max())
    leaf_bits = int(np.floor(np.log2(32767 / leaf_max))) if leaf_max > 0 else 0
    return {
        "initial_shape": fixed(sp["initial_shape"], FIXED_BITS, np.int32),
        "split_features": torch.from_numpy(sp["split_features"].astype(np.int16)),
        "split_thresholds": torch.from_numpy(np.floor(sp["split_thresholds"]).astype(np.int16)),
        "leaf_values": fixed(sp["leaf_values"], leaf_bits, np.int16),
        "leaf_bits": torch.tensor(leaf_bits, dtype=torch.int32),
        "anchor_idx": torch.from_numpy(sp["anchor_idx"].astype(np.int16)),
        "deltas": fixed(sp["deltas"], FIXED_BITS, np.int32),
    }


default_cfgs = generate_default_cfgs(
    {
        "faceres_dlib_shape_predictor5.dlib": {
            "num_classes": 10,
            "input_size": (1, 150, 150),
            "mean": (0.0,),
            "std": (1.0,),
            "first_conv": "",
            "classifier": "",
            "license": "cc0-1.0",
            "origin_url": "https://github.com/davisking/dlib-models",
        }
    }
)


@register_model
def faceres_dlib_shape_predictor5(pretrained: bool = False, **kwargs) -> ShapePredictor:
    """dlib's 5-point landmark cascade (15 levels x 500 trees of depth 4)."""
    return build_model_with_cfg(
        ShapePredictor, "faceres_dlib_shape_predictor5", pretrained, **kwargs
    )
