"""Distillation with the teachers run once: K fixed augmented views of each training image and
the teachers' mean probabilities on each, computed before the first epoch and stored beside the
runs (`runs/teacher-views/`), shared by every run with the same teachers, views and data (a
ResNet and its plain twin). Each epoch the student trains on one view per image, drawn at
random, with the probabilities the teachers gave that very view ("ten-view training" with
K = 10). The teachers then cost nothing per epoch: on the 2-core CPU they took about two thirds
of each step of a student with a quarter of their compute.

>>> views = teacher_views(x_train, teachers, k=10, seed=0, policy="full", norm=(0.5, 0.25),
...                       key=cache_key)
>>> x, probs = views.batch(idx, gen)
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from faceres.models.fer_resnet import normalize
from faceres.train.augment import augment_policy

BATCH = 256
"""Images per teacher forward pass while the views are computed."""


@dataclass
class TeacherViews:
    """`images` (K, N, 1, H, W) uint8: K augmented views of N training images; `probs` (K, N, C)
    float32: the teachers' mean probabilities on each view; `seconds`: the wall time computing
    them took (in whichever run computed them)."""

    images: torch.Tensor
    probs: torch.Tensor
    seconds: float

    @property
    def k(self) -> int:
        return int(self.images.shape[0])

    def batch(
        self, idx: torch.Tensor, gen: torch.Generator, norm: tuple[float, float]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One view of each image `idx` (drawn from `gen`), standardised, channels-last, and
        the teachers' probabilities on it."""
        view = torch.randint(0, self.k, (len(idx),), generator=gen, device=gen.device)
        view, idx = view.to(self.images.device), idx.to(self.images.device)
        x = normalize(self.images[view, idx], *norm).contiguous(memory_format=torch.channels_last)
        return x, self.probs[view, idx]


def cache_key(**parts: object) -> str:
    """A short hash naming a cache file after everything that determines its contents.

    >>> cache_key(teachers=["a"], k=10)
    '3f1c…'
    """
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@torch.no_grad()
def compute_views(
    x: torch.Tensor,
    teachers: list[torch.nn.Module],
    k: int,
    seed: int,
    policy: str,
    norm: tuple[float, float],
) -> TeacherViews:
    """K augmented views (`augment_policy`, seeded) of each image of `x` (N, 1, H, W) uint8,
    rounded to uint8, and the teachers' mean softmax on each (bf16 autocast, as training)."""
    start = time.perf_counter()
    gen = torch.Generator(device=x.device).manual_seed(seed)
    images = torch.empty((k, *x.shape), dtype=torch.uint8, device=x.device)
    probs = []
    for v in range(k):
        for i in range(0, len(x), BATCH):
            view = augment_policy(x[i : i + BATCH], gen, policy)
            images[v, i : i + BATCH] = (view * 255).round().clamp(0, 255).to(torch.uint8)
        probs.append(
            torch.cat(
                [
                    _mean_softmax(teachers, normalize(images[v, i : i + BATCH], *norm))
                    for i in range(0, len(x), BATCH)
                ]
            )
        )
    return TeacherViews(images, torch.stack(probs), time.perf_counter() - start)


def _mean_softmax(teachers: list[torch.nn.Module], x: torch.Tensor) -> torch.Tensor:
    x = x.contiguous(memory_format=torch.channels_last)
    with torch.autocast(x.device.type, dtype=torch.bfloat16):
        return torch.stack([t(x).float().softmax(1) for t in teachers]).mean(0)


def teacher_views(
    x: torch.Tensor,
    teachers: list[torch.nn.Module],
    k: int,
    seed: int,
    policy: str,
    norm: tuple[float, float],
    path: Path,
) -> TeacherViews:
    """The views stored at `path` (a safetensors file named by `cache_key`), else computed and
    stored there (written atomically) for the next run, or the twin, to reuse."""
    if path.is_file():
        saved = load_file(str(path))
        with safe_open(str(path), "pt") as f:
            seconds = float(f.metadata()["seconds"])
        return TeacherViews(saved["images"].to(x.device), saved["probs"].to(x.device), seconds)
    views = compute_views(x, teachers, k, seed, policy, norm)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    tensors = {"images": views.images.cpu(), "probs": views.probs.cpu()}
    save_file(tensors, str(partial), metadata={"seconds": repr(views.seconds)})
    partial.replace(path)
    return views
