"""The dlib serialization parser on tiny hand-built byte streams (no dlib, no model files)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from faceres.convert.dlib_format import DlibStream, parse_dnn, parse_shape_predictor
from faceres.errors import ModelError

# -- a minimal writer of dlib's format, to build the streams ---------------------------------------


def enc_int(value: int) -> bytes:
    """Control byte (bit 7: sign, low bits: byte count) then |value| little-endian."""
    mag = abs(value)
    body = mag.to_bytes(max(1, (mag.bit_length() + 7) // 8), "little")
    return bytes([len(body) | (0x80 if value < 0 else 0)]) + body


def enc_float(value: float) -> bytes:
    """Mantissa then exponent, value = mantissa * 2**exponent."""
    if value == 0:
        return enc_int(0) + enc_int(0)
    mantissa, exponent = math.frexp(value)
    return enc_int(int(mantissa * 2**53)) + enc_int(exponent - 53)


def enc_str(text: str) -> bytes:
    return enc_int(len(text)) + text.encode()


def enc_tensor(array: np.ndarray) -> bytes:
    shape = (list(array.shape) + [1] * 4)[:4]
    return enc_int(2) + b"".join(enc_int(d) for d in shape) + array.astype("<f4").tobytes()


def enc_alias(shape: tuple[int, int, int, int]) -> bytes:
    return enc_int(1) + b"".join(enc_int(d) for d in shape)


EMPTY = enc_tensor(np.zeros((0,), np.float32))
TRAILER = b"000" + EMPTY + EMPTY + EMPTY  # 3 bools, x_grad, cached_output, params_grad


# -- scalars and tensors ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 1, 5, 255, 256, -1, -300, 2**40, -(2**62)])
def test_ints(value):
    assert DlibStream(enc_int(value)).read_int() == value


def test_known_int_bytes():
    assert DlibStream(bytes([0x02, 0xF4, 0x01])).read_int() == 500
    assert DlibStream(bytes([0x81, 0x1C])).read_int() == -28


@pytest.mark.parametrize("value", [0.0, 1.0, -2.5, 0.6, 1e-8, 3.0e10, 122.782])
def test_floats(value):
    assert DlibStream(enc_float(value)).read_float() == pytest.approx(value, rel=1e-15)


def test_special_floats():
    stream = DlibStream(enc_int(0) + enc_int(32000) + enc_int(0) + enc_int(32001))
    assert stream.read_float() == math.inf and stream.read_float() == -math.inf
    assert math.isnan(DlibStream(enc_int(0) + enc_int(32002)).read_float())


def test_vectorised_ints_and_floats_match_scalar_reads():
    values = [3, -7, 0, 70000, -(2**33)]
    assert DlibStream(b"".join(map(enc_int, values))).read_ints(5).tolist() == values
    floats = [0.25, -1.5, 0.0, 1e-3]
    got = DlibStream(b"".join(map(enc_float, floats))).read_floats(4)
    np.testing.assert_allclose(got, floats, rtol=1e-15)


def test_bool_and_string():
    stream = DlibStream(b"10" + enc_str("relu_"))
    assert stream.read_bool() is True and stream.read_bool() is False
    assert stream.read_string() == "relu_"


def test_tensor_and_truncation():
    array = np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2) / 7
    got = DlibStream(enc_tensor(array)).read_tensor()
    np.testing.assert_array_equal(got, array)
    with pytest.raises(ModelError):
        DlibStream(enc_tensor(array)[:-1]).read_tensor()


# -- a small network: loss_metric<fc_no_bias<2, relu<affine<con<2,3,3,1,1, tag1<input>>>>>> -------


def small_net(
    conv_w: np.ndarray, conv_b: np.ndarray, gamma, beta, fc_w: np.ndarray, tag: bool = False
) -> bytes:
    """With `tag`, a tag layer (version 1, no payload) sits between relu and affine."""
    con = (
        enc_str("con_4")
        + enc_tensor(np.concatenate([conv_w.ravel(), conv_b]))
        + b"".join(enc_int(v) for v in (2, 3, 3, 1, 1, 1, 1))
        + enc_alias((2, 1, 3, 3))
        + enc_alias((1, 2, 1, 1))
        + b"".join(enc_float(1.0) for _ in range(4))
    )
    affine = (
        enc_str("affine_")
        + enc_tensor(np.concatenate([gamma, beta]).astype(np.float32))
        + enc_alias((1, 2, 1, 1))
        + enc_alias((1, 2, 1, 1))
        + enc_int(0)
    )
    fc = (
        enc_str("fc_2")
        + enc_int(2)
        + enc_int(2)
        + enc_tensor(fc_w)
        + enc_alias((2, 2, 1, 1))
        + enc_alias((0, 0, 0, 0))
        + enc_int(1)
        + b"".join(enc_float(1.0) for _ in range(4))
    )
    return (
        enc_int(1)  # add_loss_layer
        + enc_str("loss_metric_2")
        + enc_float(0.04)
        + enc_float(0.6)
        + enc_int(2)  # fc add_layer
        + enc_int(2)  # relu add_layer
        + (enc_int(1) if tag else b"")  # add_tag_layer
        + enc_int(2)  # affine add_layer
        + enc_int(3)  # con add_layer over the input layer
        + enc_str("input_rgb_image_sized")
        + enc_float(122.782)
        + enc_float(117.001)
        + enc_float(104.298)
        + enc_int(8)
        + enc_int(8)
        + con
        + b"000"
        + EMPTY
        + EMPTY
        + EMPTY
        + enc_int(1)  # input add_layer v3 trailer
        + affine
        + TRAILER
        + enc_str("relu_")
        + TRAILER
        + fc
        + TRAILER
    )


def test_small_net():
    rng = np.random.default_rng(0)
    conv_w = rng.normal(size=(2, 1, 3, 3)).astype(np.float32)
    conv_b = np.array([0.5, -0.5], np.float32)
    fc_w = rng.normal(size=(2, 2)).astype(np.float32)
    net = parse_dnn(small_net(conv_w, conv_b, [2.0, 3.0], [0.1, 0.2], fc_w))
    assert net.loss == {
        "type": "loss_metric_2",
        "margin": pytest.approx(0.04),
        "distance_threshold": pytest.approx(0.6),
    }
    assert net.input["type"] == "input_rgb_image_sized" and net.input["nr"] == 8
    assert net.input["avg_rgb"] == pytest.approx((122.782, 117.001, 104.298))
    assert [layer["type"] for layer in net.layers] == ["con_4", "affine_", "relu_", "fc_2"]
    con, affine, _, fc = net.layers
    np.testing.assert_array_equal(con["weight"], conv_w)
    np.testing.assert_array_equal(con["bias"], conv_b)
    assert (con["stride_y"], con["padding_y"], con["num_filters"]) == (1, 1, 2)
    np.testing.assert_array_equal(affine["gamma"], [2.0, 3.0])
    np.testing.assert_allclose(affine["beta"], [0.1, 0.2], rtol=1e-6)
    np.testing.assert_array_equal(fc["weight"], fc_w)
    assert fc["bias"] is None


def test_tag_layers_are_markers_and_trailing_bytes_fail():
    rng = np.random.default_rng(1)
    args = (
        rng.normal(size=(2, 1, 3, 3)).astype(np.float32),
        np.zeros(2, np.float32),
        [1.0, 1.0],
        [0.0, 0.0],
        np.eye(2, dtype=np.float32),
    )
    data = small_net(*args, tag=True)
    types = [layer["type"] for layer in parse_dnn(data).layers]
    assert types == ["con_4", "affine_", "marker", "relu_", "fc_2"]
    with pytest.raises(ModelError):
        parse_dnn(data + b"\x00")
    with pytest.raises(ModelError):
        parse_dnn(data[:-5])


def test_shape_predictor():
    """One level of one depth-1 tree over a one-point shape and two feature pixels."""
    dim = 2

    def matrix(values):
        return enc_int(-len(values)) + enc_int(-1) + b"".join(enc_float(v) for v in values)

    tree = (
        enc_int(1)
        + enc_int(0)
        + enc_int(1)
        + enc_float(-3.5)  # one split: f0 - f1 > -3.5
        + enc_int(2)
        + matrix([0.25, -0.5])
        + matrix([1.0, 0.0])  # two leaves
    )
    data = (
        enc_int(1)
        + matrix([0.5, 0.5])
        + enc_int(1)
        + enc_int(1)
        + tree  # 1 level of 1 tree
        + enc_int(1)
        + enc_int(2)
        + enc_int(0)
        + enc_int(0)  # anchor_idx: [[0, 0]]
        + enc_int(1)
        + enc_int(2)
        + b"".join(enc_float(v) for v in (0.1, 0.0, -0.1, 0.0))
    )
    sp = parse_shape_predictor(data)
    np.testing.assert_array_equal(sp["initial_shape"], [[0.5, 0.5]])
    assert sp["split_features"].tolist() == [[[[0, 1]]]]
    np.testing.assert_array_equal(sp["split_thresholds"], [[[-3.5]]])
    np.testing.assert_array_equal(sp["leaf_values"].reshape(2, dim), [[0.25, -0.5], [1.0, 0.0]])
    assert sp["anchor_idx"].tolist() == [[0, 0]]
    np.testing.assert_allclose(sp["deltas"], [[[0.1, 0.0], [-0.1, 0.0]]], rtol=1e-6)
