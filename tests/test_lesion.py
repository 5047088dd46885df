"""The lesion study: deleting blocks, checked against forwards written out by hand; the paths'
counts and gradients against enumeration and autograd; the app's lesioned view against a
concurrent forward; the report's findings against their numbers."""

from __future__ import annotations

import itertools
import json
import math
import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hub_server import save_tiny

from faceres import registry
from faceres.app.blocks import expression_probabilities, identity_embeddings
from faceres.cli import main
from faceres.face.pipeline import embed_crops
from faceres.models.blocks import blocks, deletable_blocks, lesioned
from faceres.models.fer_resnet import FaceResNet
from faceres.study.lesion.fast import (
    PathGradients,
    folded_copy,
    lesion_outputs,
    path_gradients,
    path_length_distribution,
)
from faceres.study.lesion.report import findings, format_table, save_results, write_cards
from faceres.study.lesion.run import LesionSettings, k_lesions, k_values, model_kind

# -- tiny networks and their forwards by hand ---------------------------------------------------


def tiny(residual: bool, seed: int = 0) -> FaceResNet:
    """A two-stage FaceResNet (blocks layer1.0, layer1.1, layer2.0, layer2.1; layer2.0
    downsamples), with random BatchNorm statistics so that no layer is trivial."""
    torch.manual_seed(seed)
    model = FaceResNet((2, 2), (4, 8), num_classes=3, residual=residual, shortcut="zeropad")
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(0.0, 0.3)
    return model.eval()


def _bn(x: torch.Tensor, bn: torch.nn.BatchNorm2d) -> torch.Tensor:
    return (x - bn.running_mean[:, None, None]) / torch.sqrt(
        bn.running_var[:, None, None] + bn.eps
    ) * bn.weight[:, None, None] + bn.bias[:, None, None]


def _conv(x: torch.Tensor, conv: torch.nn.Conv2d) -> torch.Tensor:
    return F.conv2d(x, conv.weight, conv.bias, stride=conv.stride, padding=conv.padding)


def by_hand(model: FaceResNet, x: torch.Tensor, skip: set[str]) -> torch.Tensor:
    """The forward written out with F.conv2d and explicit BatchNorm, blocks in `skip` left out
    (their output is their input)."""
    h = torch.relu(_bn(_conv(x, model.conv1), model.bn1))
    for stage in ("layer1", "layer2"):
        for i, block in enumerate(getattr(model, stage)):
            if f"{stage}.{i}" in skip:
                continue
            out = _bn(
                _conv(torch.relu(_bn(_conv(h, block.conv1), block.bn1)), block.conv2), block.bn2
            )
            if model.residual:
                short = h
                if block.conv1.stride != (1, 1):  # zero-pad shortcut: subsample, pad channels
                    short = h[:, :, ::2, ::2]
                    short = F.pad(short, (0, 0, 0, 0, 0, out.shape[1] - short.shape[1]))
                out = out + short
            h = torch.relu(out)
    return model.fc(h.mean(dim=(2, 3)))


X = torch.rand(3, 1, 12, 12, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("residual", [True, False])
def test_deletable_blocks_are_those_whose_shapes_match(residual):
    model = tiny(residual)
    shapes = {}
    hooks = [
        m.register_forward_hook(lambda m, i, o, n=n: shapes.__setitem__(n, (i[0].shape, o.shape)))
        for n, m in blocks(model)
    ]
    with torch.no_grad():
        model(X)
    for h in hooks:
        h.remove()
    assert [n for n, (i, o) in shapes.items() if i == o] == deletable_blocks(model)
    assert deletable_blocks(model) == ["layer1.0", "layer1.1", "layer2.1"]


@pytest.mark.parametrize("residual", [True, False])
@pytest.mark.parametrize("skip", [[], ["layer1.0"], ["layer1.1", "layer2.1"], ["layer2.1"]])
def test_deleting_blocks_equals_the_forward_by_hand(residual, skip):
    model = tiny(residual)
    with torch.no_grad():
        whole = by_hand(model, X, set())
        assert torch.allclose(model(X), whole, atol=1e-5)
        assert not torch.allclose(whole[0], whole[1], atol=1e-3)  # no dead network
        out = lesioned(model, skip)(X)
        assert torch.allclose(out, by_hand(model, X, set(skip)), atol=1e-5)
        if skip:  # the deletion changes something, and positions work like names
            assert not torch.allclose(out, whole, atol=1e-3)
            positions = [deletable_blocks(model).index(s) for s in skip]
            assert torch.equal(lesioned(model, positions)(X), out)


def test_the_many_lesion_pass_and_the_folded_copy_agree_with_the_view():
    model = tiny(True)
    lesions = [frozenset(), frozenset({0}), frozenset({1, 3}), frozenset({3}), frozenset({0, 1, 3})]
    names = [n for n, _ in blocks(model)]
    outs = lesion_outputs(model, [X[:2], X[2:]], lesions, bf16=False)
    fast = lesion_outputs(folded_copy(model), [X], lesions, bf16=False)
    with torch.no_grad():
        for les, out, out_fast in zip(lesions, outs, fast):
            ref = by_hand(model, X, {names[j] for j in les})
            assert torch.allclose(out, ref, atol=1e-5)
            assert torch.allclose(out_fast, ref, atol=1e-4)


def test_only_deletable_blocks_can_go():
    model = tiny(True)
    with pytest.raises(Exception, match="not a deletable block"):
        lesioned(model, ["layer2.0"])  # downsamples: its output shape differs
    with pytest.raises(Exception, match="out of range"):
        lesioned(model, [3])


# -- the app's view: the shared model is never touched ---------------------------------------------


def test_the_lesioned_view_shares_weights_and_leaves_the_model_alone():
    model = tiny(True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    modules = [n for n, _ in model.named_modules()]
    with torch.no_grad():
        reference = model(X)
    view = lesioned(model, ["layer1.1"])
    assert (
        view.layer1[0] is model.layer1[0]
        and view.layer1[0].conv1.weight is model.layer1[0].conv1.weight
    )
    assert view.layer2 is model.layer2  # untouched branches are the original modules

    errors = []

    def original() -> None:
        with torch.no_grad():
            for _ in range(200):
                if not torch.equal(model(X), reference):
                    errors.append("the shared model changed during a lesion")

    def lesions() -> None:
        with torch.no_grad():
            for i in range(200):
                lesioned(model, [i % 3])(X)

    threads = [threading.Thread(target=original), threading.Thread(target=lesions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert [n for n, _ in model.named_modules()] == modules
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


# -- paths -------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 4, 6, 27])
def test_path_length_distribution_is_binomial(n):
    counts = [row["paths"] for row in path_length_distribution(n)]
    assert counts == [math.comb(n, k) for k in range(n + 1)]
    if n <= 6:  # every path: one choice (branch or shortcut) per block
        lengths = [sum(p) for p in itertools.product((0, 1), repeat=n)]
        assert counts == [lengths.count(k) for k in range(n + 1)]
    assert sum(row["share"] for row in path_length_distribution(n)) == pytest.approx(1.0)


def test_path_gradients_add_up_to_the_whole_networks_gradient():
    model = tiny(True)
    labels = torch.tensor([0, 1, 2])
    paths = PathGradients(model, X, labels)
    assert paths.n == 4
    total = sum(
        paths.gradient(set(c)) for k in range(5) for c in itertools.combinations(range(4), k)
    )
    x = X.clone().requires_grad_(True)
    loss = F.cross_entropy(model(x), labels, reduction="sum")
    (reference,) = torch.autograd.grad(loss, x)
    assert torch.allclose(total, reference, atol=1e-5)
    rows = path_gradients(model, X, labels, samples=3)
    assert [r["length"] for r in rows] == [0, 1, 2, 3, 4]
    assert [r["samples"] for r in rows] == [1, 3, 3, 3, 1]
    g0 = float(paths.gradient(set()).flatten(1).norm(dim=1).mean())
    assert rows[0]["gradient"] == pytest.approx(g0)


def test_a_plain_network_has_no_paths():
    with pytest.raises(Exception, match="residual"):
        PathGradients(tiny(False), X, torch.tensor([0, 1, 2]))


# -- what is deleted -----------------------------------------------------------------------------


def test_k_lesions():
    settings = LesionSettings(draws=5, all_pairs_max=21)
    assert k_values(7, 12) == list(range(1, 8))
    assert k_values(25, 10) == [1, 2, 3, 4, 6, 9, 12, 17, 25]
    seven = list(range(7))
    assert len(k_lesions(seven, 2, settings)) == 21  # every pair
    assert k_lesions(seven, 7, settings) == [frozenset(seven)]
    drawn = k_lesions(list(range(25)), 4, settings)
    assert len(drawn) == len(set(drawn)) == 5 and all(len(d) == 4 for d in drawn)
    assert drawn == k_lesions(list(range(25)), 4, settings)  # the twin gets the same lesions


# -- report ------------------------------------------------------------------------------------


def fake_results(resnet_drop: float, plain_accuracy: float) -> dict:
    def model(name: str, kind: str, single: float, ks: list[float]) -> dict:
        return {
            "model": name,
            "kind": kind,
            "task": "expression",
            "depth": 20,
            "metric": "PublicTest accuracy",
            "baseline": 0.63,
            "precision": "bfloat16",
            "chance": 0.25,
            "blocks": ["a", "b", "c"],
            "deletable": ["a", "c"],
            "single": [
                {"block": "a", "index": 1, "accuracy": single},
                {"block": "c", "index": 3, "accuracy": single},
            ],
            "k": [
                {"k": k, "mean": m, "std": 0.0, "draws": 1, "all": True}
                for k, m in enumerate(ks, start=1)
            ],
            "seconds": 60.0,
        }

    return {
        "models": [
            model("res", "residual", 0.63 - resnet_drop, [0.63 - resnet_drop, 0.5]),
            model("plain", "plain", plain_accuracy, [plain_accuracy, 0.25]),
        ],
        "wall_seconds": 120.0,
        "cpu_seconds": 200.0,
        "threads": 2,
    }


def test_findings_follow_the_numbers():
    agree = " ".join(findings(fake_results(0.005, 0.26)))
    assert "res (residual, 63.00% whole)" in agree and "median drop of 0.5 points" in agree
    assert "like Veit et al.'s ResNets" in agree and "unlike Veit et al.'s ResNets" not in agree
    assert (
        "2 of 2 no more than 5 points above chance" in agree and "like Veit et al.'s VGG" in agree
    )
    assert "the ResNet is the more robust" in agree
    differ = " ".join(findings(fake_results(0.10, 0.60)))
    assert "unlike Veit et al.'s ResNets" in differ and "median drop of 10.0 points" in differ
    assert (
        "0 of 2 no more than 5 points above chance" in differ
        and "unlike Veit et al.'s VGG" in differ
    )
    assert "the plain twin is the more robust" in differ
    assert format_table(fake_results(0.0, 0.3)).count("\n") == 3


def test_report_reads_the_saved_results(tmp_path, capsys):
    results = fake_results(0.01, 0.26)
    save_results(results, tmp_path)
    assert main(["study", "lesion", "--report", "--json", "--out", str(tmp_path)]) == 0
    report = {"table": format_table(results), "findings": findings(results)}
    expected = {**results, "report": report, "findings": findings(results)}
    assert json.loads(capsys.readouterr().out) == expected
    assert main(["study", "lesion", "--report", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| res | residual |" in out and "lesion_single.png" in out
    assert {p.name for p in tmp_path.glob("*.png")} == {"lesion_single.png", "lesion_k.png"}


def test_the_committed_lesion_report_is_computed_from_its_results():
    """What the app shows of the lesion study (the report in registry/studies/lesion) is what
    the research code computes from the committed results."""
    from faceres.app.studies import load_study

    results = load_study("lesion")
    report = results.pop("report")
    assert report == {"table": format_table(results), "findings": findings(results)}


def test_the_card_section_is_merged(tiny_registry):
    results = fake_results(0.01, 0.26)
    for m in results["models"]:
        save_tiny(m["model"])
    card = tiny_registry / "models" / "res" / "README.md"
    card.write_text(card.read_text() + "\n## Depth study\n\nkept\n")
    registry.update_entry("res")
    write_cards(results)
    write_cards(results)
    text = card.read_text()
    assert text.count("## Lesion study") == 1 and "## Depth study\n\nkept" in text
    assert "A tiny test model." in text and "| res | residual |" in text


# -- the registry's models -----------------------------------------------------------------------

MODELS = ("dlib-resnet29-face", "resnet20-fer", "plain20-fer", "resnet56-fer")
needs_models = pytest.mark.skipif(
    not all(any(e["name"] == n for e in registry.list_models()) for n in MODELS),
    reason="the studied models are not in the registry",
)


@needs_models
def test_registry_models_blocks_and_kinds():
    counts = {}
    for name in MODELS:
        model = registry.load(name, device="cpu").model
        counts[name] = (len(blocks(model)), len(deletable_blocks(model)))
    # dlib: 14 blocks, 4 downsampling; CIFAR-style: 3n blocks, the first of stages 2 and 3 not
    assert counts == {
        "dlib-resnet29-face": (14, 10),
        "resnet20-fer": (9, 7),
        "plain20-fer": (9, 7),
        "resnet56-fer": (27, 25),
    }
    assert model_kind("plain20-fer") == ("expression", "plain")
    assert model_kind("resnet20-fer") == ("expression", "residual")
    assert model_kind("dlib-resnet29-face") == ("identity", "residual")


@needs_models
def test_expression_probabilities_with_and_without_a_block():
    crops = np.random.default_rng(0).integers(0, 256, (4, 48, 48), dtype=np.uint8)
    model = registry.load("resnet20-fer", device="cpu").model
    whole = expression_probabilities("resnet20-fer", crops, device="cpu")
    x = (torch.from_numpy(crops).unsqueeze(1).float() / 255 - 0.5) / 0.25
    with torch.no_grad():
        ref = (model(x).softmax(1) + model(x.flip(3)).softmax(1)) / 2
    assert np.allclose(whole, ref.numpy(), atol=0.03)  # bfloat16 in `predict`
    lesion = expression_probabilities("resnet20-fer", crops, [0], device="cpu")
    assert not np.allclose(lesion, whole, atol=1e-3)
    assert np.allclose(lesion.sum(1), 1, atol=1e-3)


@needs_models
def test_identity_lesions_through_the_view_and_the_many_lesion_pass():
    loaded = registry.load("dlib-resnet29-face", device="cpu")
    crops = list(np.random.default_rng(1).integers(0, 256, (2, 150, 150, 3), dtype=np.uint8))
    assert np.array_equal(
        identity_embeddings("dlib-resnet29-face", crops, device="cpu"), embed_crops(crops, loaded)
    )
    names = [n for n, _ in blocks(loaded.model)]
    x = torch.rand(1, 3, 150, 150)
    lesion = frozenset({names.index(deletable_blocks(loaded.model)[4])})
    whole, cut = lesion_outputs(loaded.model, [x], [frozenset(), lesion], bf16=False)
    with torch.no_grad():
        assert torch.allclose(whole, loaded.model(x), atol=1e-4)
        assert torch.allclose(cut, lesioned(loaded.model, [4])(x), atol=1e-4)
    assert not torch.allclose(whole, cut, atol=1e-3)
    lesioned_emb = identity_embeddings("dlib-resnet29-face", crops, [4], device="cpu")
    assert not np.allclose(lesioned_emb, embed_crops(crops, loaded), atol=1e-3)


def test_report_reads_the_committed_study_on_a_fresh_clone(tmp_path):
    """`faceres study lesion --report` from any folder, with no run of its own: the study
    committed under registry/studies/lesion, as that file says."""
    import json
    import subprocess
    import sys

    from faceres import registry

    committed = json.loads(
        (registry.registry_dir() / "studies" / "lesion" / "lesion.json").read_text()
    )
    run = subprocess.run(
        [sys.executable, "-m", "faceres", "study", "lesion", "--report", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    printed = json.loads(run.stdout)
    assert [m["model"] for m in printed["models"]] == [m["model"] for m in committed["models"]]
    assert not list(tmp_path.iterdir())  # --json writes nothing
