"""The registry: index, model folders, integrity, loading, the CLI (no Hub needed here)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import timm
import torch
from hub_server import TINY_LABELS, save_tiny
from safetensors import safe_open

from faceres import registry, settings
from faceres.cli import main
from faceres.errors import IntegrityError, ModelError
from faceres.space import front_matter

REAL_INDEX = settings.PROJECT_ROOT / "registry" / "index.json"
YUNET_SHA = "ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0"


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def test_save_model_writes_a_hub_shaped_folder_and_entry(tiny_registry):
    _, folder = save_tiny("tiny")
    files = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert files == {"config.json", "model.safetensors", "README.md", "train/curves.json"}

    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"] == "test_resnet"
    assert config["label_names"] == TINY_LABELS
    assert config["faceres"]["task"] == "expression"
    with safe_open(folder / "model.safetensors", "pt") as f:
        dtypes = {f.get_tensor(k).dtype for k in f.keys()}
    assert torch.float16 in dtypes and torch.float32 not in dtypes

    card = front_matter((folder / "README.md").read_text())
    assert card["library_name"] == "timm" and card["license"] == "mit"
    assert card["datasets"] == ["tiny-faces"] and "faceres" in card["tags"]
    result = card["model-index"][0]["results"][0]
    assert result["dataset"]["type"] == "tiny-faces"
    assert result["metrics"] == [{"type": "accuracy", "value": 0.5}]

    entry = registry.get_entry("tiny")
    assert entry["path"] == "models/tiny" and entry["architecture"] == "test_resnet"
    assert entry["description"] == "A tiny test model."
    assert entry["files"] == {rel: registry.sha256_file(folder / rel) for rel in files}
    assert registry.resolve("tiny") == folder


def test_list_get_and_one_default_per_task(tiny_registry):
    save_tiny("a", default=True)
    save_tiny("b", twin="a")
    assert [e["name"] for e in registry.list_models("expression")] == ["a", "b"]
    assert registry.list_models("identity") == []
    assert registry.default_model("expression") == "a"
    save_tiny("b", twin="a", default=True)
    assert registry.default_model("expression") == "b"
    assert not registry.get_entry("a")["default"]
    assert registry.get_entry("b")["twin"] == "a"
    with pytest.raises(ModelError, match="a, b"):
        registry.get_entry("nope")
    with pytest.raises(ModelError, match="No default identity"):
        registry.default_model("identity")


def test_load_builds_the_timm_model_in_eval_mode_once(tiny_registry):
    model, folder = save_tiny("tiny")
    loaded = registry.load("tiny", device="cpu")
    assert loaded.name == "tiny" and loaded.device == torch.device("cpu")
    assert not loaded.model.training
    assert loaded.config["faceres"]["labels"] == TINY_LABELS
    assert registry.load("tiny", device="cpu") is loaded

    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    reference = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
    rounded = copy.deepcopy(model).half().float().eval()
    with torch.no_grad():
        out = loaded.model(x)
        assert torch.equal(out, reference(x))
        assert torch.allclose(out, rounded(x), atol=1e-5)


def test_update_entry_rehashes_and_clears_a_stale_revision(tiny_registry):
    _, folder = save_tiny("tiny")
    registry.update_entry("tiny", repo_id="faceres-test/tiny", revision="a" * 40)
    registry.update_entry("tiny", source="tests")  # files unchanged: revision kept
    assert registry.get_entry("tiny")["revision"] == "a" * 40
    # new metrics rewrite the card's model-index, so the pinned revision no longer matches
    entry = registry.update_entry("tiny", metrics={"tiny-faces/accuracy": 0.75})
    assert entry["revision"] is None and entry["metrics"] == {"tiny-faces/accuracy": 0.75}
    assert "tiny-faces" in (folder / "README.md").read_text()
    registry.update_entry("tiny", revision="a" * 40)

    (folder / "README.md").write_text("changed\n")
    entry = registry.update_entry("tiny", source="tests, edited")
    assert entry["files"]["README.md"] == registry.sha256_file(folder / "README.md")
    assert entry["revision"] is None and entry["repo_id"] == "faceres-test/tiny"
    with pytest.raises(ValueError, match="unknown entry fields"):
        registry.update_entry("tiny", colour="blue")


def test_a_tampered_local_file_is_refused(tiny_registry):
    _, folder = save_tiny("tiny")
    _flip_last_byte(folder / "model.safetensors")
    with pytest.raises(IntegrityError, match="model.safetensors"):
        registry.resolve("tiny")
    with pytest.raises(IntegrityError, match="model.safetensors"):
        registry.load("tiny", device="cpu")
    (folder / "config.json").unlink()
    with pytest.raises(ModelError, match="config.json is missing"):
        registry.resolve("tiny")


def test_only_safetensors_are_loaded(tiny_registry):
    with pytest.raises(ValueError, match="pickle"):
        save_tiny("tiny", files={"weights.pth": b"\x80\x04"})
    _, folder = save_tiny("tiny")
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04")
    registry.update_entry("tiny")
    with pytest.raises(ModelError, match="only safetensors"):
        registry.load("tiny", device="cpu")


def _third_party_index(registry_dir: Path, sha: str) -> None:
    entry = {
        "name": "det",
        "task": "detector",
        "architecture": "YuNet",
        "twin": None,
        "default": True,
        "repo_id": "faceres-test/det",
        "revision": "main",
        "path": None,
        "files": {"det.onnx": sha},
        "license": "mit",
        "metrics": {},
        "description": "",
        "source": "tests",
        "local_candidates": ["$FACERES_DATA/models/det/det.onnx"],
    }
    (registry_dir / "index.json").write_text(json.dumps({"models": [entry]}))


def test_third_party_files_resolve_from_local_candidates(
    tiny_registry, tmp_path, monkeypatch, hub_constants
):
    data = tmp_path / "data"
    (data / "models" / "det").mkdir(parents=True)
    onnx = data / "models" / "det" / "det.onnx"
    onnx.write_bytes(b"not really onnx")
    monkeypatch.setenv("FACERES_DATA", str(data))
    _third_party_index(tiny_registry, registry.sha256_file(onnx))
    assert registry.resolve_file("det", "det.onnx") == onnx
    assert registry.verify() == [("det", "det.onnx", "ok")]
    with pytest.raises(ModelError, match="use resolve_file"):
        registry.load("det")

    hub_constants("http://127.0.0.1:9", offline=True)
    onnx.write_bytes(b"something else")
    with pytest.raises(IntegrityError, match="det.onnx fails its sha256 check"):
        registry.resolve_file("det", "det.onnx")
    assert registry.verify() == [("det", "det.onnx", "mismatch")]
    monkeypatch.setenv("FACERES_DATA", str(tmp_path / "elsewhere"))
    assert registry.verify() == [("det", "det.onnx", "not here")]


def test_the_real_index_is_well_formed():
    entries = json.loads(REAL_INDEX.read_text())["models"]
    required = set(registry.ENTRY_KEYS) - {"local_candidates"}
    for entry in entries:
        assert required <= set(entry), entry["name"]
        assert entry["task"] in registry.TASKS
        assert entry["path"] is None or entry["path"] == f"models/{entry['name']}"
    for task in registry.TASKS:
        assert sum(bool(e["default"]) for e in entries if e["task"] == task) <= 1
    yunet = next(e for e in entries if e["name"] == "yunet-2026may")
    assert yunet["files"]["face_detection_yunet_2026may.onnx"] == YUNET_SHA  # the zoo's file
    assert yunet["path"] == "models/yunet-2026may" and yunet["license"] == "mit"


def test_yunet_ships_with_its_licence_and_source():
    """The committed YuNet file is OpenCV Zoo's byte for byte (its published sha256), beside the
    MIT licence text and a card naming the source and the sha256."""
    folder = REAL_INDEX.parent / "models" / "yunet-2026may"
    assert registry.sha256_file(folder / "face_detection_yunet_2026may.onnx") == YUNET_SHA
    assert (folder / "LICENSE").read_text().startswith("MIT License")
    card = (folder / "README.md").read_text()
    assert "github.com/opencv/opencv_zoo" in card and YUNET_SHA in card and "MIT" in card


def test_committed_weights_stay_within_the_budget():
    """Every committed weight file (safetensors, ONNX exports) of every model, in all: under
    80 MB (10^6 bytes), the project's budget."""
    root = REAL_INDEX.parent
    entries = json.loads(REAL_INDEX.read_text())["models"]
    files = [
        root / e["path"] / f
        for e in entries
        if e["path"]
        for f in e["files"]
        if f.endswith((".safetensors", ".onnx"))
    ]
    assert any(f.suffix == ".onnx" for f in files)
    assert sum(f.stat().st_size for f in files) < 80e6


def test_cli_list_json_and_verify(tiny_registry, capsys):
    save_tiny("tiny", default=True)
    assert main(["registry", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [e["name"] for e in listed] == ["tiny"]
    assert {"name", "task", "default", "architecture", "twin", "metrics"} <= set(listed[0])
    assert listed[0]["metrics"] == {"tiny-faces/accuracy": 0.5}

    assert main(["registry", "verify"]) == 0
    assert "4 files, 0 failed" in capsys.readouterr().out
    _flip_last_byte(tiny_registry / "models" / "tiny" / "README.md")
    assert main(["registry", "verify"]) == 1
    assert "mismatch  tiny/README.md" in capsys.readouterr().out
    assert main(["registry", "pull", "nope"]) == 2
    assert "Unknown model 'nope'" in capsys.readouterr().err


def test_push_creates_the_repo_uploads_and_pins(
    tiny_registry, local_hub, hub_constants, monkeypatch
):
    calls = {}

    class FakeApi:
        def __init__(self, token=None):
            calls["token"] = token

        def create_repo(self, repo_id, **kwargs):
            calls["create_repo"] = (repo_id, kwargs)

        def upload_folder(self, **kwargs):
            calls["upload_folder"] = kwargs
            return type("CommitInfo", (), {"oid": "c" * 40})()

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    hub_constants(local_hub.endpoint)  # push first checks that the Hub answers
    _, folder = save_tiny("tiny")
    assert registry.push("tiny", "faceres-test/pushed", token="t") == "c" * 40
    assert calls["create_repo"] == ("faceres-test/pushed", {"repo_type": "model", "exist_ok": True})
    assert Path(calls["upload_folder"]["folder_path"]) == folder
    assert set(calls["upload_folder"]["allow_patterns"]) == set(registry.get_entry("tiny")["files"])
    entry = registry.get_entry("tiny")
    assert (entry["repo_id"], entry["revision"]) == ("faceres-test/pushed", "c" * 40)
