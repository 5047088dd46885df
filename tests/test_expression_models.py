"""The residual architectures, their plain twins, augmentation and a tiny end-to-end training."""

from __future__ import annotations

import json

import numpy as np
import pytest
import timm
import torch
from PIL import Image

import faceres  # noqa: F401  (registers the architectures)
from faceres.models.fer_resnet import PlainBlock
from faceres.train.augment import augment, normalize
from faceres.train.classifier import TrainConfig, train_expression, weight_names

ARCHS = ["faceres_resnet18_48", "faceres_plain18_48", "faceres_resnet20_48", "faceres_plain20_48",
         "faceres_resnet56_48", "faceres_plain56_48", "faceres_resnet56_nobn_48",
         "faceres_plain56_nobn_48"]


@pytest.mark.parametrize("arch", ARCHS)
def test_architectures_run(arch):
    model = timm.create_model(arch, num_classes=7).eval()
    assert model.pretrained_cfg["input_size"] == (1, 48, 48)
    with torch.no_grad():
        assert model(torch.zeros(2, 1, 48, 48)).shape == (2, 7)


def test_plain_twin_is_the_residual_net_without_shortcuts():
    res = timm.create_model("faceres_resnet20_48")
    plain = timm.create_model("faceres_plain20_48")
    # zero-pad shortcuts have no parameters: the twins have identical parameter shapes
    assert [p.shape for p in res.parameters()] == [p.shape for p in plain.parameters()]
    plain.load_state_dict(res.state_dict())
    x = torch.randn(2, 1, 48, 48)
    res.eval(), plain.eval()
    assert not torch.allclose(res(x), plain(x))
    block = plain.layer1[0]
    assert isinstance(block, PlainBlock)
    # same init for both: no zero-initialised last BatchNorm (a plain block would pass zeros)
    assert torch.all(block.bn2.weight == 1) and torch.all(res.layer1[0].bn2.weight == 1)
    with torch.no_grad():
        y = block(torch.randn(1, 16, 8, 8))
    assert y.abs().sum() > 0


def test_projection_shortcuts_are_dropped_in_the_plain_18():
    res = timm.create_model("faceres_resnet18_48")
    plain = timm.create_model("faceres_plain18_48")
    assert res.layer2[0].downsample is not None and plain.layer2[0].downsample is None


def test_augment_is_seeded_and_bounded():
    x = torch.randint(0, 256, (16, 1, 48, 48), dtype=torch.uint8)
    a = augment(x, torch.Generator().manual_seed(3))
    b = augment(x, torch.Generator().manual_seed(3))
    assert a.shape == x.shape and a.dtype == torch.float32
    assert torch.equal(a, b) and 0 <= float(a.min()) and float(a.max()) <= 1
    assert torch.allclose(normalize(torch.full((1,), 255, dtype=torch.uint8)), torch.tensor([2.0]))


def make_fer_folder(root, n_per_class: int = 12) -> None:
    """A FER2013-shaped folder of two easy 'expressions' (bright top vs bright bottom)."""
    rng = np.random.default_rng(0)
    for split in ("Training", "PublicTest"):
        for cls in ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"):
            (root / split / cls).mkdir(parents=True)
        for i in range(n_per_class):
            for cls, half in (("happy", 0), ("sad", 1)):
                im = rng.integers(0, 60, (48, 48), dtype=np.uint8)
                im[half * 24:(half + 1) * 24] += 150
                Image.fromarray(im).save(root / split / cls / f"{split}_{i}.png")


def test_training_end_to_end_into_a_registry(tmp_path, tiny_registry, monkeypatch):
    monkeypatch.setenv("FACERES_CACHE", str(tmp_path / "cache"))
    make_fer_folder(tmp_path / "fer2013")
    cfg = TrainConfig(arch="faceres_resnet20_48", name="tiny-fer", data=str(tmp_path / "fer2013"),
                      epochs=2, batch_size=8, lr=0.05, warmup_epochs=0.5, device="cpu",
                      workdir=str(tmp_path / "run"), twin="tiny-plain")
    summary = train_expression(cfg, progress=False)
    assert summary["best_epoch"] in (1, 2) and 0 <= summary["val_acc"] <= 1
    folder = tiny_registry / "models" / "tiny-fer"
    history = json.loads((folder / "training.json").read_text())
    assert len(history["epochs"]) == 2
    names = weight_names(timm.create_model("faceres_resnet20_48"))
    assert history["layers"] == names and len(history["grad_norms_init"]) == len(names)
    assert len(history["epochs"][0]["grad_norms"]) == len(names)
    entry = json.loads((tiny_registry / "index.json").read_text())["models"][0]
    assert entry["name"] == "tiny-fer" and entry["twin"] == "tiny-plain"
    assert "fer2013-publictest/accuracy" in entry["metrics"]
    card = (folder / "README.md").read_text()
    assert "faceres train expression --arch faceres_resnet20_48" in card
    # resuming a finished run trains no more epochs and keeps the history
    cfg.epochs = 3
    train_expression(cfg, resume=True, progress=False, publish=False)
    assert len(json.loads((tmp_path / "run" / "history.json").read_text())["epochs"]) == 3
