"""dlib's face recognition ResNet (`dlib_face_recognition_resnet_model_v1`) as a timm model.

The network of dlib's `examples/dnn_face_recognition_ex.cpp`: 29 convolutions, a 7x7/2 stem and
max pool, then residual stages of 32, 64, 128, 256 and 256 channels, global average pooling and a
128-d linear embedding without bias. Stride-1 blocks are timm's `BasicBlock`; downsampling blocks
follow dlib's own layout: an unpadded 3x3/2 convolution and a parameter-free shortcut (2x2 average
pool, zero-padded to the block's channels and, as dlib's `add_prev` does, to the larger spatial
size). Batch norm was frozen into per-channel scale + shift (dlib's `affine` layer), with the
convolution biases folded into the shift.

>>> import timm, torch, faceres
>>> model = timm.create_model("faceres_dlib_resnet29_face").eval()
>>> model(torch.zeros(1, 3, 150, 150)).shape
torch.Size([1, 128])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.resnet import BasicBlock
from torch import nn

__all__ = ["Affine2d", "DlibResNet"]

# dlib's input_rgb_image_sized computes (pixel - avg) / 256 with these channel averages;
# in timm's (x / 255 - mean) / std convention that is mean = avg / 255, std = 256 / 255.
DLIB_AVG_RGB = (122.782, 117.001, 104.298)
DLIB_MEAN = tuple(round(a / 255.0, 8) for a in DLIB_AVG_RGB)
DLIB_STD = (256.0 / 255.0,) * 3


class Affine2d(nn.Module):
    """Fixed per-channel scale and shift, dlib's `affine_` layer (batch norm at inference)."""

    def __init__(self, num_features: int, **kwargs):
        super().__init__()
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.bias[:, None, None], x, self.weight[:, None, None])


def pad_add(x: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
    """dlib's `add_prev`: sum over the overlapping top-left region, output of the larger size."""
    c, h, w = (max(a, b) for a, b in zip(x.shape[1:], shortcut.shape[1:]))

    def grow(t: torch.Tensor) -> torch.Tensor:
        pads = (0, w - t.shape[3], 0, h - t.shape[2], 0, c - t.shape[1])
        return F.pad(t, pads) if any(pads) else t

    return grow(x) + grow(shortcut)


class DownBlock(nn.Module):
    """dlib's `ares_down`: unpadded 3x3/2 conv branch plus average-pool, zero-pad shortcut."""

    def __init__(self, inplanes: int, planes: int, norm_layer: type[nn.Module] = Affine2d):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=2, padding=0, bias=False)
        self.bn1 = norm_layer(planes)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = norm_layer(planes)
        self.pool = nn.AvgPool2d(2, stride=2)
        self.act2 = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.pool(x)
        x = self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x)))))
        return self.act2(pad_add(x, shortcut))


class DlibResNet(nn.Module):
    """ResNet-29 of dlib's face recognition model; output is the 128-d face descriptor."""

    def __init__(
        self,
        num_classes: int = 128,
        in_chans: int = 3,
        stem_width: int = 32,
        stages: tuple[tuple[int, int, bool], ...] = (
            (32, 3, False),
            (64, 4, True),
            (128, 3, True),
            (256, 3, True),
            (256, 1, True),
        ),
        global_pool: str = "avg",
    ):
        """`stages`: (channels, blocks, first block downsamples) from the stem upwards."""
        super().__init__()
        self.num_classes = num_classes
        self.conv1 = nn.Conv2d(in_chans, stem_width, 7, stride=2, padding=0, bias=False)
        self.bn1 = Affine2d(stem_width)
        self.act1 = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2)
        layers: list[nn.Module] = []
        channels = stem_width
        for width, depth, down in stages:
            blocks: list[nn.Module] = []
            for i in range(depth):
                if i == 0 and down:
                    blocks.append(DownBlock(channels, width))
                else:
                    blocks.append(BasicBlock(channels, width, norm_layer=Affine2d))
                channels = width
            layers.append(nn.Sequential(*blocks))
        self.layers = nn.Sequential(*layers)
        self.num_features = self.head_hidden_size = channels
        self.global_pool = global_pool
        self.fc = nn.Linear(channels, num_classes, bias=False) if num_classes else nn.Identity()

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.act1(self.bn1(self.conv1(x))))
        return self.layers(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean(dim=(2, 3))
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _cfg(**kwargs) -> dict:
    return {
        "num_classes": 128,
        "input_size": (3, 150, 150),
        "pool_size": (2, 2),
        "crop_pct": 1.0,
        "interpolation": "bilinear",
        "mean": DLIB_MEAN,
        "std": DLIB_STD,
        "first_conv": "conv1",
        "classifier": "fc",
        "license": "cc0-1.0",
        **kwargs,
    }


default_cfgs = generate_default_cfgs(
    {
        "faceres_dlib_resnet29_face.dlib_v1": _cfg(
            origin_url="https://github.com/davisking/dlib-models",
            paper_ids="dlib: dnn_face_recognition_ex.cpp",
        ),
    }
)


@register_model
def faceres_dlib_resnet29_face(pretrained: bool = False, **kwargs) -> DlibResNet:
    """dlib's 29-layer face recognition ResNet: 150x150 RGB face chip in, 128-d descriptor out."""
    return build_model_with_cfg(DlibResNet, "faceres_dlib_resnet29_face", pretrained, **kwargs)
