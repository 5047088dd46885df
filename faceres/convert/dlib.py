"""Conversions of dlib's published models into faceres registry entries.

Each `convert_*` function reads a dlib `.dat` file with `faceres.convert.dlib_format`, builds our
PyTorch (or numpy) equivalent and writes `registry/models/<name>/` through
`faceres.registry.save_model`.

>>> from faceres.convert.dlib import convert_dlib_resnet, find_dlib_file
>>> convert_dlib_resnet(find_dlib_file("dlib-resnet"))  # doctest: +SKIP
PosixPath('.../registry/models/dlib-resnet29-face')
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
from torch import nn

import faceres.detect.dlib as dlib_detector
from faceres import registry
from faceres.convert.dlib_format import DlibNet, parse_shape_predictor, read_dnn
from faceres.detect import landmarks
from faceres.errors import ModelError
from faceres.models.dlib_landmarks import state_from_dlib

SOURCE_FILES = {
    "dlib-resnet": "dlib_face_recognition_resnet_model_v1.dat",
    "dlib-landmarks5": "shape_predictor_5_face_landmarks.dat",
    "dlib-mmod": "mmod_human_face_detector.dat",
}
SOURCE = "face_recognition_models (PyPI, CC0-1.0), models trained by Davis King for dlib"
CREDIT = (
    "Weights by Davis E. King, from [dlib](http://dlib.net) "
    "([dlib-models](https://github.com/davisking/dlib-models)), distributed on PyPI as "
    "`face_recognition_models` (CC0-1.0). Converted from dlib's serialization format by faceres "
    "(`faceres convert`) without dlib."
)


def find_dlib_file(kind: str) -> Path:
    """The `.dat` file for `kind` ("dlib-resnet", "dlib-landmarks5", "dlib-mmod") as installed by
    `pip install face_recognition_models`.

    >>> find_dlib_file("dlib-mmod").name  # doctest: +SKIP
    'mmod_human_face_detector.dat'
    """
    # find_spec locates the package without importing it (its __init__ needs pkg_resources).
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "face_recognition_models is not installed: `pip install face_recognition_models`, "
            "or pass the .dat file's path."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / SOURCE_FILES[kind]
    if not path.is_file():
        raise ModelError(f"{path} is missing from the face_recognition_models install.")
    return path


def _conv_affine_pairs(net: DlibNet) -> list[tuple[dict, dict | None]]:
    """Each convolution with the affine/batch-norm layer right after it (None when absent)."""
    pairs, layers = [], net.layers
    for i, layer in enumerate(layers):
        if layer["type"] != "con_4":
            continue
        after = next((x for x in layers[i + 1 :] if x["type"] != "marker"), None)
        norm = after if after and after["type"] in ("affine_", "bn_con2") else None
        pairs.append((layer, norm))
    return pairs


def _scale_shift(conv: dict, norm: dict | None) -> tuple[np.ndarray, np.ndarray]:
    """The per-channel scale and shift of `norm(conv(x) + bias)`, bias folded into the shift."""
    if norm is None:
        return np.ones_like(conv["bias"]), conv["bias"]
    gamma, beta = norm["gamma"], norm["beta"]
    if norm["type"] == "bn_con2":  # dlib's own bn -> affine conversion
        gamma = gamma / np.sqrt(norm["running_var"] + norm["eps"])
        beta = beta - gamma * norm["running_mean"]
    return gamma, gamma * conv["bias"] + beta


def load_conv_affine(model: nn.Module, net: DlibNet, fc_name: str | None = None) -> None:
    """Copy dlib's conv + affine weights into `model`'s Conv2d / scale-shift pairs, in order.

    The model's convolutions must be registered in forward order, each followed by a module with
    `weight` and `bias` tensors of its output size (its scale and shift), as in `DlibResNet`.
    """
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    norms = [m for m in model.modules() if type(m).__name__ == "Affine2d"]
    pairs = _conv_affine_pairs(net)
    if len(convs) != len(pairs):
        raise ModelError(f"dlib file has {len(pairs)} convolutions, the model {len(convs)}.")
    norm_iter = iter(norms)
    for conv, (dconv, dnorm) in zip(convs, pairs):
        weight = torch.from_numpy(dconv["weight"])
        if weight.shape != conv.weight.shape:
            shapes = f"{tuple(weight.shape)} vs {tuple(conv.weight.shape)}"
            raise ModelError(f"dlib convolution shape differs from the model's: {shapes}.")
        if (dconv["stride_y"], dconv["padding_y"]) != (conv.stride[0], conv.padding[0]):
            raise ModelError("dlib convolution stride/padding differ from the model's.")
        scale, shift = _scale_shift(dconv, dnorm)
        conv.weight.data.copy_(weight)
        if conv.bias is not None:
            conv.weight.data.mul_(torch.from_numpy(scale).view(-1, 1, 1, 1))
            conv.bias.data.copy_(torch.from_numpy(shift))
        else:
            norm = next(norm_iter)
            norm.weight.copy_(torch.from_numpy(scale))
            norm.bias.copy_(torch.from_numpy(shift))
    if fc_name is not None:
        (fc,) = net.of_type("fc_2")
        getattr(model, fc_name).weight.data.copy_(torch.from_numpy(fc["weight"].T))


def dlib_resnet_from_file(path: str | Path) -> nn.Module:
    """`faceres_dlib_resnet29_face` with the weights of dlib's `.dat` file, fp32, eval mode.

    >>> model = dlib_resnet_from_file(find_dlib_file("dlib-resnet"))  # doctest: +SKIP
    """
    import timm

    net = read_dnn(path)
    if net.loss["type"] != "loss_metric_2" or net.input.get("nr") != 150:
        raise ModelError(f"{path} is not dlib's face recognition ResNet.")
    model = timm.create_model("faceres_dlib_resnet29_face")
    load_conv_affine(model, net, fc_name="fc")
    return model.eval()


RESNET_NAME = "dlib-resnet29-face"
RESNET_CARD = """# dlib ResNet-29 face descriptor

dlib's face recognition network (`dlib_face_recognition_resnet_model_v1.dat`): a 29-layer ResNet
that maps a 150x150 RGB face chip to a 128-d descriptor. Two photos show the same person when
their descriptors are closer than 0.6 (Euclidean), dlib's own rule; dlib reports 99.38% on LFW.

- Architecture: timm model `faceres_dlib_resnet29_face` (`faceres/models/dlib_resnet.py`), the
  network of dlib's `examples/dnn_face_recognition_ex.cpp`, batch norm frozen into per-channel
  affine layers.
- Input: dlib's face chip (`get_face_chip_details(shape, 150, 0.25)` from the 5-point landmarks),
  pixels scaled as dlib does, `(x - mean_rgb) / 256`.
- Weights: fp16 (descriptors agree with fp32 to cosine > 0.99999).

## Evaluation

The LFW metrics above are View 2 (10 folds) through faceres's own pipeline, keyed by detector:
`faceres eval lfw --model dlib-resnet29-face --tune --update-registry` (YuNet; tunes the
alignment on View 1's images and writes template, threshold and band into `config.json`), then
`faceres eval detect --update-registry` (both detectors). Converting again resets the
calibration: run both again.

## Source and licence

{credit}

Convert again with `faceres convert dlib-resnet PATH`.
"""


def convert_dlib_resnet(path: str | Path | None = None, name: str = RESNET_NAME) -> Path:
    """Convert dlib's face recognition ResNet into the registry entry `name`.

    >>> convert_dlib_resnet()  # doctest: +SKIP
    PosixPath('.../registry/models/dlib-resnet29-face')
    """
    path = Path(path) if path else find_dlib_file("dlib-resnet")
    net = read_dnn(path)
    model = dlib_resnet_from_file(path)
    config = {
        "faceres": {
            "task": "identity",
            "embedding_size": 128,
            "metric": "euclidean",
            "dlib_distance_threshold": round(net.loss["distance_threshold"], 6),
            "dlib_chip": {"size": 150, "padding": 0.25},
            "source_file": path.name,
        }
    }
    return registry.save_model(
        model,
        name,
        task="identity",
        config=config,
        card=RESNET_CARD.format(credit=CREDIT),
        metrics={},
        twin=None,
        default=True,
        license="cc0-1.0",
        source=SOURCE,
    )


LANDMARKS_CARD = """# dlib 5-point face landmarks

dlib's `shape_predictor_5_face_landmarks.dat`: a cascade of regression-tree forests (15 levels of
500 trees of depth 4) that places five points in a face box: the outer and inner corners of both
eyes and the base of the nose, the input of dlib's face chips (`get_face_chip_details`).

- Architecture: timm model `faceres_dlib_shape_predictor5` (`faceres/models/dlib_landmarks.py`),
  vectorised numpy inference over faces and trees; boxes as dlib rectangles (left, top, right,
  bottom).
- Weights: tree splits (int16 feature indices, integer thresholds, exact since pixel differences
  are integers), leaf values and feature offsets in fixed point (int16 / int32); fp16 would shift
  points by up to 4 px through the cascade.

## Source and licence

{credit}

Convert again with `faceres convert dlib-landmarks5 PATH`.
"""


def convert_dlib_landmarks5(
    path: str | Path | None = None, name: str = landmarks.REGISTRY_NAME
) -> Path:
    """Convert dlib's 5-point shape predictor into the registry entry `name`.

    >>> convert_dlib_landmarks5()  # doctest: +SKIP
    PosixPath('.../registry/models/dlib-landmarks5')
    """
    import timm

    path = Path(path) if path else find_dlib_file("dlib-landmarks5")
    sp = parse_shape_predictor(path.read_bytes())
    cascade, trees, splits = sp["split_thresholds"].shape
    model = timm.create_model(
        "faceres_dlib_shape_predictor5",
        num_parts=sp["initial_shape"].shape[0],
        cascade_depth=cascade,
        num_trees=trees,
        tree_depth=int(np.log2(splits + 1)),
        feature_pool_size=sp["anchor_idx"].shape[1],
    )
    model.load_state_dict(state_from_dlib(sp))
    config = {
        "faceres": {
            "task": "landmarks",
            "scheme": "dlib5",
            "points": [
                "eye on the image's right, outer corner",
                "eye on the image's right, inner corner",
                "eye on the image's left, outer corner",
                "eye on the image's left, inner corner",
                "base of the nose",
            ],
            "box": "dlib rectangle (left, top, right, bottom), inclusive pixels",
            "source_file": path.name,
        }
    }
    return registry.save_model(
        model.eval(),
        name,
        task="landmarks",
        config=config,
        card=LANDMARKS_CARD.format(credit=CREDIT),
        metrics={},
        default=True,
        license="cc0-1.0",
        source=SOURCE,
    )


MMOD_CARD = """# dlib MMOD CNN face detector

dlib's `mmod_human_face_detector.dat`: a small CNN trained with Max-Margin Object Detection
(Davis E. King, arXiv:1502.00046) that scores 80x80 windows over an image pyramid
(`pyramid_down<6>`). faceres runs it in PyTorch (`faceres.detect.dlib`, CPU or CUDA): one
forward pass over dlib's tiled pyramid, windows scoring above 0, boxes mapped back to the image,
non-maximum suppression, then dlib's 5-point landmarks (`dlib-landmarks5`) in each box.

- Architecture: timm model `faceres_dlib_mmod_face` (`faceres/models/dlib_mmod.py`); batch norm
  folded into the convolutions. Weights fp16.
- Faces smaller than about 80 px are not found (upsample the image first for tiny faces).

## Source and licence

{credit}

Convert again with `faceres convert dlib-mmod PATH`.
"""


def convert_dlib_mmod(
    path: str | Path | None = None, name: str = dlib_detector.REGISTRY_NAME
) -> Path:
    """Convert dlib's MMOD CNN face detector into the registry entry `name`.

    >>> convert_dlib_mmod()  # doctest: +SKIP
    PosixPath('.../registry/models/dlib-mmod-face')
    """
    import timm

    path = Path(path) if path else find_dlib_file("dlib-mmod")
    net = read_dnn(path)
    if net.loss["type"] != "loss_mmod_":
        raise ModelError(f"{path} is not a dlib MMOD detector.")
    model = timm.create_model("faceres_dlib_mmod_face")
    load_conv_affine(model, net)
    loss = net.loss
    config = {
        "faceres": {
            "task": "detector",
            "scheme": "dlib5",
            "landmarks_model": landmarks.REGISTRY_NAME,
            "mmod": {
                "detector_width": loss["detector_width"],
                "detector_height": loss["detector_height"],
                "overlaps_nms": [round(v, 6) for v in loss["overlaps_nms"]],
                "pyramid": "pyramid_down<6>",
                "input_avg_rgb": [round(v, 4) for v in net.input["avg_rgb"]],
            },
            "source_file": path.name,
        }
    }
    return registry.save_model(
        model.eval(),
        name,
        task="detector",
        config=config,
        card=MMOD_CARD.format(credit=CREDIT),
        metrics={},
        license="cc0-1.0",
        source=SOURCE,
    )
