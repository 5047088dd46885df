"""dlib's 5-point face landmarks (`shape_predictor_5_face_landmarks.dat`) as a timm model.

A cascade of regression-tree forests (Kazemi & Sullivan, 2014, as implemented by dlib's
`shape_predictor`): starting from a mean shape in the unit square of the face box, each level
samples pixel intensities at points tied to the current shape, walks every tree by comparing
pixel-pair differences with thresholds, and adds the reached leaves' shape increments.

This module holds the trees as buffers (stored as safetensors like any timm model, converted by
`faceres.convert.dlib`); inference is `faceres.detect.landmarks`, vectorised numpy over faces and
trees on the host reading the same safetensors file: 5 points take about a millisecond, where
per-op dispatch of the same gathers in torch (let alone CUDA launches) costs tens, and the
detector needs neither torch nor timm to start.

Points, in dlib's order: the outer and inner corners of the eye on the image's right, the outer
and inner corners of the eye on the image's left, then the base of the nose.

>>> from faceres import registry
>>> registry.load("dlib-landmarks5").model.initial_shape.shape
torch.Size([5, 2])
"""

from __future__ import annotations

import numpy as np
import torch
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from torch import nn

__all__ = ["ShapePredictor", "state_from_dlib"]

FIXED_BITS = 24


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

    The module only holds and converts the buffers; `faceres.detect.landmarks.ShapeCascade` runs
    them.
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
