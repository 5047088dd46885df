"""Block removal (Veit, Wilber & Belongie, NeurIPS 2016): which blocks of a faceres network can be
deleted at test time, and a view of the network without them.

A *block* is one residual unit (timm's `BasicBlock`, dlib's `DownBlock`) or, in a plain twin,
the same two convolutions without the shortcut (`PlainBlock`). A block is *deletable* when its
output has the shape of its input (stride 1, as many channels out as in, no projection): deleting
it makes its output its input. For a residual block that is its shortcut (the block's final ReLU
acts on a ReLU output, so ReLU(0 + x) = x); for a plain block it is the identity.

`lesioned(model, blocks)` returns a *view* of the model without them, built without touching the
model: a new module tree that shares every weight with the original and has `nn.Identity` where
the deleted blocks were, so a concurrent forward on the shared cached registry model is
unaffected (nothing is mutated, nothing restored, no lock needed).

>>> model = timm.create_model("faceres_resnet20_48")
>>> deletable_blocks(model)[:3]
['layer1.0', 'layer1.1', 'layer1.2']
>>> view = lesioned(model, [0])
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence

import numpy as np
from timm.models.resnet import BasicBlock
from torch import nn

from faceres.errors import ModelError
from faceres.models.dlib_resnet import DownBlock

Block = int | str
"""A block to delete: its position in `deletable_blocks(model)` or its name."""


def blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every block of the network (residual unit or its plain counterpart), in forward order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (BasicBlock, DownBlock))]


def same_shape(block: nn.Module) -> bool:
    """Whether `block`'s output has the shape of its input (stride 1, channels kept, no
    projection or padded shortcut)."""
    return (
        isinstance(block, BasicBlock)
        and block.downsample is None
        and block.conv1.stride == (1, 1)
        and block.conv1.in_channels == block.conv2.out_channels
    )


def deletable_blocks(model: nn.Module) -> list[str]:
    """Names of the blocks whose input and output shapes match, in forward order."""
    return [name for name, block in blocks(model) if same_shape(block)]


def block_names(model: nn.Module, chosen: Iterable[Block]) -> list[str]:
    """`chosen` (positions in `deletable_blocks(model)` or names) as names, checked."""
    names = deletable_blocks(model)
    out = []
    for b in chosen:
        if isinstance(b, str):
            if b not in names:
                raise ModelError(f"{b!r} is not a deletable block; choose from {names}.")
            out.append(b)
        elif isinstance(b, (int, np.integer)) and 0 <= b < len(names):
            out.append(names[int(b)])
        else:
            raise ModelError(f"Block {b!r} is out of range: the model has {len(names)} to delete.")
    return out


def _without(module: nn.Module, names: set[str], prefix: str = "") -> nn.Module:
    """A shallow copy of `module` with `nn.Identity` at the sub-modules named in `names`; the
    untouched branches (and every parameter and buffer) are the original objects."""
    if prefix in names:
        return nn.Identity()
    if prefix and not any(n.startswith(f"{prefix}.") for n in names):
        return module
    clone = copy.copy(module)
    clone._modules = {
        key: _without(child, names, f"{prefix}.{key}" if prefix else key)
        for key, child in module._modules.items()
    }
    return clone


def lesioned(model: nn.Module, chosen: Sequence[Block]) -> nn.Module:
    """`model` without the `chosen` blocks (positions in `deletable_blocks(model)` or names): a new
    module sharing every weight with `model`, which is left as it was (thread-safe)."""
    names = set(block_names(model, chosen))
    return _without(model, names) if names else model
