"""YuNet detection on real photos (scikit-image's astronaut and camera man)."""

import dataclasses

import cv2
import numpy as np
import pytest

from faceres.detect import Face, detect_faces, detector_setting, select_detector
from faceres.detect.yunet import YuNet, decode, yunet_path
from faceres.errors import FaceresError, ImageError
from faceres.imageio import load_image

skdata = pytest.importorskip("skimage.data")
needs_yunet = pytest.mark.skipif(
    yunet_path() is None,
    reason="YuNet's ONNX file does not resolve (registry entry yunet-2026may, FACERES_DATA)",
)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return load_image(skdata.astronaut())


@needs_yunet
def test_astronaut_one_face_with_ordered_landmarks(astronaut):
    faces = detect_faces(astronaut, detector="yunet")
    assert len(faces) == 1
    face = faces[0]
    assert face.detector == "yunet" and face.scheme == "yunet5" and face.score > 0.8
    x, y, w, h = face.box
    assert 150 < x < 220 and 40 < y < 100 and 60 < w < 130
    lm = face.landmarks
    assert lm.shape == (5, 2) and lm.dtype == np.float32
    assert ((lm[:, 0] > x) & (lm[:, 0] < x + w) & (lm[:, 1] > y) & (lm[:, 1] < y + h)).all()
    # subject's right eye and mouth corner are on the image's left; eyes above nose above mouth
    assert lm[0, 0] < lm[1, 0] and lm[3, 0] < lm[4, 0]
    assert lm[:2, 1].max() < lm[2, 1] < lm[3:, 1].min()


def _opencv_yunet(image: np.ndarray) -> np.ndarray:
    """The reference: OpenCV's own `cv2.FaceDetectorYN` on the same file and thresholds."""
    h, w = image.shape[:2]
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    reference = cv2.FaceDetectorYN.create(str(yunet_path()), "", (w, h), 0.6, 0.3, 5000)
    cv2.utils.logging.setLogLevel(level)
    _, rows = reference.detect(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return np.zeros((0, 15), np.float32) if rows is None else rows


def _three_faces(astronaut: np.ndarray) -> np.ndarray:
    """A 617×451 canvas (not a multiple of 32) with the astronaut at 256, 200 and 150 px."""
    canvas = np.full((451, 617, 3), 128, np.uint8)
    for (y, x), side in zip([(0, 0), (250, 400), (260, 100)], [256, 200, 150], strict=True):
        canvas[y : y + side, x : x + side] = cv2.resize(astronaut, (side, side))
    return canvas


@needs_yunet
@pytest.mark.parametrize("photo", ["astronaut", "camera", "three faces", "upside down", "blank"])
def test_yunet_finds_what_opencvs_face_detector_finds(astronaut, photo):
    """Every box, landmark and score as cv2.FaceDetectorYN gives them (NMS included)."""
    image = {
        "astronaut": astronaut,
        "camera": load_image(skdata.camera()),
        "three faces": _three_faces(astronaut),
        "upside down": astronaut[::-1].copy(),
        "blank": np.full((100, 130, 3), 90, np.uint8),
    }[photo]
    ours = decode(*YuNet(yunet_path())._run(image))
    reference = _opencv_yunet(image)
    assert len(ours) == len(reference) and len(ours) == (3 if photo == "three faces" else len(ours))
    order = np.lexsort(ours[:, :2].T), np.lexsort(reference[:, :2].T)
    np.testing.assert_allclose(ours[order[0]], reference[order[1]], atol=1e-3)


@needs_yunet
def test_large_input_is_downscaled_and_mapped_back(astronaut):
    small = detect_faces(cv2.resize(astronaut, (640, 640)), detector="yunet")[0]
    big = detect_faces(cv2.resize(astronaut, (2560, 2560)), detector="yunet")[0]  # run at 640
    np.testing.assert_allclose(big.landmarks, (small.landmarks + 0.5) * 4 - 0.5, atol=2)
    np.testing.assert_allclose(np.array(big.box[2:]), np.array(small.box[2:]) * 4, atol=4)


@needs_yunet
def test_grayscale_rgba_and_16bit_inputs(astronaut):
    gray = load_image((skdata.astronaut().mean(axis=2)).astype(np.uint8))
    rgba = load_image(np.dstack([skdata.astronaut(), np.full((512, 512), 255, np.uint8)]))
    deep = load_image(skdata.astronaut().astype(np.uint16) * 257)
    for image in (gray, rgba, deep):
        assert len(detect_faces(image, detector="yunet")) == 1


@needs_yunet
def test_faces_sorted_largest_first(astronaut):
    canvas = np.full((600, 1200, 3), 128, np.uint8)
    canvas[44:556, 0:512] = astronaut
    canvas[172:428, 700:956] = cv2.resize(astronaut, (256, 256))
    faces = detect_faces(canvas, detector="yunet")
    assert len(faces) == 2
    assert faces[0].area > faces[1].area and faces[0].box[0] < 512 < faces[1].box[0]


@needs_yunet
def test_no_face_in_blank_image():
    assert detect_faces(np.full((240, 320, 3), 200, np.uint8), detector="yunet") == []


def test_face_is_frozen():
    face = Face((0, 0, 1, 1), np.zeros((5, 2), np.float32), "yunet5", 0.9, "yunet")
    with pytest.raises(dataclasses.FrozenInstanceError):
        face.score = 1.0  # type: ignore[misc]
    assert face.area == 1


def test_detector_setting(monkeypatch):
    monkeypatch.setenv("FACERES_DETECTOR", "YuNet")
    assert detector_setting() == "yunet"
    monkeypatch.setenv("FACERES_DETECTOR", "haar")
    with pytest.raises(FaceresError, match="FACERES_DETECTOR"):
        detector_setting()
    monkeypatch.delenv("FACERES_DETECTOR")
    assert detector_setting() == "auto"
    assert select_detector("auto") == ("yunet" if yunet_path() else "dlib")
    with pytest.raises(FaceresError, match="Unknown detector"):
        select_detector("mtcnn")


def test_rejects_non_rgb_arrays():
    with pytest.raises(ImageError, match="load_image"):
        detect_faces(np.zeros((64, 64), np.uint8), detector="yunet")
