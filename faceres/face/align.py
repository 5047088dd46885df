"""Align a face: five-point similarity transform onto a model's template, cropped to its size.

A template is the `faceres.face.align` block of a model's config: `{"size": [w, h], "<scheme>":
[[x, y] × 5], ...}`, one point list per landmark scheme (see `faceres.detect.Face`), and
optionally `geometry`, the parameters it was built from.

>>> crop = align(rgb, face, loaded.config["faceres"]["alignment"])
>>> crop.shape
(150, 150, 3)
"""

from __future__ import annotations

import cv2
import numpy as np

from faceres.detect import SCHEMES, Face
from faceres.detect.landmarks import dlib5_in_box
from faceres.errors import ModelError

# dlib's mean face (dlib/image_transforms/interpolation.h, get_face_chip_details), points 17-67 of
# the 68-point iBUG shape in the unit square that dlib's chips are padded around.
_DLIB_MEAN_X = (
    0.000213256,
    0.0752622,
    0.18113,
    0.29077,
    0.393397,
    0.586856,
    0.689483,
    0.799124,
    0.904991,
    0.98004,
    0.490127,
    0.490127,
    0.490127,
    0.490127,
    0.36688,
    0.426036,
    0.490127,
    0.554217,
    0.613373,
    0.121737,
    0.187122,
    0.265825,
    0.334606,
    0.260918,
    0.182743,
    0.645647,
    0.714428,
    0.793132,
    0.858516,
    0.79751,
    0.719335,
    0.254149,
    0.340985,
    0.428858,
    0.490127,
    0.551395,
    0.639268,
    0.726104,
    0.642159,
    0.556721,
    0.490127,
    0.423532,
    0.338094,
    0.290379,
    0.428096,
    0.490127,
    0.552157,
    0.689874,
    0.553364,
    0.490127,
    0.42689,
)
_DLIB_MEAN_Y = (
    0.106454,
    0.038915,
    0.0187482,
    0.0344891,
    0.0773906,
    0.0773906,
    0.0344891,
    0.0187482,
    0.038915,
    0.106454,
    0.203352,
    0.307009,
    0.409805,
    0.515625,
    0.587326,
    0.609345,
    0.628106,
    0.609345,
    0.587326,
    0.216423,
    0.178758,
    0.179852,
    0.231733,
    0.245099,
    0.244077,
    0.231733,
    0.179852,
    0.178758,
    0.216423,
    0.244077,
    0.245099,
    0.780233,
    0.745405,
    0.727388,
    0.742578,
    0.727388,
    0.745405,
    0.780233,
    0.864805,
    0.902192,
    0.909281,
    0.902192,
    0.864805,
    0.784792,
    0.778746,
    0.785343,
    0.778746,
    0.784792,
    0.824182,
    0.831803,
    0.824182,
)
# dlib's own 5-point template (shape_predictor_5_face_landmarks order), same unit square.
_DLIB5_UNIT = (
    (0.8595674595992, 0.2134981538014),
    (0.6460604764104, 0.2289674387677),
    (0.1205750620789, 0.2137274526848),
    (0.3340850613712, 0.2290642403242),
    (0.4901123135679, 0.6277975316475),
)


def dlib_mean_face_yunet5() -> np.ndarray:
    """YuNet's five points on dlib's mean face, unit square: eye centres (mean of the six points
    of each eye), nose tip (point 30), mouth corners (points 48 and 54)."""
    mean = np.stack([_DLIB_MEAN_X, _DLIB_MEAN_Y], axis=1)

    def point(i: int) -> np.ndarray:
        return mean[i - 17]

    right_eye = mean[36 - 17 : 42 - 17].mean(axis=0)
    left_eye = mean[42 - 17 : 48 - 17].mean(axis=0)
    return np.stack([right_eye, left_eye, point(30), point(48), point(54)])


def dlib_chip_template(
    size: int = 150,
    padding: float = 0.25,
    scale: float = 1.0,
    shift: tuple[float, float] = (0, 0),
    dlib5_box: dict | None = None,
) -> dict:
    """An alignment template reproducing dlib's `get_face_chip_details(shape, size, padding)`.

    `scale` (about the unit square's centre) and `shift` (in unit-square units) adjust the yunet5
    points only; they are what is tuned on LFW View 1. dlib5 keeps dlib's exact points.
    `dlib5_box`: a yunet5 face is also embedded from dlib's own chip, its dlib 5 points found in
    the box this fit places (`landmarks.dlib5_in_box`; see `views`).

    >>> dlib_chip_template()["size"]
    [150, 150]
    """
    yunet = (dlib_mean_face_yunet5() - 0.5) * scale + 0.5 + np.asarray(shift)

    def to_chip(unit: np.ndarray) -> list[list[float]]:
        chip = (padding + np.asarray(unit, dtype=np.float64)) / (2 * padding + 1) * size
        return [[round(float(x), 4), round(float(y), 4)] for x, y in chip]

    template = {
        "size": [size, size],
        "yunet5": to_chip(yunet),
        "dlib5": to_chip(_DLIB5_UNIT),
        "geometry": {
            "kind": "dlib_chip",
            "padding": padding,
            "scale": scale,
            "shift": [float(v) for v in shift],
        },
    }
    if dlib5_box:
        template["dlib5_box"] = dlib5_box
    return template


ARCFACE_POINTS = (
    (38.2946, 51.6963),
    (73.5318, 51.5014),
    (56.0252, 71.7366),
    (41.5493, 92.3655),
    (70.7299, 92.2041),
)
"""ArcFace's five points (YuNet's order) in its 112x112 crop, where OpenCV's
`FaceRecognizerSF.alignCrop` puts a face."""


def arcface_template() -> dict:
    """ArcFace's 112x112 template: its five points for YuNet's landmarks, and for dlib's five
    (`dlib5`) dlib's own points carried by the similarity that takes dlib's mean face's YuNet
    points onto ArcFace's.

    >>> arcface_template()["yunet5"][0]
    [38.2946, 51.6963]
    """
    to_arcface = similarity_transform(dlib_mean_face_yunet5(), ARCFACE_POINTS)
    dlib5 = np.asarray(_DLIB5_UNIT) @ to_arcface[:, :2].T + to_arcface[:, 2]
    return {
        "size": [112, 112],
        "yunet5": [list(p) for p in ARCFACE_POINTS],
        "dlib5": [[round(float(x), 4), round(float(y), 4)] for x, y in dlib5],
        "geometry": {"kind": "arcface"},
    }


def model_template(config: dict) -> dict:
    """A model's alignment template: `faceres.face.align`, else (not yet calibrated) dlib's chip
    geometry when the model declares `faceres.dlib_chip`."""
    meta = config.get("faceres", {})
    if "alignment" in meta:
        return meta["alignment"]
    if "dlib_chip" in meta:
        return dlib_chip_template(meta["dlib_chip"]["size"], meta["dlib_chip"]["padding"])
    raise ModelError("The model's config declares no alignment template (faceres.face.align).")


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2×3 least-squares similarity (rotation, uniform scale, translation) taking `src` points
    to `dst` points (Umeyama 1991, no reflection).

    >>> similarity_transform([[0, 0], [1, 0]], [[1, 1], [3, 1]])   # scale 2, shift (1, 1)
    array([[2., 0., 1.],
           [0., 2., 1.]])
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1] = -1.0
    rotation = u @ np.diag(d) @ vt
    var = (src_c**2).sum() / len(src)
    scale = float((s * d).sum() / var) if var > 0 else 1.0
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - scale * rotation @ src_mean
    return matrix


def align(image: np.ndarray, face: Face, template: dict) -> np.ndarray:
    """Warp `face` of an RGB image onto `template`; an array of the template's (h, w, 3) size.

    Pixels outside the image are black, as in dlib's `extract_image_chip`. Large faces are first
    area-downscaled so the crop does not alias.

    >>> align(rgb, face, {"size": [112, 112], "yunet5": ARCFACE_POINTS}).shape
    (112, 112, 3)
    """
    if face.scheme not in template:
        raise ModelError(
            f"This model's alignment template has no points for {face.scheme} landmarks "
            f"(it has {', '.join(k for k in SCHEMES if k in template) or 'none'})."
        )
    width, height = (int(v) for v in template["size"])
    matrix = similarity_transform(face.landmarks, np.asarray(template[face.scheme]))
    scale = float(np.hypot(matrix[0, 0], matrix[1, 0]))
    if scale < 0.5:
        # area-downscale only the part of the image the crop covers (plus a margin)
        inverse = cv2.invertAffineTransform(matrix)
        corners = np.array([[0, 0, 1], [width, 0, 1], [0, height, 1], [width, height, 1]], float)
        src = corners @ inverse.T
        margin = 2.0 / scale
        x0, y0 = np.floor(src.min(axis=0) - margin).astype(int).clip(0)
        x1 = int(min(image.shape[1], np.ceil(src[:, 0].max() + margin)))
        y1 = int(min(image.shape[0], np.ceil(src[:, 1].max() + margin)))
        if x1 <= x0 or y1 <= y0:
            return np.zeros((height, width) + image.shape[2:], image.dtype)
        image = image[y0:y1, x0:x1]
        matrix = matrix @ np.array([[1.0, 0.0, x0], [0.0, 1.0, y0], [0.0, 0.0, 1.0]])
        factor = 2.0 * scale
        h, w = image.shape[:2]
        size = (max(1, round(w * factor)), max(1, round(h * factor)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        sx, sy = w / size[0], h / size[1]
        # small-image pixel centres -> original pixel centres (cv2.resize's convention)
        pre = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
        matrix = matrix @ pre
    return cv2.warpAffine(
        image,
        matrix,
        (width, height),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )


def views(image: np.ndarray, face: Face, template: dict) -> list[np.ndarray]:
    """The aligned crops `face` is embedded from (their embeddings are averaged): `align(image,
    face, template)`, then, for a face with YuNet's points and a template with `dlib5_box`, the
    chip from dlib's own 5 landmarks placed in the face's box (two alignments: test-time
    augmentation chosen on LFW View 1)."""
    crops = [align(image, face, template)]
    if face.scheme != "dlib5" and "dlib5_box" in template:
        crops.append(align(image, dlib5_in_box(image, face, template["dlib5_box"]), template))
    return crops


def resize_faces(images: np.ndarray, size: int) -> np.ndarray:
    """N×H×W grayscale faces resized (area) to size×size; unchanged when already that size."""
    if images.shape[1:] == (size, size):
        return images
    out = [cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA) for im in images]
    return np.stack(out) if out else np.zeros((0, size, size), images.dtype)
