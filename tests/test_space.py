"""The Hugging Face Space: its metadata and the folder `faceres space build` assembles."""

from __future__ import annotations

import os
import subprocess
import sys

import gradio
import pytest
from hub_server import save_tiny

from faceres import registry, space
from faceres.cli import main
from faceres.errors import FaceresError

IMPORT_APP = """
import sys
from pathlib import Path
import gradio as gr
import app
import faceres
from faceres.app import build_demo
here = Path.cwd().resolve()
assert Path(faceres.__file__).resolve().parent == here / "faceres", faceres.__file__
assert Path(app.__file__).resolve() == here / "app.py", app.__file__
demo = build_demo()
assert isinstance(demo, gr.Blocks), type(demo)
print("built", type(demo).__name__)
"""


def test_readme_front_matter_lists_the_registry_repos(tiny_registry):
    save_tiny("tiny")
    registry.update_entry("tiny", repo_id="faceres-test/tiny", revision="a" * 40)
    save_tiny("other")
    meta = space.front_matter(space.readme())
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py"
    assert meta["sdk_version"] == gradio.__version__
    assert meta["python_version"] == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert meta["models"] == ["faceres-test/tiny"]
    assert meta["title"] == "faceres" and meta["license"] == "mit"


def test_committed_space_metadata_is_up_to_date():
    """spaces/ must match the index, pyproject.toml and the installed Gradio:
    run `faceres space sync` after changing any of them."""
    assert (space.SPACE_DIR / "README.md").read_text(encoding="utf-8") == space.readme()
    assert (space.SPACE_DIR / "requirements.txt").read_text(
        encoding="utf-8"
    ) == space.requirements()
    assert "gradio" not in space.requirements().replace("Gradio comes", "")


def test_built_space_imports_its_app_and_builds_the_blocks(tmp_path, capsys):
    out = tmp_path / "space"
    assert main(["space", "build", str(out)]) == 0
    assert str(out) in capsys.readouterr().out

    meta = space.front_matter((out / "README.md").read_text(encoding="utf-8"))
    assert (meta["sdk"], meta["app_file"]) == ("gradio", "app.py")
    assert meta["sdk_version"] == gradio.__version__
    assert meta["models"] == space.model_repos()
    assert (out / "requirements.txt").read_text() == space.requirements()
    assert (out / "registry" / "index.json").read_bytes() == (
        registry.registry_dir() / "index.json"
    ).read_bytes()
    for entry in registry.list_models():
        for rel, sha in entry["files"].items() if entry["path"] else ():
            assert registry.sha256_file(out / "registry" / entry["path"] / rel) == sha
    assert not list(out.rglob("__pycache__"))

    env = {k: v for k, v in os.environ.items() if not k.startswith(("FACERES_REGISTRY", "PYTHON"))}
    env["GRADIO_ANALYTICS_ENABLED"] = "False"
    run = subprocess.run(
        [sys.executable, "-c", IMPORT_APP],
        cwd=out,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "built UploadsOnly" in run.stdout  # the app's gr.Blocks, which reads only uploads


def test_build_refuses_a_non_empty_folder_and_unpinned_models_without_weights(
    tiny_registry, tmp_path
):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(FaceresError, match="not empty"):
        space.build(tmp_path / "full")
    save_tiny("tiny")
    with pytest.raises(FaceresError, match="tiny have no pinned Hub revision"):
        space.build(tmp_path / "space", weights=False)
    registry.update_entry("tiny", repo_id="faceres-test/tiny", revision="a" * 40)
    out = space.build(tmp_path / "space", weights=False)
    assert not (out / "registry" / "models").exists()
    assert (out / "app.py").is_file() and (out / "faceres" / "registry" / "__init__.py").is_file()
