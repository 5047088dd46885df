"""Artifacts: faceres never unpickles. No `torch.load`, pickle, joblib or `np.load` that allows
pickles in the package source, no `trust_remote_code`; models load from safetensors only."""

from __future__ import annotations

import ast
import json
import pickle
import re
from pathlib import Path

import pytest
import torch

from faceres import registry, settings
from faceres.errors import ModelError

SOURCES = sorted((settings.PACKAGE_ROOT).rglob("*.py")) + [settings.PROJECT_ROOT / "app.py"]
"""The package and the app launcher (what a deployment runs)."""
PICKLE_MODULES = {
    "pickle",
    "_pickle",
    "cPickle",
    "dill",
    "cloudpickle",
    "joblib",
    "shelve",
    "marshal",
}
UNPICKLING_CALLS = {
    "torch.load",
    "torch.serialization.load",
    "torch.jit.load",
    "torch.hub.load",
    "torch.hub.load_state_dict_from_url",
    "torch.package.PackageImporter",
    "pandas.read_pickle",
    "numpy.lib.format.read_array",
}


def _dotted(node: ast.AST, aliases: dict[str, str]) -> str | None:
    """`a.b.c` for a Name/Attribute chain, its first part resolved through the imports."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(aliases.get(node.id, node.id))
    return ".".join(reversed(parts))


def _is_false(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is False


def pickle_loads(source: str, filename: str = "<source>") -> list[str]:
    """Every place in `source` that may unpickle or run remote code, as "file:line: what"."""
    tree = ast.parse(source, filename)
    aliases: dict[str, str] = {}
    found = []

    def flag(node: ast.AST, what: str) -> None:
        found.append(f"{filename}:{node.lineno}: {what}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                top = a.name.split(".")[0]
                aliases[a.asname or top] = a.name if a.asname else top
                if a.name.split(".")[0] in PICKLE_MODULES:
                    flag(node, f"import {a.name}")
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
            if node.module.split(".")[0] in PICKLE_MODULES:
                flag(node, f"from {node.module} import ...")
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = _dotted(node.func, aliases) or ""
            name = re.sub(r"^np\.", "numpy.", name)
            keywords = {k.arg: k.value for k in node.keywords}
            if name in UNPICKLING_CALLS:
                flag(node, f"{name}()")
            elif name == "numpy.load" and not _is_false(keywords.get("allow_pickle")):
                flag(node, "numpy.load() without allow_pickle=False")
            if "trust_remote_code" in keywords and not _is_false(keywords["trust_remote_code"]):
                flag(node, "trust_remote_code")
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if (
                    isinstance(key, ast.Constant)
                    and key.value == "trust_remote_code"
                    and not _is_false(value)
                ):
                    flag(node, "trust_remote_code")
    return found


@pytest.mark.parametrize(
    "source",
    [
        "import torch\ntorch.load('w.pt')",
        "import torch as T\nT.load(f, weights_only=True)",
        "from torch import load\nload(f)",
        "import pickle\npickle.loads(b)",
        "from pickle import load",
        "import joblib\njoblib.load('m.joblib')",
        "import numpy as np\nnp.load('a.npy')",
        "import numpy\nnumpy.load('a.npy', allow_pickle=True)",
        "from transformers import AutoModel\n"
        "AutoModel.from_pretrained('x', trust_remote_code=True)",
        "kwargs = {'trust_remote_code': True}",
        "import torch\ntorch.jit.load('m.pt')",
    ],
)
def test_the_scan_finds_unpickling(source):
    assert pickle_loads(source), source


@pytest.mark.parametrize(
    "source",
    [
        "import numpy as np\nnp.load('a.npy', allow_pickle=False)",
        "from safetensors.torch import load_file\nload_file('model.safetensors')",
        "import json\njson.load(f)",
        "f(trust_remote_code=False)",
    ],
)
def test_the_scan_allows_safe_loading(source):
    assert pickle_loads(source) == []


def test_package_never_unpickles():
    found = [
        hit for path in SOURCES for hit in pickle_loads(path.read_text(encoding="utf-8"), str(path))
    ]
    assert found == []


# -- the registry: safetensors only, every file pinned ---------------------------------------------

PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".tar", ".joblib", ".npz"}


def test_registry_holds_safetensors_only_and_pins_every_file():
    for entry in registry.list_models():
        assert entry["files"], entry["name"]
        for rel, sha in entry["files"].items():
            assert re.fullmatch(r"[0-9a-f]{64}", sha), (entry["name"], rel)
            assert Path(rel).suffix not in PICKLE_SUFFIXES, (entry["name"], rel)
        if entry.get("path"):
            folder = registry.registry_dir() / entry["path"]
            weightless = entry["task"] == "detector" or entry["architecture"] == registry.FUSION
            assert "model.safetensors" in entry["files"] or weightless
            assert not [p for p in folder.rglob("*") if p.suffix in PICKLE_SUFFIXES]


@pytest.fixture
def fresh_registry(tmp_path, monkeypatch) -> Path:
    """The real registry seen through a new folder (links), so `registry.load` loads again."""
    folder = tmp_path / "registry"
    (folder / "models").mkdir(parents=True)
    for entry in registry.list_models():
        if entry.get("path"):
            (folder / entry["path"]).symlink_to(registry.registry_dir() / entry["path"])
    (folder / "index.json").write_bytes((registry.registry_dir() / "index.json").read_bytes())
    monkeypatch.setattr(settings, "REGISTRY_DIR", folder)
    return folder


def test_loading_every_model_never_unpickles(fresh_registry, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a model load unpickled")

    for module, name in [
        (torch, "load"),
        (torch.serialization, "load"),
        (pickle, "load"),
        (pickle, "loads"),
        (pickle, "Unpickler"),
    ]:
        monkeypatch.setattr(module, name, refuse)
    names = [e["name"] for e in registry.list_models() if "model.safetensors" in e["files"]]
    assert names
    for name in names:
        assert not registry.load(name, device="cpu").model.training


def test_a_pickle_file_entry_is_refused(fresh_registry):
    model = registry.default_model("expression")
    index = json.loads((fresh_registry / "index.json").read_text(encoding="utf-8"))
    for entry in index["models"]:
        if entry["name"] == model:
            entry["files"]["pytorch_model.bin"] = "0" * 64
    (fresh_registry / "index.json").write_text(json.dumps(index), encoding="utf-8")
    with pytest.raises(ModelError, match="only safetensors"):
        registry.load(model, device="cpu")
