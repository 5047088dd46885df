"""The Hub path for real: a local Hub (olah, offline mode) serving git repos made from registry
folders; pulls into an empty cache, loads with faceres and timm, refusals, offline errors."""

from __future__ import annotations

import copy
import json
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import torch
from hub_server import FAULTS, faulty_proxy, free_port, save_tiny

from faceres import registry, settings
from faceres.errors import IntegrityError, OfflineError

LOAD_SCRIPT = """
import json, sys
import timm, torch
from faceres import registry, settings
name, repo_id, revision, shape = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
x = torch.arange(torch.Size(shape).numel(), dtype=torch.float32).reshape(shape).sin()
loaded = registry.load(name, device="cpu")
hub = timm.create_model(f"hf-hub:{repo_id}@{revision}", pretrained=True).eval()
with torch.no_grad():
    a, b = loaded.model(x), hub(x)
print(json.dumps({"folder": str(registry.resolve(name)), "equal": torch.equal(a, b),
                  "out": a.tolist(), "training": loaded.model.training}))
"""
SHAPE = [2, 3, 64, 64]
REAL_INDEX = settings.PROJECT_ROOT / "registry" / "index.json"
YUNET_FILE = "face_detection_yunet_2026may.onnx"


def _faceres(*args: str, env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "faceres", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _publish(hub, name: str, **kwargs) -> tuple[torch.nn.Module, str, str]:
    """Save a tiny model, publish it, pin it, delete the committed folder (as on a fresh
    machine that has only the index); returns the model, repo id and revision."""
    model, folder = save_tiny(name)
    repo_id = f"faceres-test/{name}-{uuid.uuid4().hex[:8]}"
    revision = hub.publish(folder, repo_id, **kwargs)
    registry.update_entry(name, repo_id=repo_id, revision=revision)
    shutil.rmtree(folder)
    return model, repo_id, revision


def test_pull_into_an_empty_cache_then_load_with_faceres_and_timm(
    local_hub, tiny_registry, tmp_path
):
    model, repo_id, revision = _publish(local_hub, "tiny")
    hf_home = tmp_path / "hf-home"
    env = local_hub.env(hf_home)

    pulled = _faceres("registry", "pull", "tiny", env=env)
    assert pulled.returncode == 0, pulled.stderr
    snapshot = Path(pulled.stdout.strip().splitlines()[-1])
    assert snapshot.is_relative_to(hf_home) and snapshot.name == revision
    for rel, sha in registry.get_entry("tiny")["files"].items():
        assert registry.sha256_file(snapshot / rel) == sha

    # Offline from here on: both loaders must find everything in the cache just filled.
    env["HF_HUB_OFFLINE"] = "1"
    run = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, "tiny", repo_id, revision, json.dumps(SHAPE)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert Path(result["folder"]) == snapshot
    assert result["equal"] and not result["training"]
    x = torch.arange(torch.Size(SHAPE).numel(), dtype=torch.float32).reshape(SHAPE).sin()
    with torch.no_grad():
        expected = copy.deepcopy(model).half().float().eval()(x)
    assert torch.allclose(torch.tensor(result["out"]), expected, atol=1e-4)


def test_a_tampered_hub_file_is_refused(local_hub, tiny_registry, tmp_path):
    _publish(local_hub, "tiny", tamper="model.safetensors")
    pulled = _faceres("registry", "pull", "tiny", env=local_hub.env(tmp_path / "hf-home"))
    assert pulled.returncode == 2
    assert "model.safetensors" in pulled.stderr and "sha256" in pulled.stderr
    assert "Traceback" not in pulled.stderr


def test_a_tampered_cache_file_is_refused(local_hub, tiny_registry, hub_constants):
    hub_constants(local_hub.endpoint)
    _publish(local_hub, "tiny")
    snapshot = registry.pull("tiny")
    assert registry.resolve("tiny") == snapshot
    blob = (snapshot / "config.json").resolve()
    blob.write_bytes(blob.read_bytes().replace(b'"num_classes": 3', b'"num_classes": 4'))
    with pytest.raises(IntegrityError, match="config.json"):
        registry.load("tiny", device="cpu")


@pytest.mark.parametrize("tamper", [False, True])
def test_third_party_files_come_from_the_hub_when_not_here(
    tamper, local_hub, tiny_registry, hub_constants, monkeypatch, tmp_path
):
    hub_constants(local_hub.endpoint)
    monkeypatch.setenv("FACERES_DATA", str(tmp_path / "no-data"))
    upload = tmp_path / "upload"
    upload.mkdir()
    (upload / "det.onnx").write_bytes(b"pretend onnx")
    repo_id = f"faceres-test/det-{uuid.uuid4().hex[:8]}"
    revision = local_hub.publish(upload, repo_id, tamper="det.onnx" if tamper else None)
    entry = {
        "name": "det",
        "task": "detector",
        "architecture": "YuNet",
        "twin": None,
        "default": True,
        "repo_id": repo_id,
        "revision": revision,
        "path": None,
        "files": {"det.onnx": registry.sha256_file(upload / "det.onnx")},
        "license": "mit",
        "metrics": {},
        "description": "",
        "source": "tests",
        "local_candidates": ["$FACERES_DATA/det.onnx"],
    }
    (tiny_registry / "index.json").write_text(json.dumps({"models": [entry]}))
    if tamper:
        with pytest.raises(IntegrityError, match="det.onnx"):
            registry.resolve_file("det", "det.onnx")
        return
    path = registry.resolve_file("det", "det.onnx")
    assert path.read_bytes() == b"pretend onnx" and path.parent.name == revision
    assert registry.pull("det") == path.parent


@pytest.fixture
def silent_endpoint():
    """A port that accepts connections and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


@pytest.mark.parametrize("target", ["model", "third-party file"])
@pytest.mark.parametrize("how", ["HF_HUB_OFFLINE", "refused", "silent"])
def test_offline_fails_fast_with_the_remedy(
    how, target, tiny_registry, hub_constants, silent_endpoint, monkeypatch, tmp_path
):
    if target == "model":
        save_tiny("tiny")
        registry.update_entry("tiny", repo_id="faceres-test/nowhere", revision="0" * 40)
        shutil.rmtree(tiny_registry / "models" / "tiny")
        fetch = lambda: registry.load("tiny", device="cpu")  # noqa: E731
    else:
        shutil.copy(REAL_INDEX, tiny_registry / "index.json")
        monkeypatch.setenv("FACERES_DATA", str(tmp_path / "no-data"))
        fetch = lambda: registry.resolve_file("yunet-2026may", YUNET_FILE)  # noqa: E731
    endpoint = {"refused": f"http://127.0.0.1:{free_port()}", "silent": silent_endpoint}
    hub_constants(endpoint.get(how, "http://127.0.0.1:9"), offline=how == "HF_HUB_OFFLINE")

    start = time.monotonic()
    with pytest.raises(OfflineError) as error:
        fetch()
    assert time.monotonic() - start < 5
    assert "is not available locally" in str(error.value)
    assert "faceres registry pull" in str(error.value)


def test_offline_cli_names_the_model_and_the_remedy(local_hub, tiny_registry, tmp_path):
    save_tiny("tiny")
    registry.update_entry("tiny", repo_id="faceres-test/nowhere", revision="0" * 40)
    shutil.rmtree(tiny_registry / "models" / "tiny")
    env = local_hub.env(tmp_path / "hf-home", HF_HUB_OFFLINE="1")
    pulled = _faceres("registry", "pull", "tiny", env=env)
    assert pulled.returncode == 2
    assert pulled.stderr.count("\n") == 1
    assert "Model 'tiny' is not available locally" in pulled.stderr
    assert "HF_HUB_OFFLINE" in pulled.stderr and "faceres registry pull tiny" in pulled.stderr


@pytest.mark.parametrize("fault", FAULTS)
def test_a_failing_hub_is_one_error_with_the_remedy_and_nothing_partial(
    fault, local_hub, tiny_registry, tmp_path
):
    """The Hub answers 500, stops mid-file, or hangs mid-file: `faceres registry pull` fails
    within its timeouts with one line naming the model and the remedy, and the cache holds no
    snapshot file that a later load could pick up."""
    _publish(local_hub, "tiny")
    hf_home = tmp_path / "hf-home"
    with faulty_proxy(local_hub.endpoint, fault) as endpoint:
        env = local_hub.env(hf_home) | {
            "HF_ENDPOINT": endpoint,
            "HF_HUB_DOWNLOAD_TIMEOUT": "3",
            "HF_HUB_ETAG_TIMEOUT": "3",
        }
        start = time.monotonic()
        pulled = _faceres("registry", "pull", "tiny", env=env)
        seconds = time.monotonic() - start
    assert pulled.returncode == 2, pulled.stderr
    assert "Traceback" not in pulled.stderr and pulled.stderr.count("\n") == 1, pulled.stderr
    assert "'tiny'" in pulled.stderr and "faceres registry pull tiny" in pulled.stderr
    assert seconds < 60
    snapshots = list(hf_home.rglob("snapshots/*/model.safetensors"))
    assert not snapshots, snapshots


TIMM_ONLY = """
import sys, timm
try:
    timm.create_model(sys.argv[1], pretrained=True)
except RuntimeError as exc:
    print(exc)
assert "faceres" not in sys.modules, "timm imported faceres by itself"
"""


@pytest.mark.parametrize("name", ["resnet18-fer", "dlib-resnet29-face"])
def test_timm_alone_names_the_package_to_install(local_hub, tmp_path, name):
    """A Hub user without faceres gets timm's error naming a faceres architecture, and the card
    tells them what to install; with `import faceres` the same repo loads."""
    folder = settings.PROJECT_ROOT / "registry" / "models" / name
    repo_id = f"faceres-test/{name}-{uuid.uuid4().hex[:8]}"
    revision = local_hub.publish(folder, repo_id)
    env = {**local_hub.env(tmp_path / "hf-home"), "PYTHONPATH": str(settings.PROJECT_ROOT)}
    run = subprocess.run(
        [sys.executable, "-c", TIMM_ONLY, f"hf-hub:{repo_id}@{revision}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    architecture = json.loads((folder / "config.json").read_text())["architecture"]
    assert run.stdout.strip() == f"Unknown model ({architecture})"
    assert architecture.startswith("faceres_")
    card = (folder / "README.md").read_text()
    assert "## How to load" in card and "pip install faceres" in card
    assert "import faceres.models  # noqa: F401" in card  # what registers the architecture
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, timm, faceres.models; "
            "print(type(timm.create_model(sys.argv[1], pretrained=True)).__name__)",
            f"hf-hub:{repo_id}@{revision}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert loaded.returncode == 0 and loaded.stdout.strip(), loaded.stderr
