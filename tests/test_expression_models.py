"""The residual architectures, their plain twins, augmentation and a tiny end-to-end training."""

from __future__ import annotations

import json

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import load_file
from sklearn.metrics import accuracy_score

import faceres.models  # noqa: F401  (registers the architectures)
from faceres.models.fer_resnet import PlainBlock, normalize
from faceres.train.augment import augment, augment_policy
from faceres.train.classifier import TrainConfig, train_expression, weight_names

ARCHS = [
    "faceres_resnet18_48",
    "faceres_plain18_48",
    "faceres_resnet18s_48",
    "faceres_plain18s_48",
    "faceres_resnet20_48",
    "faceres_plain20_48",
    "faceres_resnet56_48",
    "faceres_plain56_48",
    "faceres_resnet56_nobn_48",
    "faceres_plain56_nobn_48",
]


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


@pytest.mark.parametrize("kind", ["resnet", "plain"])
def test_the_18s_strides_its_first_stage(kind):
    """48→24→12→6→3 instead of 48→48→24→12→6: each stage's convolutions see a quarter of the
    positions. The same weights, plus a projection shortcut in the residual net's first block
    (it now changes the resolution)."""
    full = timm.create_model(f"faceres_{kind}18_48")
    early = timm.create_model(f"faceres_{kind}18s_48")
    extra = 32 * 32 + 2 * 32 if kind == "resnet" else 0  # 1×1 conv 32→32 and its BatchNorm
    count = sum(p.numel() for p in early.parameters())
    assert count == sum(p.numel() for p in full.parameters()) + extra
    x = torch.zeros(1, 1, 48, 48)
    with torch.no_grad():
        sizes = [getattr(early, f"layer{i}")(y).shape[-1] for i, y in _stage_inputs(early, x)]
        assert sizes == [24, 12, 6, 3]
        assert full.forward_features(x).shape[-2:] == (6, 6)
    assert [f["reduction"] for f in early.feature_info] == [2, 4, 8, 16]


def _stage_inputs(model: torch.nn.Module, x: torch.Tensor):
    """(stage number, that stage's input) for each stage of a FaceResNet."""
    y = model.act1(model.bn1(model.conv1(x)))
    for i in range(1, model.num_stages + 1):
        yield i, y
        y = getattr(model, f"layer{i}")(y)


def test_augment_is_seeded_and_bounded():
    x = torch.randint(0, 256, (16, 1, 48, 48), dtype=torch.uint8)
    a = augment(x, torch.Generator().manual_seed(3))
    b = augment(x, torch.Generator().manual_seed(3))
    assert a.shape == x.shape and a.dtype == torch.float32
    assert torch.equal(a, b) and 0 <= float(a.min()) and float(a.max()) <= 1
    assert torch.allclose(normalize(torch.full((1,), 255, dtype=torch.uint8)), torch.tensor([2.0]))


@pytest.mark.parametrize(("depth", "millions"), [(20, 0.27), (32, 0.46), (44, 0.66), (56, 0.85)])
def test_cifar_networks_at_32_have_he_et_als_sizes(depth, millions):
    """He et al. (2015), Table 6: ResNet-20/32/44/56 have 0.27/0.46/0.66/0.85 M parameters (10
    classes); the plain twin has the same parameters (parameter-free shortcuts)."""
    res = timm.create_model(f"faceres_resnet{depth}_32", num_classes=10)
    plain = timm.create_model(f"faceres_plain{depth}_32", num_classes=10)
    count = sum(p.numel() for p in res.parameters())
    assert round(count / 1e6, 2) == millions
    assert count == sum(p.numel() for p in plain.parameters())
    assert res.depth == plain.depth == depth and res.pretrained_cfg["input_size"] == (1, 32, 32)
    with torch.no_grad():
        assert res.eval()(torch.zeros(1, 1, 32, 32)).shape == (1, 10)


def test_light_augmentation_only_flips_and_shifts():
    """A horizontal bar stays a horizontal bar of the same brightness and thickness (no rotation,
    scale, jitter or erasing: every column alike, the mass kept); its centre moves by at most
    1/8 of the side (4 of 32 pixels)."""
    x = torch.zeros(64, 1, 32, 32, dtype=torch.uint8)
    x[:, :, 14:18, :] = 200
    out = augment_policy(x, torch.Generator().manual_seed(0), "light")[:, 0]
    assert float((out - out[:, :, :1]).abs().max()) < 1e-6  # every column the same
    rows = out.mean(2)
    mass = rows.sum(1)
    assert torch.allclose(mass, torch.full_like(mass, 4 * 200 / 255), atol=1e-4)
    centre = (rows * torch.arange(32)).sum(1) / mass
    assert float((centre - 15.5).abs().max()) <= 4.0 and float(centre.std()) > 0.5
    with pytest.raises(ValueError, match="full"):
        augment_policy(x, torch.Generator(), "heavy")


def make_fer_folder(root, n_per_class: int = 12, mislabelled: int = 0) -> None:
    """A FER2013-shaped folder of two easy 'expressions' (bright top vs bright bottom). With
    `mislabelled`, that many images of each class carry the other class's pattern (Training) and
    PublicTest gets one such image per class per 6 images, so accuracies are not all 0 or 1."""
    rng = np.random.default_rng(0)
    for split in ("Training", "PublicTest"):
        for cls in ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"):
            (root / split / cls).mkdir(parents=True)
        count = n_per_class if split == "Training" or not mislabelled else n_per_class // 2
        wrong = mislabelled if split == "Training" else count // 6 if mislabelled else 0
        for i in range(count):
            for cls, half in (("happy", 0), ("sad", 1)):
                im = rng.integers(0, 60, (48, 48), dtype=np.uint8)
                half = 1 - half if i < wrong else half
                im[half * 24 : (half + 1) * 24] += 150
                Image.fromarray(im).save(root / split / cls / f"{split}_{i}.png")


FER_ORDER = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
"""The Kaggle csv's class order (what a 7-class FER2013 model's outputs mean)."""


def read_split(folder) -> tuple[torch.Tensor, np.ndarray]:
    """A class-named image folder read with PIL: uint8 N×1×48×48 images and their labels."""
    files = sorted(folder.rglob("*.png"))
    images = np.stack([np.asarray(Image.open(f).convert("L")) for f in files])
    labels = np.asarray([FER_ORDER.index(f.parent.name) for f in files])
    return torch.from_numpy(images).unsqueeze(1), labels


def predicted(arch: str, state: dict, images: torch.Tensor, flip: bool = False) -> np.ndarray:
    """Classes a fresh `arch` network with weights `state` predicts for uint8 `images` (bf16
    autocast, as in training; `flip`: softmax averaged with the mirror image)."""
    model = timm.create_model(arch, num_classes=7)
    model.load_state_dict(state)
    model.eval()
    cfg = model.pretrained_cfg
    x = (images.float() / 255 - cfg["mean"][0]) / cfg["std"][0]
    views = [x, x.flip(3)] if flip else [x]
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        probs = sum(model(v).float().softmax(1) for v in views)
    return probs.argmax(1).numpy()


def test_training_end_to_end_into_a_registry(tmp_path, tiny_registry, monkeypatch):
    monkeypatch.setenv("FACERES_CACHE", str(tmp_path / "cache"))
    make_fer_folder(tmp_path / "fer2013", mislabelled=1)
    cfg = TrainConfig(
        arch="faceres_resnet20_48",
        name="tiny-fer",
        data=str(tmp_path / "fer2013"),
        epochs=4,
        batch_size=8,
        lr=0.05,
        warmup_epochs=0.5,
        device="cpu",
        workdir=str(tmp_path / "run"),
        twin="tiny-plain",
    )
    summary = train_expression(cfg, progress=False)
    folder = tiny_registry / "models" / "tiny-fer"
    history = json.loads((folder / "training.json").read_text())
    assert len(history["epochs"]) == 4

    # Every accuracy recorded, recomputed with sklearn from the saved weights (the last epoch's
    # and the selected epoch's) and labels read from the folder names.
    saved = load_file(str(tmp_path / "run" / "checkpoint.safetensors"))
    last = {k[6:]: v for k, v in saved.items() if k.startswith("model.")}
    best = {k[5:]: v for k, v in saved.items() if k.startswith("best.")}
    x_val, y_val = read_split(tmp_path / "fer2013" / "PublicTest")
    x_train, y_train = read_split(tmp_path / "fer2013" / "Training")
    arch = cfg.arch
    last_acc = accuracy_score(y_val, predicted(arch, last, x_val))
    best_acc = accuracy_score(y_val, predicted(arch, best, x_val))
    best_flip = accuracy_score(y_val, predicted(arch, best, x_val, flip=True))
    assert history["epochs"][-1]["val_acc"] == pytest.approx(last_acc)
    assert history["train_error_final"] == pytest.approx(
        1 - accuracy_score(y_train, predicted(arch, last, x_train))
    )
    assert summary["val_acc"] == pytest.approx(best_acc)
    assert history["epochs"][summary["best_epoch"] - 1]["val_acc"] == pytest.approx(best_acc)
    assert best_acc == pytest.approx(max(e["val_acc"] for e in history["epochs"]))
    assert summary["val_acc_flip"] == history["val_acc_flip"] == pytest.approx(best_flip)
    assert 0 < best_flip < 1  # the mislabelled PublicTest images cannot all be right
    names = weight_names(timm.create_model("faceres_resnet20_48"))
    assert history["layers"] == names and len(history["grad_norms_init"]) == len(names)
    assert len(history["epochs"][0]["grad_norms"]) == len(names)
    entry = json.loads((tiny_registry / "index.json").read_text())["models"][0]
    assert entry["name"] == "tiny-fer" and entry["twin"] == "tiny-plain"
    assert entry["metrics"]["fer2013-publictest/accuracy"] == pytest.approx(best_flip, abs=1e-4)
    card = (folder / "README.md").read_text()
    assert "faceres train expression --arch faceres_resnet20_48" in card
    # resuming a finished run trains no more epochs and keeps the history
    cfg.epochs = 5
    train_expression(cfg, resume=True, progress=False, publish=False)
    assert len(json.loads((tmp_path / "run" / "history.json").read_text())["epochs"]) == 5


def test_an_interrupted_run_resumed_ends_where_an_uninterrupted_one_does(tmp_path, monkeypatch):
    """The depth study and the expression recipes run across sessions: a run killed after an
    epoch and continued with `resume` must give the same weights as one that was never stopped
    (same schedule, momentum and random state)."""
    from faceres.train import classifier

    monkeypatch.setenv("FACERES_CACHE", str(tmp_path / "cache"))
    make_fer_folder(tmp_path / "fer2013")

    def config(run: str) -> TrainConfig:
        return TrainConfig(
            arch="faceres_resnet20_32",
            name="tiny",
            data=str(tmp_path / "fer2013"),
            epochs=3,
            batch_size=8,
            lr=0.05,
            warmup_epochs=0.5,
            augment="light",
            device="cpu",
            workdir=str(tmp_path / run),
        )

    train_expression(config("straight"), progress=False, publish=False)
    real_epoch = classifier.train_epoch

    def stop_after_two(run, epoch, progress=True):
        if epoch == 2:
            raise KeyboardInterrupt
        return real_epoch(run, epoch, progress)

    with monkeypatch.context() as patch:
        patch.setattr(classifier, "train_epoch", stop_after_two)
        with pytest.raises(KeyboardInterrupt):
            train_expression(config("stopped"), progress=False, publish=False)
    assert len(json.loads((tmp_path / "stopped" / "history.json").read_text())["epochs"]) == 2
    train_expression(config("stopped"), resume=True, progress=False, publish=False)
    a = load_file(str(tmp_path / "straight" / "checkpoint.safetensors"))
    b = load_file(str(tmp_path / "stopped" / "checkpoint.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]
