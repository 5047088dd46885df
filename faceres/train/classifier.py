"""Train expression models on FER2013 / FER+: `faceres train expression`.

The whole dataset lives on the training device as uint8; augmentation runs batched there too
(`faceres.train.augment`), so two CPU cores are not split between a DataLoader and the model.

>>> cfg = TrainConfig(arch="faceres_resnet18_48", name="resnet18-fer", epochs=60)
>>> summary = train_expression(cfg)                       # doctest: +SKIP
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import timm
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from faceres.datasets.fer import FaceSet, dataset_key, load_fer2013, resize_faces
from faceres.labels import FER_LABELS, FERPLUS_LABELS
from faceres.models.fer_resnet import normalize, predict
from faceres.registry.weights import default_device
from faceres.settings import PROJECT_ROOT
from faceres.train.augment import augment_policy
from faceres.train.card import publish_expression_model

TRAIN_SPLIT, VAL_SPLIT = "Training", "PublicTest"


@dataclass
class TrainConfig:
    """One training run. `labels`: "fer" (7 classes, majority labels) or "ferplus" (8 classes,
    trained on FER+ vote shares, validated on majority votes)."""

    arch: str
    name: str
    labels: str = "fer"
    data: str | None = None
    epochs: int = 60
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    augment: str = "full"
    warmup_epochs: float = 2.0
    seed: int = 0
    twin: str | None = None
    default: bool = False
    device: str | None = None
    workdir: str | None = None
    grad_every: int = 25
    time_budget: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def run_dir(self) -> Path:
        return Path(self.workdir) if self.workdir else PROJECT_ROOT / "runs" / self.name


def load_splits(cfg: TrainConfig, size: int = 48) -> tuple[FaceSet, FaceSet]:
    """Training set (vote shares for FER+) and validation set (majority labels), size×size."""
    protocol = "probability" if cfg.labels == "ferplus" else "majority"
    train = load_fer2013(TRAIN_SPLIT, cfg.data, cfg.labels, protocol=protocol)
    val = load_fer2013(VAL_SPLIT, cfg.data, cfg.labels, protocol="majority")
    for faces in (train, val):
        faces.images = resize_faces(faces.images, size)
    return train, val


def build_model(arch: str, num_classes: int) -> torch.nn.Module:
    """A fresh faceres architecture with `num_classes` outputs."""
    return timm.create_model(arch, num_classes=num_classes)


def weight_names(model: torch.nn.Module) -> list[str]:
    """The conv and linear weights in forward order: the 'layers' of the gradient-norm plots."""
    return [n for n, p in model.named_parameters() if p.ndim in (2, 4) and n.endswith("weight")]


def grad_norms(model: torch.nn.Module, names: list[str]) -> list[float]:
    """L2 norm of each named weight's gradient."""
    params = dict(model.named_parameters())
    grads = [params[n].grad if params[n].grad is not None else torch.zeros(1) for n in names]
    return [float(v) for v in torch._foreach_norm(grads)]


def probe_gradients(
    model: torch.nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    names: list[str],
    mean: float,
    std: float,
) -> list[float]:
    """Per-layer gradient norms of the loss on one fixed batch, float32, train-mode BatchNorm,
    without changing the model."""
    probe = copy.deepcopy(model).float().train()
    probe.zero_grad(set_to_none=True)
    loss = _loss(probe(normalize(images, mean, std)), targets, 0.0)
    loss.backward()
    return grad_norms(probe, names)


def _loss(logits: torch.Tensor, targets: torch.Tensor, smoothing: float) -> torch.Tensor:
    if targets.ndim == 2:
        return F.cross_entropy(logits.float(), targets)
    return F.cross_entropy(logits.float(), targets, label_smoothing=smoothing)


def _autocast(device: torch.device):
    return torch.autocast(device.type, dtype=torch.bfloat16)


def step_seconds(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: TrainConfig,
    mean: float,
    std: float,
    steps: int = 20,
) -> float:
    """Seconds per training step (augment, forward, backward, SGD), timed on a throwaway copy."""
    trial = copy.deepcopy(model).train()
    opt = torch.optim.SGD(trial.parameters(), lr=1e-3, momentum=cfg.momentum)
    gen = torch.Generator(device=x.device).manual_seed(1)
    t0 = 0.0
    for i in range(steps + 3):
        if i == 3:
            _sync(x.device)
            t0 = time.perf_counter()
        idx = torch.randint(0, len(x), (cfg.batch_size,), generator=gen, device=x.device)
        inp = normalize(augment_policy(x[idx], gen, cfg.augment), mean, std).contiguous(
            memory_format=torch.channels_last
        )
        with _autocast(x.device):
            loss = _loss(trial(inp), y[idx], cfg.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _sync(x.device)
    return (time.perf_counter() - t0) / steps


def fit_epochs(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: TrainConfig,
    steps_per_epoch: int,
    mean: float,
    std: float,
) -> int:
    """How many epochs fit in `cfg.time_budget` seconds (15% allowed for validation)."""
    per_epoch = step_seconds(model, x, y, cfg, mean, std) * steps_per_epoch * 1.15
    return max(1, min(cfg.epochs, int(cfg.time_budget / per_epoch)))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _lr_at(step: int, total: int, warmup: int, base: float) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    return 0.5 * base * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def _save_checkpoint(
    run: Path, model, opt, history: dict, gen: torch.Generator, best_state: dict
) -> None:
    run.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors.update({f"best.{k}": v.contiguous() for k, v in best_state.items()})
    for i, p in enumerate(opt.param_groups[0]["params"]):
        buf = opt.state.get(p, {}).get("momentum_buffer")
        if buf is not None:
            tensors[f"momentum.{i}"] = buf.detach().cpu().contiguous()
    tensors["rng"] = gen.get_state().cpu()
    save_file(tensors, str(run / "checkpoint.tmp"))
    (run / "checkpoint.tmp").replace(run / "checkpoint.safetensors")
    (run / "history.json").write_text(json.dumps(history))


def train_expression(
    cfg: TrainConfig, resume: bool = False, progress: bool = True, publish: bool = True
) -> dict:
    """Train `cfg.arch` from scratch (or resume), select the epoch with the best PublicTest
    accuracy, evaluate, and (if `publish`) save it to the registry as `cfg.name`."""
    device = default_device(cfg.device)
    torch.backends.cudnn.benchmark = device.type == "cuda"
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    model = build_model(cfg.arch, len(FERPLUS_LABELS if cfg.labels == "ferplus" else FER_LABELS))
    pcfg = model.pretrained_cfg
    train, val = load_splits(cfg, int(pcfg["input_size"][-1]))
    mean, std = float(pcfg["mean"][0]), float(pcfg["std"][0])
    names = weight_names(model)

    x_train = torch.from_numpy(train.images).unsqueeze(1).to(device)
    y_train = torch.from_numpy(train.targets).to(device)
    x_val = torch.from_numpy(val.images).unsqueeze(1)
    probe = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(0))[:256]
    probe_x, probe_y = x_train[probe.to(device)], y_train[probe.to(device)]

    model.to(device).to(memory_format=torch.channels_last)
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    opt = torch.optim.SGD(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=True,
    )
    steps_per_epoch = len(x_train) // cfg.batch_size
    run = cfg.run_dir
    if cfg.time_budget and not (resume and (run / "checkpoint.safetensors").is_file()):
        fit = fit_epochs(model, x_train, y_train, cfg, steps_per_epoch, mean, std)
        if fit < cfg.epochs:
            cfg.notes.append(f"--time-budget {cfg.time_budget:.0f}s: {cfg.epochs} → {fit} epochs")
            cfg.epochs = fit
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    total = steps_per_epoch * cfg.epochs
    warmup = int(cfg.warmup_epochs * steps_per_epoch)
    history: dict = {
        "config": asdict(cfg),
        "input_size": int(pcfg["input_size"][-1]),
        "layers": names,
        "epochs": [],
        "grad_norms_init": probe_gradients(model, probe_x, probe_y, names, mean, std),
    }
    best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    best_acc, start_epoch = -1.0, 0
    if resume and (run / "checkpoint.safetensors").is_file():
        saved = load_file(str(run / "checkpoint.safetensors"))
        model.load_state_dict({k[6:]: v for k, v in saved.items() if k.startswith("model.")})
        best_state = {k[5:]: v for k, v in saved.items() if k.startswith("best.")}
        for i, p in enumerate(opt.param_groups[0]["params"]):
            if f"momentum.{i}" in saved:
                opt.state[p]["momentum_buffer"] = saved[f"momentum.{i}"].to(device)
        gen.set_state(saved["rng"].to(gen.get_state().device))
        history = json.loads((run / "history.json").read_text())
        start_epoch = len(history["epochs"])
        best_acc = max((e["val_acc"] for e in history["epochs"]), default=-1.0)
    elif resume:
        cfg.notes.append("--resume given but no checkpoint found: trained from scratch")

    started = time.time()
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        t0 = time.time()
        order = torch.randperm(len(x_train), generator=gen, device=device)
        loss_sum = correct = seen = 0.0
        norms: list[list[float]] = []
        bar = tqdm(
            range(steps_per_epoch),
            desc=f"{cfg.name} {epoch + 1}/{cfg.epochs}",
            disable=not progress,
            leave=False,
        )
        for i in bar:
            step = epoch * steps_per_epoch + i
            for group in opt.param_groups:
                group["lr"] = _lr_at(step, total, warmup, cfg.lr)
            idx = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            x = normalize(augment_policy(x_train[idx], gen, cfg.augment), mean, std)
            x = x.contiguous(memory_format=torch.channels_last)
            y = y_train[idx]
            with _autocast(device):
                logits = model(x)
            loss = _loss(logits, y, cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if i % cfg.grad_every == 0:
                norms.append(grad_norms(model, names))
            opt.step()
            hard = y if y.ndim == 1 else y.argmax(1)
            loss_sum += float(loss.detach()) * len(y)
            correct += float((logits.argmax(1) == hard).sum())
            seen += len(y)
        probs = predict(model, x_val, mean, std, flip=False)
        val_loss = float(F.nll_loss(probs.clamp_min(1e-8).log(), torch.from_numpy(val.labels)))
        val_acc = float((probs.argmax(1).numpy() == val.labels).mean())
        record = {
            "epoch": epoch + 1,
            "train_loss": loss_sum / seen,
            "train_acc": correct / seen,
            "val_loss": val_loss,
            "val_acc": val_acc,
            "lr": opt.param_groups[0]["lr"],
            "seconds": time.time() - t0,
            "grad_norms": np.mean(norms, 0).tolist(),
        }
        history["epochs"].append(record)
        if val_acc > best_acc:
            best_acc = val_acc
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        _save_checkpoint(run, model, opt, history, gen, best_state)
        if progress:
            tqdm.write(
                f"{cfg.name} epoch {epoch + 1}: train loss {record['train_loss']:.3f} "
                f"acc {record['train_acc']:.3f} | val loss {val_loss:.3f} acc {val_acc:.4f}"
                f" | {record['seconds']:.1f}s"
            )

    history["train_seconds"] = history.get("train_seconds", 0.0) + time.time() - started
    history["device"] = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    history["grad_norms_final"] = probe_gradients(model, probe_x, probe_y, names, mean, std)
    last_probs = predict(model, x_train.cpu(), mean, std, flip=False)
    history["train_error_final"] = float((last_probs.argmax(1).numpy() != train.labels).mean())
    model.load_state_dict(best_state)
    history["best_epoch"] = 1 + int(np.argmax([e["val_acc"] for e in history["epochs"]]))
    val_probs = predict(model, x_val, mean, std, flip=True)
    history["val_acc_flip"] = float((val_probs.argmax(1).numpy() == val.labels).mean())
    (run / "history.json").write_text(json.dumps(history))
    summary = {
        "name": cfg.name,
        "best_epoch": history["best_epoch"],
        "val_acc": best_acc,
        "val_acc_flip": history["val_acc_flip"],
        "train_error_final": history["train_error_final"],
        "train_seconds": history["train_seconds"],
        "device": history["device"],
    }
    if publish:
        metrics = {f"{dataset_key(cfg.labels)}-publictest/accuracy": history["val_acc_flip"]}
        model = model.cpu().float().to(memory_format=torch.contiguous_format)
        publish_expression_model(model, cfg.name, history, metrics)
    return summary
