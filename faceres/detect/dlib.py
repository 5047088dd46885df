"""dlib's CNN face detector and 5-point landmarks, converted to PyTorch; no dlib needed.

`detect(image)` runs dlib's MMOD network (`faceres.models.dlib_mmod`) once over a tiled image
pyramid (dlib's `pyramid_down<6>`: each level 5/6 the size of the previous one, all levels packed
into one image as dlib's `create_tiled_pyramid` does, so every level is scored in one batched
forward pass), keeps windows scoring above the threshold, maps them back to image coordinates,
removes overlaps (non-maximum suppression with the IoU threshold stored in the model), then
places dlib's five landmarks in each box.

Images whose longer side exceeds `faceres.detect.face.DETECT_MAX_SIDE` (640) are downscaled for the
pyramid, as for YuNet, and the boxes mapped back; landmarks are placed in the full image. The
80x80 window then finds faces of about 80 px × (longer side / 640) and larger: 80 px up to
640×480, 160 px in a 1280×960 photo. The network runs channels-last (oneDNN's preferred layout,
a few % faster); a 640×480 photo takes about 0.1 s on 2 CPU cores (`benchmarks/detect_latency.py`),
nearly all of it the network's ~8 GFLOPs over the 1782×662 tiled pyramid.

>>> from faceres.imageio import load_image
>>> faces = detect(load_image("photo.jpg"))  # doctest: +SKIP
>>> faces[0].scheme, faces[0].detector
('dlib5', 'dlib')
"""

from __future__ import annotations

import functools
import threading

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from faceres import registry
from faceres.detect.face import DETECT_MAX_SIDE, Face
from faceres.detect.landmarks import load_shape_predictor
from faceres.models.dlib_resnet import DLIB_AVG_RGB

NAME = "dlib"
LIMITS = (
    "misses faces smaller than about 80 px (in photos up to 640 px; proportionally larger in "
    "bigger photos)"
)
"""What this detector cannot do, in words the app shows when it runs as the fallback."""
REGISTRY_NAME = "dlib-mmod-face"
PYRAMID_RATE = 5 / 6  # dlib's pyramid_down<6>
PYRAMID_PADDING = 10
PYRAMID_OUTER_PADDING = 11
MIN_LEVEL_HEIGHT = 5
SCORE = "MMOD margin: above 0 is a face, no upper bound"
"""What this detector's score is (detectors score on different scales)."""

_LOCK = threading.Lock()


def pyramid_layout(nr: int, nc: int) -> tuple[list[tuple[int, int, int, int]], int, int]:
    """dlib's tiled pyramid layout for an `nr` x `nc` image: per level (top, left, height, width)
    in the tiled image, and the tiled image's height and width."""
    sizes = [(nr, nc)]
    while True:
        nr, nc = (5 * nr) // 6, (5 * nc) // 6
        if nr * nc == 0 or nr < MIN_LEVEL_HEIGHT:
            break
        sizes.append((nr, nc))
    pad, outer = PYRAMID_PADDING, PYRAMID_OUTER_PADDING
    total = sum(h + pad for h, _ in sizes) - 2 * pad
    height, prev_width = 0, 0
    h0, w0 = sizes[0]
    for h, w in sizes:
        # Fill the first column until the remaining levels fit beside the previous one.
        if w <= w0 - prev_width - pad and (height - h0) * 2 >= total - h0:
            break
        height += h + pad
        prev_width = w
    height -= pad
    out_h, out_w = height + 2 * outer, w0 + 2 * outer
    tiles: list[tuple[int, int, int, int]] = []
    y, i = outer, 0
    while y < height + outer and i < len(sizes):
        tiles.append((y, outer, *sizes[i]))
        y += sizes[i][0] + pad
        i += 1
    y -= pad
    right = outer + w0 - 1
    while i < len(sizes):
        h, w = sizes[i]
        top, left = y - 1 - (h - 1), right - (w - 1)
        if top < outer + h0 and left < outer + w0 and top + h > outer and left + w > outer:
            break  # the second column would overlap the full-size image
        tiles.append((top, left, h, w))
        y -= h + pad
        i += 1
    return tiles, out_h, out_w


def tiled_pyramid(
    image: torch.Tensor, mean: torch.Tensor, scale: float
) -> tuple[torch.Tensor, list[tuple[int, int, int, int]]]:
    """dlib's tiled pyramid of the RGB float image (1, 3, H, W) in 0..255, normalised for the
    network: (1, 3, h, w) of (pixel - mean) * scale, zeros (the mean colour) between levels, as
    dlib pads. Each level is resized bilinearly, in float, from the previous normalised level, as
    dlib does. Laid out channels-last."""
    tiles, out_h, out_w = pyramid_layout(image.shape[2], image.shape[3])
    mean = mean.view(1, 3, 1, 1)
    canvas = image.new_zeros(1, out_h, out_w, 3).permute(0, 3, 1, 2)
    level = (image - mean) * scale
    for i, (top, left, h, w) in enumerate(tiles):
        if i:
            level = F.interpolate(level, size=(h, w), mode="bilinear", align_corners=True)
        canvas[..., top : top + h, left : left + w] = level
    return canvas, tiles


def tiles_to_image(boxes: np.ndarray, tiles: list[tuple[int, int, int, int]]) -> np.ndarray:
    """Map (N, 4) boxes (left, top, right, bottom) from tiled-pyramid space to the image, each
    through the level nearest its centre (dlib's `tiled_pyramid_to_image`)."""
    if len(boxes) == 0:
        return boxes
    t = np.asarray(tiles, dtype=np.float64)
    top, left, bottom, right = t[:, 0], t[:, 1], t[:, 0] + t[:, 2] - 1, t[:, 1] + t[:, 3] - 1
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    dx = np.maximum(0, np.maximum(left[None] - cx[:, None], cx[:, None] - right[None]))
    dy = np.maximum(0, np.maximum(top[None] - cy[:, None], cy[:, None] - bottom[None]))
    level = np.argmin(dx * dx + dy * dy, axis=1)
    out = boxes - np.stack([left, top, left, top], 1)[level]
    for _ in range(int(level.max())):  # point_up once more for the boxes on deeper levels
        up = level > 0
        out[up] = out[up] / PYRAMID_RATE + 0.3
        level = level - up
    return out


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of box `a` (4,) with boxes `b` (N, 4), dlib rectangles (inclusive corners)."""
    iw = np.clip(np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]) + 1, 0, None)
    ih = np.clip(np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]) + 1, 0, None)
    inter = iw * ih
    area = lambda r: (r[..., 2] - r[..., 0] + 1) * (r[..., 3] - r[..., 1] + 1)  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def non_max_suppression(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by greedy NMS in descending score order, as dlib's `loss_mmod_::to_label`."""
    kept: list[int] = []
    for i in np.argsort(-scores, kind="stable"):
        if not kept or not np.any(box_iou(boxes[i], boxes[kept]) > iou):
            kept.append(int(i))
    return np.asarray(kept, dtype=np.int64)


class DlibFaceDetector:
    """dlib's MMOD CNN face detector plus 5-point landmarks, on CPU or CUDA.

    >>> detector = DlibFaceDetector()  # doctest: +SKIP
    >>> detector(image, threshold=0.0)[0].box  # doctest: +SKIP
    """

    def __init__(self, device: str | torch.device | None = None, max_side: int = DETECT_MAX_SIDE):
        loaded = registry.load(REGISTRY_NAME, device=device)
        self.device, self.max_side = loaded.device, max_side
        self.net = loaded.model.to(memory_format=torch.channels_last)  # in place; same results
        mmod = loaded.config["faceres"]["mmod"]
        self.window = (mmod["detector_width"], mmod["detector_height"])
        self.nms_iou = mmod["overlaps_nms"][0]
        self.landmarks = load_shape_predictor()
        self.mean = torch.tensor(DLIB_AVG_RGB, device=self.device)

    @torch.inference_mode()
    def boxes(self, image: np.ndarray, threshold: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Face boxes (N, 4) as dlib rectangles (left, top, right, bottom; inclusive, rounded)
        and their scores (N,), highest first. Boxes are in `image`'s pixels; a longer side over
        `max_side` is scored downscaled (boxes then scaled back, no longer integers)."""
        h, w = image.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        small = image[..., :3]
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            small = cv2.resize(np.ascontiguousarray(small), size, interpolation=cv2.INTER_AREA)
        if min(small.shape[:2]) < min(self.window) // 2:  # no face fits (a strip, a thumbnail),
            return np.zeros((0, 4)), np.zeros(0)  # and the network cannot run on so few rows
        rgb = torch.tensor(np.ascontiguousarray(small), device=self.device)
        tiled, tiles = tiled_pyramid(rgb.permute(2, 0, 1)[None].float(), self.mean, 1 / 256)
        scores = self.net(tiled)[0, 0]
        rows, cols = torch.nonzero(scores > threshold, as_tuple=True)
        values = scores[rows, cols].cpu().numpy().astype(np.float64)
        stride, offset = self.net.stride, self.net.offset
        cx = cols.cpu().numpy() * stride + offset
        cy = rows.cpu().numpy() * stride + offset
        half_w, half_h = (self.window[0] - 1) / 2, (self.window[1] - 1) / 2
        boxes = np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], 1).astype(float)
        boxes = np.floor(tiles_to_image(boxes.reshape(-1, 4), tiles) + 0.5)
        keep = non_max_suppression(boxes, values, self.nms_iou)
        boxes, values = boxes[keep].reshape(-1, 4), values[keep]
        if scale < 1.0:  # pixels [left, right + 1) of the small image -> of the original
            factors = np.array([w / small.shape[1], h / small.shape[0]] * 2)
            boxes = (boxes + [0, 0, 1, 1]) * factors - [0, 0, 1, 1]
        return boxes, values

    def __call__(self, image: np.ndarray, threshold: float = 0.0) -> list[Face]:
        boxes, scores = self.boxes(image, threshold)
        points = self.landmarks.predict(image, boxes)
        faces = [
            Face(
                box=(float(x0), float(y0), float(x1 - x0 + 1), float(y1 - y0 + 1)),
                landmarks=p.astype(np.float32),
                scheme="dlib5",
                score=float(s),
                detector="dlib",
            )
            for (x0, y0, x1, y1), p, s in zip(boxes, points, scores)
        ]
        return sorted(faces, key=lambda f: f.area, reverse=True)


@functools.lru_cache(maxsize=4)
def _detector(device: str) -> DlibFaceDetector:
    return DlibFaceDetector(device)


def available() -> bool:
    """Always: the converted weights are committed in the registry."""
    return True


def detect(image: np.ndarray, threshold: float = 0.0) -> list[Face]:
    """Every face in an RGB uint8 image (H, W, 3) with dlib's five landmarks, largest first.

    >>> detect(np.zeros((480, 640, 3), np.uint8))
    []
    """
    device = str(registry.default_device())
    with _LOCK:
        detector = _detector(device)
    return detector(image, threshold)
