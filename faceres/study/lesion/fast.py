"""Lesion study internals (Veit, Wilber & Belongie, NeurIPS 2016): fast evaluation of many
block deletions of a trained network (its normalisations folded, its stem run once), and the
gradient along paths of each length. Which blocks can go, and the lesioned view, are product
code: `faceres.models.blocks`.

>>> outputs = lesion_outputs(folded_copy(model), x, [frozenset({0}), frozenset({1, 2})])
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from timm.models.resnet import BasicBlock
from torch import nn

from faceres.errors import ModelError
from faceres.models.blocks import blocks
from faceres.models.dlib_resnet import Affine2d, DlibResNet
from faceres.models.fer_resnet import FaceResNet

# -- fast evaluation of many lesions --------------------------------------------------------------


@dataclass
class Trunk:
    """A network cut into stem, blocks and head: `head(blocks(stem(x))) == model(x)`."""

    stem: Callable[[torch.Tensor], torch.Tensor]
    blocks: list[tuple[str, nn.Module]]
    head: Callable[[torch.Tensor], torch.Tensor]


def trunk(model: nn.Module) -> Trunk:
    """The stem, blocks and head of a faceres ResNet (`FaceResNet`, `DlibResNet`)."""
    if isinstance(model, FaceResNet):
        return Trunk(
            lambda x: model.act1(model.bn1(model.conv1(x))), blocks(model), model.forward_head
        )
    if isinstance(model, DlibResNet):
        return Trunk(
            lambda x: model.maxpool(model.act1(model.bn1(model.conv1(x)))),
            blocks(model),
            model.forward_head,
        )
    raise ModelError(f"No lesion support for {type(model).__name__}.")


def _fold(conv: nn.Conv2d, norm: nn.Module) -> nn.Conv2d:
    """`conv` followed by `norm` (BatchNorm in eval mode, or dlib's `Affine2d`) as one conv."""
    with torch.no_grad():
        if isinstance(norm, nn.BatchNorm2d):
            scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
            shift = norm.bias - norm.running_mean * scale
        else:
            scale, shift = norm.weight, norm.bias
        fused = copy.deepcopy(conv)
        fused.weight.mul_(scale[:, None, None, None])
        bias = shift + (scale * conv.bias if conv.bias is not None else 0)
        fused.bias = nn.Parameter(bias.clone())
    return fused


def folded_copy(model: nn.Module) -> nn.Module:
    """A private copy of `model` with every normalisation folded into the convolution before it
    (same function, fewer operations: the study's speed-up; `model` is not changed)."""
    model = copy.deepcopy(model).eval()
    norms = (nn.BatchNorm2d, Affine2d)
    for module in list(model.modules()):
        for conv, norm in (("conv1", "bn1"), ("conv2", "bn2")):
            c, n = getattr(module, conv, None), getattr(module, norm, None)
            if isinstance(c, nn.Conv2d) and isinstance(n, norms):
                setattr(module, conv, _fold(c, n))
                setattr(module, norm, nn.Identity())
        if (
            isinstance(module, nn.Sequential)
            and len(module) == 2
            and isinstance(module[0], nn.Conv2d)
            and isinstance(module[1], norms)
        ):
            module[0], module[1] = _fold(module[0], module[1]), nn.Identity()
    return model


def lesion_outputs(
    model: nn.Module,
    batches: Iterable[torch.Tensor],
    lesions: Sequence[frozenset[int]],
    bf16: bool = True,
    finish: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> list[torch.Tensor]:
    """`model`'s outputs (float32, `finish` applied per batch, concatenated over `batches`) with
    each lesion applied: a lesion is a set of positions in `blocks(model)` whose output becomes
    their input (the empty set is the whole network). Per batch the whole network runs once; each
    lesion restarts from the activation before its first deleted block."""
    t = trunk(model)
    done = finish or (lambda out: out)
    starts = {min(les) for les in lesions if les}
    outs: list[list[torch.Tensor]] = [[] for _ in lesions]
    with (
        torch.inference_mode(),
        torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16),
    ):
        for x in batches:
            h = t.stem(x.contiguous(memory_format=torch.channels_last))
            kept = {}
            for j, (_, block) in enumerate(t.blocks):
                if j in starts:
                    kept[j] = h
                h = block(h)
            full = done(t.head(h).float())
            for i, les in enumerate(lesions):
                if not les:
                    outs[i].append(full)
                    continue
                h = kept[min(les)]
                for j in range(min(les), len(t.blocks)):
                    if j not in les:
                        h = t.blocks[j][1](h)
                outs[i].append(done(t.head(h).float()))
    return [torch.cat(o) for o in outs]


# -- paths (Veit et al., Section 5 and Figure 6) --------------------------------------------------


def path_length_distribution(n: int) -> list[dict]:
    """How many of the 2^n paths through n residual blocks pass k residual branches."""
    return [
        {"length": k, "paths": math.comb(n, k), "share": math.comb(n, k) / 2**n}
        for k in range(n + 1)
    ]


def _branch(block: BasicBlock, x: torch.Tensor) -> torch.Tensor:
    return block.bn2(block.conv2(block.act1(block.bn1(block.conv1(x)))))


def _shortcut(block: BasicBlock, x: torch.Tensor) -> torch.Tensor:
    return x if block.downsample is None else block.downsample(x)


class PathGradients:
    """Veit et al.'s Figure 6 measurement on a residual network: the whole network runs forward
    once (float32); `gradient(branches)` is the input gradient of the path that passes the
    residual branch of the blocks in `branches` (positions in `blocks(model)`) and the shortcut of
    the others, backpropagated from the gradient of the summed cross-entropy at the logits. The
    ReLU after each addition keeps the whole network's mask, so the gradients of all 2^n paths
    add up to the whole network's input gradient."""

    def __init__(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> None:
        t = trunk(model)
        if not all(isinstance(b, BasicBlock) and not _is_plain(b) for _, b in t.blocks):
            raise ModelError("Path gradients need a network of residual BasicBlocks.")
        self.x = images.float().clone().requires_grad_(True)
        self.leaves, self.branches, self.shortcuts, self.masks = [], [], [], []
        with torch.enable_grad():
            self.stem = t.stem(self.x)
            h = self.stem
            for _, block in t.blocks:
                leaf = h.detach().requires_grad_(True)
                branch, shortcut = _branch(block, leaf), _shortcut(block, leaf)
                total = branch + shortcut
                self.leaves.append(leaf)
                self.branches.append(branch)
                self.shortcuts.append(shortcut)
                self.masks.append(total > 0)
                h = F.relu(total)
            end = h.detach().requires_grad_(True)
            logits = t.head(end)
            g_logits = logits.detach().softmax(1) - F.one_hot(labels, logits.shape[1]).float()
            (self.g_end,) = torch.autograd.grad(logits, end, g_logits)

    @property
    def n(self) -> int:
        """Number of residual blocks."""
        return len(self.leaves)

    def gradient(self, branches: set[int]) -> torch.Tensor:
        """The input gradient along the path through the residual branches of `branches`."""
        g = self.g_end
        for i in reversed(range(self.n)):
            g = g * self.masks[i]
            out = self.branches[i] if i in branches else self.shortcuts[i]
            if out is not self.leaves[i]:
                (g,) = torch.autograd.grad(out, self.leaves[i], g, retain_graph=True)
        (g,) = torch.autograd.grad(self.stem, self.x, g, retain_graph=True)
        return g


def path_gradients(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    samples: int = 10,
    seed: int = 0,
) -> list[dict]:
    """Per path length k: the gradient magnitude at the input along `samples` paths through k
    residual branches drawn at random (one path for k = 0 and k = n): the L2 norm of each image's
    input gradient (`PathGradients`), mean over the images; mean and std over the paths."""
    paths = PathGradients(model, images, labels)
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(paths.n + 1):
        draws = 1 if k in (0, paths.n) else samples
        norms = [
            float(
                paths.gradient({int(i) for i in rng.choice(paths.n, k, replace=False)})
                .flatten(1)
                .norm(dim=1)
                .mean()
            )
            for _ in range(draws)
        ]
        rows.append(
            {
                "length": k,
                "gradient": float(np.mean(norms)),
                "gradient_std": float(np.std(norms)),
                "samples": draws,
            }
        )
    return rows


def _is_plain(block: nn.Module) -> bool:
    """A block without a shortcut (faceres' `PlainBlock` overrides the residual forward)."""
    return type(block).forward is not BasicBlock.forward
