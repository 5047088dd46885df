"""Block removal as the app runs it: one photo's face crops through a registry model with some
of its blocks deleted (`faceres.models.blocks.lesioned`), next to the whole network.

>>> probs = expression_probabilities("resnet20-fer", crops, [0])
>>> emb = identity_embeddings("dlib-resnet29-face", crops, ["layer3.1"])
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch

from faceres import registry
from faceres.face.pipeline import embed_crops
from faceres.models.blocks import Block, lesioned
from faceres.models.fer_resnet import predict
from faceres.registry.runtime import mirror_views


def expression_probabilities(
    name: str, crops: np.ndarray, chosen: Sequence[Block] = (), device: str | None = None
) -> np.ndarray:
    """Class probabilities (N × classes, the model's `label_names` order) of registry expression
    model `name` for N grayscale face crops (N×H×W uint8, as `analyze_expression` gives them)
    with the `chosen` blocks deleted; with the mirror image unless the model's config says
    "single" (`mirror_views`), as the app's `classify` does."""
    loaded = registry.load(name, device=device)
    cfg = loaded.config["pretrained_cfg"]
    x = torch.from_numpy(np.ascontiguousarray(crops)).unsqueeze(1)
    model = lesioned(loaded.model, chosen)
    flip = mirror_views(loaded.config)
    return predict(model, x, float(cfg["mean"][0]), float(cfg["std"][0]), flip=flip).numpy()


def identity_embeddings(
    name: str, crops: Sequence[np.ndarray], chosen: Sequence[Block] = (), device: str | None = None
) -> np.ndarray:
    """L2-normalised embeddings of aligned RGB uint8 crops by registry identity model `name` with
    the `chosen` blocks deleted (`embed_crops`: crop and mirror image summed)."""
    loaded = registry.load(name, device=device)
    return embed_crops(crops, dataclasses.replace(loaded, model=lesioned(loaded.model, chosen)))
