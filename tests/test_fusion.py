"""The fused identity model: fused embeddings, weights fitted against scikit-learn's linear
discriminant, and the registry's fused model giving each member's own similarity and verdict."""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pytest
from photos import edited_copy, require_models, two_faces
from PIL import Image

from faceres import registry
from faceres.cli import main
from faceres.eval.fusion import fit_weights
from faceres.face.align import dlib_chip_template
from faceres.face.pipeline import FacePipeline, Member, fuse, split

FUSED = "fused-dlib-sface"
MEMBERS = ("dlib-resnet29-face", "sface-2021dec")


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_fused_embeddings_dot_to_the_weighted_sum_of_member_cosines():
    """Hand formula: the dot product of two fused embeddings is Σ w_i cos_i, each of unit norm;
    `split` gives each member's embedding back."""
    rng = np.random.default_rng(0)
    a1, b1 = unit(rng.normal(size=(2, 128)))[:, None]
    a2, b2 = unit(rng.normal(size=(2, 64)))[:, None]
    w = [0.3, 0.7]
    a, b = fuse([a1, a2], w)[0], fuse([b1, b2], w)[0]
    expected = w[0] * float(a1[0] @ b1[0]) + w[1] * float(a2[0] @ b2[0])
    assert float(a @ b) == pytest.approx(expected, abs=1e-6)
    assert np.linalg.norm(a) == pytest.approx(1.0, abs=1e-6)
    back = split(a, [128, 64])
    np.testing.assert_allclose(back[0], a1[0], atol=1e-6)
    np.testing.assert_allclose(back[1], a2[0], atol=1e-6)


def test_weights_follow_scikit_learns_linear_discriminant():
    """On correlated synthetic scores, the weights on the raw scores are scikit-learn's LDA
    direction on the z-normalised scores, divided by each score's spread, summing to 1."""
    lda = pytest.importorskip("sklearn.discriminant_analysis").LinearDiscriminantAnalysis
    rng = np.random.default_rng(1)
    labels = np.repeat([True, False], 500)
    noise = rng.multivariate_normal([0, 0], [[1.0, 0.3], [0.3, 1.0]], size=1000)
    scores = np.where(labels[:, None], [0.8, 0.5], [0.5, 0.1]) + noise * [0.1, 0.2]
    z = (scores - scores.mean(0)) / scores.std(0)
    direction = lda(solver="lsqr").fit(z, labels).coef_[0] / scores.std(0)
    expected = direction / direction.sum()
    np.testing.assert_allclose(fit_weights(scores, labels), expected, rtol=1e-3)


def test_a_pipeline_of_two_members_embeds_each_face_as_each_member_alone(astronaut):
    """Each member's part of a fused record equals that member's own pipeline's embedding."""
    colour = lambda crops: unit(np.stack([c.reshape(-1, 3).mean(0) + 1.0 for c in crops]))  # noqa: E731
    edges = lambda crops: unit(np.stack([np.r_[c[::8, ::8, 0].ravel()] + 1.0 for c in crops]))  # noqa: E731
    small, large = dlib_chip_template(100, 0.25), dlib_chip_template(150, 0.25)
    one = FacePipeline((Member(colour, small),), detector="yunet")
    two = FacePipeline((Member(edges, large),), detector="yunet")
    both = FacePipeline(
        (Member(colour, small, weight=0.4), Member(edges, large, weight=0.6)), "yunet"
    )
    fused = both.read([astronaut])[0][0]
    alone = one.read([astronaut])[0][0].embedding, two.read([astronaut])[0][0].embedding
    dims = [len(alone[0]), len(alone[1])]
    for part, own in zip(split(fused.embedding, dims), alone, strict=True):
        np.testing.assert_allclose(part, own, atol=1e-6)
    assert [c.shape[:2] for c in fused.member_crops] == [(100, 100), (150, 150)]


needs_fused = pytest.mark.skipif(
    not any(e["name"] == FUSED for e in registry.list_models("identity")),
    reason=f"{FUSED} is not in the registry",
)


@needs_fused
def test_the_fused_model_gives_each_members_own_verdict(tmp_path, astronaut, capsys):
    """`faceres verify --model fused-dlib-sface`: each member's similarity is what that member
    alone gives (`--model member`), and the fused one is their weighted sum (config weights)."""
    require_models(FUSED, *MEMBERS)
    a, b = tmp_path / "a.jpg", tmp_path / "b.jpg"
    Image.fromarray(astronaut).save(a)
    Image.fromarray(edited_copy(astronaut)).save(b)

    def run(model: str) -> dict:
        assert main(["verify", str(a), str(b), "--model", model, "--json"]) == 0
        return json.loads(capsys.readouterr().out)

    fused = run(FUSED)
    alone = {m: run(m)["similarity"] for m in MEMBERS}
    members = {m["model"]: m for m in fused["members"]}
    weights = {m["model"]: m["weight"] for m in registry.model_config(FUSED)["faceres"]["members"]}
    for model in MEMBERS:
        assert members[model]["similarity"] == pytest.approx(alone[model], abs=1e-5)
    assert fused["similarity"] == pytest.approx(
        sum(weights[m] * alone[m] for m in MEMBERS), abs=1e-5
    )
    assert fused["verdict"] == "same" and fused["disagreement"] == ""


@needs_fused
def test_members_that_disagree_are_said_to(astronaut):
    """A pair one member calls same and the other different: the answer says they disagree."""
    from faceres.app.render import verdict_html
    from faceres.identity import verify

    require_models(FUSED, *MEMBERS)
    result = verify(astronaut, two_faces(astronaut), model=FUSED, face2=1)
    verdicts = {name: v.verdict for name, v in result.members}
    assert set(verdicts) == set(MEMBERS)
    forced = {MEMBERS[0]: "same", MEMBERS[1]: "different"}
    members = tuple(
        (name, dataclasses.replace(v, verdict=forced[name])) for name, v in result.members
    )
    shown = dataclasses.replace(result, members=members)
    assert shown.disagreement == (
        f"The networks disagree: {MEMBERS[0]} says same, {MEMBERS[1]} says different."
    )
    assert "The networks disagree" in verdict_html(shown.to_dict(), None)


@needs_fused
def test_eval_pairs_and_identify_take_the_fused_model(tmp_path, capsys):
    """`faceres eval pairs` with the fused model: its mean similarities are the members' own
    (each from the same command) weighted by the config's weights; `eval identify` ranks the
    test people right with it."""
    from test_search import collection

    require_models(FUSED, *MEMBERS)
    photos = collection(tmp_path / "photos")
    (photos / "other" / "broken.jpg").unlink()
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(
        "left,right,same\nastronaut/astronaut_0.jpg,astronaut/astronaut_1.jpg,1\n"
        "camera/camera_0.jpg,camera/camera_2.jpg,1\nastronaut/astronaut_2.jpg,camera/camera_1.jpg,0\n"
        "astronaut/astronaut_1.jpg,camera/camera_0.jpg,0\n"
    )

    def run(*args: str) -> dict:
        assert main([*args, "--out", str(tmp_path / "out"), "--json"]) == 0
        return json.loads(capsys.readouterr().out)

    means = {
        model: run("eval", "pairs", "--pairs", str(pairs), "--root", str(photos), "--model", model)
        for model in (FUSED, *MEMBERS)
    }
    weights = {m["model"]: m["weight"] for m in registry.model_config(FUSED)["faceres"]["members"]}
    for key in ("similarity_same_mean", "similarity_different_mean"):
        expected = sum(weights[m] * means[m][key] for m in MEMBERS)
        assert means[FUSED][key] == pytest.approx(expected, abs=1e-5)
    report = run("eval", "identify", "--root", str(photos), "--model", FUSED)
    assert report["model"] == FUSED and report["rank1"] == 1.0


@needs_fused
def test_the_verify_tab_shows_each_networks_verdict_and_maps(tmp_path, astronaut):
    """The tab with the fused model: each member's line beside the fused verdict, a pick that
    keeps them, maps per member (each member's similarity of its JPEG crops near its own), and
    block removal refused with what to do."""
    import gradio as gr

    from faceres.app import verify_tab

    require_models(FUSED, *MEMBERS)
    a, b = tmp_path / "a.jpg", tmp_path / "b.jpg"
    Image.fromarray(astronaut).save(a)
    Image.fromarray(edited_copy(astronaut)).save(b)
    verdict, *_, details, faces = verify_tab.verify_photos(str(a), str(b), model=FUSED)
    assert [m["model"] for m in details["members"]] == list(MEMBERS)
    assert "The networks agree." in verdict and all(m in verdict for m in MEMBERS)
    faces = json.loads(json.dumps(faces))  # as the browser sends it back
    picked = verify_tab.pick_faces(faces, 1, 1)[4]
    assert picked["members"] == details["members"]
    maps = verify_tab.explain_faces(faces, 1, 1)
    for member in details["members"]:
        shown = re.search(
            rf"<code>{member['model']}</code>: similarity of these two crops <b>([0-9.-]+)</b>",
            maps,
        )
        assert float(shown[1]) == pytest.approx(member["similarity"], abs=0.03)
    with pytest.raises(gr.Error, match="no blocks of its own"):
        verify_tab.remove_identity_block(faces, 1, 1, 0)
