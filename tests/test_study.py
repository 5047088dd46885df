"""The depth study read back from the committed registry, and its command."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from faceres import registry
from faceres.study.depth import DEPTH_SWEEP, depth_report, findings, format_table, load_report

SWEEP = [m["name"] for m in DEPTH_SWEEP["models"]]
needs_study = pytest.mark.skipif(
    not all(any(e["name"] == n for e in registry.list_models()) for n in SWEEP),
    reason="the depth study's models are not in the registry (faceres study depth)")


@needs_study
def test_report_rows_come_from_the_registry():
    rows = depth_report()
    assert [r["name"] for r in rows] == SWEEP
    for row in rows:
        history = json.loads((registry.resolve(row["name"]) / "training.json").read_text())
        assert row["epochs"] == history["config"]["epochs"] == len(history["epochs"])
        assert row["train_error_final"] == history["train_error_final"]
        assert len(history["grad_norms_init"]) == len(history["layers"])
    # one recipe per pair: the twins share epochs, batch size and learning rate
    by_name = {r["name"]: r for r in rows}
    for m in DEPTH_SWEEP["models"]:
        a, b = by_name[m["name"]], by_name[m["twin"]]
        assert (a["epochs"], a["lr"]) == (b["epochs"], b["lr"])
    table = format_table(rows)
    assert table.count("\n") == len(rows) + 1 and "plain56-fer" in table


@needs_study
def test_findings_and_plots(tmp_path, monkeypatch):
    monkeypatch.setenv("FACERES_CACHE", str(tmp_path))
    report = load_report()
    assert len(report["plots"]) == 4 and all(p.endswith(".png") for p in report["plots"])
    text = " ".join(findings(report["table"]))
    assert "plain-56" in text and "ResNet-56" in text and "no BatchNorm" in text


@needs_study
def test_cli_report_json():
    out = subprocess.run([sys.executable, "-m", "faceres", "study", "depth", "--report",
                          "--json"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert {r["name"] for r in rows} == set(SWEEP)


def test_sweep_commands_train_into_the_registry_with_one_recipe_per_pair(tiny_registry):
    from faceres.study.depth import sweep_commands

    cmds = {c[c.index("--out") + 1]: c for c in sweep_commands(dict(DEPTH_SWEEP, time_budget=60))}
    assert set(cmds) == {str(tiny_registry / "models" / n) for n in SWEEP}

    def recipe(cmd: list[str]) -> list[str]:
        return [cmd[cmd.index(flag) + 1] for flag in ("--epochs", "--batch-size", "--lr", "--seed",
                                                        "--time-budget")]

    for m in DEPTH_SWEEP["models"]:
        a = cmds[str(tiny_registry / "models" / m["name"])]
        b = cmds[str(tiny_registry / "models" / m["twin"])]
        assert recipe(a) == recipe(b) and a[a.index("--twin") + 1] == m["twin"]
