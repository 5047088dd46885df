"""Residual networks for 48×48 grayscale faces and their plain twins.

A plain twin is the same network with every shortcut removed: `PlainBlock` is timm's
`BasicBlock` without the identity addition, and the shortcut's projection (if any) is dropped too.
Both are initialised the same way (no zero-init of the last BatchNorm, which would make a plain
block pass zeros).

>>> import timm, faceres
>>> model = timm.create_model("faceres_resnet18_48", num_classes=7)
>>> model(torch.zeros(2, 1, 48, 48)).shape
torch.Size([2, 7])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import create_classifier
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.resnet import BasicBlock, downsample_conv
from torch import nn

from faceres.labels import FER_LABELS

__all__ = ["FaceResNet", "PlainBlock"]


class PlainBlock(BasicBlock):
    """timm's BasicBlock with the skip connection (and its projection) removed."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.bn1(self.conv1(x)))
        return self.act2(self.bn2(self.conv2(x)))


class ZeroPadShortcut(nn.Module):
    """Parameter-free shortcut (He et al. 2015, option A): subsample, then zero-pad channels."""

    def __init__(self, out_chs: int, stride: int) -> None:
        super().__init__()
        self.out_chs, self.stride = out_chs, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.out_chs - x.shape[1]))


class FaceResNet(nn.Module):
    """A 3×3-stem ResNet (no stem pooling) for small face images, residual or plain.

    Args:
        layers: blocks per stage. channels: width per stage (stage i>0 halves the resolution;
        the first stage strides `first_stride`).
        residual: False builds the plain twin. shortcut: "projection" (1×1 conv + norm) or
        "zeropad" (parameter-free). norm: False replaces every BatchNorm by identity.
        init: "kaiming" (He normal, fan_out) or "torch" (PyTorch's default layer init).
    """

    def __init__(
        self,
        layers: tuple[int, ...],
        channels: tuple[int, ...],
        num_classes: int = 7,
        in_chans: int = 1,
        residual: bool = True,
        shortcut: str = "projection",
        norm: bool = True,
        init: str = "kaiming",
        drop_rate: float = 0.0,
        global_pool: str = "avg",
        first_stride: int = 1,
    ) -> None:
        super().__init__()
        norm_layer = nn.BatchNorm2d if norm else nn.Identity
        self.num_classes, self.drop_rate = num_classes, drop_rate
        self.residual, self.batchnorm = residual, norm
        self.depth = 2 * sum(layers) + 2
        """Weight layers on the main path: the stem, two per block, the classifier."""
        self.conv1 = nn.Conv2d(in_chans, channels[0], 3, padding=1, bias=not norm)
        self.bn1 = norm_layer(channels[0])
        self.act1 = nn.ReLU(inplace=True)
        block = BasicBlock if residual else PlainBlock
        in_chs = channels[0]
        self.feature_info = []
        for i, (n, chs) in enumerate(zip(layers, channels)):
            stride = first_stride if i == 0 else 2
            blocks = []
            for j in range(n):
                s = stride if j == 0 else 1
                down = None
                if residual and (s != 1 or in_chs != chs):
                    down = (
                        downsample_conv(in_chs, chs, 1, stride=s, norm_layer=norm_layer)
                        if shortcut == "projection"
                        else ZeroPadShortcut(chs, s)
                    )
                blocks.append(block(in_chs, chs, s, down, norm_layer=norm_layer))
                in_chs = chs
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            self.feature_info.append(
                dict(num_chs=chs, reduction=first_stride * 2**i, module=f"layer{i + 1}")
            )
        self.num_stages = len(layers)
        self.num_features = self.head_hidden_size = in_chs
        self.global_pool, self.fc = create_classifier(in_chs, num_classes, pool_type=global_pool)
        if init == "kaiming":
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif init != "torch":
            raise ValueError(f"init must be 'kaiming' or 'torch', not {init!r}")

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: str = "avg") -> None:
        self.num_classes = num_classes
        self.global_pool, self.fc = create_classifier(
            self.num_features, num_classes, pool_type=global_pool
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.bn1(self.conv1(x)))
        for i in range(self.num_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.global_pool(x)
        if self.drop_rate:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _cfg(**kwargs) -> dict:
    return {
        "num_classes": len(FER_LABELS),
        "label_names": list(FER_LABELS),
        "input_size": (1, 48, 48),
        "pool_size": None,
        "crop_pct": 1.0,
        "interpolation": "bilinear",
        "mean": (0.5,),
        "std": (0.25,),
        "first_conv": "conv1",
        "classifier": "fc",
        "license": "mit",
        **kwargs,
    }


default_cfgs = generate_default_cfgs(
    {
        name: _cfg()
        for name in (
            "faceres_resnet18_48",
            "faceres_plain18_48",
            "faceres_resnet18s_48",
            "faceres_plain18s_48",
            "faceres_resnet20_48",
            "faceres_plain20_48",
            "faceres_resnet56_48",
            "faceres_plain56_48",
            "faceres_resnet56_nobn_48",
            "faceres_plain56_nobn_48",
        )
    }
    | {
        f"faceres_{kind}{depth}_32": _cfg(input_size=(1, 32, 32))
        for kind in ("resnet", "plain")
        for depth in (20, 32, 44, 56)
    }
)

_R18 = dict(layers=(2, 2, 2, 2), channels=(32, 64, 128, 256), shortcut="projection")
"""ResNet-18 layout at half width, 3×3 stride-1 stem: 48→48→24→12→6."""


def _cifar(depth: int) -> dict:
    """He et al.'s CIFAR ResNets: 6n+2 layers, widths 16/32/64, parameter-free shortcuts."""
    n = (depth - 2) // 6
    return dict(layers=(n, n, n), channels=(16, 32, 64), shortcut="zeropad")


def _create(variant: str, pretrained: bool, **kwargs) -> FaceResNet:
    return build_model_with_cfg(FaceResNet, variant, pretrained, **kwargs)


@register_model
def faceres_resnet18_48(pretrained: bool = False, **kwargs) -> FaceResNet:
    """ResNet-18 layout, half width (32-256), for 48×48 grayscale faces."""
    return _create("faceres_resnet18_48", pretrained, **dict(_R18, **kwargs))


@register_model
def faceres_plain18_48(pretrained: bool = False, **kwargs) -> FaceResNet:
    """Plain twin of faceres_resnet18_48: no shortcuts, no projections."""
    return _create("faceres_plain18_48", pretrained, **dict(_R18, residual=False, **kwargs))


@register_model
def faceres_resnet18s_48(pretrained: bool = False, **kwargs) -> FaceResNet:
    """faceres_resnet18_48 whose first stage strides 2 (48→24→12→6→3): a quarter of the
    compute, the same weights plus the first block's projection shortcut."""
    return _create("faceres_resnet18s_48", pretrained, **dict(_R18, first_stride=2, **kwargs))


@register_model
def faceres_plain18s_48(pretrained: bool = False, **kwargs) -> FaceResNet:
    """Plain twin of faceres_resnet18s_48."""
    return _create(
        "faceres_plain18s_48", pretrained, **dict(_R18, first_stride=2, residual=False, **kwargs)
    )


@register_model
def faceres_resnet20_48(pretrained: bool = False, **kwargs) -> FaceResNet:
    """CIFAR-style ResNet-20 for 48×48 faces."""
    return _create("faceres_resnet20_48", pretrained, **dict(_cifar(20), **kwargs))


@register_model
def faceres_plain20_48(pretrained: bool = False, **kwargs) -> FaceResNet:
    """Plain twin of faceres_resnet20_48."""
    return _create("faceres_plain20_48", pretrained, **dict(_cifar(20), residual=False, **kwargs))


@register_model
def faceres_resnet56_48(pretrained: bool = False, **kwargs) -> FaceResNet:
    """CIFAR-style ResNet-56 for 48×48 faces."""
    return _create("faceres_resnet56_48", pretrained, **dict(_cifar(56), **kwargs))


@register_model
def faceres_plain56_48(pretrained: bool = False, **kwargs) -> FaceResNet:
    """Plain twin of faceres_resnet56_48."""
    return _create("faceres_plain56_48", pretrained, **dict(_cifar(56), residual=False, **kwargs))


@register_model
def faceres_resnet56_nobn_48(pretrained: bool = False, **kwargs) -> FaceResNet:
    """ResNet-56 without BatchNorm, PyTorch's default init: for the gradient-flow experiment."""
    return _create(
        "faceres_resnet56_nobn_48",
        pretrained,
        **dict(_cifar(56), norm=False, init="torch", **kwargs),
    )


@register_model
def faceres_plain56_nobn_48(pretrained: bool = False, **kwargs) -> FaceResNet:
    """Plain-56 without BatchNorm, PyTorch's default init: for the gradient-flow experiment."""
    return _create(
        "faceres_plain56_nobn_48",
        pretrained,
        **dict(_cifar(56), residual=False, norm=False, init="torch", **kwargs),
    )


@register_model
def faceres_resnet20_32(pretrained: bool = False, **kwargs) -> FaceResNet:
    """He et al.'s CIFAR ResNet-20 at CIFAR's 32×32, for faces: the depth study's protocol."""
    return _create("faceres_resnet20_32", pretrained, **dict(_cifar(20), **kwargs))


@register_model
def faceres_plain20_32(pretrained: bool = False, **kwargs) -> FaceResNet:
    """Plain twin of faceres_resnet20_32."""
    return _create("faceres_plain20_32", pretrained, **dict(_cifar(20), residual=False, **kwargs))


@register_model
def faceres_resnet32_32(pretrained: bool = False, **kwargs) -> FaceResNet:
    """He et al.'s CIFAR ResNet-32 at CIFAR's 32×32, for faces: the depth study's protocol."""
    return _create("faceres_resnet32_32", pretrained, **dict(_cifar(32), **kwargs))


@register_model
def faceres_plain32_32(pretrained: bool = False, **kwargs) -> FaceResNet:
    """Plain twin of faceres_resnet32_32."""
    return _create("faceres_plain32_32", pretrained, **dict(_cifar(32), residual=False, **kwargs))


@register_model
def faceres_resnet44_32(pretrained: bool = False, **kwargs) -> FaceResNet:
    """He et al.'s CIFAR ResNet-44 at CIFAR's 32×32, for faces: the depth study's protocol."""
    return _create("faceres_resnet44_32", pretrained, **dict(_cifar(44), **kwargs))


@register_model
def faceres_plain44_32(pretrained: bool = False, **kwargs) -> FaceResNet:
    """Plain twin of faceres_resnet44_32."""
    return _create("faceres_plain44_32", pretrained, **dict(_cifar(44), residual=False, **kwargs))


@register_model
def faceres_resnet56_32(pretrained: bool = False, **kwargs) -> FaceResNet:
    """He et al.'s CIFAR ResNet-56 at CIFAR's 32×32, for faces: the depth study's protocol."""
    return _create("faceres_resnet56_32", pretrained, **dict(_cifar(56), **kwargs))


@register_model
def faceres_plain56_32(pretrained: bool = False, **kwargs) -> FaceResNet:
    """Plain twin of faceres_resnet56_32."""
    return _create("faceres_plain56_32", pretrained, **dict(_cifar(56), residual=False, **kwargs))


def normalize(x: torch.Tensor, mean: float = 0.5, std: float = 0.25) -> torch.Tensor:
    """Images (uint8, or float in [0, 1]) → standardised float32."""
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    return (x - mean) / std


@torch.inference_mode()
def predict(
    model: torch.nn.Module,
    images: torch.Tensor,
    mean: float,
    std: float,
    batch_size: int = 512,
    flip: bool = True,
) -> torch.Tensor:
    """Softmax probabilities for a uint8 N×1×H×W batch (mean with the mirror image if `flip`),
    computed in bfloat16 autocast, channels-last: how training, evaluation and the studies run
    these networks on whole datasets (`faceres.expression.classify` runs one photo's faces in
    float32)."""
    model.eval()
    weight = next(model.parameters())
    out = []
    for i in range(0, len(images), batch_size):
        x = normalize(images[i : i + batch_size].to(weight.device), mean, std)
        n = len(x)
        if flip:
            x = torch.cat([x, x.flip(3)])
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(weight.device.type, dtype=torch.bfloat16):
            p = model(x).float().softmax(1)
        out.append((p[:n] + p[n:]) / 2 if flip else p)
    return torch.cat(out).cpu() if out else torch.zeros(0)
