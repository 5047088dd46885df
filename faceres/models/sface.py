"""SFace (Zhong et al. 2021; OpenCV Zoo `face_recognition_sface_2021dec`) as a timm model.

The network inside the zoo's ONNX file is insightface's "fmobilenet": a MobileNet-V1 stack, not a
residual network. A stride-1 3x3 stem (3→32), then 13 depthwise-separable blocks (3x3 depthwise,
1x1 pointwise; the depthwise convolutions of blocks 3, 5, 7 and 13 have stride 2, so 112→7), every
convolution without bias and followed by BatchNorm (eps 1e-3) and a per-channel PReLU; the head
normalises the 1024x7x7 map (BatchNorm, eps 2e-5), flattens it, and a 50176→128 linear layer with a
BatchNorm1d (eps 2e-5) gives the 128-d embedding. The input is RGB, (pixel - 127.5) / 128: timm's
mean 0.5 and std 128/255. Faces are aligned onto ArcFace's five-point 112x112 template
(`faceres.face.align.arcface_template`).

The registry stores the weights the zoo quantised as the zoo stores them (int8 values with their
block scales and zero points, `QUANTISED_PARTS`); `checkpoint_filter_fn` dequantises them on load,
exactly as ONNX's blocked `DequantizeLinear` does.

>>> import timm, torch, faceres
>>> model = timm.create_model("faceres_sface_2021dec").eval()
>>> model(torch.zeros(1, 3, 112, 112)).shape
torch.Size([1, 128])
"""

from __future__ import annotations

import torch
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from torch import nn

__all__ = ["SFace", "checkpoint_filter_fn", "dequantize_blocks"]

QUANTISED_PARTS = ("int8", "scale", "zero_point", "block")
"""A block-quantised weight `W` is stored as `W.int8`, `W.scale`, `W.zero_point` and `W.block`
(its axis and block size)."""

BLOCKS = (
    (32, 64, 1),
    (64, 128, 2),
    (128, 128, 1),
    (128, 256, 2),
    (256, 256, 1),
    (256, 512, 2),
    (512, 512, 1),
    (512, 512, 1),
    (512, 512, 1),
    (512, 512, 1),
    (512, 512, 1),
    (512, 1024, 2),
    (1024, 1024, 1),
)
"""(in channels, out channels, depthwise stride) of blocks conv_2 ... conv_14."""


class ConvBnPrelu(nn.Sequential):
    """Convolution without bias, BatchNorm (eps 1e-3), per-channel PReLU."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=1e-3)
        self.act = nn.PReLU(cout)


def _separable(cin: int, cout: int, stride: int) -> nn.Sequential:
    """A depthwise 3x3 convolution (stride `stride`), then a pointwise 1x1 one."""
    return nn.Sequential(ConvBnPrelu(cin, cin, 3, stride, groups=cin), ConvBnPrelu(cin, cout, 1))


class SFace(nn.Module):
    """SFace's fmobilenet: stem, 13 depthwise-separable blocks, BN-flatten-linear-BN head."""

    def __init__(self, num_classes: int = 128, in_chans: int = 3, **kwargs) -> None:
        super().__init__()
        self.num_classes = self.num_features = num_classes
        self.stem = ConvBnPrelu(in_chans, 32, 3)
        self.blocks = nn.Sequential(
            *(_separable(cin, cout, stride) for cin, cout, stride in BLOCKS)
        )
        self.bn1 = nn.BatchNorm2d(1024, eps=2e-5)
        self.fc = nn.Linear(1024 * 7 * 7, num_classes)
        self.features = nn.BatchNorm1d(num_classes, eps=2e-5)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn1(self.blocks(self.stem(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(x, 1)
        return x if pre_logits else self.features(self.fc(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def dequantize_blocks(
    q: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, block: torch.Tensor
) -> torch.Tensor:
    """ONNX's blocked `DequantizeLinear` in float32: `(q - zero_point) * scale`, each scale and
    zero point repeated `block[1]` times along axis `block[0]`."""
    axis, size = (int(v) for v in block)

    def spread(t: torch.Tensor) -> torch.Tensor:
        return t.float().repeat_interleave(size, dim=axis).narrow(axis, 0, q.shape[axis])

    return (q.float() - spread(zero_point)) * spread(scale)


def checkpoint_filter_fn(state_dict: dict, model: nn.Module) -> dict:
    """The state dict of `model` from stored weights: each block-quantised weight dequantised
    (`dequantize_blocks`) and shaped as the model's parameter; BatchNorm's step counters, which
    the zoo does not store, are the model's own."""
    own = model.state_dict()
    out = {k: v for k, v in own.items() if k.endswith("num_batches_tracked")}
    for key, value in state_dict.items():
        base, _, part = key.rpartition(".")
        if part == "int8":
            parts = (state_dict[f"{base}.{p}"] for p in QUANTISED_PARTS[1:])
            out[base] = dequantize_blocks(value, *parts).reshape(own[base].shape)
        elif not (part in QUANTISED_PARTS and f"{base}.int8" in state_dict):
            out[key] = value
    return out


default_cfgs = generate_default_cfgs(
    {
        "faceres_sface_2021dec": {
            "num_classes": 128,
            "input_size": (3, 112, 112),
            "pool_size": None,
            "crop_pct": 1.0,
            "interpolation": "bilinear",
            "mean": (0.5, 0.5, 0.5),
            "std": (128 / 255,) * 3,
            "first_conv": "stem.conv",
            "classifier": "fc",
            "license": "apache-2.0",
        }
    }
)


@register_model
def faceres_sface_2021dec(pretrained: bool = False, **kwargs) -> SFace:
    """SFace (OpenCV Zoo, 2021dec): 128-d face embeddings of 112x112 ArcFace-aligned RGB crops."""
    return build_model_with_cfg(
        SFace,
        "faceres_sface_2021dec",
        pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        **kwargs,
    )
