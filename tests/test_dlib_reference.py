"""The converted dlib models against dlib itself, on the same inputs.

dlib comes from PyPI (`dlib-bin`, no compiler needed) and reads its own model files from
`face_recognition_models` (CC0); nothing is committed: the photos are scikit-image's astronaut and
camera, and copies of them made at test time (`tests/photos.py`). Each test feeds dlib and
faceres the same pixels (the same chip, the same rectangle) and compares the outputs with a
tolerance measured on these photos and justified where it is set.

Tests marked `xfail(strict=True)` state what a dlib-faithful implementation achieves and fail on
the code as it is: each reason names the difference found. Once it is fixed they pass, and the
strict marker then fails the run until it is removed.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch
from photos import edited_copy, require_models, two_faces

from faceres import registry
from faceres.detect import Face
from faceres.errors import ModelError
from faceres.face.align import align, model_template

dlib = pytest.importorskip("dlib", reason="dlib (pip install dlib-bin) is the reference")
skdata = pytest.importorskip("skimage.data", reason="scikit-image provides the test photos")

PHOTOS = ("astronaut", "edited", "two_faces", "camera")


def _dlib_file(kind: str) -> str:
    """Path of dlib's `.dat` file from face_recognition_models, located without importing it
    (its `__init__` needs `pkg_resources`, gone from setuptools >= 81)."""
    from faceres.convert.dlib import find_dlib_file

    try:
        return str(find_dlib_file(kind))
    except ModelError as exc:
        pytest.skip(
            f"dlib's model files are not installed (pip install face_recognition_models): {exc}"
        )


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    """RGB uint8 photos, each at most 640 px a side (the converted detector's pyramid then runs
    on the photo itself, as dlib's does with no upsampling)."""
    astronaut = skdata.astronaut()
    return {
        "astronaut": astronaut,
        "edited": edited_copy(astronaut),  # rotated 12°, 0.7x, darker, colour cast: 358 px
        "two_faces": two_faces(astronaut),  # the head beside a 0.8x copy
        "camera": np.repeat(skdata.camera()[..., None], 3, axis=2),  # grey, high-contrast
    }


@pytest.fixture(scope="module")
def dlib_faces(photos) -> dict[str, list[tuple[tuple[int, int, int, int], float]]]:
    """dlib's CNN detections per photo: (left, top, right, bottom) inclusive, confidence; no
    upsampling (`upsample_num_times=0`), as the converted detector."""
    cnn = dlib.cnn_face_detection_model_v1(_dlib_file("dlib-mmod"))
    return {
        name: [
            ((d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()), d.confidence)
            for d in cnn(image, 0)
        ]
        for name, image in photos.items()
    }


@pytest.fixture(scope="module")
def dlib_predictor():
    return dlib.shape_predictor(_dlib_file("dlib-landmarks5"))


@pytest.fixture(scope="module")
def dlib_chips(photos, dlib_faces, dlib_predictor) -> list[tuple[np.ndarray, ...]]:
    """(photo, dlib's 150x150 chip, dlib's 5 points) for every face dlib finds, chips cut by
    dlib's `get_face_chip` around dlib's own landmarks in dlib's own boxes."""
    chips = []
    for name, image in photos.items():
        for box, _ in dlib_faces[name]:
            shape = dlib_predictor(image, dlib.rectangle(*box))
            points = np.array([[p.x, p.y] for p in shape.parts()], np.float32)
            chips.append((image, dlib.get_face_chip(image, shape, 150, 0.25), points))
    return chips


@pytest.fixture(scope="module")
def resnet():
    require_models("dlib-resnet29-face")
    return registry.load("dlib-resnet29-face", device="cpu")


@pytest.fixture(scope="module")
def resnet_fp32(resnet):
    """The same entry with fp32 weights converted from dlib's file (`faceres convert` stores
    them as fp16): conversion and architecture without the storage rounding."""
    from faceres.convert.dlib import dlib_resnet_from_file

    return dataclasses.replace(resnet, model=dlib_resnet_from_file(_dlib_file("dlib-resnet")))


@pytest.fixture(scope="module")
def dlib_resnet():
    return dlib.face_recognition_model_v1(_dlib_file("dlib-resnet"))


def _descriptors(loaded, chips: np.ndarray) -> np.ndarray:
    """Raw outputs of `loaded`'s network for RGB uint8 chips, scaled as its config declares."""
    cfg = loaded.config["pretrained_cfg"]
    mean = torch.tensor(cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(cfg["std"]).view(1, 3, 1, 1)
    x = (torch.from_numpy(chips).permute(0, 3, 1, 2).float() / 255.0 - mean) / std
    with torch.inference_mode():
        return loaded.model(x).float().numpy()


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


def _iou(a, b) -> float:
    """IoU of two dlib rectangles (inclusive corners)."""
    w = min(a[2], b[2]) - max(a[0], b[0]) + 1
    h = min(a[3], b[3]) - max(a[1], b[1]) + 1
    inter = max(w, 0) * max(h, 0)
    area = lambda r: (r[2] - r[0] + 1) * (r[3] - r[1] + 1)  # noqa: E731
    return inter / (area(a) + area(b) - inter)


# -- face descriptors: dlib-resnet29-face vs face_recognition_model_v1 ----------------------------


@pytest.mark.parametrize(
    ("weights", "max_diff", "min_cosine", "norm_ratio"),
    [
        # fp32: float rounding only. Measured on these 5 chips: max |diff| 3.6e-7, cosine >=
        # 1 - 3.3e-8, norms within 2.2e-7 relative; bounds with a ~30x margin (a pixel scale of
        # 1/256 instead of 1/255 moves the descriptors by 2.4e-4).
        ("fp32", 1e-5, 1 - 1e-6, 1e-5),
        # fp16 (the registry's): max |diff| 2.2e-4, cosine >= 1 - 2.3e-7, norms within 8.3e-5
        # relative: the weights' rounding (2**-11 relative each), mostly averaging out. Bounds
        # with a 4-40x margin, far below what matters (dlib's same-person distance is 0.6).
        ("fp16", 1e-3, 1 - 1e-5, 1e-3),
    ],
    ids=["fp32", "fp16"],
)
def test_descriptors_match_dlibs_on_the_same_chips(
    weights, max_diff, min_cosine, norm_ratio, dlib_chips, resnet, resnet_fp32, dlib_resnet
):
    """Our ResNet, fed as its config declares, on dlib's own chips gives dlib's descriptors.
    dlib's are not unit length (norms 1.25-1.46 on these faces), so the raw 128-d outputs are
    compared, norms included."""
    chips = np.stack([chip for _, chip, _ in dlib_chips])
    ours = _descriptors(resnet_fp32 if weights == "fp32" else resnet, chips)
    theirs = np.array([np.array(dlib_resnet.compute_face_descriptor(chip)) for chip in chips])
    assert np.abs(ours - theirs).max() < max_diff
    assert _cosine(ours, theirs).min() > min_cosine
    norms = np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
    assert np.abs(norms - 1).max() < norm_ratio


def test_pipeline_embedding_matches_dlib(dlib_chips, resnet_fp32, dlib_resnet):
    """`verify.embed_crops` (pixels to tensor, mirror test-time augmentation, L2 normalisation)
    equals what its docstring says, computed with dlib: normalise(dlib(chip) + dlib(mirror)).
    With fp32 weights, so that a slip in the pixel scaling is not lost in the fp16 rounding."""
    from faceres.face.pipeline import embed_crops

    chips = [chip for _, chip, _ in dlib_chips]
    ours = embed_crops(chips, resnet_fp32)
    theirs = np.array(
        [
            np.array(dlib_resnet.compute_face_descriptor(chip))
            + np.array(dlib_resnet.compute_face_descriptor(chip[:, ::-1].copy()))
            for chip in chips
        ]
    )
    theirs /= np.linalg.norm(theirs, axis=1, keepdims=True)
    # Measured: max |diff| 1.6e-7 on unit vectors, cosine >= 1 - 4.7e-8; bounds as for the fp32
    # descriptors.
    assert np.abs(ours - theirs).max() < 1e-5
    assert _cosine(ours, theirs).min() > 1 - 1e-6


# -- alignment: faceres.face.align with dlib's 5 points vs dlib.get_face_chip ----------------------


def _our_chip(image: np.ndarray, points: np.ndarray, resnet) -> np.ndarray:
    face = Face((0.0, 0.0, 1.0, 1.0), points, "dlib5", 1.0, "dlib")
    return align(image, face, model_template(resnet.config))


def test_alignment_gives_a_chip_dlibs_network_reads_as_dlibs(dlib_chips, resnet, dlib_resnet):
    """The model's template for dlib's 5 points (`alignment.dlib_chip_template`, "reproducing
    get_face_chip_details") cuts a chip close to dlib's `get_face_chip`: dlib's own network
    describes both alike. Not identical: see the strict test below."""
    dists, diffs = [], []
    for image, chip, points in dlib_chips:
        ours = _our_chip(image, points, resnet)
        a = np.array(dlib_resnet.compute_face_descriptor(ours))
        b = np.array(dlib_resnet.compute_face_descriptor(chip))
        dists.append(np.linalg.norm(a - b))
        diffs.append(np.abs(ours.astype(int) - chip).mean())
    # Measured: descriptor distance 0.062-0.086 (dlib's same-person threshold is 0.6), mean
    # |pixel diff| 3.7-7.0 grey levels. Bounds with a ~1.4x margin; a chip 1.5 px off or 5% too
    # large (the yunet5 points' tuned scale applied to dlib5's) exceeds them.
    assert max(dists) < 0.12, dists
    assert max(diffs) < 10, diffs


ALIGNMENT_FINDING = (
    "finding: faceres.face.align is not dlib's chip geometry: it fits the similarity from image to "
    "chip (dlib fits chip to image, so the scale differs by up to 2%), maps the chip's point "
    "(75, 75) to the face centre where dlib maps (74.5, 74.5), and steps pixels by the fitted "
    "scale where dlib steps (150 s - 1) / 149; mean |pixel diff| 3.7-7.0 against 0.5 for a "
    "chip cut with dlib's geometry and OpenCV's bilinear warp"
)


@pytest.mark.xfail(strict=True, reason=ALIGNMENT_FINDING)
def test_alignment_reproduces_dlibs_chip(dlib_chips, resnet):
    diffs = [
        np.abs(_our_chip(image, points, resnet).astype(int) - chip).mean()
        for image, chip, points in dlib_chips
    ]
    # dlib's geometry warped by cv2.warpAffine differs from dlib's chip by 0.48-0.49 grey levels
    # on average (dlib truncates, OpenCV rounds), so 1.0 is what a reproduction achieves.
    assert max(diffs) < 1.0, diffs


# -- MMOD detector: dlib-mmod-face vs cnn_face_detection_model_v1 ---------------------------------


@pytest.fixture(scope="module")
def detector():
    """The registry's detector (fp16 weights) on the CPU, whatever device the tests run on."""
    require_models("dlib-mmod-face", "dlib-landmarks5")
    from faceres.detect.dlib import DlibFaceDetector

    return DlibFaceDetector(device="cpu")


@pytest.fixture(scope="module")
def detector_fp32():
    """The detector with fp32 weights converted from dlib's file (`faceres convert dlib-mmod`
    stores them as fp16), so that its scores can be held to dlib's to float rounding."""
    import timm

    from faceres.convert.dlib import load_conv_affine
    from faceres.convert.dlib_format import read_dnn
    from faceres.detect.dlib import DlibFaceDetector

    require_models("dlib-mmod-face", "dlib-landmarks5")
    found = DlibFaceDetector(device="cpu")
    net = timm.create_model("faceres_dlib_mmod_face")
    load_conv_affine(net, read_dnn(_dlib_file("dlib-mmod")))
    found.net = net.eval().to(memory_format=torch.channels_last)
    return found


def _our_detections(detector, image: np.ndarray) -> list[tuple[tuple[float, ...], float]]:
    out = []
    for face in detector(image):
        x, y, w, h = face.box
        out.append(((x, y, x + w - 1, y + h - 1), face.score))
    return out


def _matched(ours, theirs) -> list[tuple[float, float, float, float]]:
    """For each of dlib's faces and our best-overlapping one: (IoU, our score, dlib's score, our
    box's side over dlib's, the geometric mean of width and height)."""
    assert len(ours) == len(theirs), (ours, theirs)
    out = []
    for box, score in theirs:
        ious = [_iou(box, other) for other, _ in ours]
        best = int(np.argmax(ious))
        (x0, y0, x1, y1), (left, top, right, bottom) = ours[best][0], box
        side = np.sqrt((x1 - x0 + 1) * (y1 - y0 + 1) / ((right - left + 1) * (bottom - top + 1)))
        out.append((ious[best], ours[best][1], score, float(side)))
    return out


@pytest.mark.parametrize("name", PHOTOS)
def test_detector_finds_dlibs_faces(name, photos, dlib_faces, detector):
    """The registry's detector finds the same faces (count, place, size) with the same scores, to
    within the differences found (see the strict test below)."""
    matches = _matched(_our_detections(detector, photos[name]), dlib_faces[name])
    # Measured: IoU 0.97-0.98 (our boxes are a pixel wider: sides 1.0-1.6% longer), 0.68 on
    # `edited` (two windows 8 px apart score within 0.05% of each other and the other one wins);
    # |score diff| <= 5.7e-4, 2.3e-3 on `edited` (another window). IoU 0.5 is the usual "same
    # object"; sides within 2% catch a wrong pyramid scale (levels are 20% apart); 4e-3 on the
    # scores is a 1.7x margin.
    for iou, ours, theirs, side in matches:
        assert iou > 0.5 and abs(side - 1) < 0.02 and abs(ours - theirs) < 4e-3, matches


@pytest.mark.parametrize("name", PHOTOS)
def test_detector_boxes_and_scores_equal_dlibs(name, photos, dlib_faces, detector_fp32):
    """With dlib's weights in fp32 and dlib's arithmetic the boxes are the same integer rectangles
    and the scores equal to float rounding."""
    matches = _matched(_our_detections(detector_fp32, photos[name]), dlib_faces[name])
    # Measured with dlib's arithmetic (the fixes the reason names): IoU 1.0, |score diff| <=
    # 2.0e-6 (fp16 weights: <= 5.7e-4). IoU >= 0.99 allows no side of these 80-96 px boxes
    # to be a pixel off; 1e-4 catches 8-bit rounding of the pyramid (2.6e-4 on `astronaut`).
    for iou, ours, theirs, _ in matches:
        assert iou >= 0.99 and abs(ours - theirs) < 1e-4, matches


# -- 5-point landmarks: dlib-landmarks5 vs shape_predictor ----------------------------------------

# dlib's box for each face, and shifted, grown and shrunk copies (left, top, right, bottom deltas):
# the predictor must follow dlib for any rectangle, not only the detector's.
JITTER = [
    (0, 0, 0, 0),
    (-8, -8, 8, 8),
    (6, 6, -6, -6),
    (-5, 3, -5, 3),
    (4, -4, 4, -4),
    (-3, -6, 2, 5),
    (7, 2, 3, -4),
    (-2, 5, 6, 1),
]


LANDMARKS_FINDING = (
    "finding: on the high-contrast camera photo our points are up to 7.1 px from dlib's "
    "(mean 1.1 px): leaf values stored as int16 fixed point (error <= 4.8e-7 each, 2e-5 "
    "summed per level) and summed per level move sampled pixels across rounding "
    "boundaries, and the cascade amplifies it; float32 leaves added tree by tree, as dlib "
    "does, give <= 0.5 px here"
)


@pytest.mark.parametrize(
    "name",
    [
        *PHOTOS[:3],
        pytest.param("camera", marks=pytest.mark.xfail(strict=True, reason=LANDMARKS_FINDING)),
    ],
)
def test_landmarks_match_dlibs(name, photos, dlib_faces, dlib_predictor):
    require_models("dlib-landmarks5")
    from faceres.detect.landmarks import load_shape_predictor

    image = photos[name]
    boxes = [tuple(int(v) for v in np.add(box, d)) for box, _ in dlib_faces[name] for d in JITTER]
    ours = load_shape_predictor().predict(image, boxes)
    theirs = np.array(
        [
            [[p.x, p.y] for p in dlib_predictor(image, dlib.rectangle(*box)).parts()]
            for box in boxes
        ],
        np.float64,
    )
    dev = np.abs(ours - theirs)
    # dlib returns whole pixels (rounded), so a faithful implementation is within 0.5 px: a
    # float32 reimplementation adding leaves tree by tree measured <= 0.505 px and a mean of
    # 0.25 (uniform rounding error) on all 40 boxes. Our fixed-point one measured <= 0.69 px,
    # mean <= 0.30 on the face photos. 0.75 px and a mean of 0.35 allow for that.
    assert dev.max() < 0.75, dev.max()
    assert dev.mean() < 0.35, dev.mean()


def test_large_face_chip_is_close_to_dlibs(resnet, dlib_resnet, dlib_predictor):
    """A large face (the chip spans 361 px of the photo, 2.4x its size: dlib downsamples through
    its pyramid, `align` through an area resize): still read alike by dlib's network."""
    big = cv2.resize(skdata.astronaut(), (1536, 1536), interpolation=cv2.INTER_CUBIC)
    shape = dlib_predictor(big, dlib.rectangle(504, 207, 789, 492))  # dlib's box, times 3
    points = np.array([[p.x, p.y] for p in shape.parts()], np.float32)
    chip = dlib.get_face_chip(big, shape, 150, 0.25)
    ours = _our_chip(big, points, resnet)
    a = np.array(dlib_resnet.compute_face_descriptor(ours))
    b = np.array(dlib_resnet.compute_face_descriptor(chip))
    # Measured: descriptor distance 0.092, mean |pixel diff| 5.2; the bounds of the faces at
    # about chip size above.
    assert np.linalg.norm(a - b) < 0.12
    assert np.abs(ours.astype(int) - chip).mean() < 10
