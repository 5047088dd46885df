"""The README is the newcomer's door (short, its links alive); the rest is a docs site that
builds with `mkdocs build --strict` (API pages generated from the docstrings)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from faceres.settings import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"
MAX_README_LINES = 250


def test_the_readme_is_short_and_has_the_two_commands():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= MAX_README_LINES
    assert "pip install -e . && python app.py" in text
    assert (
        'pip install -e ".[test]" && ruff check . && ruff format --check . && python -m pytest -q'
        in text
    )


def test_every_link_of_the_readme_leads_somewhere():
    text = README.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#]+)\)", text)
    assert targets
    missing = [t for t in targets if not t.startswith("http") and not (PROJECT_ROOT / t).exists()]
    assert not missing, missing


def test_the_docs_site_builds_strictly(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    api = (tmp_path / "site" / "api" / "index.html").read_text(encoding="utf-8")
    assert "analyze_expression" in api and "PhotoStore" in api  # from the docstrings
