"""faceres as a user installs it: a wheel built from this checkout, installed (not editable) into
a fresh virtual environment and run from a folder outside the checkout.

The wheel must carry the registry index (as `faceres/_registry/index.json`, built from
`registry/index.json`) and no weights; the installed `faceres` then lists the registry, runs
`verify` against a registry named by FACERES_REGISTRY, and, with neither a checkout nor
FACERES_REGISTRY, pulls the weights from a Hub (the local olah one) at the revisions its index
pins. The environment sees the test run's own site-packages through a `.pth` file (torch & co.
are not downloaded, and the test run may itself be in a virtualenv), so the checks first make
sure the `faceres` imported is the venv's copy, not the editable install.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import uuid
import zipfile
from importlib import metadata
from pathlib import Path

import cv2
import pytest

from faceres import settings

ROOT = settings.PROJECT_ROOT
VERIFY_MODELS = ("dlib-resnet29-face", "dlib-landmarks5", "dlib-mmod-face")
"""What `faceres verify --detector dlib` needs from the registry (no third-party YuNet file)."""
_NOT_COPIED = {
    ".git",
    ".venv",
    "build",
    "dist",
    "out",
    "runs",
    ".cache",
    ".pytest_cache",
    ".ruff_cache",
}


def _source_copy(dest: Path) -> Path:
    """The checkout without VCS data, caches and build outputs (pip builds in the source folder,
    so the build runs in a copy; the model folders come along, to show they stay out)."""

    def ignore(folder: str, names: list[str]) -> set[str]:
        top = _NOT_COPIED if Path(folder) == ROOT else set()
        return {n for n in names if n in top or n == "__pycache__" or n.endswith(".egg-info")}

    shutil.copytree(ROOT, dest, ignore=ignore)
    return dest


def _run(
    cmd: list, *, env: dict | None = None, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    run = subprocess.run(
        [str(c) for c in cmd], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    assert run.returncode == 0, f"{cmd}\n{run.stdout[-2000:]}\n{run.stderr[-3000:]}"
    return run


def _user_env(**extra: str) -> dict[str, str]:
    """os.environ without anything that would point faceres at the checkout or the Hub."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FACERES_", "HF_", "HUGGINGFACE_", "PYTHON", "PIP_"))
    }
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", GRADIO_ANALYTICS_ENABLED="False", **extra)
    return env


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the checkout, taken once: the wheel's source and the Hub's model folders."""
    return _source_copy(tmp_path_factory.mktemp("source") / "faceres")


@pytest.fixture(scope="module")
def wheel(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """faceres's wheel, built offline with the installed setuptools."""
    work = tmp_path_factory.mktemp("wheel")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            source,
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            work / "dist",
        ],
        env=_user_env(),
        cwd=work,
    )
    (built,) = (work / "dist").glob("faceres-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A virtual environment that sees this test run's site-packages (after its own), with the
    wheel installed into it (`--force-reinstall` so that its copy shadows an editable install of
    the checkout); its `python`, `faceres` script, site-packages and a working folder outside the
    checkout."""
    work = tmp_path_factory.mktemp("venv")
    env_dir = work / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", env_dir])
    bin_dir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    python = bin_dir / ("python.exe" if os.name == "nt" else "python")
    own = _run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        env=_user_env(),
    ).stdout.strip()
    # This run's packages as plain path entries: their .pth files (the editable install of the
    # checkout among them) are not processed, so the venv's faceres is the one imported.
    theirs = [p for p in sys.path if Path(p).name in ("site-packages", "dist-packages")]
    (Path(own) / "test-run-packages.pth").write_text("\n".join(theirs) + "\n")
    # This run's pip, run by the venv's python, installs into the venv.
    _run(
        [python, "-m", "pip", "install", "--no-deps", "--force-reinstall", "--no-index", wheel],
        env=_user_env(),
    )
    cwd = work / "elsewhere"
    cwd.mkdir()
    site = _run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        env=_user_env(),
        cwd=cwd,
    ).stdout.strip()
    return {"python": python, "faceres": bin_dir / "faceres", "site": Path(site), "cwd": cwd}


@pytest.fixture(scope="module")
def photos(venv: dict, astronaut) -> tuple[Path, Path]:
    """The astronaut and an edited copy of it (rotated, smaller, darker), in the venv's folder."""
    from photos import edited_copy

    a, b = venv["cwd"] / "a.png", venv["cwd"] / "b.jpg"
    cv2.imwrite(str(a), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(b), cv2.cvtColor(edited_copy(astronaut), cv2.COLOR_RGB2BGR))
    return a, b


def _verify(venv: dict, photos: tuple[Path, Path], env: dict) -> dict:
    run = _run(
        [venv["faceres"], "verify", *photos, "--detector", "dlib", "--json"],
        env=env,
        cwd=venv["cwd"],
    )
    return json.loads(run.stdout)


@pytest.fixture(scope="module")
def local_verify(venv: dict, photos: tuple[Path, Path]) -> dict:
    """`faceres verify` of the installed package, offline, on the checkout's registry."""
    env = _user_env(FACERES_REGISTRY=str(ROOT / "registry"), HF_HUB_OFFLINE="1")
    return _verify(venv, photos, env)


# -- the wheel -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_wheel_ships_the_index_and_no_weights(wheel: Path, source: Path):
    with zipfile.ZipFile(wheel) as whl:
        names = whl.namelist()
        shipped = whl.read("faceres/_registry/index.json")
        meta = whl.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        scripts = whl.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt")))
    assert shipped == (source / "registry" / "index.json").read_bytes()
    assert (source / "registry" / "models").is_dir()  # there to be left out
    assert [n for n in names if n.startswith("faceres/_registry/")] == [
        "faceres/_registry/index.json"
    ]
    assert {n.split("/")[0] for n in names} == {
        "faceres",
        wheel.name.split("-py3")[0] + ".dist-info",
    }
    assert not [n for n in names if n.endswith((".safetensors", ".onnx", ".dat", ".npy"))]
    assert wheel.stat().st_size < 1_000_000
    assert "faceres = faceres.cli:main" in scripts.decode()
    assert "Requires-Python: >=3.11" in meta
    requires = re.findall(r"^Requires-Dist: ([^;\n]+)$", meta, flags=re.M)
    assert "torch>=2.4" in requires and "torchvision>=0.19" in requires
    assert not [r for r in requires if "==" in r], requires


def _imported_distributions() -> dict[str, set[str]]:
    """Third-party top-level modules that faceres imports → the distributions providing them."""
    modules = set()
    for path in settings.PACKAGE_ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    modules -= {*sys.stdlib_module_names, "__future__", "faceres"}
    providers = metadata.packages_distributions()
    return {m: {_normal(d) for d in providers.get(m, [])} for m in sorted(modules)}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_imported_package_is_a_declared_dependency():
    with open(ROOT / "pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    # the core dependencies, and the extras a user installs for one feature (not the tests')
    extras = [
        r for name, rs in project["optional-dependencies"].items() if name != "test" for r in rs
    ]
    requires = [*project["dependencies"], *extras]
    declared = {_normal(re.match(r"[A-Za-z0-9_.-]+", r).group()) for r in requires}
    imported = _imported_distributions()
    assert imported, "no imports found"
    undeclared = {m: dists for m, dists in imported.items() if not dists & declared}
    assert not undeclared, f"imported but not in [project] dependencies: {undeclared}"


# -- the installed package -------------------------------------------------------------------------


@pytest.mark.slow
def test_the_venv_imports_its_own_copy_with_the_shipped_index(venv: dict):
    probe = (
        "import json, faceres, faceres.settings as s; "
        "print(json.dumps([faceres.__file__, str(s.REGISTRY_DIR)]))"
    )
    run = _run([venv["python"], "-c", probe], env=_user_env(), cwd=venv["cwd"])
    module, registry_dir = (Path(p) for p in json.loads(run.stdout))
    assert module == venv["site"] / "faceres" / "__init__.py", module
    assert registry_dir == venv["site"] / "faceres" / "_registry"
    assert not (registry_dir / "models").exists()


@pytest.mark.slow
def test_registry_list_from_another_folder(venv: dict, source: Path):
    run = _run(
        [venv["faceres"], "registry", "list", "--json"],
        cwd=venv["cwd"],
        env=_user_env(HF_HUB_OFFLINE="1"),
    )
    listed = [e["name"] for e in json.loads(run.stdout)]
    index = json.loads((source / "registry" / "index.json").read_text(encoding="utf-8"))
    assert listed == [e["name"] for e in index["models"]] and len(listed) > 1
    text = _run(
        [venv["faceres"], "registry", "list"], cwd=venv["cwd"], env=_user_env(HF_HUB_OFFLINE="1")
    ).stdout
    assert all(name in text for name in listed)


@pytest.mark.slow
def test_verify_with_faceres_registry(local_verify: dict):
    assert local_verify["verdict"] == "same", local_verify
    assert (local_verify["model"], local_verify["detector"]) == ("dlib-resnet29-face", "dlib")


@pytest.mark.slow
def test_verify_pulls_the_weights_from_the_hub(
    venv: dict, source: Path, photos, local_verify: dict, local_hub, tmp_path: Path
):
    """No checkout, no FACERES_REGISTRY: the shipped index (here with the Hub revisions a release
    would pin) and an empty HF_HOME; the weights come from the Hub and give the same answer."""
    shipped = venv["site"] / "faceres" / "_registry" / "index.json"
    original = shipped.read_bytes()
    index = json.loads(original)
    repos = {}
    for entry in index["models"]:
        if entry["name"] in VERIFY_MODELS:
            repo_id = f"faceres-test/{entry['name']}-{uuid.uuid4().hex[:8]}"
            entry["repo_id"] = repo_id
            entry["revision"] = local_hub.publish(source / "registry" / entry["path"], repo_id)
            repos[entry["name"]] = entry
    assert set(repos) == set(VERIFY_MODELS)
    hf_home = tmp_path / "hf-home"
    env = {
        k: v for k, v in local_hub.env(hf_home).items() if not k.startswith(("FACERES_", "PYTHON"))
    }
    try:
        shipped.write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
        result = _verify(venv, photos, env)
    finally:
        shipped.write_bytes(original)

    assert result["verdict"] == "same" and result["model"] == "dlib-resnet29-face"
    assert result["similarity"] == pytest.approx(local_verify["similarity"], abs=1e-5)
    for name, entry in repos.items():
        snapshot = (
            hf_home
            / "hub"
            / f"models--{entry['repo_id'].replace('/', '--')}"
            / "snapshots"
            / entry["revision"]
        )
        assert sorted(p.name for p in snapshot.iterdir()) == sorted(entry["files"]), name
