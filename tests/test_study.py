"""The depth study read back from the committed registry, and its command."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest
import timm
import torch
from torch import nn

from faceres import registry
from faceres.app.studies import depth_figures, load_study, study_file
from faceres.study.depth import (
    DEPTH_SWEEP,
    RECIPE_KEYS,
    depth_report,
    findings,
    format_table,
    study_data,
)

SWEEP = [m["name"] for m in DEPTH_SWEEP["models"]]
needs_study = pytest.mark.skipif(
    not study_file("depth").is_file(),
    reason="no depth study is committed in the registry (faceres study depth --report "
    "--update-registry)",
)


def committed() -> tuple[dict, dict]:
    """The committed study and the sweep config of its models (name, architecture, protocol)."""
    study = load_study("depth")
    models = [{"name": r["name"], "arch": r["arch"]} for r in study["rows"]]
    return study, {"protocol": study["protocol"], "models": models}


@needs_study
def test_the_committed_study_is_what_the_registry_gives():
    """What the app shows (registry/studies/depth/depth.json) is what the research code computes
    from the models' training.json files today: no stale table, curve or finding."""
    study, config = committed()
    fresh = json.loads(json.dumps(study_data(depth_report(config), config)))
    assert fresh == study


@needs_study
def test_report_rows_come_from_the_registry():
    study, config = committed()
    rows = depth_report(config)
    assert [r["name"] for r in rows] == [m["name"] for m in config["models"]]
    for row in rows:
        history = json.loads((registry.resolve(row["name"]) / "training.json").read_text())
        assert row["epochs"] == history["config"]["epochs"] == len(history["epochs"])
        assert row["train_error_final"] == history["train_error_final"]
        assert len(history["grad_norms_init"]) == len(history["layers"])
    # one recipe per pair: the twins share epochs, batch size and learning rate
    by_name = {r["name"]: r for r in rows}
    for row in rows:
        a, b = row, by_name[registry.get_entry(row["name"])["twin"]]
        assert (a["epochs"], a["lr"]) == (b["epochs"], b["lr"])
    table = format_table(rows)
    assert table.count("\n") == len(rows) + 1 and "plain56" in table


def has_shortcuts(model: nn.Module) -> bool:
    """Whether the first block of `model` adds its input back: with its last convolution zeroed
    (and that BatchNorm, if any, made to pass zeros), a residual block returns ReLU(input) and a
    plain block returns zeros."""
    block = copy.deepcopy(model.layer1[0]).float().eval()
    with torch.no_grad():
        block.conv2.weight.zero_()
        if isinstance(block.bn2, nn.BatchNorm2d):
            block.bn2.bias.zero_()
            block.bn2.running_mean.zero_()
        x = torch.rand(2, block.conv1.in_channels, 12, 12) + 0.1
        out = block(x)
    assert torch.allclose(out, x) or not out.any(), "neither a residual nor a plain block"
    return bool(out.any())


@needs_study
def test_report_describes_the_registered_networks():
    """Depth, shortcuts and BatchNorm of each row, found again in the registered network: its
    weight layers on the main path (3×3 convolutions and the classifier; 1×1 projections are
    shortcuts), whether a block adds its input back, and whether it has BatchNorm layers."""
    for row in depth_report():
        model = registry.load(row["name"], device="cpu").model
        layers = [
            m
            for m in model.modules()
            if isinstance(m, nn.Linear) or (isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3))
        ]
        assert row["depth"] == len(layers), row["name"]
        assert row["batchnorm"] == any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
        assert row["residual"] == has_shortcuts(model), row["name"]


@needs_study
def test_findings_and_plots():
    import matplotlib.pyplot as plt

    study, config = committed()
    drawn = depth_figures(study)
    assert list(drawn)[0] == "training_error.png" and len(drawn) == 4
    lines = drawn["training_error.png"].axes[0].get_lines()
    assert len(lines) == sum(r["batchnorm"] for r in study["rows"])
    plt.close("all")
    text = " ".join(findings(depth_report(config)))
    assert "plain-56" in text and "ResNet-56" in text and "no BatchNorm" in text


@needs_study
def test_cli_report_json(tmp_path):
    study, config = committed()
    (tmp_path / "sweep.json").write_text(json.dumps(config))
    out = subprocess.run(
        [sys.executable, "-m", "faceres", "study", "depth", "--report", "--json"]
        + ["--config", str(tmp_path / "sweep.json")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    printed = json.loads(out.stdout)
    assert printed == {"protocol": study["protocol"], "rows": study["rows"]}
    assert all("epochs" in r and "cpu_hours" in r for r in printed["rows"])


def test_sweep_commands_train_into_the_registry_with_one_recipe_per_pair(tiny_registry):
    from faceres.study.depth import sweep_commands

    cmds = {c[c.index("--out") + 1]: c for c in sweep_commands(dict(DEPTH_SWEEP, time_budget=60))}
    assert set(cmds) == {str(tiny_registry / "models" / n) for n in SWEEP}

    def recipe(cmd: list[str]) -> list[str]:
        return [
            cmd[cmd.index(flag) + 1]
            for flag in (
                "--epochs",
                "--batch-size",
                "--lr",
                "--seed",
                "--augment",
                "--label-smoothing",
                "--time-budget",
            )
        ]

    for m in DEPTH_SWEEP["models"]:
        a = cmds[str(tiny_registry / "models" / m["name"])]
        b = cmds[str(tiny_registry / "models" / m["twin"])]
        assert recipe(a) == recipe(b) and a[a.index("--twin") + 1] == m["twin"]


def test_sweep_skips_models_the_registry_holds_with_the_same_recipe(tiny_registry):
    """A model already published with its recipe is not trained again; a changed recipe is."""
    from faceres.study.depth import sweep_commands

    name = DEPTH_SWEEP["models"][0]["name"]
    folder = tiny_registry / "models" / name
    registry.save_model(
        timm.create_model(DEPTH_SWEEP["models"][0]["arch"]),
        name,
        task="expression",
        config={},
        card="",
        metrics={},
        files={"training.json": json.dumps({"config": {k: DEPTH_SWEEP[k] for k in RECIPE_KEYS}})},
    )
    outs = [c[c.index("--out") + 1] for c in sweep_commands(DEPTH_SWEEP)]
    assert str(folder) not in outs and len(outs) == len(SWEEP) - 1
    outs = [c[c.index("--out") + 1] for c in sweep_commands(dict(DEPTH_SWEEP, epochs=41))]
    assert str(folder) in outs


def test_findings_follow_the_numbers_across_four_depths(monkeypatch):
    """With four depths per kind the findings say, from the numbers, whether training error
    moves one way with depth (hand-made rows; no registry)."""
    from faceres.study import depth

    def row(kind: str, d: int, err: float) -> dict:
        name = f"{kind}{d}"
        return {
            "name": name,
            "depth": d,
            "residual": kind == "resnet",
            "batchnorm": True,
            "epochs": 40,
            "train_error_final": err,
        }

    rows = [row("plain", d, e) for d, e in ((20, 0.30), (32, 0.33), (44, 0.36), (56, 0.40))]
    rows += [row("resnet", d, e) for d, e in ((20, 0.25), (32, 0.21), (44, 0.22), (56, 0.18))]
    monkeypatch.setattr(depth, "_history", lambda name: {"grad_norms_init": [1.0]})
    plain, resnet = depth.findings(rows)
    assert "plain-56 ends with a training error of 40.0% vs 30.0%" in plain
    assert "(+10.0 points): higher: the deeper net degrades" in plain
    assert "By depth (20: 30.0%, 32: 33.0%, 44: 36.0%, 56: 40.0%): rising at every step." in plain
    assert "ResNet-56 ends with a training error of 18.0% vs 25.0%" in resnet
    assert "(-7.0 points): lower." in resnet and "He et al." not in resnet
    assert "(20: 25.0%, 32: 21.0%, 44: 22.0%, 56: 18.0%): not one way." in resnet
