"""The convolutional network of dlib's MMOD face detector (`mmod_human_face_detector.dat`).

dlib's `examples/dnn_mmod_face_detection_ex.cpp`: three 5x5 stride-2 unpadded convolutions
(16, 32, 32 channels), three 5x5 convolutions of 45 channels, each followed by batch norm (frozen,
folded into the convolution) and ReLU, then a 9x9 convolution to one score map. A score > 0 at
output cell (r, c) is an 80x80 detection window centred on input pixel (8c + 14, 8r + 14).
Image pyramid, thresholding and non-maximum suppression live in `faceres.detect.dlib`.

A 9x9 convolution to a single map is a poor fit for CPU convolution kernels, so `forward_head`
computes the same sums as a matrix product to one map per kernel tap, added at the taps' offsets
by `F.fold` (2-3x faster on 2 CPU cores; results equal to float rounding).

>>> import timm, torch, faceres
>>> timm.create_model("faceres_dlib_mmod_face")(torch.zeros(1, 3, 120, 120)).shape
torch.Size([1, 1, 12, 12])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from torch import nn

from faceres.models.dlib_resnet import DLIB_MEAN, DLIB_STD

__all__ = ["DlibMMOD"]


def _conv_relu(cin: int, cout: int, kernel: int, stride: int, padding: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, padding), nn.ReLU(inplace=True))


class DlibMMOD(nn.Module):
    """Score map of dlib's MMOD face detector for normalised RGB input `(x - mean) / 256`."""

    def __init__(
        self,
        in_chans: int = 3,
        num_classes: int = 1,
        down_widths: tuple[int, ...] = (16, 32, 32),
        width: int = 45,
        depth: int = 3,
    ):
        super().__init__()
        self.num_classes = num_classes
        self.num_features = width
        layers, channels = [], in_chans
        for w in down_widths:
            layers.append(_conv_relu(channels, w, 5, 2, 0))
            channels = w
        for _ in range(depth):
            layers.append(_conv_relu(channels, width, 5, 1, 2))
            channels = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Conv2d(channels, num_classes, 9, 1, 4)
        self.stride = 2 ** len(down_widths)
        self.offset = sum(2 * 2**i for i in range(len(down_widths)))  # 2 + 4 + 8 = 14

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """`self.head(x)` (same padding, odd kernel k) as taps = W·x per pixel, (O·k·k, H·W),
        summed into place by `F.fold`: fold adds tap (i, j) of pixel q at q + (i, j) - k // 2,
        so the kernel is flipped to read x[p + (i, j) - k // 2] as the convolution does."""
        n, c, h, w = x.shape
        weight = self.head.weight
        out, k = weight.shape[0], weight.shape[-1]
        kernel = weight.flip(2, 3).permute(0, 2, 3, 1).reshape(out * k * k, c)
        taps = kernel @ x.reshape(n, c, h * w)
        return F.fold(taps, (h, w), k, padding=k // 2) + self.head.bias.view(1, out, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


default_cfgs = generate_default_cfgs(
    {
        "faceres_dlib_mmod_face.dlib": {
            "num_classes": 1,
            "input_size": (3, 480, 640),
            "mean": DLIB_MEAN,
            "std": DLIB_STD,
            "crop_pct": 1.0,
            "first_conv": "features.0.0",
            "classifier": "head",
            "license": "cc0-1.0",
            "origin_url": "https://github.com/davisking/dlib-models",
        }
    }
)


@register_model
def faceres_dlib_mmod_face(pretrained: bool = False, **kwargs) -> DlibMMOD:
    """dlib's MMOD CNN face detector network (score map, stride 8, 80x80 window)."""
    return build_model_with_cfg(DlibMMOD, "faceres_dlib_mmod_face", pretrained, **kwargs)
