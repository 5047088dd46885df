"""Training really trains: a few optimiser steps on a tiny synthetic FER2013 folder lower the loss,
and the first update is exactly the step of the optimiser the training code uses (SGD, Nesterov
momentum, weight decay on conv/linear weights only), computed here from the gradient it was given.
"""

from __future__ import annotations

import copy

import pytest
import timm
import torch
import torch.nn.functional as F
from test_expression_models import make_fer_folder, read_split

import faceres.train.classifier as train
from faceres.train.classifier import TrainConfig, train_expression


@pytest.fixture
def watched_model(monkeypatch):
    """Wraps `build_model` so the test sees the network being trained: its initial weights and,
    per parameter, each gradient handed over after a backward pass together with the weight it
    was computed at (the weight the previous steps left)."""
    seen: dict = {}

    def build_model(arch, num_classes):
        model = original(arch, num_classes)
        seen.update(model=model, init=copy.deepcopy(model.state_dict()), grads={}, weights={})
        for name, param in model.named_parameters():

            def record(p, name=name, param=param):
                if p is param:  # not a copy (the gradient-norm probes work on copies)
                    seen["grads"].setdefault(name, []).append(p.grad.detach().clone())
                    seen["weights"].setdefault(name, []).append(p.detach().clone())

            param.register_post_accumulate_grad_hook(record)
        return model

    original = train.build_model
    monkeypatch.setattr(train, "build_model", build_model)
    return seen


def test_a_few_steps_follow_the_gradient_and_lower_the_loss(tmp_path, monkeypatch, watched_model):
    monkeypatch.setenv("FACERES_CACHE", str(tmp_path / "cache"))
    make_fer_folder(tmp_path / "fer2013")  # 24 Training images: 3 steps of 8
    cfg = TrainConfig(
        arch="faceres_resnet20_48",
        name="tiny-steps",
        data=str(tmp_path / "fer2013"),
        epochs=1,
        batch_size=8,
        lr=0.05,
        warmup_epochs=0,
        device="cpu",
        workdir=str(tmp_path / "run"),
    )
    train_expression(cfg, progress=False, publish=False)
    model, init = watched_model["model"], watched_model["init"]
    grads, weights = watched_model["grads"], watched_model["weights"]
    params = dict(model.named_parameters())
    assert set(grads) == set(params) and all(len(g) == 3 for g in grads.values())

    # Step 1 of torch's SGD with Nesterov momentum m from a fresh optimiser, at the full learning
    # rate (no warm-up): d = g + wd·w (wd 0 for BatchNorm and biases), buffer = d,
    # update = -lr·(d + m·buffer) = -lr·(1 + m)·d.
    m, lr = cfg.momentum, cfg.lr
    for name, param in params.items():
        w0, g = init[name], grads[name][0]
        torch.testing.assert_close(weights[name][0], w0)  # gradient 1 was taken at the start
        d = g + (cfg.weight_decay * w0 if param.ndim > 1 else 0.0)
        expected = -lr * (1 + m) * d
        step = weights[name][1] - w0
        torch.testing.assert_close(
            step,
            expected,
            rtol=1e-3,
            atol=1e-4 * float(expected.abs().max()) + 1e-9,
            msg=lambda text, name=name: f"first update of {name}: {text}",
        )
    moved = [n for n, p in params.items() if not torch.equal(p.detach(), weights[n][2])]
    assert len(moved) == len(params), "the last step did not update every parameter"

    # The loss on the clean training images, with the weights before and after training.
    x, labels = read_split(tmp_path / "fer2013" / "Training")
    y = torch.from_numpy(labels)
    pcfg = model.pretrained_cfg
    x = (x.float() / 255 - pcfg["mean"][0]) / pcfg["std"][0]
    before = timm.create_model(cfg.arch, num_classes=7)
    before.load_state_dict(init)
    losses = {}
    for mode in ("train", "eval"):  # batch statistics, then the running averages
        for when, net in (("before", before), ("after", model)):
            net = getattr(copy.deepcopy(net).float(), mode)()
            with torch.no_grad():
                losses[mode, when] = float(F.cross_entropy(net(x), y))
    assert losses["train", "after"] < 0.5 * losses["train", "before"], losses
    assert losses["eval", "after"] < 0.8 * losses["eval", "before"], losses
