"""The expression training recipe beyond plain SGD (issue 30): warm starts, distillation, mixup
and stochastic weight averaging, each checked against a reference computed outside the training
code (torch's own label smoothing, scipy's Beta distribution, weights read back from the files,
hand-computed means and BatchNorm statistics)."""

from __future__ import annotations

import json
from dataclasses import asdict
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from scipy import stats
from test_expression_models import make_fer_folder, read_split

import faceres.train.classifier as classifier
from faceres.errors import DataError
from faceres.labels import FER_LABELS, FERPLUS_LABELS
from faceres.models.fer_resnet import normalize
from faceres.train.classifier import (
    TrainConfig,
    mixup,
    soft_targets,
    teacher_probs,
    train_expression,
)

ARCH = "faceres_resnet20_32"


@pytest.fixture
def fer_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("FACERES_CACHE", str(tmp_path / "cache"))
    make_fer_folder(tmp_path / "fer2013")
    return tmp_path / "fer2013"


def config(tmp_path, folder, name: str, **recipe) -> TrainConfig:
    return TrainConfig(
        arch=recipe.pop("arch", ARCH),
        name=name,
        data=str(folder),
        epochs=recipe.pop("epochs", 2),
        batch_size=8,
        lr=0.05,
        warmup_epochs=0.5,
        augment="light",
        device="cpu",
        workdir=str(tmp_path / "runs" / name),
        **recipe,
    )


def test_soft_targets_give_torchs_label_smoothing():
    logits = torch.randn(6, 7, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 3, 6, 2, 2, 5])
    ours = F.cross_entropy(logits, soft_targets(labels, 7, 0.1))
    torch.testing.assert_close(ours, F.cross_entropy(logits, labels, label_smoothing=0.1))
    votes = torch.softmax(torch.randn(4, 8), 1)
    assert torch.equal(soft_targets(votes, 8, 0.1), votes)  # vote shares are kept as they are


def test_mixup_blends_images_and_targets_alike_with_a_beta_weight():
    """Each image is a constant grey whose value names its class: a mixed image's grey must be
    the same blend of the two values as its target is of the two classes."""
    values = torch.tensor([10.0, 20.0, 30.0, 40.0, 50.0, 60.0])
    x = values.view(6, 1, 1, 1).expand(6, 1, 4, 4).clone()
    targets = F.one_hot(torch.arange(6), 6).float()
    gen = torch.Generator().manual_seed(3)
    lams = []
    for _ in range(400):
        mixed, mixed_targets, lam, _ = mixup(x, targets, 0.4, gen)
        grey = mixed[:, 0, 0, 0]
        torch.testing.assert_close(grey, mixed_targets @ values)  # same weights for both
        torch.testing.assert_close(mixed_targets.sum(1), torch.ones(6))
        lams.append(lam)
    # λ follows Beta(0.4, 0.4) (scipy's distribution as the reference)
    assert stats.kstest(lams, stats.beta(0.4, 0.4).cdf).pvalue > 0.01
    assert stats.kstest(lams, stats.beta(2.0, 2.0).cdf).pvalue < 1e-6  # and not another one


def test_distilled_targets_mix_the_label_and_the_teachers_on_the_same_image(tmp_path):
    teachers = [
        torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(32 * 32, 7)).eval()
        for _ in range(2)
    ]
    x = torch.rand(5, 1, 32, 32)
    labels = torch.tensor([0, 1, 2, 3, 4])
    # by hand: the teachers' softmaxes (float32; training runs them in bf16), averaged
    by_hand = (teachers[0](x).softmax(1) + teachers[1](x).softmax(1)) / 2
    torch.testing.assert_close(teacher_probs(teachers, x), by_hand, atol=2e-2, rtol=0)
    cfg = config(tmp_path, tmp_path, "kd", distill=0.3)
    _, target, hard = classifier.recipe_batch(cfg, x, labels, torch.Generator(), 7, teachers)
    one_hot = F.one_hot(labels, 7).float() * 0.9 + 0.1 / 7  # the config's label smoothing
    torch.testing.assert_close(target, 0.7 * one_hot + 0.3 * by_hand, atol=1e-2, rtol=0)
    assert torch.equal(hard, labels)


def test_a_warm_start_begins_from_the_registry_models_weights(
    fer_folder, tmp_path, tiny_registry, monkeypatch
):
    train_expression(config(tmp_path, fer_folder, "base", epochs=1), progress=False)
    saved = load_file(str(tiny_registry / "models" / "base" / "model.safetensors"))
    seen = {}
    real = classifier.start_run

    def start_run(cfg, resume):
        run = real(cfg, resume)
        seen.update({k: v.clone() for k, v in run.model.state_dict().items()})
        return run

    monkeypatch.setattr(classifier, "start_run", start_run)
    cfg = config(tmp_path, fer_folder, "warm", epochs=1, init="base")
    train_expression(cfg, progress=False, publish=False)
    assert seen.keys() == saved.keys()
    assert all(torch.equal(seen[k], saved[k].to(seen[k].dtype)) for k in saved)

    with pytest.raises(DataError, match="same architecture"):
        cfg = config(tmp_path, fer_folder, "other", arch="faceres_plain20_32", init="base")
        train_expression(cfg, progress=False, publish=False)


def test_a_teacher_that_answers_other_classes_is_refused(
    fer_folder, tmp_path, tiny_registry, monkeypatch
):
    train_expression(config(tmp_path, fer_folder, "base", epochs=1), progress=False)
    student = classifier.build_model(ARCH, len(FERPLUS_LABELS))
    with pytest.raises(DataError, match="does not fit"):
        classifier.load_teachers(["base"], student, FERPLUS_LABELS, torch.device("cpu"))
    student = classifier.build_model("faceres_resnet20_48", len(FER_LABELS))
    with pytest.raises(DataError, match="does not fit"):  # another input size
        classifier.load_teachers(["base"], student, FER_LABELS, torch.device("cpu"))
    assert (
        len(
            classifier.load_teachers(
                ["base"], classifier.build_model(ARCH, 7), FER_LABELS, torch.device("cpu")
            )
        )
        == 1
    )


def test_swa_averages_the_last_epochs_and_refits_batchnorm(fer_folder, tmp_path, monkeypatch):
    """The averaged weights equal the mean of the epoch-end weights, computed here from copies
    taken as training goes; the first BatchNorm's refitted running mean equals the mean of the
    stem convolution's output over the clean training images, computed here by hand."""
    ends = []
    real_epoch = classifier.train_epoch

    def train_epoch(run, epoch, progress=True):
        record = real_epoch(run, epoch, progress)
        ends.append({k: v.detach().clone() for k, v in run.model.state_dict().items()})
        return record

    monkeypatch.setattr(classifier, "train_epoch", train_epoch)
    cfg = config(
        tmp_path, fer_folder, "swa", arch="faceres_resnet20_48", epochs=3, swa_epochs=2, swa_lr=0.02
    )
    summary = train_expression(cfg, progress=False, publish=False)
    history = json.loads((tmp_path / "runs" / "swa" / "history.json").read_text())
    assert [e["lr"] for e in history["epochs"][1:]] == [0.02, 0.02]
    saved = load_file(str(tmp_path / "runs" / "swa" / "checkpoint.safetensors"))
    assert int(saved["swa_count"]) == 2
    for key in ("conv1.weight", "layer2.1.conv2.weight", "fc.weight", "fc.bias"):
        torch.testing.assert_close(saved[f"swa.{key}"], (ends[1][key] + ends[2][key]) / 2)

    run = classifier.start_run(cfg, resume=True)
    refit = classifier.swa_weights(run)
    images, _ = read_split(fer_folder / "Training")
    x = normalize(images, 0.5, 0.25)
    by_hand = F.conv2d(x, saved["swa.conv1.weight"], padding=1).mean((0, 2, 3))
    torch.testing.assert_close(refit["bn1.running_mean"], by_hand, atol=2e-3, rtol=2e-3)
    assert summary["selected"] in ("swa", f"epoch {summary['best_epoch']}")
    assert history["swa"]["epochs"] == 2


def test_an_interrupted_recipe_run_resumes_where_an_unstopped_one_ends(
    fer_folder, tmp_path, monkeypatch
):
    """Mixup's draws and the SWA average survive a stop and `--resume`, and the wall time
    counts the epochs of the first session too (here each said to take 100 s)."""
    recipe = dict(epochs=3, mixup=0.4, swa_epochs=2)
    train_expression(
        config(tmp_path, fer_folder, "straight", **recipe), progress=False, publish=False
    )
    real_epoch = classifier.train_epoch

    def stop_after_two(run, epoch, progress=True):
        if epoch == 2:
            raise KeyboardInterrupt
        record = real_epoch(run, epoch, progress)
        return {**record, "seconds": 100.0}

    cfg = config(tmp_path, fer_folder, "stopped", **recipe)
    with monkeypatch.context() as patch:
        patch.setattr(classifier, "train_epoch", stop_after_two)
        with pytest.raises(KeyboardInterrupt):
            train_expression(cfg, progress=False, publish=False)
    resumed = train_expression(
        config(tmp_path, fer_folder, "stopped", **recipe),
        resume=True,
        progress=False,
        publish=False,
    )
    assert resumed["train_seconds"] > 200
    a = load_file(str(tmp_path / "runs" / "straight" / "checkpoint.safetensors"))
    b = load_file(str(tmp_path / "runs" / "stopped" / "checkpoint.safetensors"))
    assert a.keys() == b.keys() and "swa.fc.weight" in a
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]


def test_the_card_gives_the_recipe_as_a_command_and_in_words():
    """A card's command must retrain the model: every recipe flag is in it, and the text says
    where the run started, whom it learnt from and which weights were kept."""
    from faceres.train.card import expression_card

    cfg = TrainConfig(
        arch="faceres_resnet18_48",
        name="student",
        epochs=12,
        init="resnet18-fer",
        teachers=["resnet18-fer", "plain18-fer"],
        distill=0.5,
        teacher_views=10,
        swa_epochs=3,
        swa_lr=0.01,
    )
    history = {
        "config": asdict(cfg),
        "epochs": [
            {"val_acc": 0.70, "seconds": 3600.0},
            {"val_acc": 0.71, "seconds": 36000.0},  # paused, or slowed by another job
            {"val_acc": 0.69, "seconds": 3600.0},
        ],
        "best_epoch": 2,
        "selected": "swa",
        "swa": {"epochs": 3, "lr": 0.01, "val_acc": 0.72, "val_acc_flip": 0.725},
        "train_error_final": 0.2,
        "train_seconds": 43200.0,
        "device": "cpu",
        "threads": 2,
        "teacher_views": {"k": 10, "seconds": 1800.0},
    }
    card = expression_card("student", history, {"fer2013-publictest/accuracy": 0.725}, True)
    flags = (
        "--init resnet18-fer --teachers resnet18-fer plain18-fer --distill 0.5 --teacher-views "
        "10 --swa-epochs 3 --swa-lr 0.01"
    )
    assert flags in card
    assert "fine-tuned from `resnet18-fer`" in card and "the SWA average selected" in card
    assert (
        "0.5 × the label and 0.5 × the mean probabilities of `resnet18-fer`, `plain18-fer`" in card
    )
    assert "10 fixed augmented views of each image, the teachers run once on each" in card
    assert "PublicTest 0.7200 (best single epoch 0.7100)" in card
    assert "720.0 min of" in card  # the wall time, pause included
    assert "(3.00 CPU-hours: the median epoch × 3 epochs, 2 threads; and 0.50 CPU-hours" in card
    assert "computing the teachers' 10 views of each image, once for this model and its twin" in (
        " ".join(card.split())
    )


def test_teacher_views_pair_each_view_with_the_teachers_probabilities_on_it():
    """Each stored view is an augmented uint8 copy of its image, and the probabilities stored
    with it are the teachers' on that very view (recomputed here in float32 by hand); a batch
    hands out a view and its own probabilities together."""
    from faceres.train.teacher_views import compute_views

    teachers = [
        torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(32 * 32, 7)).eval()
        for _ in range(2)
    ]
    x = torch.randint(0, 256, (12, 1, 32, 32), dtype=torch.uint8)
    views = compute_views(x, teachers, k=3, seed=0, policy="light", norm=(0.5, 0.25))
    assert views.images.shape == (3, 12, 1, 32, 32) and views.images.dtype == torch.uint8
    assert views.probs.shape == (3, 12, 7)
    assert not torch.equal(views.images[0], views.images[1])  # three different augmentations
    for v in range(3):
        inp = normalize(views.images[v], 0.5, 0.25)
        by_hand = (teachers[0](inp).softmax(1) + teachers[1](inp).softmax(1)) / 2
        torch.testing.assert_close(views.probs[v], by_hand, atol=2e-2, rtol=0)
    idx = torch.tensor([5, 0, 11, 5])
    batch, probs = views.batch(idx, torch.Generator().manual_seed(1), (0.5, 0.25))
    by_hand = (teachers[0](batch).softmax(1) + teachers[1](batch).softmax(1)) / 2
    torch.testing.assert_close(probs, by_hand, atol=2e-2, rtol=0)
    originals = normalize(x[idx], 0.5, 0.25)
    assert not torch.equal(batch, originals)  # views, not the clean images
    # a training batch: (1 − distill) × the smoothed label + distill × the view's probabilities
    labels = torch.tensor([3, 1, 6, 3])
    y_train = torch.zeros(12, dtype=torch.long)
    y_train[idx] = labels
    run = SimpleNamespace(
        views=views,
        y_train=y_train,
        gen=torch.Generator().manual_seed(1),
        norm=(0.5, 0.25),
        classes=7,
        cfg=SimpleNamespace(distill=0.3, label_smoothing=0.1),
    )
    inp, target, hard = classifier.view_batch(run, idx)
    by_hand = (teachers[0](inp).softmax(1) + teachers[1](inp).softmax(1)) / 2
    one_hot = F.one_hot(labels, 7).float() * 0.9 + 0.1 / 7
    torch.testing.assert_close(target, 0.7 * one_hot + 0.3 * by_hand, atol=1e-2, rtol=0)
    assert torch.equal(hard, labels)


def test_teacher_views_are_made_once_and_shared_by_the_twin(
    fer_folder, tmp_path, tiny_registry, monkeypatch
):
    """The first run computes the views and stores them; its twin (same teachers, views, seed,
    data) reads them back without running a teacher; other teachers get other views."""
    import faceres.train.teacher_views as tv

    train_expression(config(tmp_path, fer_folder, "base", epochs=1), progress=False)
    train_expression(config(tmp_path, fer_folder, "other", epochs=1, seed=1), progress=False)
    made = []
    real = tv.compute_views

    def counted(*args, **kwargs):
        made.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(tv, "compute_views", counted)
    recipe = dict(epochs=1, teachers=["base"], teacher_views=2)
    first = train_expression(
        config(tmp_path, fer_folder, "kd", **recipe), progress=False, publish=False
    )
    twin = config(tmp_path, fer_folder, "kd-plain", arch="faceres_plain20_32", **recipe)
    names = ("kd", "kd-plain")
    train_expression(twin, progress=False, publish=False)
    assert len(made) == 1 and len(list((tmp_path / "runs" / "teacher-views").iterdir())) == 1
    histories = [json.loads((tmp_path / "runs" / n / "history.json").read_text()) for n in names]
    assert histories[0]["teacher_views"] == histories[1]["teacher_views"]  # the twin's cost too
    assert histories[0]["teacher_views"]["k"] == 2 and histories[0]["teacher_views"]["seconds"] > 0
    resumed = classifier.start_run(config(tmp_path, fer_folder, "kd", **recipe), resume=True)
    assert resumed.history["teacher_views"] == histories[0]["teacher_views"]
    train_expression(
        config(tmp_path, fer_folder, "kd2", epochs=1, teachers=["other"], teacher_views=2),
        progress=False,
        publish=False,
    )
    assert len(made) == 2 and first["val_acc"] >= 0
    with pytest.raises(DataError, match="--teacher-views"):
        config(tmp_path, fer_folder, "bad", teachers=["base"], teacher_views=2, mixup=0.2)
    with pytest.raises(DataError, match="--teacher-views"):
        config(tmp_path, fer_folder, "bad", teacher_views=2)
