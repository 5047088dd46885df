"""Fast from the first call: ONNX Runtime runs the models without torch at start-up, its files
match torch on real faces, a bad file is never run, and one-shot commands import neither torch,
timm, gradio nor matplotlib."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper
from photos import require_models

from faceres import registry
from faceres.detect import detect_faces
from faceres.errors import ModelError
from faceres.face.align import model_template, views
from faceres.registry import onnx as onnx_files
from faceres.registry import runtime
from faceres.registry.export import half_initializers
from faceres.registry.runtime import standardise

skdata = pytest.importorskip("skimage.data")
ROOT = Path(__file__).resolve().parent.parent
IDENTITY = "dlib-resnet29-face"
EXPRESSION = "resnet18-fer"
HEAVY = ("torch", "timm", "gradio", "matplotlib")


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty faceres cache for this test, and no runner or session kept from others."""
    monkeypatch.setenv("FACERES_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("FACERES_BACKEND", raising=False)
    runtime._runner.cache_clear()
    onnx_files._session.cache_clear()
    yield tmp_path / "cache"
    runtime._runner.cache_clear()
    onnx_files._session.cache_clear()


def real_face_views() -> np.ndarray:
    """The astronaut's and the camera man's faces, aligned as verification aligns them (both
    views), standardised: 4 crops × 3 × 150 × 150."""
    config = registry.model_config(IDENTITY)
    template = model_template(config)
    crops = []
    for rgb in (skdata.astronaut(), cv2.cvtColor(skdata.camera(), cv2.COLOR_GRAY2RGB)):
        faces = detect_faces(rgb)
        assert faces, "the test photos have a face"
        crops += views(rgb, faces[0], template)
    return standardise(crops, config)


def test_identity_onnx_matches_torch_on_real_faces(cache):
    """The committed model.onnx against the torch model (the safetensors) on real aligned faces:
    outputs within 1e-4 (`PARITY_TOLERANCE`), cosine similarities within 1e-6."""
    require_models(IDENTITY)
    batch = real_face_views()
    runner = runtime.load_runner("identity", IDENTITY)
    assert runner.backend == "onnx"
    ours = runner(batch)
    reference = registry.load(IDENTITY, device="cpu")(batch)
    assert np.abs(ours - reference).max() < 1e-4

    def cosines(x: np.ndarray) -> np.ndarray:
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        return x @ x.T

    assert np.abs(cosines(ours) - cosines(reference)).max() < 1e-6
    assert not list(cache.glob("onnx/*")), "the committed file is used; nothing is exported"


def test_verify_gives_the_same_answer_on_both_engines(cache, monkeypatch):
    require_models(IDENTITY)
    from faceres.identity import verify

    a, b = skdata.astronaut(), cv2.cvtColor(skdata.camera(), cv2.COLOR_GRAY2RGB)
    answers = {}
    for backend in ("onnx", "torch"):
        monkeypatch.setenv("FACERES_BACKEND", backend)
        answers[backend] = verify(a, b, model=IDENTITY)
    assert answers["onnx"].verdict == answers["torch"].verdict
    assert abs(answers["onnx"].similarity - answers["torch"].similarity) < 1e-5


def test_first_use_exports_into_the_cache_and_a_bad_file_is_rebuilt(cache):
    """An expression model has no committed ONNX file: its first use writes one (and its
    sidecar) into the cache; a file altered afterwards is refused and rebuilt, never run."""
    require_models(EXPRESSION)
    sha = registry.get_entry(EXPRESSION)["files"]["model.safetensors"]
    path = cache / "onnx" / f"{EXPRESSION}-{sha[:16]}.onnx"  # keyed by the weights' sha256
    assert onnx_files.onnx_path(EXPRESSION) == path
    runner = runtime.load_runner("expression", EXPRESSION)
    assert runner.backend == "onnx" and path.is_file()
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["max_abs_diff"] < 1e-4
    assert onnx.load(path).metadata_props[0].value == sha  # exported from these weights

    good = path.read_bytes()
    path.write_bytes(good[:-200] + bytes(200))  # same size, different weights
    onnx_files._session.cache_clear()
    assert onnx_files.load_onnx(EXPRESSION) is None
    runtime._runner.cache_clear()
    assert runtime.load_runner("expression", EXPRESSION).backend == "onnx"
    assert path.read_bytes() != good[:-200] + bytes(200)  # exported again
    crops = np.zeros((1, 48, 48), np.uint8)
    from faceres.expression import classify

    assert np.isfinite(classify(crops, runtime.load_runner("expression", EXPRESSION))).all()


def test_the_landmark_cascade_has_nothing_to_export(cache, capsys):
    require_models("dlib-landmarks5")
    from faceres.cli import main

    with pytest.raises(ModelError, match="runs in numpy"):
        registry.export_onnx("dlib-landmarks5")
    assert main(["export", "onnx", "dlib-landmarks5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "runs in numpy" in err


def test_half_initializers_keeps_every_value():
    """Hand-made graph y = x * w + c: w (0.5, 2, -3) is exact in float16 and is halved; c holds
    0.1, which float16 cannot hold, and stays float32. ONNX Runtime gives the same y."""
    w = numpy_helper.from_array(np.array([0.5, 2.0, -3.0], np.float32), "w")
    c = numpy_helper.from_array(np.array([0.1, 0.0, 1.0], np.float32), "c")
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "w"], ["t"]), helper.make_node("Add", ["t", "c"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])],
        [w, c],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    assert half_initializers(model) == 1
    types = {i.name: i.data_type for i in model.graph.initializer}
    assert types == {"w__fp16": TensorProto.FLOAT16, "c": TensorProto.FLOAT}
    onnx.checker.check_model(model)
    session = onnxruntime.InferenceSession(model.SerializeToString())
    x = np.array([1.0, -2.0, 4.0], np.float32)
    np.testing.assert_array_equal(session.run(None, {"x": x})[0], np.float32([0.6, -4.0, -11.0]))


def run_cli(args: list[str], env: dict) -> tuple[int, str, str]:
    code = (
        "import json, sys\n"
        "from faceres.cli import main\n"
        f"rc = main({args!r})\n"
        f"print(json.dumps({{'rc': rc, 'heavy': [m for m in {HEAVY!r} if m in sys.modules]}}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )
    return done.returncode, done.stdout, done.stderr


def test_one_shot_commands_import_no_torch_timm_gradio_or_matplotlib(cache, tmp_path):
    require_models(IDENTITY, EXPRESSION)
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    cv2.imwrite(str(a), cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(b), skdata.camera())
    registry.export_onnx(EXPRESSION)  # what the first `faceres expression` would do
    env = {**os.environ, "FACERES_CACHE": str(cache)}
    index = str(tmp_path / "photos.index")
    for args in (
        ["verify", str(a), str(b), "--json"],
        ["expression", str(a), "--json"],
        ["index", "build", str(a), str(b), "--out", index, "--json"],
        ["search", str(a), "--index", index, "--json"],
    ):
        rc, out, err = run_cli(args, env)
        assert rc == 0, err
        report = json.loads(out.strip().splitlines()[-1])
        assert report == {"rc": 0, "heavy": []}, args


def test_a_closed_pipe_ends_the_command_quietly(tmp_path):
    """`faceres verify … | head -1`: the reader leaves before the output is written."""
    require_models(IDENTITY)
    a = tmp_path / "a.png"
    cv2.imwrite(str(a), cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR))
    proc = subprocess.Popen(
        [sys.executable, "-m", "faceres", "verify", str(a), str(a)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert "Traceback" not in err and err == ""


def test_without_a_writable_cache_models_run_on_torch(tmp_path, monkeypatch):
    """No place to put an export (the cache path is under a file): with the default setting the
    expression model runs on torch; asked for ONNX Runtime, a clear error."""
    require_models(EXPRESSION)
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("FACERES_CACHE", str(blocker / "cache"))
    runtime._runner.cache_clear()
    onnx_files._session.cache_clear()
    try:
        monkeypatch.delenv("FACERES_BACKEND", raising=False)
        assert runtime.load_runner("expression", EXPRESSION).backend == "torch"
        runtime._runner.cache_clear()
        monkeypatch.setenv("FACERES_BACKEND", "onnx")
        with pytest.raises(ModelError, match="cannot run on ONNX Runtime"):
            runtime.load_runner("expression", EXPRESSION)
    finally:
        runtime._runner.cache_clear()


def test_a_file_onnx_runtime_cannot_load_gives_a_clear_error_and_torch_runs(cache, monkeypatch):
    """A cached file whose sidecar matches but which ONNX Runtime cannot read (a newer opset,
    say): a one-line `ModelError` from the session, and with the default setting the model
    runs on torch."""
    require_models(EXPRESSION)
    path = onnx_files.onnx_path(EXPRESSION)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not an onnx file")
    sidecar = {"sha256": registry.sha256_file(path)}
    path.with_suffix(".json").write_text(json.dumps(sidecar))
    with pytest.raises(ModelError, match="ONNX Runtime cannot load"):
        onnx_files.load_onnx(EXPRESSION)
    assert runtime.load_runner("expression", EXPRESSION).backend == "torch"
