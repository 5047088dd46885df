"""Explanation maps: which pixels of two faces raise or lower their similarity, and where an
expression model looked.

Verification (white-box, in the spirit of xSSAB, Huber et al. 2022): the cosine similarity of the
two aligned crops' embeddings (as `faceres.identity.embed_crops`: crop + mirrored crop, summed,
L2-normalised) is differentiated with respect to each crop's pixels. A face's signed map is
gradient × (pixel − the crop's per-channel mean), summed over RGB and lightly smoothed: the
first-order estimate of how much the similarity would fall if that pixel were replaced by the
crop's mean colour. Positive pixels support the match (green), negative ones oppose it (red).
The maps explain the pair of crops shown, one alignment per face; `verify` also averages a second
alignment, so its similarity can differ from the explained one in the third decimal.

How far they can be trusted (`faceres eval explain`, 200 LFW DevTest same-person pairs): masking
the 10% of a face's pixels the map ranks most supporting lowers the similarity 5.7 times as much
as masking 10% random pixels. Red holds for small changes only: masking the 10% most opposing
pixels still lowers the similarity (2.2 times as much as random pixels) rather than raising it.

Expression (Grad-CAM, Selvaraju et al. 2017): the gradient of the predicted class's logit with
respect to the last convolutional stage (`forward_features`, e.g. `layer4` of `resnet18-fer` and
of its plain twin), averaged per channel, weights that stage's activations; the ReLU of their sum,
upsampled to the 48×48 crop and scaled to [0, 1], shows where the model looked. As in
`faceres.models.fer_resnet.predict`, the face and its mirror image both count (the mirror's map is
flipped back and the two are averaged).

Both are written with autograd directly rather than with captum (0.9 gives the same maps, to
1e-8, with InputXGradient and LayerGradCam): importing `captum.attr` imports matplotlib.pyplot and
adds about 0.6 s to every `import faceres`, and LayerGradCam hooks the shared, cached model, which
another thread (the app) may be running at the same time.

>>> from faceres.identity.explain import explain_verify
>>> ex = explain_verify("a.jpg", "b.jpg")
>>> round(ex.similarity, 3), ex.maps[0].shape, ex.verify.verdict
(0.987, (150, 150), 'same')
>>> supporting_and_opposing = ex.overlays()   # two RGB uint8 images, one per face
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from faceres import registry
from faceres.detect import Face
from faceres.errors import ModelError
from faceres.expression import ExpressionResult, analyze_expression, class_names
from faceres.identity import VerifyResult, verify
from faceres.imageio import ImageInput
from faceres.models.fer_resnet import normalize
from faceres.registry.runtime import mirror_views, standardise

SMOOTH_SIGMA = 2.0
"""Gaussian smoothing (pixels of the aligned crop) of the verification maps, chosen on 100 LFW
DevTrain same-person pairs by the deletion test of `faceres eval explain` (which reports DevTest
first): mean top / random drop 5.85, 5.75, 5.53, 5.10, 4.40 at 10% masked and 3.74, 3.87, 3.89,
3.75, 3.27 at 30% for σ = 0, 1, 2, 3, 5. σ = 2 is the best at 30%, 5% below σ = 0 at 10%, and
reads as regions where σ ≤ 1 reads as speckle."""
SUPPORTING_RGB = (0, 220, 0)
OPPOSING_RGB = (235, 0, 0)
MAP_SCALE_PERCENTILE = 99.0
"""Maps are drawn relative to this percentile of |map| over both faces (brighter = stronger)."""


# --- verification ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairExplanation:
    """What made two aligned crops similar: `similarity` of `crops` under `model`, and per face a
    signed map (H×W float32, similarity units per pixel: > 0 supporting, < 0 opposing). `verify` is
    the verification the crops came from (`explain_verify`), else None."""

    similarity: float
    maps: tuple[np.ndarray, np.ndarray]
    crops: tuple[np.ndarray, np.ndarray]
    model: str
    verify: VerifyResult | None = None

    def scale(self) -> float:
        """The |map| value drawn at full strength (shared by both faces, so they compare)."""
        both = np.abs(np.concatenate([m.ravel() for m in self.maps]))
        return float(np.percentile(both, MAP_SCALE_PERCENTILE)) or 1.0

    def overlays(self, alpha: float = 0.75) -> tuple[np.ndarray, np.ndarray]:
        """Each crop in grey with supporting pixels in green and opposing ones in red (RGB uint8).

        >>> ex.overlays()[0].shape
        (150, 150, 3)
        """
        scale = self.scale()
        return tuple(
            overlay(crop, m, scale, alpha) for crop, m in zip(self.crops, self.maps, strict=True)
        )

    def map_images(self) -> tuple[np.ndarray, np.ndarray]:
        """The signed maps alone on black: green supporting, red opposing (RGB uint8)."""
        scale = self.scale()
        return tuple(_colour(m, scale) for m in self.maps)

    def save_images(self, folder: Path) -> list[Path]:
        """Write `face{1,2}-overlay.png` (`overlays`) and `face{1,2}-map.png` (`map_images`) into
        `folder` (created); returns their paths."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for i, (over, signed) in enumerate(zip(self.overlays(), self.map_images(), strict=True), 1):
            for kind, pixels in (("overlay", over), ("map", signed)):
                paths.append(folder / f"face{i}-{kind}.png")
                Image.fromarray(pixels).save(paths[-1])
        return paths

    def to_dict(self) -> dict:
        """JSON-ready summary: similarity, model, per-face map statistics, the verification."""
        out = {
            "similarity": round(self.similarity, 6),
            "model": self.model,
            "maps": [map_stats(m) for m in self.maps],
        }
        if self.verify is not None:
            out["verdict"] = self.verify.verdict
            out["verify"] = self.verify.to_dict()
        return out


def map_stats(signed: np.ndarray) -> dict:
    """Summary of a signed map: its sum (≈ the similarity lost by replacing the whole face with
    its mean colour, to first order), supporting and opposing mass, and the supporting share.

    >>> stats = map_stats(np.array([[3.0, -1.0]]))
    >>> stats["sum"], stats["supporting"], stats["opposing"], stats["supporting_share"]
    (2.0, 3.0, -1.0, 0.75)
    """
    pos = float(signed[signed > 0].sum())
    neg = float(signed[signed < 0].sum())
    return {
        "sum": round(pos + neg, 6),
        "supporting": round(pos, 6),
        "opposing": round(neg, 6),
        "supporting_share": round(pos / (pos - neg), 4) if pos - neg > 0 else 0.0,
        "max": round(float(signed.max()), 6),
        "min": round(float(signed.min()), 6),
    }


def _colour(signed: np.ndarray, scale: float) -> np.ndarray:
    """A signed map drawn on black: green where > 0, red where < 0, |signed| / `scale` bright."""
    strength = np.clip(np.abs(signed) / scale, 0.0, 1.0)[..., None]
    colour = np.where(signed[..., None] > 0, SUPPORTING_RGB, OPPOSING_RGB)
    return (strength * colour).astype(np.uint8)


def overlay(crop: np.ndarray, signed: np.ndarray, scale: float, alpha: float = 0.75) -> np.ndarray:
    """`crop` in grey, each pixel tinted green (supporting) or red (opposing) in proportion to
    |signed| / `scale` (at most `alpha`); RGB uint8."""
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.float32)[..., None] * 0.8
    weight = alpha * np.clip(np.abs(signed) / scale, 0.0, 1.0)[..., None]
    colour = np.where(signed[..., None] > 0, SUPPORTING_RGB, OPPOSING_RGB).astype(np.float32)
    return np.clip((1 - weight) * grey + weight * colour, 0, 255).astype(np.uint8)


def _model_input(crops: list[np.ndarray], loaded: registry.LoadedModel) -> torch.Tensor:
    """Aligned RGB crops → the model's standardised N×3×H×W float32 batch (as `embed_crops`)."""
    return torch.from_numpy(standardise(crops, loaded.config)).to(loaded.device)


def similarity_maps(
    crops: list[np.ndarray], loaded: registry.LoadedModel, sigma: float = SMOOTH_SIGMA
) -> tuple[float, np.ndarray]:
    """Cosine similarity of two aligned crops and their signed maps (2×H×W float32): gradient ×
    (input − per-channel mean of the crop), summed over channels, Gaussian-smoothed (`sigma`)."""
    with torch.inference_mode(False), torch.enable_grad():
        x = _model_input(crops, loaded).requires_grad_(True)
        out = loaded.model(torch.cat([x, x.flip(3)])).float()
        emb = F.normalize(out[:2] + out[2:], dim=1)
        similarity = (emb[0] * emb[1]).sum()
        (grad,) = torch.autograd.grad(similarity, x)
    baseline = x.detach().mean(dim=(2, 3), keepdim=True)
    maps = (grad * (x.detach() - baseline)).sum(1).cpu().numpy().astype(np.float32)
    if sigma > 0:
        maps = np.stack([cv2.GaussianBlur(m, (0, 0), sigma) for m in maps])
    return float(similarity.detach()), maps


def explain_crops(
    crop1: np.ndarray, crop2: np.ndarray, loaded: registry.LoadedModel
) -> PairExplanation:
    """Signed maps of two aligned RGB uint8 crops (`verify(...).crops`) under identity model
    `loaded` (the torch model: `registry.load_task("identity")`).

    >>> ex = explain_crops(*verify("a.jpg", "b.jpg").crops, registry.load_task("identity"))
    >>> ex.maps[0].dtype, ex.maps[0].shape
    (dtype('float32'), (150, 150))
    """
    crops = (np.ascontiguousarray(crop1), np.ascontiguousarray(crop2))
    similarity, maps = similarity_maps(list(crops), loaded)
    return PairExplanation(similarity, (maps[0], maps[1]), crops, loaded.name)


def explain_verify(
    img1: ImageInput,
    img2: ImageInput,
    model: str | None = None,
    face1: int | None = None,
    face2: int | None = None,
    detector: str | None = None,
    network: str | None = None,
) -> PairExplanation:
    """`faceres.identity.verify` (same arguments, faces numbered as it numbers them), then the
    signed maps of the two aligned crops it compared; the verification is in `.verify`. For a
    fused model, the maps are those of its member `network` (default: its first member).

    >>> ex = explain_verify("a.jpg", "b.jpg", detector="yunet")
    >>> ex.verify.verdict, round(ex.verify.similarity, 3), round(ex.similarity, 3)
    ('same', 0.988, 0.987)
    """
    result = verify(img1, img2, model=model, face1=face1, face2=face2, detector=detector)
    names = [name for name, _ in result.members] or [result.model]
    network = network or names[0]
    if network not in names:
        raise ModelError(f"{result.model} has no network {network}; choose {' or '.join(names)}.")
    crops = [
        r.member_crops[names.index(network)] if result.members else r.crop for r in result.compared
    ]
    explained = explain_crops(*crops, registry.load_task("identity", network))
    return PairExplanation(
        explained.similarity, explained.maps, explained.crops, explained.model, result
    )


# --- expression -----------------------------------------------------------------------------------


def grad_cam(model: torch.nn.Module, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Grad-CAM of class `targets[i]` for each standardised image `x[i]` (N×C×H×W), at the output
    of `model.forward_features` (the last convolutional stage); N×H×W, ≥ 0, not yet scaled.

    >>> grad_cam(loaded.model, x, torch.tensor([3])).shape
    torch.Size([1, 48, 48])
    """
    with torch.inference_mode(False), torch.enable_grad():
        features = model.forward_features(x).detach().requires_grad_(True)
        logits = model.forward_head(features).float()
        score = logits.gather(1, targets.view(-1, 1).to(logits.device)).sum()
        (grad,) = torch.autograd.grad(score, features)
    weights = grad.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * features.detach()).sum(1, keepdim=True))
    return F.interpolate(cam, size=x.shape[2:], mode="bilinear", align_corners=False)[:, 0]


def expression_cams(
    crops: np.ndarray, loaded: registry.LoadedModel, targets: np.ndarray
) -> np.ndarray:
    """Grad-CAMs (N×H×W float32 in [0, 1]) of class indices `targets` for N×H×W uint8 grayscale
    crops (`faceres.expression.face_crops`), face and mirror image averaged (the face alone when
    the model's config says "single"), each scaled so its maximum is 1 (all zero when nothing in
    the crop raised the class).

    >>> expression_cams(crops, registry.load_task("expression"), np.array([3])).shape
    (1, 48, 48)
    """
    if not len(crops):
        return np.zeros(crops.shape, np.float32)
    pcfg = loaded.config["pretrained_cfg"]
    x = normalize(torch.from_numpy(np.asarray(crops)).unsqueeze(1), pcfg["mean"][0], pcfg["std"][0])
    x = x.to(loaded.device)
    n = len(x)
    t = torch.as_tensor(np.asarray(targets), dtype=torch.long)
    if not mirror_views(loaded.config):
        return peak_scaled(grad_cam(loaded.model, x, t).cpu().numpy())
    cam = grad_cam(loaded.model, torch.cat([x, x.flip(3)]), torch.cat([t, t]))
    return peak_scaled(((cam[:n] + cam[n:].flip(2)) / 2).cpu().numpy())


def peak_scaled(cams: np.ndarray) -> np.ndarray:
    """N×H×W maps each divided by its maximum (all zero where the maximum is not above 0).

    >>> peak_scaled(np.array([[[1.0, 4.0]], [[0.0, 0.0]]])).tolist()
    [[[0.25, 1.0]], [[0.0, 0.0]]]
    """
    peak = cams.max(axis=(1, 2), keepdims=True, initial=0.0)
    return np.divide(cams, peak, out=np.zeros_like(cams), where=peak > 0).astype(np.float32)


def cam_overlay(crop: np.ndarray, cam: np.ndarray, size: int = 192, alpha: float = 0.45):
    """A grayscale crop and its CAM (jet colours, red = looked at most), `size`×`size` RGB uint8."""
    grey = cv2.resize(crop, (size, size), interpolation=cv2.INTER_CUBIC)
    heat = cv2.resize((cam * 255).astype(np.uint8), (size, size), interpolation=cv2.INTER_LINEAR)
    heat = cv2.cvtColor(cv2.applyColorMap(heat, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    base = cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB)
    return cv2.addWeighted(base, 1 - alpha, heat, alpha, 0.0)


@dataclass(frozen=True)
class FaceCam:
    """One face: the grayscale crop the model saw, its class scores and predicted `label`, and
    the Grad-CAM of that label (H×W float32 in [0, 1])."""

    face: Face
    label: str
    probabilities: dict[str, float]
    crop: np.ndarray
    cam: np.ndarray

    def overlay(self, size: int = 192) -> np.ndarray:
        """The crop with its CAM over it, `size`×`size` RGB uint8."""
        return cam_overlay(self.crop, self.cam, size)


@dataclass(frozen=True)
class ExpressionCams:
    """Every face found (largest first, as `analyze_expression`), the model and the detector."""

    faces: tuple[FaceCam, ...]
    model: str
    detector: str


def explain_expression(result: ExpressionResult) -> ExpressionCams:
    """Grad-CAMs of the faces `analyze_expression` found, each for the class it predicted, from
    the crops it kept (no second detection); for an ensemble, its members' CAMs in proportion
    to their weights.

    >>> cams = explain_expression(analyze_expression("photo.jpg", model="plain18-fer"))
    >>> cams.faces[0].label, cams.faces[0].cam.shape, cams.faces[0].overlay().shape
    ('happy', (48, 48), (192, 192, 3))
    """
    config = registry.model_config(result.model)
    labels = class_names(config)
    faces = result.faces
    crops = np.stack([f.crop for f in faces]) if faces else np.zeros((0, 48, 48), np.uint8)
    targets = np.array([labels.index(f.label) for f in faces], dtype=np.int64)
    members = config["faceres"]["members"] if config["architecture"] == registry.FUSION else []
    members = members or [{"model": result.model, "weight": 1.0}]
    cams = peak_scaled(
        sum(
            float(m["weight"]) * expression_cams(crops, registry.load(m["model"]), targets)
            for m in members
        )
    )
    return ExpressionCams(
        tuple(
            FaceCam(f.face, f.label, dict(f.probabilities), f.crop, cam)
            for f, cam in zip(faces, cams, strict=True)
        ),
        result.model,
        result.detector,
    )


def expression_cam(
    image: ImageInput, model: str | None = None, detector: str | None = None
) -> ExpressionCams:
    """`analyze_expression`, then `explain_expression`: every face's expression and where the
    model looked for it.

    >>> expression_cam("photo.jpg", model="plain18-fer").faces[0].label
    'happy'
    """
    return explain_expression(analyze_expression(image, model=model, detector=detector))
