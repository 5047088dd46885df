"""Explanation maps: the verification map against finite differences of the similarity, the
masking step and Grad-CAM against hand-computed answers, the CLI's outputs and errors, and the
deletion test on a few LFW pairs."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import faceres.identity.explain as explain
from faceres import registry
from faceres.cli import main
from faceres.detect.yunet import yunet_path
from faceres.errors import FaceresError
from faceres.eval.faithfulness import mask_pixels
from faceres.face.pipeline import embed_crops
from faceres.settings import data_dir

skdata = pytest.importorskip("skimage.data")


def _loads(task: str, name: str | None = None) -> bool:
    try:
        registry.load_task(task, name, device="cpu")
    except FaceresError:
        return False
    return True


needs_identity = pytest.mark.skipif(
    not _loads("identity"), reason="the default identity model does not load here (registry)"
)
needs_yunet = pytest.mark.skipif(
    yunet_path() is None,
    reason="YuNet's ONNX file does not resolve (registry entry yunet-2026may, FACERES_DATA)",
)
LFW = (data_dir() or Path("/nonexistent")) / "lfw"
needs_lfw_view1 = pytest.mark.skipif(
    not all((LFW / f).is_file() for f in ("pairsDevTrain.txt", "pairsDevTest.txt")),
    reason=f"LFW View 1 not found under {LFW} (set FACERES_DATA to the research data)",
)


def _crops() -> tuple[np.ndarray, np.ndarray]:
    """Two 150×150 RGB face crops cut by hand from the astronaut and her mirror image, framed
    differently (no detector involved)."""
    photo = skdata.astronaut()
    mirror = np.ascontiguousarray(photo[:, ::-1])
    return tuple(
        cv2.resize(c, (150, 150), interpolation=cv2.INTER_AREA)
        for c in (photo[20:240, 110:330], mirror[30:250, 170:390])
    )


# --- verification maps ------------------------------------------------------------------------


@needs_identity
def test_similarity_is_the_cosine_of_embed_crops():
    loaded = registry.load_task("identity", device="cpu")
    crops = _crops()
    emb = embed_crops(list(crops), loaded)
    ex = explain.explain_crops(*crops, loaded)
    assert ex.similarity == pytest.approx(float(emb[0] @ emb[1]), abs=1e-5)
    assert [m.shape for m in ex.maps] == [(150, 150), (150, 150)]
    assert all(m.dtype == np.float32 for m in ex.maps)


@needs_identity
def test_maps_match_finite_differences_of_the_similarity():
    """A map summed over a 30×30 patch is (to first order) the similarity lost when the patch
    moves towards the crop's mean colour: checked by central differences through embed_crops,
    each face against its own map (σ = 0 exactly; the smoothed public map still tracks it)."""
    loaded = registry.load_task("identity", device="cpu")
    crops = _crops()
    emb = embed_crops(list(crops), loaded)
    _, raw = explain.similarity_maps(list(crops), loaded, sigma=0)
    smooth = explain.explain_crops(*crops, loaded).maps
    eps, side = 0.003, 30
    for i in (0, 1):
        x = crops[i].astype(np.float64)
        towards_mean = x - x.reshape(-1, 3).mean(axis=0)
        batch, raw_sums, smooth_sums = [], [], []
        for y0 in range(30, 120, side):  # the nine central patches: the face
            for x0 in range(30, 120, side):
                d = np.zeros_like(x)
                d[y0 : y0 + side, x0 : x0 + side] = towards_mean[y0 : y0 + side, x0 : x0 + side]
                batch += [x - eps * d, x + eps * d]
                raw_sums.append(raw[i][y0 : y0 + side, x0 : x0 + side].sum())
                smooth_sums.append(smooth[i][y0 : y0 + side, x0 : x0 + side].sum())
        s = embed_crops(batch, loaded).astype(np.float64) @ emb[1 - i]
        finite = (s[1::2] - s[0::2]) / (2 * eps)  # d(similarity) / d(step away from the mean)
        raw_sums, smooth_sums = np.array(raw_sums), np.array(smooth_sums)
        strong = np.abs(finite) > 0.2 * np.abs(finite).max()
        assert np.all(np.sign(raw_sums[strong]) == np.sign(finite[strong])), i
        assert np.corrcoef(finite, raw_sums)[0, 1] > 0.98, i
        assert np.abs(finite - raw_sums).max() < 0.2 * np.abs(finite).max(), i
        assert np.corrcoef(finite, smooth_sums)[0, 1] > 0.9, i


def test_map_stats_and_rendering_by_hand():
    signed = np.array([[0.0, 2.0], [-1.0, 4.0]], np.float32)
    stats = explain.map_stats(signed)
    assert stats["sum"] == 5.0
    assert (stats["supporting"], stats["opposing"]) == (6.0, -1.0)
    assert stats["supporting_share"] == round(6 / 7, 4)
    ex = explain.PairExplanation(0.5, (signed, -signed), (np.zeros((2, 2, 3), np.uint8),) * 2, "m")
    first, second = ex.map_images()
    # drawn relative to the 99th percentile of |map| over both faces: 4 here; green +, red -
    assert first[0, 1].tolist() == [0, 110, 0]  # 220 · 2 / 4
    assert first[1, 0].tolist() == [58, 0, 0]  # 235 · 1 / 4, truncated
    assert first[1, 1].tolist() == [0, 220, 0]
    assert second[1, 1].tolist() == [235, 0, 0]
    assert first[0, 0].tolist() == [0, 0, 0]
    over = ex.overlays()[0]
    assert over.dtype == np.uint8 and over.shape == (2, 2, 3)
    assert over[1, 1, 1] > over[1, 1, 0] and over[1, 0, 0] > over[1, 0, 1]


def test_explain_verify_passes_its_arguments_to_verify(monkeypatch):
    seen = {}

    def fake_verify(*args, **kwargs):
        seen.update(args=args, **kwargs)
        raise FaceresError("stop here")

    monkeypatch.setattr(explain, "verify", fake_verify)
    with pytest.raises(FaceresError, match="stop here"):
        explain.explain_verify("a.jpg", "b.jpg", model="m", face1=3, face2=7, detector="dlib")
    assert seen == {
        "args": ("a.jpg", "b.jpg"),
        "model": "m",
        "face1": 3,
        "face2": 7,
        "detector": "dlib",
    }


# --- masking ------------------------------------------------------------------------------------


def test_mask_pixels_by_hand():
    crop = np.array(
        [[[0, 100, 8], [10, 100, 8]], [[20, 100, 8], [50, 101, 8]]], np.uint8
    )  # means: 20, 100.25 -> 100, 8
    out = mask_pixels(crop, np.array([3, 0, 1, 2]), 0.5)  # round(0.5 · 4) = 2 pixels: 3, 0
    assert out.tolist() == [[[20, 100, 8], [10, 100, 8]], [[20, 100, 8], [20, 100, 8]]]
    assert crop[1, 1].tolist() == [50, 101, 8], "the input is left as it was"
    assert mask_pixels(crop, np.array([2, 1, 0, 3]), 0.0).tolist() == crop.tolist()
    assert np.all(mask_pixels(crop, np.array([2, 1, 0, 3]), 1.0) == [20, 100, 8])
    floats = crop.astype(np.float32)
    assert mask_pixels(floats, np.array([1, 0, 2, 3]), 0.25)[0, 1].tolist() == [20, 100.25, 8]


# --- Grad-CAM -----------------------------------------------------------------------------------


class SignNet(nn.Module):
    """Features: relu(x) and relu(-x) at full resolution; head: global mean, then class 0 reads
    the first feature and class 1 the second. Grad-CAM of class 0 is relu(x) / (H·W), of class
    1 relu(-x) / (H·W)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 1, bias=False)
        self.fc = nn.Linear(2, 2, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
            self.fc.weight.copy_(torch.eye(2))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def test_grad_cam_on_a_hand_built_net():
    x = torch.tensor([[1.0, -2.0], [3.0, 0.0]]).view(1, 1, 2, 2)
    net = SignNet().eval()
    cam0 = explain.grad_cam(net, x, torch.tensor([0]))
    cam1 = explain.grad_cam(net, x, torch.tensor([1]))
    assert cam0[0].tolist() == [[0.25, 0.0], [0.75, 0.0]]
    assert cam1[0].tolist() == [[0.0, 0.5], [0.0, 0.0]]


def test_expression_cams_average_the_mirror_and_scale_to_one():
    net = SignNet().eval()
    loaded = registry.LoadedModel(
        "sign", net, {"pretrained_cfg": {"mean": [0.5], "std": [0.25]}}, torch.device("cpu")
    )
    crop = np.array([[[255, 0, 128], [192, 64, 128]]], np.uint8)  # 1 × 2 × 3
    z = (crop[0] / 255.0 - 0.5) / 0.25  # standardised: [[2, -2, .008], [1.01, -1.0, .008]]
    # class 0 looks at relu(z), in the face and, flipped back, in its mirror: the same map
    expected = np.maximum(z, 0) / np.maximum(z, 0).max()
    cams = explain.expression_cams(crop, loaded, np.array([0]))
    assert cams.shape == (1, 2, 3) and cams.dtype == np.float32
    np.testing.assert_allclose(cams[0], expected, atol=1e-6)
    np.testing.assert_allclose(
        explain.expression_cams(crop, loaded, np.array([1]))[0],
        np.maximum(-z, 0) / np.maximum(-z, 0).max(),
        atol=1e-6,
    )
    flat = np.full((1, 2, 3), 128, np.uint8)  # z = 0.008 > 0 everywhere: class 1 sees nothing
    assert np.all(explain.expression_cams(flat, loaded, np.array([1])) == 0)


@pytest.mark.parametrize("name", ["resnet18-fer", "plain18-fer"])
def test_expression_cam_on_the_astronaut(name):
    if not _loads("expression", name):
        pytest.skip(f"{name} does not load here (registry)")
    from faceres.expression import analyze_expression

    cams = explain.expression_cam(skdata.astronaut(), model=name)
    reference = analyze_expression(skdata.astronaut(), model=name)
    assert [f.label for f in cams.faces] == [f.label for f in reference.faces]
    face = cams.faces[0]
    assert face.cam.shape == face.crop.shape == (48, 48)
    assert face.cam.min() >= 0 and face.cam.max() == pytest.approx(1.0)
    assert face.overlay().shape == (192, 192, 3)


# --- command line -------------------------------------------------------------------------------


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("faceres: error: "), err
    return err[0]


def test_cli_out_must_be_a_folder(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main(["explain", "a.jpg", "b.jpg", "--out", str(tmp_path / "file")]) == 2
    assert "not a folder" in _one_error_line(capsys)


@needs_identity
def test_cli_bad_images_give_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image at all")
    missing = tmp_path / "missing.jpg"
    assert main(["explain", str(missing), str(bad), "--out", str(tmp_path / "out")]) == 2
    assert "missing.jpg" in _one_error_line(capsys)
    assert main(["explain", str(bad), str(bad), "--out", str(tmp_path / "out")]) == 2
    assert "bad.jpg" in _one_error_line(capsys)


@needs_identity
@needs_yunet
def test_cli_writes_images_and_json(tmp_path, capsys):
    a, b = tmp_path / "astronaut.png", tmp_path / "camera.png"
    Image.fromarray(skdata.astronaut()).save(a)
    Image.fromarray(skdata.camera()).save(b)
    out = tmp_path / "out"
    assert main(["explain", str(a), str(b), "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert json.loads((out / "explain.json").read_text()) == report
    assert report["verdict"] == report["verify"]["verdict"] == "different"
    assert abs(report["similarity"] - report["verify"]["similarity"]) < 0.02
    names = sorted(Path(p).name for p in report["images"])
    assert names == ["face1-map.png", "face1-overlay.png", "face2-map.png", "face2-overlay.png"]
    for path in report["images"]:
        assert np.asarray(Image.open(path)).shape == (150, 150, 3)
    assert len(report["maps"]) == 2 and report["maps"][0]["supporting"] > 0


# --- the deletion test --------------------------------------------------------------------------


@needs_lfw_view1
@needs_identity
@needs_yunet
def test_deletion_test_on_a_few_pairs(tmp_path):
    from faceres.eval.faithfulness import evaluate_explain

    report = evaluate_explain(pairs=2, detector="yunet", out_dir=tmp_path, curve=(0.05,))
    assert report["pairs"] == 2 and report["pair_lists"] == {"pairsDevTest.txt": 2}
    assert report["ratio"] == pytest.approx(report["drop_top"] / report["drop_random"], rel=1e-3)
    assert report["drop_top"] > report["drop_random"] > 0
    assert report["drop_top"] > report["drop_opposing"]
    curve = report["curve"]
    assert curve["fractions"] == [0.0, 0.05, 0.1] and curve["map"][0] == curve["random"][0]
    assert curve["map"][0] - curve["map"][2] == pytest.approx(report["drop_top"], abs=1e-5)
    assert curve["random"][0] - curve["random"][2] == pytest.approx(report["drop_random"], abs=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [Path(report["plot"]).name, Path(report["plot"]).name.replace("-deletion.png", ".json")]
    )
