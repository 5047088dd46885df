"""Batched face augmentation on whatever device holds the batch (no DataLoader workers needed).

>>> x = torch.randint(0, 256, (8, 1, 48, 48), dtype=torch.uint8)
>>> augment(x, torch.Generator().manual_seed(0)).shape
torch.Size([8, 1, 48, 48])
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator, device) -> torch.Tensor:
    return torch.rand(n, generator=gen, device=device) * (hi - lo) + lo


def augment(
    x: torch.Tensor,
    gen: torch.Generator,
    rotate: float = 15.0,
    scale: tuple[float, float] = (0.85, 1.15),
    shift: float = 0.1,
    jitter: float = 0.2,
    erase: float = 0.25,
) -> torch.Tensor:
    """Random flip, rotation, scale, shift, brightness/contrast and erasing of a uint8 batch.

    Returns float32 images in [0, 1] (standardise them with `normalize`).
    """
    n, _, h, w = x.shape
    dev = x.device
    img = x.float() / 255.0
    angle = _uniform(n, -rotate, rotate, gen, dev) * math.pi / 180
    zoom = _uniform(n, *scale, gen, dev)
    flip = torch.where(torch.rand(n, generator=gen, device=dev) < 0.5, -1.0, 1.0)
    tx, ty = (_uniform(n, -shift, shift, gen, dev) * 2 for _ in range(2))
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack(
        [torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1
    )
    grid = F.affine_grid(theta, list(img.shape), align_corners=False)
    img = F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=False)
    contrast = _uniform(n, 1 - jitter, 1 + jitter, gen, dev).view(n, 1, 1, 1)
    bright = _uniform(n, -jitter / 2, jitter / 2, gen, dev).view(n, 1, 1, 1)
    mean = img.mean((1, 2, 3), keepdim=True)
    img = ((img - mean) * contrast + mean + bright).clamp(0, 1)
    if erase > 0:
        side = (_uniform(n, 0.15, 0.4, gen, dev) * h).view(n, 1, 1)
        cy, cx = (_uniform(n, 0, h, gen, dev).view(n, 1, 1) for _ in range(2))
        ys = torch.arange(h, device=dev).view(1, h, 1)
        xs = torch.arange(w, device=dev).view(1, 1, w)
        box = ((ys - cy).abs() < side / 2) & ((xs - cx).abs() < side / 2)
        hit = (torch.rand(n, generator=gen, device=dev) < erase).view(n, 1, 1)
        img = img.masked_fill((box & hit).unsqueeze(1), 0.5)
    return img


POLICIES: dict[str, dict] = {
    "full": {},
    "light": dict(rotate=0.0, scale=(1.0, 1.0), shift=0.125, jitter=0.0, erase=0.0),
}
"""Augmentation policies: "full" (every default of `augment`), "light" (flip and a shift of up
to 1/8 of the side: He et al.'s 4-pixel pad-and-crop at 32×32, so that training error
measures optimisation)."""


def augment_policy(x: torch.Tensor, gen: torch.Generator, policy: str) -> torch.Tensor:
    """`augment` with the named policy's settings (`POLICIES`)."""
    if policy not in POLICIES:
        raise ValueError(f"augmentation policy must be one of {sorted(POLICIES)}, not {policy!r}")
    return augment(x, gen, **POLICIES[policy])
