"""The lesion study's results: JSON file, markdown table, findings computed from the numbers,
plots, and the models' card sections.

>>> results = load_results(Path("runs/study/lesion"))                  # doctest: +SKIP
>>> print(format_table(results))                                      # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from faceres import registry
from faceres.app.studies import groups, lesion_figures
from faceres.errors import DataError
from faceres.registry.publish import write_atomic

RESULTS_FILE = "lesion.json"
STUDY_HEADING = "Lesion study"
NEAR_CHANCE = 0.05
"""Within this much of chance (5 points) a lesioned network counts as broken."""
BARELY = 0.02
"""A median single-deletion drop below this (2 points) counts as barely hurting."""
VEIT_PATHS = "5–17 of 54 blocks (typical length 27)"
"""Where Veit et al.'s 110-layer ResNet got its gradient from (their Figure 6)."""


def save_results(results: dict, out: Path) -> Path:
    """Write the results, with their table and findings (what the app shows), as
    `out/lesion.json`."""
    path = Path(out) / RESULTS_FILE
    report = {"table": format_table(results), "findings": findings(results)}
    write_atomic(path, json.dumps({**results, "report": report}, indent=2) + "\n")
    return path


def load_results(out: Path) -> dict:
    """The results saved in `out` by an earlier run."""
    path = Path(out) / RESULTS_FILE
    if not path.is_file():
        raise DataError(f"No lesion study results in {path}: run `faceres study lesion` first.")
    return json.loads(path.read_text())


# -- numbers -------------------------------------------------------------------------------------


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.2f}"


def single_summary(model: dict) -> dict:
    """Min, median and max accuracy over the single deletions, and the worst block."""
    accs = np.array([s["accuracy"] for s in model["single"]])
    if not len(accs):
        return {"min": None, "median": None, "max": None, "worst": None}
    return {
        "min": float(accs.min()),
        "median": float(np.median(accs)),
        "max": float(accs.max()),
        "worst": model["single"][int(accs.argmin())]["block"],
    }


def k_mean(model: dict, k: int) -> float | None:
    """Mean accuracy with k blocks deleted (None when k was not measured)."""
    return next((row["mean"] for row in model["k"] if row["k"] == k), None)


def _short_metric(m: dict) -> str:
    if m["task"] == "identity":
        return "LFW DevTest" + (", 10-fold" if "10-fold" in m["metric"] else "")
    return "PublicTest" + (", + mirror" if "+ mirror" in m["metric"] else "")


def format_table(results: dict) -> str:
    """One markdown row per model: baseline, single deletions and k random deletions."""
    lines = [
        "| model | kind | metric | baseline % | deletable blocks | one deleted: min / median "
        "/ max % | k = 1 | k = 2 | k = 4 | all deleted % | precision | minutes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m in results["models"]:
        s = single_summary(m)
        n = len(m["deletable"])
        metric = _short_metric(m)
        lines.append(
            f"| {m['model']} | {m['kind']} | {metric} | {_pct(m['baseline'])} | {n} of "
            f"{len(m['blocks'])} | {_pct(s['min'])} / {_pct(s['median'])} / {_pct(s['max'])} | "
            f"{_pct(k_mean(m, 1))} | {_pct(k_mean(m, 2))} | {_pct(k_mean(m, 4))} | "
            f"{_pct(k_mean(m, n))} | {m['precision']} | {m['seconds'] / 60:.1f} |"
        )
    return "\n".join(lines)


# -- findings ------------------------------------------------------------------------------------


def _single_finding(m: dict) -> str:
    s = single_summary(m)
    drop = m["baseline"] - s["median"]
    text = (
        f"{m['model']} ({m['kind']}, {_pct(m['baseline'])}% whole): deleting one of its "
        f"{len(m['deletable'])} deletable blocks leaves {_pct(s['min'])}–{_pct(s['max'])}% "
        f"(median {_pct(s['median'])}%, a median drop of {100 * drop:.1f} points; worst: "
        f"{s['worst']})"
    )
    broken = sum(x["accuracy"] <= m["chance"] + NEAR_CHANCE for x in m["single"])
    if m["kind"] == "residual":
        verdict = (
            "like Veit et al.'s ResNets, one deletion barely hurts"
            if drop < BARELY
            else "unlike Veit et al.'s ResNets, where one deletion barely hurt"
        )
        return (
            f"{text}; {broken} of them no more than {100 * NEAR_CHANCE:.0f} points above chance "
            f"({_pct(m['chance'])}%): {verdict}."
        )
    verdict = (
        "like Veit et al.'s VGG, where deleting any layer gave chance"
        if broken == len(m["single"])
        else "unlike Veit et al.'s VGG, where deleting any layer gave chance"
        if broken == 0
        else "partly like Veit et al.'s VGG, where deleting any layer gave chance"
    )
    return (
        f"{text}; {broken} of {len(m['single'])} no more than {100 * NEAR_CHANCE:.0f} points "
        f"above chance ({_pct(m['chance'])}%): {verdict}."
    )


def _k_finding(m: dict) -> str:
    ks = [0] + [row["k"] for row in m["k"]]
    means = np.array([m["baseline"]] + [row["mean"] for row in m["k"]])
    low = int(means.argmin())
    drop = means[0] - means[low]
    steps = -np.diff(means[: low + 1])
    where = int(steps.argmax()) if len(steps) else 0
    share = float(steps[where] / drop) if drop > 0 else 0.0
    points = ", ".join(
        f"{_pct(k_mean(m, k))}% at k = {k}" for k in (1, 2, 4) if k_mean(m, k) is not None
    )
    smooth = share <= 1 / 3
    shape = (
        "smoothly (no step between measured k is more than a third of the drop to the lowest mean)"
        if smooth
        else f"with one large step ({100 * share:.0f}% of the drop to the lowest mean, between "
        f"k = {ks[where]} and {ks[where + 1]})"
    )
    if m["kind"] == "residual":
        shape += ", as in Veit et al.'s Figure 5" if smooth else ", unlike Veit et al.'s Figure 5"
    if low < len(means) - 1 and means[-1] > means[low] + 0.01:
        shape += (
            f"; not monotone: lowest mean {_pct(means[low])}% at k = {ks[low]}, then "
            f"{_pct(means[-1])}% with all deleted"
        )
    near = [k for k, v in zip(ks, means) if v <= m["chance"] + NEAR_CHANCE]
    shape += (
        f"; no more than {100 * NEAR_CHANCE:.0f} points above chance from k = {near[0]} on"
        if near
        else f"; always more than {100 * NEAR_CHANCE:.0f} points above chance"
    )
    every = [str(r["k"]) for r in m["k"] if r["all"]]
    draws = max((r["draws"] for r in m["k"] if not r["all"]), default=0)
    how = (
        f"all combinations at k = {', '.join(every[:-1])} and {every[-1]}"
        if len(every) > 1
        else f"all combinations at k = {every[0]}"
    )
    if draws:
        how += f"; {draws} seeded draws at each other k"
    return (
        f"{m['model']}: k blocks deleted ({how}): mean accuracy {points}, "
        f"{_pct(means[-1])}% with all {len(m['deletable'])} deleted; it falls {shape}."
    )


def _twin_finding(res: dict, plain: dict) -> str:
    r, p = single_summary(res), single_summary(plain)
    dr, dp = res["baseline"] - r["median"], plain["baseline"] - p["median"]
    who = "the ResNet" if dr < dp else "the plain twin"
    return (
        f"{res['model']} vs {plain['model']}: median single-deletion drop {100 * dr:.1f} vs "
        f"{100 * dp:.1f} points; {who} is the more robust to losing one block"
        + (" (as Veit et al. found)." if dr < dp else " (Veit et al. found the opposite).")
    )


def _path_finding(paths: dict) -> list[str]:
    n = paths["blocks"]
    dist = np.array([d["share"] for d in paths["distribution"]])
    cum = np.cumsum(dist)
    lo, hi = int(np.searchsorted(cum, 0.25)), int(np.searchsorted(cum, 0.75))
    grad = np.array([g["gradient"] for g in paths["gradient"]])
    lengths = np.arange(n + 1)
    positive = grad > 0
    slope = np.polyfit(lengths[positive], np.log(grad[positive]), 1)[0]
    ratio = float(np.exp(slope))
    share = np.array([t["share"] for t in paths["total_gradient"]])
    cshare = np.cumsum(share)
    a, b = int(np.searchsorted(cshare, 0.05)), int(np.searchsorted(cshare, 0.95))
    mean_len = float((lengths * share).sum())
    peak = int(share.argmax())
    compare = (
        "shorter than"
        if mean_len < n / 2 - 0.5
        else "longer than"
        if mean_len > n / 2 + 0.5
        else "as long as"
    )
    veit = "like" if compare == "shorter than" else "unlike"
    return [
        f"{paths['model']}: {n} blocks give 2^{n} paths whose lengths (residual branches passed) "
        f"follow Binomial({n}, 1/2): half of them are {lo}–{hi} blocks long (mean {n / 2:g}).",
        f"Gradient reaching the input along one path ({paths['images']} images, "
        f"{paths['samples_per_length']} sampled paths per length): {grad[0]:.3g} at length 0, "
        f"{grad[n // 2]:.3g} at {n // 2}, {grad[-1]:.3g} at {n}; a log-linear fit gives ×"
        f"{ratio:.2f} per extra block ("
        + (
            "it falls with length, as in Veit et al.)."
            if ratio < 1
            else "it does not fall with length, unlike Veit et al.)."
        ),
        f"Weighted by the number of paths of each length, 90% of the total gradient comes from "
        f"paths of length {a}–{b} (peak {peak}, mean {mean_len:.1f}): {compare} the typical path "
        f"({n / 2:g}), {veit} Veit et al., whose gradient came from paths of {VEIT_PATHS}.",
    ]


def findings(results: dict) -> list[str]:
    """What the results show, in words, every sentence computed from the numbers."""
    out = []
    for group in groups(results):
        for m in group:
            out.append(_single_finding(m))
        if len(group) == 2 and {m["kind"] for m in group} == {"residual", "plain"}:
            out.append(_twin_finding(*group))
        for m in group:
            out.append(_k_finding(m))
    for m in results["models"]:
        if "paths" in m:
            out += _path_finding(m["paths"])
    checks = [m["baseline_check"] for m in results["models"] if "baseline_check" in m]
    if checks:
        bf16 = sum(m["precision"] == "bfloat16" for m in results["models"])
        gap = max(abs(c["bfloat16"] - c["reference"]) for c in checks)
        against = ", ".join(
            f"{sum(c['against'] == a for c in checks)} against the {a} figure"
            for a in dict.fromkeys(c["against"] for c in checks)
        )
        out.append(
            f"Lesions ran in bfloat16 for {bf16} of {len(results['models'])} models; the whole "
            f"networks' bfloat16 scores are at most {100 * gap:.2f} points from their reference "
            f"({against}; tolerance {100 * checks[0]['tolerance']:.1f})."
        )
    wall, cpu = results["wall_seconds"] / 60, results["cpu_seconds"] / 60
    out.append(
        f"The run took {wall:.1f} minutes ({cpu:.1f} CPU-minutes over {results['threads']} "
        "threads)."
    )
    return out


# -- cards -----------------------------------------------------------------------------------


def write_cards(results: dict) -> list[str]:
    """Put the table and findings into the card of every studied model, as its "Lesion study"
    section (replacing an earlier one; every other section is kept). Returns the models."""
    text = (
        "This model is part of faceres' lesion study (`faceres study lesion --report`), after "
        "Veit, Wilber & Belongie (NeurIPS 2016): blocks deleted at test time, one at a time "
        "and k at random.\n\n"
        f"{format_table(results)}\n\n" + "\n".join(f"- {line}" for line in findings(results))
    )
    names = [m["model"] for m in results["models"]]
    for name in names:
        registry.update_card_section(name, STUDY_HEADING, text)
    return names


def save_plots(results: dict, out: Path) -> list[Path]:
    """Write the figures (`faceres.app.studies.lesion_figures`) as PNG files into `out`."""
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for filename, fig in lesion_figures(results).items():
        fig.savefig(out / filename, dpi=110)
        paths.append(out / filename)
    plt.close("all")
    return paths
