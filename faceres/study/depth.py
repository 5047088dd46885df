"""The depth study: residual vs plain networks at two depths, with and without BatchNorm.

`run_depth_study()` trains every model of the sweep with one recipe (`faceres train expression`
under the hood); `depth_report()` reads the table back from the registry, `save_study()` writes
what the app shows (`registry/studies/depth/depth.json`) and `save_plots()` the figures.

>>> rows = depth_report()
>>> [(r["name"], r["train_error_final"]) for r in rows][:2]        # doctest: +SKIP
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from faceres import registry
from faceres.app.studies import depth_figures, study_file
from faceres.errors import FaceresError
from faceres.registry.publish import cpu_hours, wall_seconds, write_atomic

RECIPE_KEYS = ("labels", "epochs", "batch_size", "lr", "seed", "augment", "label_smoothing")
"""The recipe of one model of the sweep: the sweep's values, overridden per model."""

DEPTH_SWEEP: dict = {
    "protocol": (
        "He et al.'s CIFAR networks (6n+2 layers, widths 16/32/64, parameter-free shortcuts) at "
        "CIFAR's 32×32, FER2013 Training (28,709 faces, resized from 48×48), light augmentation "
        "(flip, shift up to 4 pixels) and no label smoothing so that training error measures "
        "optimisation; SGD with Nesterov momentum, batch 128, learning rate 0.1 after 2 warm-up "
        "epochs, cosine-annealed to zero at the last epoch; the same recipe and initialisation "
        "for every network. The no-BatchNorm pair keeps its own recipe (48×48, 17 epochs)."
    ),
    "labels": "fer",
    "epochs": 40,
    "batch_size": 128,
    "lr": 0.1,
    "seed": 0,
    "augment": "light",
    "label_smoothing": 0.0,
    "models": [
        {
            "name": f"{kind}{depth}-fer32",
            "arch": f"faceres_{kind}{depth}_32",
            "twin": f"{twin}{depth}-fer32",
        }
        for depth in (20, 32, 44, 56)
        for kind, twin in (("resnet", "plain"), ("plain", "resnet"))
    ]
    + [
        {
            "name": f"{kind}56nobn-fer",
            "arch": f"faceres_{kind}56_nobn_48",
            "twin": f"{twin}56nobn-fer",
            "epochs": 17,
            "batch_size": 256,
            "lr": 0.02,
            "augment": "full",
            "label_smoothing": 0.1,
        }
        for kind, twin in (("resnet", "plain"), ("plain", "resnet"))
    ],
}
"""The sweep: depths 20-56, residual and plain twins with BatchNorm, and the no-BatchNorm pair."""


def recipe(config: dict, model: dict) -> dict:
    """The training recipe of one model of the sweep (`RECIPE_KEYS`)."""
    return {k: model.get(k, config.get(k)) for k in RECIPE_KEYS}


def is_trained(model: dict, spec: dict) -> bool:
    """Whether the registry already holds `model` trained with exactly `spec`."""
    if model["name"] not in {e["name"] for e in registry.list_models("expression")}:
        return False
    done = {"augment": "full", **_history(model["name"])["config"]}
    return all(done.get(k) == v for k, v in spec.items())


def sweep_commands(config: dict) -> list[list[str]]:
    """One `faceres train expression` command line per model of the sweep not yet trained."""
    cmds = []
    for m in config["models"]:
        spec = recipe(config, m)
        if is_trained(m, spec):
            continue
        cmd = [
            sys.executable,
            "-m",
            "faceres",
            "train",
            "expression",
            "--arch",
            m["arch"],
            "--out",
            str(registry.registry_dir() / "models" / m["name"]),
            "--twin",
            m["twin"],
            "--json",
        ]
        for key, value in spec.items():
            cmd += [f"--{key.replace('_', '-')}", str(value)]
        for key in ("data", "time_budget"):
            if config.get(key):
                cmd += [f"--{key.replace('_', '-')}", str(config[key])]
        cmds.append(cmd)
    return cmds


def run_depth_study(
    config: dict | None = None, resume: bool = False, jobs: int = 1, log_dir: Path | None = None
) -> list[dict]:
    """Train every model of the sweep (`jobs` at a time), then return the report rows."""
    config = config or DEPTH_SWEEP
    log_dir = log_dir or Path("runs") / "study"
    log_dir.mkdir(parents=True, exist_ok=True)

    def run(cmd: list[str]) -> int:
        name = Path(cmd[cmd.index("--out") + 1]).name
        with (log_dir / f"{name}.log").open("a") as log:
            return subprocess.run(
                cmd + (["--resume"] if resume else []), stdout=log, stderr=subprocess.STDOUT
            ).returncode

    cmds = sweep_commands(config)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        codes = list(pool.map(run, cmds))
    failed = [Path(c[c.index("--out") + 1]).name for c, rc in zip(cmds, codes) if rc]
    if failed:
        raise FaceresError(f"Training failed for {', '.join(failed)}: see {log_dir}/<name>.log")
    rows = depth_report(config)
    write_study_cards(rows)
    save_study(rows, config)
    return rows


PAPER_EPOCHS = 182
"""He et al. (2015), CIFAR-10: 64k iterations at batch 128 over 45k training images."""


def _history(name: str) -> dict:
    path = registry.resolve(name) / "training.json"
    return json.loads(path.read_text())


def _cpu_hours(history: dict) -> float | None:
    """`cpu_hours` rounded for the study's table."""
    hours = cpu_hours(history)
    return None if hours is None else round(hours, 3)


def depth_report(config: dict | None = None) -> list[dict]:
    """The study table, read from the registry: one row per sweep model present there."""
    config = config or DEPTH_SWEEP
    known = {e["name"]: e for e in registry.list_models("expression")}
    rows = []
    for m in config["models"]:
        if m["name"] not in known:
            continue
        hist = _history(m["name"])
        metrics = known[m["name"]]["metrics"]
        arch = m["arch"]
        shape = registry.model_config(m["name"])["faceres"]
        rows.append(
            {
                "name": m["name"],
                "arch": arch,
                "depth": shape["depth"],
                "residual": shape["residual"],
                "batchnorm": shape["batchnorm"],
                "epochs": hist["config"]["epochs"],
                "lr": hist["config"]["lr"],
                "train_error_final": hist["train_error_final"],
                "train_error_running": 1 - hist["epochs"][-1]["train_acc"],
                "publictest_accuracy": metrics.get("fer2013-publictest/accuracy"),
                "privatetest_accuracy": metrics.get("fer2013-privatetest/accuracy"),
                "train_minutes": wall_seconds(hist) / 60,
                "cpu_hours": _cpu_hours(hist),
                "device": hist["device"],
            }
        )
    return rows


def _by_depth(sel: list[dict]) -> str:
    """With more than two depths of one kind (sorted by depth): each one's final training error
    and whether it moves one way from depth to depth."""
    if len(sel) < 3:
        return ""
    errors = [100 * r["train_error_final"] for r in sel]
    steps = np.diff(errors)
    trend = (
        "rising at every step"
        if (steps > 0).all()
        else "falling at every step"
        if (steps < 0).all()
        else "not one way"
    )
    listed = ", ".join(f"{r['depth']}: {e:.1f}%" for r, e in zip(sel, errors, strict=True))
    return f" By depth ({listed}): {trend}."


def findings(rows: list[dict]) -> list[str]:
    """What the table shows, in words, computed from its numbers: for each kind of network
    (with BatchNorm), whether the deepest one ends with a higher training error than the
    shallowest; and how the no-BatchNorm pair's gradients behave at initialisation."""
    out = []
    for residual, kind in ((False, "plain"), (True, "ResNet")):
        sel = sorted(
            (r for r in rows if r["residual"] == residual and r["batchnorm"]),
            key=lambda r: r["depth"],
        )
        if len(sel) < 2:
            continue
        lo, hi = sel[0], sel[-1]
        diff = 100 * (hi["train_error_final"] - lo["train_error_final"])
        verdict = (
            "higher: the deeper net degrades"
            if diff > 0.5
            else "lower"
            if diff < -0.5
            else "about the same (within 0.5 points)"
        )
        why = (
            f" He et al. trained for about {PAPER_EPOCHS} epochs (64k iterations at batch 128 on "
            f"CIFAR-10) before the deeper ResNet reached the lower training error; this run "
            f"stopped after {hi['epochs']}, so it does not show that half of the result yet."
            if residual and diff >= -0.5
            else ""
        )
        out.append(
            f"{kind}-{hi['depth']} ends with a training error of "
            f"{100 * hi['train_error_final']:.1f}% vs {100 * lo['train_error_final']:.1f}% "
            f"for {kind}-{lo['depth']} ({diff:+.1f} points): {verdict}.{why}{_by_depth(sel)}"
        )
    for row in rows:
        if row["batchnorm"]:
            continue
        twin = next(
            (
                r
                for r in rows
                if r["batchnorm"]
                and r["residual"] == row["residual"]
                and r["depth"] == row["depth"]
            ),
            None,
        )
        norms = np.asarray(_history(row["name"])["grad_norms_init"])
        text = (
            f"{row['name']} (no BatchNorm) at initialisation: median per-layer gradient norm "
            f"{np.median(norms):.2g}, first layer / last layer {norms[0] / norms[-1]:.2g}"
        )
        if twin:
            bn = np.asarray(_history(twin["name"])["grad_norms_init"])
            text += f" (with BatchNorm, {twin['name']}: median {np.median(bn):.2g})"
        out.append(f"{text}; final training error {100 * row['train_error_final']:.1f}%.")
    return out


def study_data(rows: list[dict], config: dict | None = None) -> dict:
    """The study as the app reads it (`faceres.app.studies`): the protocol, the rows, each
    model's training-error curve (augmented, running, per epoch) and gradient norms per layer
    (at initialisation and after training), the table and the findings."""
    config = config or DEPTH_SWEEP
    histories = {row["name"]: _history(row["name"]) for row in rows}
    return {
        "protocol": config.get("protocol", ""),
        "rows": rows,
        "curves": {
            name: [round(1 - e["train_acc"], 5) for e in h["epochs"]]
            for name, h in histories.items()
        },
        "grad_norms": {
            name: {"init": h["grad_norms_init"], "final": h["grad_norms_final"]}
            for name, h in histories.items()
        },
        "report": {"table": format_table(rows), "findings": findings(rows)},
    }


def save_study(rows: list[dict], config: dict | None = None) -> Path:
    """Write `study_data` where the app reads it (`registry/studies/depth/depth.json`)."""
    path = study_file("depth")
    write_atomic(path, json.dumps(study_data(rows, config), indent=1) + "\n")
    return path


def format_table(rows: list[dict]) -> str:
    """The study table as markdown."""

    def pct(v: float | None) -> str:
        return "–" if v is None else f"{100 * v:.2f}"

    lines = [
        "| model | depth | shortcuts | BatchNorm | epochs | final training error % "
        "(clean / augmented) | PublicTest % | PrivateTest % |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['depth']} | {'yes' if r['residual'] else 'no'} | "
            f"{'yes' if r['batchnorm'] else 'no'} | {r['epochs']} | "
            f"{pct(r['train_error_final'])} / {pct(r['train_error_running'])} | "
            f"{pct(r['publictest_accuracy'])} | {pct(r['privatetest_accuracy'])} |"
        )
    return "\n".join(lines)


STUDY_HEADING = "Depth study"


def write_study_cards(rows: list[dict]) -> None:
    """Put the study table and findings into the model card of every model of the study, as its
    "Depth study" section (replacing an earlier one; the rest of each card is kept)."""
    text = (
        "This model is part of faceres' ResNet-vs-plain depth study "
        "(`faceres study depth --report`); one recipe per pair:\n\n"
        f"{format_table(rows)}\n\n" + "\n".join(f"- {line}" for line in findings(rows))
    )
    for row in rows:
        registry.update_card_section(row["name"], STUDY_HEADING, text)


def save_plots(rows: list[dict], out: Path, config: dict | None = None) -> list[Path]:
    """Write the study's figures (`faceres.app.studies.depth_figures`) as PNG files into `out`."""
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for filename, figure in depth_figures(study_data(rows, config)).items():
        figure.savefig(out / filename, dpi=110)
        paths.append(out / filename)
    plt.close("all")
    return paths
