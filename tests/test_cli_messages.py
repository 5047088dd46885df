"""The CLI's exit codes and messages for a photo without a face and for a folder, as the README
says: no face ends with a non-zero exit and a line on stderr; a folder is named as a folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.test_app import has_default


def _faceres(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "faceres", *args], capture_output=True, text=True, timeout=300
    )


@pytest.mark.skipif(not has_default("expression"), reason="no expression model in the registry")
def test_expression_of_a_photo_without_a_face_exits_non_zero(tmp_path):
    blank = tmp_path / "noface.png"
    Image.new("RGB", (200, 200), (128, 128, 128)).save(blank)
    for extra in ([], ["--json"]):
        run = _faceres("expression", str(blank), *extra)
        assert run.returncode == 1, run.stdout
        assert f"{blank}: no face found" in run.stderr and "Traceback" not in run.stderr


def test_verify_names_a_folder_as_a_folder(tmp_path):
    photo = tmp_path / "a.png"
    Image.new("RGB", (200, 200), (128, 128, 128)).save(photo)
    run = _faceres("verify", str(tmp_path), str(photo))
    assert run.returncode == 2
    assert "is a folder" in run.stderr and "not found" not in run.stderr


def test_the_training_benchmark_imports():
    """`benchmarks/train_throughput.py` once imported a name that had moved: it must start."""
    run = subprocess.run(
        [sys.executable, "benchmarks/train_throughput.py", "--help"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert run.returncode == 0, run.stderr
    assert "--arch" in run.stdout


@pytest.mark.skipif(not has_default("expression"), reason="no expression model in the registry")
def test_a_models_first_use_is_announced_on_stderr(tmp_path):
    """An empty cache: the first `faceres expression` says it prepares the model (seconds,
    once); the second, with the export in place, says nothing."""
    import os

    photo = tmp_path / "face.png"
    Image.fromarray(pytest.importorskip("skimage.data").astronaut()).save(photo)
    env = {**os.environ, "FACERES_CACHE": str(tmp_path / "cache")}
    runs = [
        subprocess.run(
            [sys.executable, "-m", "faceres", "expression", str(photo)],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        for _ in range(2)
    ]
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr
    assert "for its first use on this machine" in runs[0].stderr
    assert runs[1].stderr == ""
