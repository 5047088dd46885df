"""Fuzzing decode → detect: whatever bytes or arrays arrive, `load_image` and `detect_faces` either
return or raise a `FaceresError`; never another exception, never a hang.

Bounded: a fixed number of examples per test, a per-example deadline, a timeout per test. No
example database is written (`database=None`); a failure prints the blob to reproduce it.
"""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from faceres.detect import detect_faces, select_detector
from faceres.errors import FaceresError
from faceres.imageio import load_image

skdata = pytest.importorskip("skimage.data")

EXAMPLE_DEADLINE_MS = 5000
"""One example (decode and every detector) must finish within the bad-input time limit."""
FUZZ = settings(
    max_examples=200,
    deadline=EXAMPLE_DEADLINE_MS,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _detectors() -> list[str]:
    """The dlib detector always (it is committed); YuNet too where its file resolves here."""
    return ["dlib"] + (["yunet"] if select_detector("auto") == "yunet" else [])


DETECTORS = _detectors()


def _seeds() -> dict[str, bytes]:
    """Small real encodings of a face (96×96 crop of the astronaut) to mutate."""
    face = Image.fromarray(skdata.astronaut()[40:200, 150:310]).resize((96, 96))
    out = {}
    for fmt, image, kwargs in [
        ("PNG", face, {}),
        ("JPEG", face, {"quality": 85}),
        ("JPEG", face, {"quality": 85, "progressive": True}),
        ("GIF", face.convert("P"), {}),
        ("PNG", face.convert("LA"), {}),
        ("WEBP", face, {"quality": 80}),
        ("BMP", face, {}),
        ("TIFF", face, {"compression": "tiff_deflate"}),
    ]:
        buf = io.BytesIO()
        image.save(buf, fmt, **kwargs)
        out[f"{fmt}-{image.mode}-{len(out)}"] = buf.getvalue()
    return out


SEEDS = _seeds()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A seed encoding with a few bytes overwritten, inserted or deleted, and maybe truncated."""
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(1, 4))):
        # Past the signature (changing it only yields "not a recognised format"); headers hold
        # the sizes, lengths and markers: mutate them more often than the pixel data.
        pos = draw(st.integers(8, len(data) - 1))
        if draw(st.booleans()):
            pos = 8 + pos % 56
        op = draw(st.sampled_from(("set", "set", "insert", "delete")))
        if op == "set":
            data[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        else:
            del data[pos : pos + draw(st.integers(1, 16))]
    if draw(st.integers(0, 3)) == 0:
        data = data[: draw(st.integers(16, len(data)))]
    return bytes(data)


def decode_then_detect(src) -> None:
    """The pipeline under test; asserts only that each step is quick."""
    start = time.perf_counter()
    try:
        image = load_image(src)
    except FaceresError:
        return
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    for detector in DETECTORS:
        try:
            faces = detect_faces(image, detector)
        except FaceresError:
            continue
        assert all(f.landmarks.shape == (5, 2) for f in faces)
    assert time.perf_counter() - start < EXAMPLE_DEADLINE_MS / 1000


@pytest.fixture(scope="module", autouse=True)
def warm_detectors():
    """Load each detector once, so that no example pays for a model load."""
    for detector in DETECTORS:
        detect_faces(np.zeros((64, 64, 3), np.uint8), detector)


@pytest.mark.timeout(180)
@pytest.mark.filterwarnings("error::UserWarning")  # a library warning would reach CLI stderr
@FUZZ
@given(data=st.binary(max_size=4096))
def test_random_bytes(data: bytes):
    decode_then_detect(data)


@pytest.mark.timeout(240)
@pytest.mark.filterwarnings("error::UserWarning")
@FUZZ
@given(data=mutated())
def test_mutated_encodings(data: bytes):
    decode_then_detect(data)


ARRAY_DTYPES = st.sampled_from(
    [np.uint8, np.uint16, np.int32, np.int64, np.float32, np.float64, np.bool_, np.int8]
)


@pytest.mark.timeout(120)
@settings(FUZZ, max_examples=60)
@given(
    array=hnp.arrays(
        ARRAY_DTYPES,
        st.one_of(
            hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=64),
            st.tuples(st.integers(1, 12), st.integers(200, 3000), st.sampled_from([1, 3, 4])),
        ),
    )
)
def test_arrays(array: np.ndarray):
    decode_then_detect(array)
