"""Facial expressions of every face in a photo.

>>> result = analyze_expression("photo.jpg")
>>> [(f.label, round(f.probabilities[f.label], 2)) for f in result.faces]
[('happy', 0.93)]
"""

from __future__ import annotations

import contextlib
import copy
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
from torch.fx.experimental.optimization import fuse

from faceres import registry
from faceres.align import align
from faceres.detect import Face, detect_faces
from faceres.errors import ModelError
from faceres.imageio import ImageInput, load_image

_FOR_INFERENCE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
"""Registry model → its copy made for `analyze_expression` (`inference_copy`)."""
_COPY_LOCK = threading.Lock()
CLASSIFY_THREADS = 1
"""Torch threads for one photo's faces: a 48×48 network gains nothing from a second thread
that, under OMP_WAIT_POLICY=PASSIVE (`faceres/__init__.py`), sleeps between layers and must
be woken at each (6.9 ms with one thread, 12.0 ms with two on the 2-core CPU)."""


def normalize(x: torch.Tensor, mean: float = 0.5, std: float = 0.25) -> torch.Tensor:
    """Images (uint8, or float in [0, 1]) → standardised float32."""
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    return (x - mean) / std


@torch.inference_mode()
def predict(
    model: torch.nn.Module,
    images: torch.Tensor,
    mean: float,
    std: float,
    batch_size: int = 512,
    flip: bool = True,
) -> torch.Tensor:
    """Softmax probabilities for a uint8 N×1×H×W batch (mean with the mirror image if `flip`),
    computed in bfloat16 (autocast, or the weights' own type for an `inference_copy`)."""
    model.eval()
    weight = next(model.parameters())
    cast = weight.dtype == torch.bfloat16  # an inference copy: no autocast needed
    out = []
    for i in range(0, len(images), batch_size):
        x = normalize(images[i : i + batch_size].to(weight.device), mean, std)
        n = len(x)
        if flip:
            x = torch.cat([x, x.flip(3)])
        x = (x.to(torch.bfloat16) if cast else x).contiguous(memory_format=torch.channels_last)
        with torch.autocast(weight.device.type, dtype=torch.bfloat16, enabled=not cast):
            p = model(x).float().softmax(1)
        out.append((p[:n] + p[n:]) / 2 if flip else p)
    return torch.cat(out).cpu() if out else torch.zeros(0)


@dataclass
class FaceExpression:
    """One face: where it is, the 48×48 grayscale crop the model saw, and its class scores."""

    face: Face
    probabilities: dict[str, float]
    label: str
    crop: np.ndarray


@dataclass
class ExpressionResult:
    """Every face found, largest first, with the model and detector used and timings (ms)."""

    faces: list[FaceExpression]
    model: str
    detector: str
    timings: dict[str, float] = field(default_factory=dict)


def _framing(config: dict) -> dict:
    template = config.get("faceres", {}).get("alignment")
    if not template:
        raise ModelError(
            "This expression model has no measured face framing yet: run "
            "`faceres train framing NAME` (see README)."
        )
    return template


def face_crops(image: np.ndarray, faces: list[Face], template: dict) -> np.ndarray:
    """N×H×W uint8 grayscale crops of `faces`, framed by the model's template."""
    crops = [cv2.cvtColor(align(image, face, template), cv2.COLOR_RGB2GRAY) for face in faces]
    h, w = (int(v) for v in template["size"][::-1])
    return np.stack(crops) if crops else np.zeros((0, h, w), np.uint8)


def inference_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of `model` for `analyze_expression`, made once per model: each batch norm folded
    into the convolution before it, weights channels-last, those of convolutions and linear
    layers in bfloat16 (what `predict`'s autocast would cast them to on every call). About 40%
    less time on a 2-core CPU; the outputs differ by bfloat16 rounding only (at most 0.017 in
    probability on FER2013 PrivateTest, same class for 99.7% of its faces, accuracy 72.78%
    against the registry's 72.69% for resnet18-fer). `model` itself (Grad-CAM, training,
    evaluation) is left as it is."""
    with _COPY_LOCK:
        fast = _FOR_INFERENCE.get(model)
        if fast is None:
            fast = fuse(copy.deepcopy(model).eval(), inplace=True)
            fast = fast.to(memory_format=torch.channels_last)
            for module in fast.modules():
                if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
                    module.to(torch.bfloat16)
            _FOR_INFERENCE[model] = fast
        return fast


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Torch runs with `n` threads in this thread until the block ends (other running threads
    keep their own setting; one started meanwhile would begin with `n`)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def analyze_expression(
    img: ImageInput, model: str | None = None, detector: str | None = None
) -> ExpressionResult:
    """Detect every face of `img`, frame it like FER2013's crops, and classify its expression
    (mean of the face and its mirror image).

    >>> analyze_expression("photo.jpg", detector="yunet").faces[0].label
    'happy'
    """
    t0 = time.perf_counter()
    image = load_image(img)
    t1 = time.perf_counter()
    loaded = registry.load_task("expression", model)
    name = loaded.name
    template = _framing(loaded.config)
    faces = detect_faces(image, detector=detector)
    t2 = time.perf_counter()
    crops = face_crops(image, faces, template)
    t3 = time.perf_counter()
    labels = list(loaded.config["label_names"])
    pcfg = loaded.config["pretrained_cfg"]
    if len(crops):
        with torch_threads(CLASSIFY_THREADS):
            probs = predict(
                inference_copy(loaded.model),
                torch.from_numpy(crops).unsqueeze(1),
                float(pcfg["mean"][0]),
                float(pcfg["std"][0]),
            ).numpy()
    else:
        probs = np.zeros((0, len(labels)))
    t4 = time.perf_counter()
    results = [
        FaceExpression(
            face,
            {label: float(p) for label, p in zip(labels, row)},
            labels[int(row.argmax())],
            crop,
        )
        for face, row, crop in zip(faces, probs, crops)
    ]
    used = faces[0].detector if faces else (detector or "none")
    timings = {
        "decode": t1 - t0,
        "detect": t2 - t1,
        "align": t3 - t2,
        "classify": t4 - t3,
        "total": t4 - t0,
    }
    return ExpressionResult(
        results, name, used, {k: round(v * 1000, 2) for k, v in timings.items()}
    )
