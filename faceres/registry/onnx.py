"""Registry models run by ONNX Runtime: inference without torch or timm at start-up.

A model's ONNX file is its registry folder's `model.onnx` when the index pins one (the default
models: committed, sha256-checked like their other files, so a fresh machine exports nothing),
else a file in the cache (`faceres.settings.cache_dir() / "onnx"`), named after the
model and the pinned sha256 of its weights, so new weights never meet a stale export. A JSON
sidecar records the file's own sha256, checked when the file is opened: a partial or altered
file is never run (`load_onnx` answers None and the caller rebuilds it). `faceres export onnx
NAME` writes the file (`faceres.registry.export`); so does a model's first use
(`faceres.registry.runtime`).

>>> model = load_onnx("dlib-resnet29-face")
>>> model(batch).shape
(8, 128)
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import numpy as np
import onnxruntime

from faceres.errors import ModelError
from faceres.registry.index import get_entry
from faceres.registry.resolve import resolve, sha256_file
from faceres.settings import cache_dir

ONNX_FILE = "model.onnx"
"""The ONNX file's name in a registry folder (beside model.safetensors, as on the Hub)."""
WEIGHTS_KEY = "faceres.weights_sha256"
"""The ONNX metadata naming the sha256 of the model.safetensors a file was exported from."""


class OnnxModel:
    """An ONNX Runtime session on the CPU, called like a function on a float32 batch
    (`ModelError` when ONNX Runtime cannot load the file).

    Worker threads sleep instead of spinning while they wait (as `OMP_WAIT_POLICY=PASSIVE` for
    torch): on a shared 2-core host spinning threads starve the one doing the work.
    """

    def __init__(self, path: str | Path):
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = os.cpu_count() or 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        try:
            self.session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # ONNX Runtime's errors derive from Exception only
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"ONNX Runtime cannot load {path}: {first}") from exc
        self.input = self.session.get_inputs()[0].name
        self.weights_sha256 = self.session.get_modelmeta().custom_metadata_map.get(WEIGHTS_KEY)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """The model's outputs (N, …) float32 for a standardised N×C×H×W float32 batch."""
        return self.session.run(None, {self.input: np.ascontiguousarray(batch, np.float32)})[0]


def onnx_path(name: str) -> Path:
    """Where `name`'s ONNX file belongs: the cache, keyed by its weights' pinned sha256.

    >>> onnx_path("dlib-resnet29-face").name
    'dlib-resnet29-face-5a3c2e9b0f1d4c7a.onnx'
    """
    sha = get_entry(name)["files"]["model.safetensors"]
    return cache_dir() / "onnx" / f"{name}-{sha[:16]}.onnx"


def sidecar_path(path: Path) -> Path:
    """The JSON beside an ONNX file recording its sha256 and how it was made."""
    return path.with_suffix(".json")


def load_onnx(name: str) -> OnnxModel | None:
    """`name` on ONNX Runtime: its registry folder's `model.onnx` when the index pins one (the
    folder's sha256 checks raise as for any file), else its cached file when that matches its
    sidecar's sha256; either only when exported from the weights the index pins now. Else None.
    Sessions are made once per file."""
    files = get_entry(name).get("files", {})
    if ONNX_FILE in files:
        path = resolve(name) / ONNX_FILE
        model = _session(str(path), path.stat().st_mtime_ns, None)
    else:
        path = onnx_path(name)
        if not path.is_file():
            return None
        try:
            recorded = json.loads(sidecar_path(path).read_text(encoding="utf-8"))["sha256"]
        except (OSError, ValueError, KeyError):
            return None
        model = _session(str(path), path.stat().st_mtime_ns, recorded)
    return model if model and model.weights_sha256 == files.get("model.safetensors") else None


@functools.lru_cache(maxsize=16)
def _session(path: str, mtime_ns: int, sha256: str | None) -> OnnxModel | None:
    """The session of `path` (None when `sha256` is given and differs from the file's)."""
    if sha256 is not None and sha256_file(path) != sha256:
        return None
    return OnnxModel(path)
