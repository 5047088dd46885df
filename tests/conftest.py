"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

# -- photos and uploads ---------------------------------------------------------------------------


@pytest.fixture
def upload_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A Gradio upload folder of the test's own (GRADIO_TEMP_DIR)."""
    folder = tmp_path / "gradio"
    folder.mkdir()
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(folder))
    return folder


@pytest.fixture(scope="session")
def astronaut():
    """scikit-image's astronaut (one frontal face, public domain), RGB uint8."""
    data = pytest.importorskip("skimage.data", reason="scikit-image provides the test photo")
    return data.astronaut()


# -- hub: throw-away registries and a local Hugging Face Hub (olah) --------------------------------


@pytest.fixture
def tiny_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty registry folder that faceres.registry uses for this test (in this process via
    `settings.REGISTRY_DIR`, in subprocesses via FACERES_REGISTRY)."""
    from faceres import settings

    path = tmp_path / "registry"
    path.mkdir()
    (path / "index.json").write_text('{"models": []}\n', encoding="utf-8")
    monkeypatch.setattr(settings, "REGISTRY_DIR", path)
    monkeypatch.setenv("FACERES_REGISTRY", str(path))
    return path


@pytest.fixture(scope="session")
def local_hub(tmp_path_factory: pytest.TempPathFactory):
    """olah on 127.0.0.1 in offline mode, serving git repos that tests publish into it."""
    from hub_server import olah_hub

    with olah_hub(tmp_path_factory.mktemp("olah")) as hub:
        yield hub


@pytest.fixture
def hub_constants(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """huggingface_hub's import-time settings, patched for this process: an empty cache, online.
    Returns a function setting the endpoint (and, optionally, offline mode)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)

    def use(endpoint: str, offline: bool = False) -> None:
        monkeypatch.setattr(constants, "ENDPOINT", endpoint)
        monkeypatch.setattr(
            constants,
            "HUGGINGFACE_CO_URL_TEMPLATE",
            endpoint + "/{repo_id}/resolve/{revision}/{filename}",
        )
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)

    return use
