"""Mutation testing: plant one bug at a time in a scratch copy of the repo and see if tests notice.

Two kinds of mutants, each run against the test files mapped to its module (`MODULES`):

- generated ones, written with `ast` in the pure-Python functions listed per module: comparison
  boundaries (`<` ↔ `<=`, `==` ↔ `!=`), arithmetic swaps (`+` ↔ `-`, `*` ↔ `/`), `and` ↔ `or`,
  numbers + 1, `not`/`-` dropped, a return value replaced by a constant of its type, a statement
  removed (a call, an `if`, a `raise`, an augmented or item assignment, `continue`) and a
  one-argument call replaced by its argument. A seeded sample of at most `--limit` per module;
- the named "issue mutants" (`ISSUE_MUTANTS`, issue 12): exact text patches of real mistakes,
  each reported with every test that failed on it.

The working tree is copied once into a temporary folder (never touched in place); each mutant
rewrites one file there, runs `python -m pytest -x -q` on the mapped files (no `-x` for issue
mutants) with a time limit, and restores it. Tests that already fail on the unmutated copy are
deselected (listed in the report). A mutant is *killed* when pytest fails or times out and
*survives* when every test passes. Prints a table per module and the survivors; writes JSON.

    python benchmarks/mutants.py                            # all modules, 20 mutants each + issue
    python benchmarks/mutants.py --modules identity,align --limit 5 --no-issue
    python benchmarks/mutants.py --issue-only               # the named mutants only
    python benchmarks/mutants.py --list                     # show the mutants, run nothing
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"  # the same folder as record.RESULTS


@dataclass(frozen=True)
class Module:
    """A source file, the functions mutants are generated in, and the tests that guard it."""

    path: str
    functions: tuple[str, ...]
    tests: tuple[str, ...]


MODULES: dict[str, Module] = {
    "eval.metrics": Module(
        "faceres/eval/metrics.py",
        (
            "best_threshold",
            "accuracy",
            "kfold_accuracy",
            "roc_curve",
            "roc_auc",
            "tar_at_far",
            "best_balanced_accuracy",
            "called_metrics",
            "choose_band",
            "risk_coverage",
        ),
        ("tests/test_eval_identity.py",),
    ),
    "eval.lfw": Module("faceres/eval/lfw.py", ("pair_metrics",), ("tests/test_eval_identity.py",)),
    "identity": Module("faceres/identity/__init__.py", ("pick_face",), ("tests/test_verify.py",)),
    "verdict": Module("faceres/identity/verdict.py", ("decide",), ("tests/test_verify.py",)),
    "face": Module("faceres/face/pipeline.py", ("embed_views",), ("tests/test_verify.py",)),
    "align": Module(
        "faceres/face/align.py",
        (
            "dlib_mean_face_yunet5",
            "dlib_chip_template",
            "model_template",
            "similarity_transform",
            "align",
        ),
        ("tests/test_alignment.py",),
    ),
    "registry": Module(
        "faceres/registry/resolve.py",
        ("sha256_file", "_hash_folder", "_check_folder", "verify"),
        ("tests/test_registry.py",),
    ),
    # issue mutants only (no generated ones: their functions need models or a GPU)
    "app": Module("faceres/app/expression_tab.py", (), ("tests/test_app.py",)),
    "train": Module(
        "faceres/train/classifier.py",
        (),
        ("tests/test_train.py", "tests/test_expression_models.py"),
    ),
}


@dataclass(frozen=True)
class IssueMutant:
    """A named mistake from issue 12: `old` replaced by `new` (exactly once) in `path`."""

    name: str
    description: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


VERIFY_TESTS = ("tests/test_verify.py", "tests/test_eval_identity.py", "tests/test_app.py")
ISSUE_MUTANTS: tuple[IssueMutant, ...] = (
    IssueMutant(
        "no-per-view-l2",
        "face.pipeline.embed_crops returns raw (un-normalised) embeddings, so embed_views sums "
        "views of unequal length",
        "faceres/face/pipeline.py",
        "    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)",
        "    return out",
        VERIFY_TESTS,
    ),
    IssueMutant(
        "verify-band-zero",
        "verify ignores the calibrated band (band = 0: never 'uncertain')",
        "faceres/identity/verdict.py",
        'band = float(meta.get("band", DEFAULT_BAND))',
        "band = 0.0",
        VERIFY_TESTS,
    ),
    IssueMutant(
        "choose-band-zero",
        "eval.metrics.choose_band always returns 0 (never 'uncertain')",
        "faceres/eval/metrics.py",
        "            return float(band)",
        "            return 0.0",
        ("tests/test_eval_identity.py",),
    ),
    IssueMutant(
        "quality-gate-ignored",
        "verify ignores the quality gate's reasons",
        "faceres/identity/verdict.py",
        '    if reasons:\n        return "uncertain"',
        '    if False:\n        return "uncertain"',
        VERIFY_TESTS,
    ),
    IssueMutant(
        "kfold-threshold-sees-test-fold",
        "kfold_accuracy picks each fold's threshold on all folds, the test fold included",
        "faceres/eval/metrics.py",
        "best_threshold(scores[~test], labels[~test])",
        "best_threshold(scores, labels)",
        ("tests/test_eval_identity.py",),
    ),
    IssueMutant(
        "tar-at-far-zero",
        "tar_at_far returns a TAR of 0",
        "faceres/eval/metrics.py",
        "    return float(tpr[k]), float(thresholds[k])",
        "    return 0.0, float(thresholds[k])",
        ("tests/test_eval_identity.py",),
    ),
    IssueMutant(
        "app-expression-ignores-model",
        "the app's expression handler runs the default model whatever model was chosen",
        "faceres/app/expression_tab.py",
        "r = analyze_expression(image, model=model or None, detector=detector or None)",
        "r = analyze_expression(image, model=None, detector=detector or None)",
        ("tests/test_app.py", "tests/test_expression_api.py"),
    ),
    IssueMutant(
        "train-no-optimiser-step",
        "the training loop never calls optimiser.step() (weights never change)",
        "faceres/train/classifier.py",
        "            norms.append(grad_norms(model, names))\n        opt.step()\n",
        "            norms.append(grad_norms(model, names))\n        pass\n",
        ("tests/test_train.py", "tests/test_expression_models.py", "tests/test_study.py"),
    ),
    IssueMutant(
        "align-with-other-landmarks",
        "the face pipeline aligns each image with the other image's landmarks",
        "faceres/face/pipeline.py",
        "for image, found, picked in zip(images, faces, numbers, strict=True)",
        "for image, found, picked in zip(images, faces[::-1], numbers, strict=True)",
        VERIFY_TESTS,
    ),
    IssueMutant(
        "tta-vertical-flip-identity",
        "identity test-time augmentation flips vertically (upside down) instead of mirroring",
        "faceres/face/pipeline.py",
        "np.concatenate([batch, batch[..., ::-1]])",
        "np.concatenate([batch, batch[..., ::-1, :]])",
        VERIFY_TESTS,
    ),
    IssueMutant(
        "tta-vertical-flip-expression",
        "expression test-time augmentation flips vertically instead of mirroring",
        "faceres/models/fer_resnet.py",
        "x = torch.cat([x, x.flip(3)])",
        "x = torch.cat([x, x.flip(2)])",
        ("tests/test_train.py", "tests/test_expression_models.py", "tests/test_expression_api.py"),
    ),
    IssueMutant(
        "tta-vertical-flip-app-expression",
        "the app's expression classifier flips vertically instead of mirroring",
        "faceres/expression/__init__.py",
        "np.concatenate([x, x[..., ::-1]])",
        "np.concatenate([x, x[..., ::-1, :]])",
        ("tests/test_expression_api.py",),
    ),
    IssueMutant(
        "onnx-cache-unchecked",
        "a cached ONNX file is run without checking its sha256 against its sidecar",
        "faceres/registry/onnx.py",
        "if sha256 is not None and sha256_file(path) != sha256:",
        "if False:",
        ("tests/test_cold_start.py",),
    ),
    IssueMutant(
        "onnx-stale-weights",
        "an ONNX file exported from other weights than the index pins is run",
        "faceres/registry/onnx.py",
        'model.weights_sha256 == files.get("model.safetensors")',
        "True",
        ("tests/test_cold_start.py", "tests/test_bad_inputs.py"),
    ),
    IssueMutant(
        "onnx-halves-inexact-weights",
        "ONNX export stores every weight in float16, even those float16 cannot hold",
        "faceres/registry/export.py",
        "        if not np.array_equal(half.astype(np.float32), values):\n            continue\n",
        "",
        ("tests/test_cold_start.py",),
    ),
    IssueMutant(
        "tune-reads-view2",
        "`faceres eval lfw --tune` tunes the template on View 2's images instead of View 1's",
        "faceres/eval/lfw.py",
        "paths = lists.paths([lists.dev_train, lists.dev_test])",
        "paths = lists.paths([lists.view2])",
        ("tests/test_eval_identity.py",),
    ),
)


# -- generating mutants --------------------------------------------------------------------------


@dataclass
class Mutant:
    """One planted bug: `source` is the whole mutated file."""

    id: str
    module: str
    path: str
    function: str
    line: int
    kind: str
    description: str
    tests: tuple[str, ...]
    source: str = field(repr=False, default="")
    exitfirst: bool = True
    status: str = "pending"
    failed_tests: list[str] = field(default_factory=list)
    seconds: float = 0.0


_CMP_SWAP = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}
_BIN_SWAP = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Div,
    ast.Mod: ast.FloorDiv,
    ast.Pow: ast.Mult,
    ast.LShift: ast.RShift,
    ast.RShift: ast.LShift,
    ast.BitAnd: ast.BitOr,
    ast.BitOr: ast.BitAnd,
}
_CONVERSIONS = {
    "float",
    "int",
    "str",
    "list",
    "tuple",
    "dict",
    "set",
    "bool",
    "sorted",
    "Path",
    "np.asarray",
    "np.array",
}
_QUIET_CALLS = ("log.", "logger.", "logging.", "print")
_RETURN_BY_TYPE = {
    "float": "0.0",
    "int": "0",
    "str": "''",
    "bool": "False",
    "dict": "{}",
    "list": "[]",
}


_SYMBOLS = {
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.In: "in",
    ast.NotIn: "not in",
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitAnd: "&",
    ast.BitOr: "|",
}


def _op(op: ast.AST) -> str:
    """Source symbol of an operator node."""
    return _SYMBOLS[type(op)]


def _short(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


class _Span:
    """Byte offsets of AST nodes in a source file (ast columns count UTF-8 bytes)."""

    def __init__(self, source: str):
        self.data = source.encode()
        self.starts = [0]
        for line in self.data.splitlines(keepends=True):
            self.starts.append(self.starts[-1] + len(line))

    def of(self, node: ast.AST) -> tuple[int, int]:
        return (
            self.starts[node.lineno - 1] + node.col_offset,
            self.starts[node.end_lineno - 1] + node.end_col_offset,
        )

    def text(self, node: ast.AST) -> str:
        start, end = self.of(node)
        return self.data[start:end].decode()

    def replace(self, node: ast.AST, new: str) -> str:
        start, end = self.of(node)
        return (self.data[:start] + new.encode() + self.data[end:]).decode()


def _function_nodes(fn: ast.FunctionDef):
    """The nodes of a function's body, without its docstring, annotations or f-string parts."""
    body = fn.body
    if (
        body
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
        and isinstance(body[0].value.value, str)
    ):
        body = body[1:]
    stack = list(reversed(body))
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.JoinedStr):
            continue
        children = [
            c
            for c in ast.iter_child_nodes(node)
            if not isinstance(c, ast.arguments | ast.expr_context)
        ]
        if isinstance(node, ast.FunctionDef | ast.Lambda):
            children = node.body if isinstance(node.body, list) else [node.body]
        stack.extend(reversed(children))


def _expression_mutants(node: ast.AST) -> list[tuple[str, ast.AST]]:
    """(kind, replacement node) for an expression node."""
    out: list[tuple[str, ast.AST]] = []
    if isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            if type(op) in _CMP_SWAP:
                new = copy.deepcopy(node)
                new.ops[i] = _CMP_SWAP[type(op)]()
                out.append((f"compare {_op(op)} → {_op(new.ops[i])}", new))
    elif isinstance(node, ast.BinOp) and type(node.op) in _BIN_SWAP:
        new = copy.deepcopy(node)
        new.op = _BIN_SWAP[type(node.op)]()
        out.append((f"arithmetic {_op(node.op)} → {_op(new.op)}", new))
    elif isinstance(node, ast.BoolOp):
        new = copy.deepcopy(node)
        new.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        out.append(("boolean and ↔ or", new))
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not | ast.USub | ast.Invert):
        symbol = {ast.Not: "not", ast.USub: "-", ast.Invert: "~"}[type(node.op)]
        out.append((f"drop unary {symbol}", node.operand))
    elif isinstance(node, ast.Constant) and type(node.value) in (int, float, bool):
        value = (not node.value) if isinstance(node.value, bool) else node.value + 1
        out.append((f"constant {node.value!r} → {value!r}", ast.Constant(value)))
    elif (
        isinstance(node, ast.Call)
        and len(node.args) == 1
        and not node.keywords
        and not isinstance(node.args[0], ast.Starred)
        and ast.unparse(node.func) not in _CONVERSIONS
    ):
        out.append((f"call {ast.unparse(node.func)}(x) → x", node.args[0]))
    return out


def _statement_mutants(node: ast.stmt, returns: str) -> list[tuple[str, str]]:
    """(kind, replacement source) for a statement node."""
    if isinstance(node, ast.Return) and node.value is not None:
        if isinstance(node.value, ast.Constant) and node.value.value in (None, 0, 0.0, "", False):
            return []
        return [("return value replaced", f"return {_RETURN_BY_TYPE.get(returns, 'None')}")]
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        if ast.unparse(node.value.func).startswith(_QUIET_CALLS):
            return []
        return [("remove call", "pass")]
    if isinstance(node, ast.If) and len(node.body) == 1 and isinstance(node.body[0], ast.Raise):
        return []  # the same as removing the raise
    if isinstance(node, ast.AugAssign | ast.Raise | ast.If | ast.Continue | ast.Break):
        return [(f"remove {type(node).__name__.lower()}", "pass")]
    if isinstance(node, ast.Assign) and all(
        isinstance(t, ast.Subscript | ast.Attribute) for t in node.targets
    ):
        return [("remove item assignment", "pass")]
    return []


def generate(name: str, module: Module, root: Path) -> list[Mutant]:
    """Every generated mutant of `module`'s functions, in file order, duplicates and mutants
    that do not compile dropped."""
    source = (root / module.path).read_text(encoding="utf-8")
    tree = ast.parse(source)
    span = _Span(source)
    seen = {source}
    mutants: list[Mutant] = []
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    missing = [f for f in module.functions if f not in functions]
    if missing:
        print(f"warning: {module.path} has no function {', '.join(missing)}", file=sys.stderr)
    for fname in module.functions:
        fn = functions.get(fname)
        if fn is None:
            continue
        returns = {}  # each return's function's annotation, nested functions' own
        for f in ast.walk(fn):
            if isinstance(f, ast.FunctionDef):
                kind = ast.unparse(f.returns).split("[")[0] if f.returns else ""
                returns.update({id(r): kind for r in ast.walk(f) if isinstance(r, ast.Return)})
        # a statement's own call is removed by "remove call"; an exception's by "remove raise"
        covered = {
            id(n.value if isinstance(n, ast.Expr) else n.exc)
            for n in ast.walk(fn)
            if isinstance(n, ast.Expr | ast.Raise)
        }
        for node in _function_nodes(fn):
            changes: list[tuple[str, str]] = []
            if isinstance(node, ast.stmt):
                changes = _statement_mutants(node, returns.get(id(node), ""))
            elif isinstance(node, ast.expr) and id(node) not in covered:
                changes = [
                    (kind, f"({ast.unparse(new)})") for kind, new in _expression_mutants(node)
                ]
            for kind, new_text in changes:
                mutated = span.replace(node, new_text)
                if mutated in seen:
                    continue
                try:
                    compile(mutated, module.path, "exec")
                except SyntaxError:
                    continue
                seen.add(mutated)
                old = _short(span.text(node))
                mutants.append(
                    Mutant(
                        id=f"{name}:{fname}:L{node.lineno}:{len(mutants)}",
                        module=name,
                        path=module.path,
                        function=fname,
                        line=node.lineno,
                        kind=kind,
                        description=f"{old}  →  {_short(new_text)}",
                        tests=module.tests,
                        source=mutated,
                    )
                )
    return mutants


def sample(mutants: list[Mutant], limit: int, seed: int) -> list[Mutant]:
    """A seeded sample of at most `limit` mutants (all when `limit` is 0), in file order."""
    if limit <= 0 or len(mutants) <= limit:
        return mutants
    chosen = set(random.Random(seed).sample(range(len(mutants)), limit))
    return [m for i, m in enumerate(mutants) if i in chosen]


def issue_mutant(spec: IssueMutant, root: Path) -> Mutant:
    """The patched file of a named mutant; status "not applied" when `old` is not found
    exactly once (the code moved on: update the patch)."""
    source = (root / spec.path).read_text(encoding="utf-8")
    count = source.count(spec.old)
    module = next((k for k, m in MODULES.items() if m.path == spec.path), spec.path)
    line = source[: source.find(spec.old)].count("\n") + 1 if count else 0
    mutant = Mutant(
        id=f"issue:{spec.name}",
        module=module,
        path=spec.path,
        function="",
        line=line,
        kind="issue mutant",
        description=spec.description,
        tests=spec.tests,
        exitfirst=False,
    )
    if count != 1:
        mutant.status = f"not applied ({count} matches)"
    else:
        mutant.source = source.replace(spec.old, spec.new)
    return mutant


# -- running -------------------------------------------------------------------------------------


def scratch_copy(src: Path) -> Path:
    """The working tree copied into a temporary folder (no .git, caches or build output)."""
    dest = Path(tempfile.mkdtemp(prefix="faceres-mutants-")) / "repo"
    shutil.copytree(
        src,
        dest,
        ignore=shutil.ignore_patterns(
            ".git",
            "__pycache__",
            "*.pyc",
            ".pytest_cache",
            ".ruff_cache",
            "*.egg-info",
            "runs",
            "out",
            ".venv",
            "build",
            "dist",
            "results",
        ),
    )
    return dest


def child_env(scratch: Path) -> dict[str, str]:
    """The environment of each pytest run: the scratch copy's `faceres` first on the path, the
    research data of the real checkout, no bytecode (a mutant must never meet a stale .pyc)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(scratch), str(scratch / "tests"), env.get("PYTHONPATH", "")]
    ).rstrip(os.pathsep)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("FACERES_REGISTRY", None)
    if "FACERES_DATA" not in env:
        data = ROOT.parent / "shared" / "data"
        if data.is_dir():
            env["FACERES_DATA"] = str(data)
    return env


def run_pytest(
    scratch: Path,
    tests: list[str],
    deselect: list[str],
    exitfirst: bool,
    timeout: float,
    env: dict[str, str],
) -> tuple[str, list[str], float]:
    """("passed" | "failed" | "timeout" | "rc N", failed test ids, seconds)."""
    report = scratch.parent / "junit.xml"
    report.unlink(missing_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--no-header",
        f"--junitxml={report}",
        "-o",
        f"timeout={int(timeout)}",
        *tests,
    ]
    if exitfirst:
        cmd.insert(4, "-x")
    for test in deselect:
        cmd += ["--deselect", test]
    start = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        cwd=scratch,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return "timeout", [], time.monotonic() - start
    seconds = time.monotonic() - start
    failed = _junit_failures(report, scratch)
    outcome = {0: "passed", 1: "failed"}.get(rc, f"rc {rc}")
    return outcome, failed, seconds


def _junit_failures(report: Path, scratch: Path) -> list[str]:
    """Test ids ("tests/test_x.py::test_y[param]") that failed or errored in a JUnit report."""
    if not report.is_file():
        return []
    failed = []
    for case in ET.parse(report).getroot().iter("testcase"):
        if case.find("failure") is None and case.find("error") is None:
            continue
        parts = case.get("classname", "").split(".")
        cut = next(
            (
                k
                for k in range(len(parts), 0, -1)
                if (scratch / Path(*parts[:k])).with_suffix(".py").is_file()
            ),
            len(parts),
        )
        node = "::".join(["/".join(parts[:cut]) + ".py", *parts[cut:], case.get("name", "")])
        failed.append(node)
    return failed


def baselines(
    mutants: list[Mutant], scratch: Path, timeout: float, env: dict[str, str]
) -> dict[str, list[str] | None]:
    """Per test file: the tests that fail on the unmutated copy (deselected in mutant runs), or
    None when the file does not run to the end (it is left out of mutant runs)."""
    out: dict[str, list[str] | None] = {}
    for test in dict.fromkeys(t for m in mutants if m.status == "pending" for t in m.tests):
        if not (scratch / test).is_file():
            continue
        outcome, failed, seconds = run_pytest(scratch, [test], [], False, timeout * 2, env)
        usable = outcome in ("passed", "failed")
        out[test] = failed if usable else None
        note = (
            (f"{len(failed)} failing, deselected: {', '.join(failed)}" if failed else "green")
            if usable
            else f"{outcome}: left out"
        )
        print(f"baseline {test}: {note} ({seconds:.0f}s)", flush=True)
    return out


def run(
    mutants: list[Mutant],
    scratch: Path,
    timeout: float,
    env: dict[str, str],
    baseline: dict[str, list[str] | None],
) -> None:
    """Run every mutant in place in `scratch`, restoring each file afterwards."""
    for i, mutant in enumerate(mutants, 1):
        if mutant.status != "pending":
            print(f"[{i}/{len(mutants)}] {mutant.id}: {mutant.status}", flush=True)
            continue
        tests = [t for t in mutant.tests if baseline.get(t) is not None]
        if not tests:
            mutant.status = "no tests"
            print(f"[{i}/{len(mutants)}] {mutant.id}: {mutant.status}", flush=True)
            continue
        deselect = [d for t in tests for d in baseline[t]]
        path = scratch / mutant.path
        original = path.read_text(encoding="utf-8")
        try:
            path.write_text(mutant.source, encoding="utf-8")
            outcome, failed, seconds = run_pytest(
                scratch, tests, deselect, mutant.exitfirst, timeout, env
            )
        finally:
            path.write_text(original, encoding="utf-8")
        mutant.seconds = round(seconds, 1)
        mutant.failed_tests = failed
        mutant.status = {"passed": "survived", "failed": "killed"}.get(
            outcome, f"killed ({outcome})"
        )
        print(
            f"[{i}/{len(mutants)}] {mutant.status:8s} {mutant.seconds:5.1f}s  {mutant.id}  "
            f"{mutant.kind}: {mutant.description}",
            flush=True,
        )


# -- reporting -----------------------------------------------------------------------------------


def summarise(mutants: list[Mutant]) -> dict[str, dict]:
    """Killed / survived / not run per module (generated mutants) and the mutation score."""
    table: dict[str, dict] = {}
    for m in mutants:
        if m.kind == "issue mutant":
            continue
        row = table.setdefault(m.module, {"mutants": 0, "killed": 0, "survived": 0, "not_run": 0})
        row["mutants"] += 1
        if m.status.startswith("killed"):
            row["killed"] += 1
        elif m.status == "survived":
            row["survived"] += 1
        else:
            row["not_run"] += 1
    for row in table.values():
        ran = row["killed"] + row["survived"]
        row["score"] = round(row["killed"] / ran, 3) if ran else None
    return table


def print_report(table: dict[str, dict], mutants: list[Mutant]) -> None:
    print(f"\n{'module':<16}{'mutants':>8}{'killed':>8}{'survived':>10}{'not run':>9}{'score':>8}")
    for name, row in table.items():
        score = f"{row['score']:.0%}" if row["score"] is not None else "–"
        print(
            f"{name:<16}{row['mutants']:>8}{row['killed']:>8}{row['survived']:>10}"
            f"{row['not_run']:>9}{score:>8}"
        )
    issue = [m for m in mutants if m.kind == "issue mutant"]
    if issue:
        print("\nissue mutants")
        for m in issue:
            killers = f": {', '.join(m.failed_tests)}" if m.failed_tests else ""
            print(f"  {m.status:<24} {m.id.removeprefix('issue:')}{killers}")
    survivors = [m for m in mutants if m.status == "survived" and m.kind != "issue mutant"]
    if survivors:
        print("\nsurvivors")
        for m in survivors:
            print(f"  {m.path}:{m.line} {m.function}: {m.kind}: {m.description}")


def collect(args: argparse.Namespace, names: list[str], root: Path) -> list[Mutant]:
    """The generated (sampled) and named mutants of the tree at `root`."""
    mutants: list[Mutant] = []
    if not args.issue_only:
        for name in names:
            mutants += sample(generate(name, MODULES[name], root), args.limit, args.seed)
    if not args.no_issue:
        mutants += [issue_mutant(spec, root) for spec in ISSUE_MUTANTS]
    return mutants


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--modules",
        default=",".join(k for k, m in MODULES.items() if m.functions),
        help=f"comma-separated, of: {', '.join(MODULES)}",
    )
    parser.add_argument(
        "--limit", type=int, default=20, help="generated mutants per module (seeded sample; 0: all)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--timeout",
        type=float,
        default=180,
        help="seconds per pytest run (a mutant that hangs counts as killed)",
    )
    parser.add_argument("--issue-only", action="store_true", help="only the named mutants")
    parser.add_argument("--no-issue", action="store_true", help="no named mutants")
    parser.add_argument("--list", action="store_true", help="print the mutants and stop")
    parser.add_argument("--keep", action="store_true", help="keep the scratch copy")
    parser.add_argument(
        "--json",
        type=Path,
        default=RESULTS / "mutants.json",
        help="where the report goes (default: benchmarks/results/mutants.json)",
    )
    args = parser.parse_args(argv)

    names = [n.strip() for n in args.modules.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODULES]
    if unknown:
        parser.error(f"unknown module(s) {', '.join(unknown)}; choose from {', '.join(MODULES)}")
    if args.list:
        for m in collect(args, names, ROOT):
            print(
                f"{m.id:<44} {m.kind}: {m.description}"
                + (f" [{m.status}]" if m.status != "pending" else "")
            )
        return 0

    started = time.monotonic()
    scratch = scratch_copy(ROOT)
    try:
        mutants = collect(args, names, scratch)  # from the copy that is run
        print(f"scratch copy: {scratch}; {len(mutants)} mutants", flush=True)
        env = child_env(scratch)
        check = subprocess.run(
            [sys.executable, "-c", "import faceres; print(faceres.__file__)"],
            cwd=scratch,
            env=env,
            capture_output=True,
            text=True,
        )
        if not check.stdout.strip().startswith(str(scratch)):
            print(
                f"the scratch copy's faceres is not the one imported: {check.stdout}{check.stderr}",
                file=sys.stderr,
            )
            return 2
        baseline = baselines(mutants, scratch, args.timeout, env)
        run(mutants, scratch, args.timeout, env, baseline)
    finally:
        if not args.keep:
            shutil.rmtree(scratch.parent, ignore_errors=True)

    table = summarise(mutants)
    print_report(table, mutants)
    report = {
        "command": " ".join(["python benchmarks/mutants.py", *(argv or sys.argv[1:])]),
        "seed": args.seed,
        "limit": args.limit,
        "timeout_s": args.timeout,
        "minutes": round((time.monotonic() - started) / 60, 1),
        "baseline_failures_deselected": {t: f for t, f in baseline.items() if f},
        "test_files_left_out": [t for t, f in baseline.items() if f is None],
        "modules": {
            n: {
                "file": MODULES[n].path,
                "functions": list(MODULES[n].functions),
                "tests": list(MODULES[n].tests),
                **table.get(n, {}),
            }
            for n in names
        },
        "issue_mutants": [
            {
                "name": m.id.removeprefix("issue:"),
                "description": m.description,
                "file": m.path,
                "line": m.line,
                "status": m.status,
                "failed_tests": m.failed_tests,
                "tests": list(m.tests),
            }
            for m in mutants
            if m.kind == "issue mutant"
        ],
        "mutants": [
            {k: v for k, v in asdict(m).items() if k not in ("source", "exitfirst")}
            for m in mutants
            if m.kind != "issue mutant"
        ],
        "survivors": [m.id for m in mutants if m.status == "survived"],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
