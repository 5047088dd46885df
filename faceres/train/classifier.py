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

from faceres import registry
from faceres.datasets.fer import FaceSet, dataset_key, load_fer2013
from faceres.errors import DataError
from faceres.face.align import resize_faces
from faceres.labels import FER_LABELS, FERPLUS_LABELS
from faceres.models.fer_resnet import normalize, predict
from faceres.registry.publish import wall_seconds
from faceres.registry.weights import default_device
from faceres.settings import PROJECT_ROOT
from faceres.train.augment import augment_policy
from faceres.train.card import publish_expression_model
from faceres.train.teacher_views import TeacherViews, cache_key, teacher_views

TRAIN_SPLIT, VAL_SPLIT = "Training", "PublicTest"


@dataclass
class TrainConfig:
    """One training run. `labels`: "fer" (7 classes, majority labels) or "ferplus" (8 classes,
    trained on FER+ vote shares, validated on majority votes).

    The recipe beyond plain SGD: `init` starts from a registry model's weights (same
    architecture); `teachers` are registry models whose mean probabilities on each augmented
    batch make up `distill` of the target (knowledge distillation, the teacher seeing the very
    image the student sees), or with `teacher_views` K > 0 their probabilities on K fixed
    augmented views of each image, computed once (`faceres.train.teacher_views`); `mixup` > 0
    blends image pairs with a Beta(mixup, mixup) weight;
    `swa_epochs` > 0 holds the learning rate at `swa_lr` for the last epochs and averages their
    weights (stochastic weight averaging, BatchNorm statistics refitted on the training set).
    """

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
    init: str | None = None
    teachers: list[str] = field(default_factory=list)
    distill: float = 0.5
    teacher_views: int = 0
    mixup: float = 0.0
    swa_epochs: int = 0
    swa_lr: float = 0.01
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not 0 <= self.swa_epochs < self.epochs:
            raise DataError(f"--swa-epochs must be 0 to {self.epochs - 1} (--epochs - 1).")
        if not 0 <= self.distill <= 1 or self.mixup < 0:
            raise DataError("--distill must be 0 to 1 and --mixup 0 or more.")
        if self.teacher_views and (not self.teachers or self.mixup or self.teacher_views < 0):
            raise DataError(
                "--teacher-views needs --teachers and no --mixup (the teachers saw each view "
                "alone), and is 1 or more."
            )

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


def soft_targets(targets: torch.Tensor, classes: int, smoothing: float) -> torch.Tensor:
    """Per-class target probabilities: integer labels one-hot with `smoothing` spread evenly
    (what `cross_entropy`'s label smoothing does), vote shares as they are."""
    if targets.ndim == 2:
        return targets.float()
    return F.one_hot(targets, classes).float() * (1 - smoothing) + smoothing / classes


def mixup(
    x: torch.Tensor, targets: torch.Tensor, alpha: float, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, float, torch.Tensor]:
    """Mixup (Zhang et al. 2018): each image blended with a shuffled partner, λ ~ Beta(α, α)
    for the batch, the targets blended alike; returns images, targets, λ and the partners'
    order. λ is drawn from `gen`, so a resumed run mixes the same pairs."""
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen, device=gen.device))
    lam = float(np.random.default_rng(seed).beta(alpha, alpha))
    order = torch.randperm(len(x), generator=gen, device=x.device)
    return lam * x + (1 - lam) * x[order], lam * targets + (1 - lam) * targets[order], lam, order


@torch.no_grad()
def teacher_probs(teachers: list[torch.nn.Module], x: torch.Tensor) -> torch.Tensor:
    """The teachers' mean softmax on a standardised batch (bf16 autocast, as training runs)."""
    with _autocast(x.device):
        return torch.stack([t(x).float().softmax(1) for t in teachers]).mean(0)


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
    teachers: list[torch.nn.Module] | None = None,
) -> float:
    """Seconds per training step (augment, the recipe's mixup and teachers, forward, backward,
    SGD), timed on a throwaway copy."""
    trial = copy.deepcopy(model).train()
    opt = torch.optim.SGD(trial.parameters(), lr=1e-3, momentum=cfg.momentum)
    gen = torch.Generator(device=x.device).manual_seed(1)
    t0 = 0.0
    for i in range(steps + 3):
        if i == 3:
            _sync(x.device)
            t0 = time.perf_counter()
        idx = torch.randint(0, len(x), (cfg.batch_size,), generator=gen, device=x.device)
        inp = normalize(augment_policy(x[idx], gen, cfg.augment), mean, std)
        inp, target, _ = recipe_batch(cfg, inp, y[idx], gen, trial.num_classes, teachers or [])
        with _autocast(x.device):
            loss = _loss(trial(inp), target, cfg.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _sync(x.device)
    return (time.perf_counter() - t0) / steps


def fit_epochs(run: Run) -> int:
    """How many epochs fit in `cfg.time_budget` seconds (15% allowed for validation)."""
    cfg = run.cfg
    step = step_seconds(run.model, run.x_train, run.y_train, cfg, *run.norm, teachers=run.teachers)
    per_epoch = step * run.steps_per_epoch * 1.15
    return max(1, min(cfg.epochs, int(cfg.time_budget / per_epoch)))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _lr_at(step: int, total: int, warmup: int, base: float, floor: float = 0.0) -> float:
    """Linear warm-up, then cosine from `base` to `floor` at step `total`, then `floor`."""
    if step < warmup:
        return base * (step + 1) / warmup
    if step >= total:
        return floor
    cosine = 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))
    return floor + (base - floor) * cosine


@dataclass
class Run:
    """One training run as it goes: its config and device, the model with its optimiser and
    random generator, the data on the device, and the history and best epoch so far."""

    cfg: TrainConfig
    device: torch.device
    model: torch.nn.Module
    opt: torch.optim.Optimizer
    gen: torch.Generator
    train: FaceSet
    val: FaceSet
    x_train: torch.Tensor
    y_train: torch.Tensor
    probe: tuple[torch.Tensor, torch.Tensor]
    history: dict
    best_state: dict
    best_acc: float = -1.0
    teachers: list[torch.nn.Module] = field(default_factory=list)
    swa_state: dict = field(default_factory=dict)
    swa_count: int = 0
    views: TeacherViews | None = None

    @property
    def norm(self) -> tuple[float, float]:
        """The model's input mean and std."""
        pcfg = self.model.pretrained_cfg
        return float(pcfg["mean"][0]), float(pcfg["std"][0])

    @property
    def steps_per_epoch(self) -> int:
        return len(self.x_train) // self.cfg.batch_size

    @property
    def classes(self) -> int:
        return int(self.model.num_classes)


def _save_checkpoint(run: Run) -> None:
    """Model, best epoch, SWA average, momentum, random state and history, written atomically."""
    folder = run.cfg.run_dir
    folder.mkdir(parents=True, exist_ok=True)
    state = run.model.state_dict()
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in state.items()}
    tensors.update({f"best.{k}": v.contiguous() for k, v in run.best_state.items()})
    if run.swa_count:
        tensors.update({f"swa.{k}": v.contiguous() for k, v in run.swa_state.items()})
        tensors["swa_count"] = torch.tensor(run.swa_count)
    for g, group in enumerate(run.opt.param_groups):
        for i, p in enumerate(group["params"]):
            buf = run.opt.state.get(p, {}).get("momentum_buffer")
            if buf is not None:
                tensors[f"momentum.{g}.{i}"] = buf.detach().cpu().contiguous()
    tensors["rng"] = run.gen.get_state().cpu()
    save_file(tensors, str(folder / "checkpoint.tmp"))
    (folder / "checkpoint.tmp").replace(folder / "checkpoint.safetensors")
    (folder / "history.json").write_text(json.dumps(run.history))


def init_weights(name: str, arch: str) -> dict[str, torch.Tensor]:
    """The weights of registry model `name` to start a run of `arch` from."""
    loaded = registry.load(name, device="cpu")
    if loaded.config.get("architecture") != arch:
        raise DataError(
            f"--init {name} is a {loaded.config.get('architecture')} model, not {arch}: "
            "start from a model of the same architecture."
        )
    return {k: v.detach().clone() for k, v in loaded.model.state_dict().items()}


def load_teachers(
    names: list[str], student: torch.nn.Module, labels: tuple[str, ...], device: torch.device
) -> list[torch.nn.Module]:
    """Registry models to distil from, frozen, on `device`: each must take the student's input
    (size, mean, std) and answer in the training labels' classes."""
    want = {k: tuple(student.pretrained_cfg[k]) for k in ("input_size", "mean", "std")}
    teachers = []
    for name in names:
        loaded = registry.load(name, device="cpu")
        got = {k: tuple(loaded.model.pretrained_cfg[k]) for k in want}
        if got != want or tuple(loaded.config.get("label_names", ())) != tuple(labels):
            raise DataError(
                f"teacher {name} does not fit this run: it takes {got} and answers "
                f"{loaded.config.get('label_names')}; the student takes {want} and learns "
                f"{list(labels)}."
            )
        teacher = copy.deepcopy(loaded.model).eval().requires_grad_(False).to(device)
        teachers.append(teacher.to(memory_format=torch.channels_last))
    return teachers


def _optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum; no weight decay on biases and norms."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    return torch.optim.SGD(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=True,
    )


def start_run(cfg: TrainConfig, resume: bool) -> Run:
    """A seeded model, its optimiser and the data on the device, continued from the last
    checkpoint with `resume` (when there is one); `cfg.time_budget` may lower `cfg.epochs`."""
    device = default_device(cfg.device)
    torch.backends.cudnn.benchmark = device.type == "cuda"
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    labels = FERPLUS_LABELS if cfg.labels == "ferplus" else FER_LABELS
    model = build_model(cfg.arch, len(labels))
    if cfg.init:
        model.load_state_dict(init_weights(cfg.init, cfg.arch))
    size = int(model.pretrained_cfg["input_size"][-1])
    train, val = load_splits(cfg, size)
    x_train = torch.from_numpy(train.images).unsqueeze(1).to(device)
    y_train = torch.from_numpy(train.targets).to(device)
    pick = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(0))[:256]
    probe = x_train[pick.to(device)], y_train[pick.to(device)]
    model.to(device).to(memory_format=torch.channels_last)
    opt = _optimizer(model, cfg)
    checkpoint = cfg.run_dir / "checkpoint.safetensors"
    run = Run(
        cfg, device, model, opt, torch.Generator(), train, val, x_train, y_train, probe, {}, {}
    )
    run.teachers = load_teachers(cfg.teachers, model, labels, device)
    if cfg.teacher_views:
        run.views = _teacher_views(run, size)
        run.teachers = []  # their work is in the views
    if cfg.time_budget and not (resume and checkpoint.is_file()):
        fit = fit_epochs(run)
        if fit < cfg.epochs:
            cfg.notes.append(f"--time-budget {cfg.time_budget:.0f}s: {cfg.epochs} → {fit} epochs")
            cfg.epochs = max(fit, cfg.swa_epochs + 1)
    run.gen = torch.Generator(device=device).manual_seed(cfg.seed)
    names = weight_names(model)
    run.history = {
        "config": asdict(cfg),
        "input_size": size,
        "layers": names,
        "epochs": [],
        "grad_norms_init": probe_gradients(model, *probe, names, *run.norm),
    }
    run.best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    if resume and checkpoint.is_file():
        _resume(run, checkpoint)
    elif resume:
        cfg.notes.append("--resume given but no checkpoint found: trained from scratch")
    if run.views is not None:
        run.history["teacher_views"] = {"k": run.views.k, "seconds": run.views.seconds}
    return run


def _teacher_views(run: Run, size: int) -> TeacherViews:
    """The run's teacher views, from `runs/teacher-views/` when a run with the same teachers
    (their pinned weights), views, seed, augmentation and data made them."""
    cfg = run.cfg
    key = cache_key(
        teachers={t: registry.get_entry(t).get("files", {}) for t in cfg.teachers},
        k=cfg.teacher_views,
        seed=cfg.seed,
        augment=cfg.augment,
        labels=cfg.labels,
        size=size,
        data=str(cfg.data),
        images=len(run.x_train),
    )
    path = cfg.run_dir.parent / "teacher-views" / f"{key}.safetensors"
    gen_seed = cfg.seed + 1  # not the training generator's stream
    return teacher_views(
        run.x_train, run.teachers, cfg.teacher_views, gen_seed, cfg.augment, run.norm, path
    )


def _momentum_key(saved: dict, group: int, index: int) -> str | None:
    """The key of a parameter's momentum buffer in a checkpoint: "momentum.{group}.{index}", or
    "momentum.{index}" for group 0 in checkpoints written when only group 0's were kept."""
    for key in (f"momentum.{group}.{index}", f"momentum.{index}" if group == 0 else ""):
        if key in saved:
            return key
    return None


def _resume(run: Run, checkpoint: Path) -> None:
    """Model, best epoch, momentum, random generator and history from `checkpoint`."""
    saved = load_file(str(checkpoint))
    run.model.load_state_dict({k[6:]: v for k, v in saved.items() if k.startswith("model.")})
    run.best_state = {k[5:]: v for k, v in saved.items() if k.startswith("best.")}
    for g, group in enumerate(run.opt.param_groups):
        for i, p in enumerate(group["params"]):
            key = _momentum_key(saved, g, i)
            if key:
                run.opt.state[p]["momentum_buffer"] = saved[key].to(run.device)
    run.gen.set_state(saved["rng"].to(run.gen.get_state().device))
    run.swa_state = {k[4:]: v for k, v in saved.items() if k.startswith("swa.")}
    run.swa_count = int(saved["swa_count"]) if "swa_count" in saved else 0
    run.history = json.loads((checkpoint.parent / "history.json").read_text())
    run.best_acc = max((e["val_acc"] for e in run.history["epochs"]), default=-1.0)


def train_epoch(run: Run, epoch: int, progress: bool = True) -> dict:
    """One epoch (0-based `epoch`) of SGD on the shuffled training set, then PublicTest: the
    epoch's record (losses, accuracies, learning rate, seconds, mean gradient norms)."""
    cfg, model, opt = run.cfg, run.model, run.opt
    model.train()
    t0 = time.time()
    steps = run.steps_per_epoch
    total, warmup = steps * (cfg.epochs - cfg.swa_epochs), int(cfg.warmup_epochs * steps)
    floor = cfg.swa_lr if cfg.swa_epochs else 0.0
    names = run.history["layers"]
    order = torch.randperm(len(run.x_train), generator=run.gen, device=run.device)
    loss_sum = correct = seen = 0.0
    norms: list[list[float]] = []
    bar = tqdm(
        range(steps),
        desc=f"{cfg.name} {epoch + 1}/{cfg.epochs}",
        disable=not progress,
        leave=False,
    )
    for i in bar:
        for group in opt.param_groups:
            group["lr"] = _lr_at(epoch * steps + i, total, warmup, cfg.lr, floor)
        idx = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
        if run.views is not None:
            x, y, hard = view_batch(run, idx)
        else:
            x = normalize(augment_policy(run.x_train[idx], run.gen, cfg.augment), *run.norm)
            y = run.y_train[idx]
            x, y, hard = recipe_batch(cfg, x, y, run.gen, run.classes, run.teachers)
        with _autocast(run.device):
            logits = model(x)
        loss = _loss(logits, y, cfg.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if i % cfg.grad_every == 0:
            norms.append(grad_norms(model, names))
        opt.step()
        loss_sum += float(loss.detach()) * len(y)
        correct += float((logits.argmax(1) == hard).sum())
        seen += len(y)
    val_loss, val_acc = _validate(run)
    return {
        "epoch": epoch + 1,
        "train_loss": loss_sum / seen,
        "train_acc": correct / seen,
        "val_loss": val_loss,
        "val_acc": val_acc,
        "lr": opt.param_groups[0]["lr"],
        "seconds": time.time() - t0,
        "grad_norms": np.mean(norms, 0).tolist(),
    }


def recipe_batch(
    cfg: TrainConfig,
    x: torch.Tensor,
    y: torch.Tensor,
    gen: torch.Generator,
    classes: int,
    teachers: list[torch.nn.Module],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A standardised batch and its targets after mixup and the teachers, channels-last, with
    the hard labels training accuracy is counted on (the larger share's, under mixup)."""
    hard = y if y.ndim == 1 else y.argmax(1)
    if cfg.mixup or teachers:
        y = soft_targets(y, classes, cfg.label_smoothing)
    if cfg.mixup:
        x, y, lam, order = mixup(x, y, cfg.mixup, gen)
        hard = hard if lam >= 0.5 else hard[order]
    x = x.contiguous(memory_format=torch.channels_last)
    if teachers:
        y = (1 - cfg.distill) * y + cfg.distill * teacher_probs(teachers, x)
    return x, y, hard


def view_batch(run: Run, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`recipe_batch` for a run with teacher views: one stored view of each image `idx` and its
    target, (1 − distill) × the label and distill × the teachers' probabilities on that view."""
    x, probs = run.views.batch(idx, run.gen, run.norm)
    y = run.y_train[idx]
    hard = y if y.ndim == 1 else y.argmax(1)
    target = soft_targets(y, run.classes, run.cfg.label_smoothing)
    return x, (1 - run.cfg.distill) * target + run.cfg.distill * probs, hard


def average_weights(run: Run) -> None:
    """Fold the model's current floating-point weights and buffers into the SWA running mean."""
    n = run.swa_count
    for k, v in run.model.state_dict().items():
        if v.is_floating_point():
            w = v.detach().cpu().float()
            mean = run.swa_state.get(k, w)
            run.swa_state[k] = mean + (w - mean) / (n + 1)
    run.swa_count = n + 1


def swa_weights(run: Run) -> dict[str, torch.Tensor]:
    """The SWA mean with its BatchNorm statistics refitted on the clean training set (torch's
    `update_bn`: running means and variances recomputed as plain averages over the batches)."""
    model = copy.deepcopy(run.model).float()
    state = model.state_dict()
    model.load_state_dict({k: run.swa_state.get(k, v).to(v.dtype) for k, v in state.items()})
    batches = (
        normalize(run.x_train[i : i + 512], *run.norm).contiguous(memory_format=torch.channels_last)
        for i in range(0, len(run.x_train), 512)
    )
    torch.optim.swa_utils.update_bn(batches, model)
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _validate(run: Run, flip: bool = False) -> tuple[float, float]:
    """(loss, accuracy) on PublicTest (majority labels)."""
    x_val = torch.from_numpy(run.val.images).unsqueeze(1)
    probs = predict(run.model, x_val, *run.norm, flip=flip)
    labels = torch.from_numpy(run.val.labels)
    val_loss = float(F.nll_loss(probs.clamp_min(1e-8).log(), labels))
    return val_loss, float((probs.argmax(1).numpy() == run.val.labels).mean())


def finish_run(run: Run) -> dict:
    """The history completed after the last epoch (training wall time over every session,
    final gradient norms and clean training error, the best epoch and its flip-test PublicTest
    accuracy), with the best epoch's weights loaded; returns the run's summary."""
    history, model = run.history, run.model
    history["train_seconds"] = wall_seconds(history)
    device = run.device
    history["device"] = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    history["threads"] = torch.get_num_threads()
    names = history["layers"]
    history["grad_norms_final"] = probe_gradients(model, *run.probe, names, *run.norm)
    last_probs = predict(model, run.x_train.cpu(), *run.norm, flip=False)
    history["train_error_final"] = float((last_probs.argmax(1).numpy() != run.train.labels).mean())
    history["best_epoch"] = 1 + int(np.argmax([e["val_acc"] for e in history["epochs"]]))
    history["selected"] = f"epoch {history['best_epoch']}"
    selected_acc = run.best_acc
    if run.swa_count:
        model.load_state_dict(swa_weights(run))
        swa_acc = _validate(run)[1]
        history["swa"] = {
            "epochs": run.swa_count,
            "lr": run.cfg.swa_lr,
            "val_acc": swa_acc,
            "val_acc_flip": _validate(run, flip=True)[1],
        }
        if swa_acc >= run.best_acc:
            history["selected"], selected_acc = "swa", swa_acc
    if history["selected"] != "swa":
        model.load_state_dict(run.best_state)
    history["val_acc_flip"] = _validate(run, flip=True)[1]
    (run.cfg.run_dir / "history.json").write_text(json.dumps(history))
    return {
        "name": run.cfg.name,
        "best_epoch": history["best_epoch"],
        "selected": history["selected"],
        "val_acc": selected_acc,
        "val_acc_flip": history["val_acc_flip"],
        "train_error_final": history["train_error_final"],
        "train_seconds": history["train_seconds"],
        "device": history["device"],
    }


def train_expression(
    cfg: TrainConfig, resume: bool = False, progress: bool = True, publish: bool = True
) -> dict:
    """Train `cfg.arch` from scratch or from `cfg.init` (or resume), select the epoch (or the SWA
    average) with the best PublicTest accuracy, evaluate, and (if `publish`) save it to the
    registry as `cfg.name`."""
    run = start_run(cfg, resume)
    for epoch in range(len(run.history["epochs"]), cfg.epochs):
        record = train_epoch(run, epoch, progress)
        run.history["epochs"].append(record)
        if record["val_acc"] > run.best_acc:
            run.best_acc = record["val_acc"]
            run.best_state = {
                k: v.detach().cpu().clone() for k, v in run.model.state_dict().items()
            }
        if epoch >= cfg.epochs - cfg.swa_epochs:
            average_weights(run)
        _save_checkpoint(run)
        if progress:
            tqdm.write(
                f"{cfg.name} epoch {epoch + 1}: train loss {record['train_loss']:.3f} "
                f"acc {record['train_acc']:.3f} | val loss {record['val_loss']:.3f} "
                f"acc {record['val_acc']:.4f} | {record['seconds']:.1f}s"
            )
    summary = finish_run(run)
    if publish:
        key = f"{dataset_key(cfg.labels)}-publictest/accuracy"
        model = run.model.cpu().float().to(memory_format=torch.contiguous_format)
        publish_expression_model(model, cfg.name, run.history, {key: run.history["val_acc_flip"]})
    return summary
