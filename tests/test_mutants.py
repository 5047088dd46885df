"""The mutation script's named mutants still apply to the code (a reformat or a rename would
otherwise turn them into silent "not applied" rows)."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from faceres.settings import PROJECT_ROOT


@pytest.fixture(scope="module")
def mutants():
    path = PROJECT_ROOT / "benchmarks" / "mutants.py"
    spec = importlib.util.spec_from_file_location("faceres_mutants", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["faceres_mutants"] = module
    spec.loader.exec_module(module)
    return module


def test_every_named_mutant_matches_its_code_once(mutants):
    for mutant in mutants.ISSUE_MUTANTS:
        source = (PROJECT_ROOT / mutant.path).read_text(encoding="utf-8")
        assert source.count(mutant.old) == 1, f"{mutant.name} no longer applies to {mutant.path}"


def test_every_mutated_function_exists(mutants):
    for name, module in mutants.MODULES.items():
        source = (PROJECT_ROOT / module.path).read_text(encoding="utf-8")
        missing = [f for f in module.functions if f"def {f}(" not in source]
        assert not missing, f"{name}: {missing} not in {module.path}"
