"""Expression ensembles (`faceres eval fuse` with expression members): the registry's fused
expression model answers the weighted mean of what its members answer alone, in the app's
pipeline and in the evaluation; members that do not share classes or tasks are refused."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from photos import require_models

from faceres import registry
from faceres.datasets.fer import FaceSet
from faceres.errors import ModelError
from faceres.eval.fer import predict_faces
from faceres.expression import analyze_expression

MEMBERS = ("resnet18-fer", "plain18-fer")
WEIGHTS = (0.25, 0.75)  # unequal, so a rule that ignores the weights shows


@pytest.fixture
def pair_registry(tmp_path, monkeypatch):
    """A copy of the committed registry with the ensemble of the two 18-layer FER2013 models,
    weights 0.25 and 0.75."""
    from faceres import settings

    require_models(*MEMBERS, "resnet18-ferplus", "dlib-resnet29-face")
    root = tmp_path / "registry"
    shutil.copytree(registry.registry_dir(), root)
    monkeypatch.setattr(settings, "REGISTRY_DIR", root)
    monkeypatch.setenv("FACERES_REGISTRY", str(root))
    monkeypatch.setenv("FACERES_CACHE", str(tmp_path / "cache"))
    members = [{"model": m, "weight": w} for m, w in zip(MEMBERS, WEIGHTS, strict=True)]
    registry.save_fused("pair", members, "# pair\n\nAn ensemble.")
    return root


def test_the_ensemble_answers_the_weighted_mean_of_its_members(pair_registry, astronaut):
    """Each member run alone by the same pipeline is the reference: the ensemble's probabilities
    are 0.25 × the first's + 0.75 × the second's, face by face."""
    ours = analyze_expression(astronaut, model="pair")
    alone = [analyze_expression(astronaut, model=m) for m in MEMBERS]
    assert ours.model == "pair" and len(ours.faces) == 1
    labels = list(ours.faces[0].probabilities)
    got = np.array([ours.faces[0].probabilities[k] for k in labels])
    want = sum(
        w * np.array([r.faces[0].probabilities[k] for k in labels])
        for w, r in zip(WEIGHTS, alone, strict=True)
    )
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert abs(got.sum() - 1) < 1e-5


def test_the_evaluation_scores_the_same_mean(pair_registry):
    faces = FaceSet(
        np.random.default_rng(0).integers(0, 256, (6, 48, 48), dtype=np.uint8),
        np.zeros(6, np.int64),
        ("angry",),
        [f"{i}.png" for i in range(6)],
    )
    alone = [predict_faces(m, faces) for m in MEMBERS]
    np.testing.assert_allclose(
        predict_faces("pair", faces), WEIGHTS[0] * alone[0] + WEIGHTS[1] * alone[1], atol=1e-6
    )


def test_members_must_share_task_and_classes(pair_registry):
    with pytest.raises(ModelError, match="share their classes"):
        registry.save_fused(
            "mixed",
            [
                {"model": "resnet18-fer", "weight": 0.5},
                {"model": "resnet18-ferplus", "weight": 0.5},
            ],
            "# mixed",
        )
    with pytest.raises(ModelError, match="all be identity models or all expression models"):
        registry.save_fused(
            "mixed",
            [
                {"model": "resnet18-fer", "weight": 0.5},
                {"model": "dlib-resnet29-face", "weight": 0.5, "dim": 128},
            ],
            "#",
        )
    assert registry.get_entry("pair")["task"] == "expression"


def test_the_ensembles_map_weighs_its_members_maps(pair_registry, astronaut):
    """Where the ensemble looked: its members' Grad-CAMs for its class, 0.25 and 0.75 of each,
    scaled so the peak is 1 (computed here from each member's own map)."""
    from faceres.expression import class_names
    from faceres.identity.explain import explain_expression, expression_cams

    result = analyze_expression(astronaut, model="pair")
    crops = np.stack([f.crop for f in result.faces])
    target = np.array([class_names(registry.model_config("pair")).index(result.faces[0].label)])
    alone = [expression_cams(crops, registry.load(m), target)[0] for m in MEMBERS]
    mix = WEIGHTS[0] * alone[0] + WEIGHTS[1] * alone[1]
    np.testing.assert_allclose(explain_expression(result).faces[0].cam, mix / mix.max(), atol=1e-5)
    assert not np.allclose(alone[0], alone[1], atol=0.05)  # the two maps differ: weights matter
