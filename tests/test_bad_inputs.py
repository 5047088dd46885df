"""Bad inputs through every door: the Python API, the `faceres` CLI and the app's handlers.

Each input of `badinputs.EXPECT` (written at test time) must get a clear answer within `LIMIT_S`
once the models are loaded: the API raises a typed `FaceresError` (or returns a valid result for
inputs that are merely unusual), the CLI exits non-zero with one line on stderr and no traceback,
the app shows the message (`gr.Error`) or a result. A missing or corrupt model file is refused the
same way. Oversized images are refused from their header, without decoding (bounded memory).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from photos import as_upload

from faceres import registry, settings
from faceres.app import compare_tab, expression_tab, verify_tab
from faceres.cli import main
from faceres.errors import ImageError, IntegrityError, ModelError, NoFaceError
from faceres.expression import ExpressionResult, analyze_expression
from faceres.identity import VerifyResult, verify
from faceres.imageio import MAX_PIXELS, load_image

pytest.importorskip("skimage")
from badinputs import DECODABLE, ERRORS, EXPECT, GRID, make_inputs, upright_size  # noqa: E402

LIMIT_S = 5.0
"""Longest answer to one input (models already loaded), on a shared 2-core CPU."""
BOMB_MEMORY = 64 * 2**20
"""Most Python memory that refusing an oversized image may take (its decoded RGB is 1.2 GB)."""
SCRIPT_MEMORY = 3 * 2**29
"""Most resident memory (1.5 GB) of a `faceres` process that refuses an oversized image: its
imports alone take ~0.8 GB (torch ~0.5 GB); decoding the 20k × 20k bomb would add 1.2 GB."""
SCRIPT_TIMEOUT_S = 120
"""A `faceres` process taking longer is hung (a start alone costs seconds of imports here)."""
MANY = GRID[0] * GRID[1]
REFERENCE = "astronaut.jpg"
PHOTOS = [n for n in DECODABLE if EXPECT[n] == "face" and not n.startswith("faces")]
"""Inputs that are the reference photo re-encoded: they must decode to it, upright."""
REFUSED = [n for n in EXPECT if EXPECT[n] != "face"]
"""Inputs that the CLI may refuse (in process here; the others run as batches of the script)."""
FEW_FACES = [*REFUSED, REFERENCE, f"faces{MANY}.jpg"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_inputs(tmp_path_factory.mktemp("bad-inputs"), MAX_PIXELS)


@pytest.fixture(scope="module")
def warm_identity(inputs):
    """The identity model and detector loaded, so that timings measure the input."""
    verify(inputs[REFERENCE], inputs[REFERENCE])


@pytest.fixture(scope="module")
def warm_expression(inputs):
    """The default expression model loaded."""
    analyze_expression(inputs[REFERENCE])


def timed(fn, *args, **kwargs):
    """`fn(*args, **kwargs)` or the exception it raised, asserting it answered within LIMIT_S."""
    start = time.perf_counter()
    try:
        out = fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the caller judges what was raised
        out = exc
    elapsed = time.perf_counter() - start
    assert elapsed < LIMIT_S, f"{getattr(fn, '__name__', fn)} took {elapsed:.1f} s"
    return out


def expect_error(out, kind: type[Exception]) -> str:
    """The message of `out`, which must be a `kind` with a one-line message; other exceptions
    are re-raised so that their traceback shows."""
    if isinstance(out, Exception) and not isinstance(out, kind):
        raise out
    assert isinstance(out, kind), f"expected {kind.__name__}, got {out!r}"
    message = getattr(out, "message", None) or str(out)
    assert message.strip() and "\n" not in message.strip(), message
    return message


def expect_result(out, kind: type):
    if isinstance(out, Exception):
        raise out
    assert isinstance(out, kind), out
    return out


def eyes_above_mouth(face) -> bool:
    """Whether the face is upright: its eye landmarks above the rest (nose, mouth)."""
    y = face.landmarks[:, 1]
    eyes = 2 if face.scheme == "yunet5" else 4
    return float(y[:eyes].mean()) < float(y[eyes:].mean())


# -- decoding --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ERRORS)
def test_decoder_refuses_quickly_and_cheaply(inputs, name):
    tracemalloc.start()
    try:
        out = timed(load_image, inputs[name])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = expect_error(out, ImageError)
    assert peak < BOMB_MEMORY, f"{peak / 2**20:.0f} MB to refuse {name}"
    if name.startswith(("bomb", "over_limit")):
        assert f"{MAX_PIXELS / 1e6:.0f} megapixels" in message


@pytest.mark.parametrize("name", DECODABLE)
def test_decoder_reads_unusual_images(inputs, name):
    image = expect_result(timed(load_image, inputs[name]), np.ndarray)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    if name in PHOTOS:
        assert image.shape[1::-1] == upright_size()
    if name in PHOTOS and "transparent" not in name and not name.startswith("rgba"):
        reference = load_image(inputs[REFERENCE]).astype(np.float32).mean(2)
        difference = float(np.abs(image.astype(np.float32).mean(2) - reference).mean())
        assert difference < 12, f"{name} decodes to another picture (mean |Δ| {difference:.0f})"


# -- Python API ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(EXPECT))
def test_api_verify(inputs, warm_identity, name):
    out = timed(verify, inputs[REFERENCE], inputs[name])
    expect = EXPECT[name]
    if expect == "error":
        expect_error(out, ImageError)
    elif expect == "noface" or (expect == "face-or-noface" and isinstance(out, NoFaceError)):
        assert "image 2" in expect_error(out, NoFaceError)
    else:
        result = expect_result(out, VerifyResult)
        if expect == "face":
            assert result.verdict == "same", (result.similarity, result.threshold)
            assert eyes_above_mouth(result.chosen_faces[1])
        if name.startswith("faces"):
            assert len(result.faces[1]) >= MANY * 2 // 3


@pytest.mark.parametrize("name", list(EXPECT))
def test_api_expression(inputs, warm_expression, name):
    out = timed(analyze_expression, inputs[name])
    expect = EXPECT[name]
    if expect == "error":
        expect_error(out, ImageError)
        return
    result = expect_result(out, ExpressionResult)
    if expect == "noface":
        assert result.faces == []
    elif expect == "face":
        assert result.faces, name
    for face in result.faces:
        assert abs(sum(face.probabilities.values()) - 1.0) < 1e-3
        assert face.label == max(face.probabilities, key=face.probabilities.get)
    if name.startswith("faces"):
        assert len(result.faces) >= MANY * 2 // 3


# -- CLI, in process (the console script's `main`) -----------------------------------------------


def run_cli(argv: list, capfd) -> tuple[int, str, str]:
    code = timed(main, [str(a) for a in argv])
    if isinstance(code, BaseException):
        raise code
    out, err = capfd.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("faceres: error: "), err


@pytest.mark.parametrize("name", REFUSED)
def test_cli_verify_and_embed(inputs, warm_identity, tmp_path, capfd, name):
    expect = EXPECT[name]
    out_file = tmp_path / "embedding.npy"
    for argv in (
        ["verify", inputs[REFERENCE], inputs[name]],
        ["embed", inputs[name], "--out", out_file],
    ):
        code, out, err = run_cli(argv, capfd)
        failed = expect in ("error", "noface") or (expect == "face-or-noface" and code != 0)
        if failed and argv[0] == "verify":
            assert_one_line_error(code, err)
            assert ("No face" in err) == (expect != "error"), err
        elif failed:  # embed: the file is reported and skipped, the run ends with code 1
            lines = err.strip().splitlines()
            assert code == 1 and len(lines) == 1 and "Traceback" not in err, err
            assert lines[0].startswith(f"faceres: {inputs[name]}: "), err
            assert ("No face" in err) == (expect != "error"), err
            assert np.load(out_file, allow_pickle=False).shape[0] == 0
        else:
            assert code == 0 and err == "", err
            assert "verify" in argv or np.load(out_file, allow_pickle=False).shape[0] == 1


@pytest.mark.parametrize("name", REFUSED)
def test_cli_expression(inputs, warm_expression, capfd, name):
    code, out, err = run_cli(["expression", inputs[name]], capfd)
    if EXPECT[name] == "error":
        assert_one_line_error(code, err)
        return
    if EXPECT[name] == "noface":  # the README: no face is a non-zero exit, one line on stderr
        assert code == 1 and "no face found" in out
        assert err.strip() == f"faceres: {inputs[name]}: no face found", err
        return
    assert code == 0 and err == "", err


# -- app handlers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(EXPECT))
def test_app_handlers(inputs, warm_identity, warm_expression, upload_dir, name):
    import gradio as gr

    expect = EXPECT[name]
    out = timed(
        verify_tab.verify_photos,
        as_upload(inputs[REFERENCE], upload_dir),
        as_upload(inputs[name], upload_dir),
    )
    if expect in ("error", "noface") or (expect == "face-or-noface" and isinstance(out, gr.Error)):
        message = expect_error(out, gr.Error)
        assert ("No face" in message) == (expect != "error"), message
    else:
        details = output_dict(expect_result(out, tuple), "verdict")
        assert details["verdict"] == "same" or expect != "face", details

    out = timed(expression_tab.analyze_photo, as_upload(inputs[name], upload_dir))
    if expect == "error":
        expect_error(out, gr.Error)
    else:
        out = expect_result(out, tuple)
        found = output_dict(out, "faces")["faces"]
        said = any("No face found" in x for x in out if isinstance(x, str))
        assert bool(found) != said, "a face count or 'No face found', visibly"
        assert found or expect != "face"

    assert not [p for p in upload_dir.rglob("*") if p.is_file()], "an upload was kept"
    if name not in FEW_FACES:  # the ResNet vs plain tab runs the same path twice
        return
    out = timed(compare_tab.compare_models, as_upload(inputs[name], upload_dir))
    if expect in ("error", "noface") or (expect == "face-or-noface" and isinstance(out, gr.Error)):
        expect_error(out, gr.Error)
    else:
        assert set(output_dict(expect_result(out, tuple), "resnet")) == {"resnet", "plain"}


def output_dict(outputs: tuple, key: str) -> dict:
    """The handler output that is a dict holding `key` (the details shown as JSON)."""
    return next(x for x in outputs if isinstance(x, dict) and key in x)


# -- missing or corrupt model files ----------------------------------------------------------------

BREAKAGES = {
    "truncated": IntegrityError,  # the file no longer matches its pinned sha256
    "missing": ModelError,
    "rehashed": ModelError,  # truncated and its sha256 re-pinned: the file itself is unreadable
}


def broken_registry(root: Path, model: str, breakage: str) -> Path:
    """A registry in `root`: the real one (folders linked), with `model`'s weights broken."""
    folder = root / "registry"
    (folder / "models").mkdir(parents=True)
    for entry in registry.list_models():
        if entry.get("path") and entry["name"] != model:
            (folder / entry["path"]).symlink_to(registry.registry_dir() / entry["path"])
    entry = registry.get_entry(model)
    shutil.copytree(registry.registry_dir() / entry["path"], folder / entry["path"])
    weights = folder / entry["path"] / "model.safetensors"
    if breakage == "missing":
        weights.unlink()
    else:
        with open(weights, "r+b") as f:
            f.truncate(weights.stat().st_size // 2)
    index = json.loads((registry.registry_dir() / "index.json").read_text(encoding="utf-8"))
    if breakage == "rehashed":
        for e in index["models"]:
            if e["name"] == model:
                e["files"]["model.safetensors"] = registry.sha256_file(weights)
    (folder / "index.json").write_text(json.dumps(index), encoding="utf-8")
    return folder


@pytest.fixture(params=sorted(BREAKAGES))
def breakage(request) -> str:
    return request.param


def use_registry(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "REGISTRY_DIR", folder)
    monkeypatch.setenv("FACERES_REGISTRY", str(folder))


@pytest.mark.parametrize("task", ["identity", "expression"])
def test_broken_model_is_refused(inputs, tmp_path, monkeypatch, capfd, upload_dir, breakage, task):
    import gradio as gr

    model = registry.default_model(task)
    use_registry(broken_registry(tmp_path, model, breakage), monkeypatch)
    photo = inputs[REFERENCE]
    if task == "identity":
        api, argv = (lambda: verify(photo, photo)), ["verify", photo, photo]
        handler = lambda: verify_tab.verify_photos(  # noqa: E731
            as_upload(photo, upload_dir),
            as_upload(photo, upload_dir),
        )
    else:
        api, argv = (lambda: analyze_expression(photo)), ["expression", photo]
        handler = lambda: expression_tab.analyze_photo(as_upload(photo, upload_dir))  # noqa: E731
    message = expect_error(timed(api), BREAKAGES[breakage])
    assert model in message
    assert_one_line_error(*run_cli(argv, capfd)[::2])
    assert model in expect_error(timed(handler), gr.Error)


# -- the console script, for real (few: each start costs seconds of imports) ---------------------


def faceres_command() -> list[str]:
    script = Path(sysconfig.get_path("scripts")) / "faceres"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "faceres"]


def run_script(args: list, tmp_path: Path, env: dict | None = None) -> tuple[int, str, str, int]:
    """Run `faceres ARGS`; returns (exit code, stdout, stderr, peak resident bytes or 0).

    The peak is the process's own VmHWM, polled from /proc (a child's rusage would report the
    memory of this test process, which it starts from)."""
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    peak, deadline = 0, time.monotonic() + SCRIPT_TIMEOUT_S
    with open(out, "w") as stdout, open(err, "w") as stderr:
        proc = subprocess.Popen(
            faceres_command() + [str(a) for a in args],
            stdout=stdout,
            stderr=stderr,
            env={**os.environ, **(env or {})},
        )
        status = Path(f"/proc/{proc.pid}/status")
        while proc.poll() is None:
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                pytest.fail(f"faceres {' '.join(map(str, args))} ran over {SCRIPT_TIMEOUT_S} s")
            try:
                found = re.search(r"VmHWM:\s+(\d+) kB", status.read_text())
            except OSError:  # exited meanwhile, or no /proc here
                found = None
            peak = max(peak, int(found.group(1)) * 1024 if found else 0)
            time.sleep(0.02)
    return proc.returncode, out.read_text(), err.read_text(), peak


def test_script_refuses_a_bomb_in_one_line_and_bounded_memory(inputs, tmp_path):
    code, _, err, peak = run_script(["expression", inputs["bomb.png"], inputs[REFERENCE]], tmp_path)
    assert_one_line_error(code, err)
    assert "bomb.png" in err and f"{MAX_PIXELS / 1e6:.0f} megapixels" in err
    assert peak < SCRIPT_MEMORY, f"{peak / 2**20:.0f} MB"  # 0 where there is no /proc


def test_script_expression_batch(inputs, warm_expression, tmp_path):
    code, out, err, _ = run_script(
        ["expression", "--json", *(inputs[n] for n in DECODABLE)], tmp_path
    )
    faceless = [n for n in DECODABLE if not json.loads(out)[DECODABLE.index(n)]["faces"]]
    # Only the faceless photos on stderr (no log noise from the libraries), and exit 1 for them.
    assert code == (1 if faceless else 0)
    assert [line.split(": ")[1] for line in err.splitlines()] == [
        str(inputs[n]) for n in faceless
    ], err
    results = json.loads(out)
    assert [Path(r["image"]).name for r in results] == DECODABLE
    for name, result in zip(DECODABLE, results, strict=True):
        if EXPECT[name] in ("face", "noface"):
            assert bool(result["faces"]) == (EXPECT[name] == "face"), name


def test_script_embed_batch(inputs, tmp_path):
    names = [*PHOTOS, f"faces{MANY}.jpg"]
    out_file = tmp_path / "embeddings.npy"
    code, out, err, _ = run_script(
        ["embed", *(inputs[n] for n in names), "--out", out_file], tmp_path
    )
    assert code == 0 and err == "", err
    rows = np.load(out_file, allow_pickle=False)
    assert rows.shape[0] == len(names) and np.allclose(np.linalg.norm(rows, axis=1), 1, atol=1e-3)
    assert (rows @ rows[0]).min() > 0.9  # every input is the same photo of the same person


def test_script_refuses_a_corrupt_model(inputs, tmp_path):
    model = registry.default_model("identity")
    folder = broken_registry(tmp_path, model, "truncated")
    code, _, err, _ = run_script(
        ["verify", inputs[REFERENCE], inputs[REFERENCE]],
        tmp_path,
        env={"FACERES_REGISTRY": str(folder)},
    )
    assert_one_line_error(code, err)
    assert model in err and "sha256" in err
