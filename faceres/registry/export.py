"""Export registry models to ONNX (`faceres export onnx NAME`), for ONNX Runtime
(`faceres.registry.onnx`): torch's `torch.export`-based exporter, batch size left dynamic, into
the cache, a file, or the model's registry folder (`publish_onnx`).

>>> export_onnx("dlib-resnet29-face").name  # into the cache, keyed by the weights' sha256
'dlib-resnet29-face-5a3c2e9b0f1d4c7a.onnx'
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper

from faceres.errors import ModelError
from faceres.registry.index import get_entry, registry_dir
from faceres.registry.onnx import ONNX_FILE, WEIGHTS_KEY, OnnxModel, onnx_path, sidecar_path
from faceres.registry.publish import update_entry, write_atomic
from faceres.registry.resolve import model_config, sha256_file
from faceres.registry.weights import load

OPSET = 18
PARITY_TOLERANCE = 1e-4
"""Largest absolute difference allowed between ONNX Runtime's and torch's outputs (fp32 both;
measured about 3e-7 on the identity network)."""


def half_initializers(model: onnx.ModelProto) -> int:
    """Store each float32 initializer that float16 holds exactly (weights saved in float16, as
    the registry's are) as float16 followed by a Cast back to float32: the same numbers in half
    the bytes (ONNX Runtime folds the casts when it loads the file). Weights the exporter
    computed (batch norms folded into convolutions) stay float32. Returns how many moved.

    >>> half_initializers(onnx.load("model.onnx"))
    94
    """
    graph, casts, moved = model.graph, [], 0
    for init in graph.initializer:
        if init.data_type != onnx.TensorProto.FLOAT:
            continue
        values = numpy_helper.to_array(init)
        half = values.astype(np.float16)
        if not np.array_equal(half.astype(np.float32), values):
            continue
        name = init.name
        init.CopyFrom(numpy_helper.from_array(half, f"{name}__fp16"))
        casts.append(helper.make_node("Cast", [f"{name}__fp16"], [name], to=onnx.TensorProto.FLOAT))
        moved += 1
    nodes = [*casts, *graph.node]
    del graph.node[:]
    graph.node.extend(nodes)
    return moved


def export_onnx(name: str, out: str | Path | None = None) -> Path:
    """Write `name`'s ONNX file to `out` (default: the cache path ONNX Runtime reads), with the
    sidecar recording its sha256 and how it was made.

    Raises `ModelError` for a model with nothing to export (the landmark cascade runs in numpy)
    or an export that fails or differs from torch by more than `PARITY_TOLERANCE`.
    """
    target = Path(out) if out is not None else onnx_path(name)
    diff = write_onnx(name, target)
    record = {
        "model": name,
        "sha256": sha256_file(target),
        "max_abs_diff": diff,
        "torch": torch.__version__,
        "opset": OPSET,
    }
    write_atomic(sidecar_path(target), json.dumps(record, indent=2) + "\n")
    return target


def publish_onnx(name: str) -> Path:
    """Put `name`'s ONNX file in its committed registry folder as `model.onnx`, pinned by
    sha256 in the index like its other files: ONNX Runtime then runs it on a fresh machine with
    no export at all (`faceres.registry.onnx.load_onnx`).

    >>> publish_onnx("dlib-resnet29-face").name
    'model.onnx'
    """
    entry = get_entry(name)
    if not entry.get("path"):
        raise ModelError(f"{name} is not a committed registry folder.")
    target = registry_dir() / entry["path"] / ONNX_FILE
    write_onnx(name, target)
    update_entry(name)
    return target


def write_onnx(name: str, target: Path) -> float:
    """Export `name` (batch size dynamic, initializers halved where exact), check ONNX Runtime
    against torch on a seeded random batch, then move the file into place atomically; returns
    the largest absolute difference."""
    loaded = load(name, device="cpu")
    if type(loaded.model).forward is torch.nn.Module.forward:
        raise ModelError(f"{name} runs in numpy (no network to export); nothing to do.")
    size = model_config(name)["pretrained_cfg"]["input_size"]
    example = torch.from_numpy(np.random.default_rng(0).standard_normal((2, *size), np.float32))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # the exporter prints its progress
                program = torch.onnx.export(
                    loaded.model,
                    (example,),
                    input_names=["input"],
                    output_names=["output"],
                    dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},),
                    opset_version=OPSET,
                    dynamo=True,
                    verbose=False,
                )
        except Exception as exc:  # the exporter raises many kinds; the user gets one line
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{name}: ONNX export failed: {first}") from exc
        proto = program.model_proto
        half_initializers(proto)
        helper.set_model_props(proto, {WEIGHTS_KEY: get_entry(name)["files"]["model.safetensors"]})
        onnx.save_model(proto, tmp)
        batch = example.numpy()
        diff = float(np.abs(OnnxModel(tmp)(batch) - loaded(batch)).max())
        if diff > PARITY_TOLERANCE:
            raise ModelError(
                f"{name}: ONNX differs from torch by {diff:.1e} (> {PARITY_TOLERANCE})"
            )
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return diff
