"""The package layout keeps its promises: imports run one way, with no cycle, counting imports
inside functions too; the inference path never reaches training or evaluation; and imports inside
functions are kept for heavy optional dependencies."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from faceres.settings import PACKAGE_ROOT

INFERENCE = (
    "faceres.app",
    "faceres.detect",
    "faceres.expression",
    "faceres.face",
    "faceres.identity",
    "faceres.imageio",
    "faceres.models",
    "faceres.registry",
    "faceres.search",
)
"""The product, what answers a user's photo: none of it may reach the research code."""
RESEARCH_CODE = ("faceres.train", "faceres.eval", "faceres.study")
"""Training, evaluation and the studies: research that the product never imports."""
LAZY_ALLOWED = {
    "matplotlib",
    "huggingface_hub",
    "httpx2",
    "timm",
    "gradio",
    "tomllib",
    "filelock",
    "faiss",
    "sklearn",
    "ray",
    "faceres",
}
"""Top-level packages that may be imported inside a function (heavy, or needed by one command);
`faceres` only from the CLI, which imports each command's code when that command runs."""


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE_ROOT.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> list[tuple[str, bool]]:
    """(faceres module imported, whether inside a function) for every import of a module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    inside = {
        id(node)
        for fn in ast.walk(tree)
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
        for node in ast.walk(fn)
    }
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in known and target.startswith("faceres"):
                target = target.rpartition(".")[0]
            out.append((target, id(node) in inside))
    return out


def graph() -> dict[str, set[str]]:
    known = modules()
    return {
        name: {t for t, _ in imports(name, path, known) if t in known and t != name}
        for name, path in known.items()
    }


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in edges:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    assert cycles(graph()) == []


def test_the_cycle_check_sees_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def reached(edges: dict[str, set[str]], start: str) -> set[str]:
    """Every module that importing `start` (a module or package, with its sub-modules) imports,
    directly or not."""
    seen, todo = set(), [m for m in edges if m == start or m.startswith(start + ".")]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(edges[module])
    return seen


@pytest.mark.parametrize("start", INFERENCE)
def test_the_product_never_reaches_research_code(start):
    bad = sorted(m for m in reached(graph(), start) if m.startswith(RESEARCH_CODE))
    assert not bad, f"{start} imports {bad}"


def test_the_research_check_sees_an_edge_into_research():
    edges = {"faceres.app.tab": {"faceres.models.x"}, "faceres.models.x": {"faceres.study.depth"}}
    edges["faceres.study.depth"] = set()
    assert "faceres.study.depth" in reached(edges, "faceres.app")


def test_models_never_import_datasets():
    """An architecture does not depend on a dataset (the class names live in faceres.labels)."""
    edges = graph()
    bad = sorted(
        (m, w)
        for m in edges
        if m.startswith("faceres.models")
        for w in edges[m]
        if w.startswith("faceres.datasets")
    )
    assert not bad, bad


def test_imports_inside_functions_are_for_heavy_optional_dependencies():
    known = modules()
    lazy = sorted(
        {
            (name, target)
            for name, path in known.items()
            for target, inside in imports(name, path, known)
            if inside
        }
    )
    internal = [(n, t) for n, t in lazy if t.startswith("faceres") and ".cli" not in n]
    other = [(n, t) for n, t in lazy if t.split(".")[0] not in LAZY_ALLOWED]
    assert not internal, f"faceres modules imported inside functions: {internal}"
    assert not other, f"imports inside functions that no heavy dependency justifies: {other}"


RESEARCH = ("train", "eval", "study", "datasets", "convert")
"""Research packages (training, evaluation, studies, their data, model conversion)."""
MAX_PRODUCT_FUNCTION_LINES = 60


def test_no_function_on_the_product_path_is_over_60_lines():
    """Small functions where users run the code: the app, the CLI, inference, the registry."""
    package = PACKAGE_ROOT
    long = []
    for path in sorted(package.rglob("*.py")):
        if set(path.relative_to(package).parts) & set(RESEARCH):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_PRODUCT_FUNCTION_LINES:
                    long.append(f"{path.relative_to(package)}:{node.name} ({lines} lines)")
    assert not long, long
