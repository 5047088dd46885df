"""Reader of dlib's binary serialization format, in pure Python and numpy (no dlib install).

dlib writes integers as a control byte (bit 7: sign, bits 0-3: byte count) followed by the
absolute value in little-endian bytes; floats as two such integers, mantissa then exponent
(value = mantissa * 2**exponent); bools as the ASCII characters '0'/'1'; strings as an integer
length and raw bytes; DNN tensors as a version, four dimensions and raw little-endian float32.

A DNN file is the loss layer followed by its nested sub-networks. Since each `add_layer`
serializes its sub-network before its own layer, the stream holds all wrapper versions first
(outermost first), then the input layer, then the layers from the input upwards. Tag and skip
layers carry no payload (their ids are template parameters, not data), so they appear as
markers; the architecture wiring them comes from the network definition.

>>> net = read_dnn("dlib_face_recognition_resnet_model_v1.dat")  # doctest: +SKIP
>>> net.loss["type"], net.input["type"], net.layers[0]["type"]  # doctest: +SKIP
('loss_metric_2', 'input_rgb_image_sized', 'con_4')
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faceres.errors import ModelError

FLOAT_INF, FLOAT_NINF, FLOAT_NAN = 32000, 32001, 32002


def ints_to_floats(pairs: np.ndarray) -> np.ndarray:
    """Floats from a flat array of dlib (mantissa, exponent) integer pairs."""
    mantissa, exponent = pairs[0::2], pairs[1::2]
    out = np.ldexp(mantissa.astype(np.float64), exponent.clip(-1100, 1100).astype(np.int32))
    out[exponent == FLOAT_INF] = np.inf
    out[exponent == FLOAT_NINF] = -np.inf
    out[exponent == FLOAT_NAN] = np.nan
    return out


class DlibStream:
    """A cursor over the bytes of a dlib-serialized object.

    >>> DlibStream(bytes([0x81, 0x05])).read_int()
    -5
    """

    def __init__(self, data: bytes, pos: int = 0):
        self.data = memoryview(data)
        self.pos = pos

    def _take(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            raise ModelError(f"Truncated dlib file: wanted {n} bytes at offset {self.pos}.")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def at_end(self) -> bool:
        return self.pos >= len(self.data)

    def read_int(self) -> int:
        """One integer in dlib's control-byte format."""
        control = self._take(1)[0]
        size = control & 0x0F
        if size > 8:
            raise ModelError(f"Bad integer control byte {control:#x} at offset {self.pos - 1}.")
        value = int.from_bytes(self._take(size), "little") if size else 0
        return -value if control & 0x80 else value

    def read_float(self) -> float:
        """One float stored as mantissa and exponent integers."""
        mantissa = self.read_int()
        exponent = self.read_int()
        if exponent == FLOAT_INF:
            return math.inf
        if exponent == FLOAT_NINF:
            return -math.inf
        if exponent == FLOAT_NAN:
            return math.nan
        return math.ldexp(mantissa, exponent)

    def read_bool(self) -> bool:
        ch = bytes(self._take(1))
        if ch not in (b"0", b"1"):
            raise ModelError(f"Bad bool {ch!r} at offset {self.pos - 1}.")
        return ch == b"1"

    def read_string(self) -> str:
        size = self.read_int()
        return bytes(self._take(size)).decode("latin-1")

    def read_ints(self, n: int) -> np.ndarray:
        """`n` consecutive integers as int64, decoded with numpy."""
        # Each control byte says where the next one is, so the walk is sequential; the values
        # are then assembled for all integers at once.
        starts = np.empty(n, dtype=np.int64)
        pos, raw = self.pos, self.data
        for i in range(n):
            starts[i] = pos
            pos += 1 + (raw[pos] & 0x0F) if pos < len(raw) else 1
        if pos > len(raw):
            raise ModelError(f"Truncated dlib file: integers run past the end at {self.pos}.")
        self.pos = pos
        data = np.frombuffer(raw, dtype=np.uint8)
        ctrl = data[starts].astype(np.int64)
        size = ctrl & 0x0F
        if n and size.max() > 8:
            raise ModelError("Bad integer control byte in dlib file.")
        values = np.zeros(n, dtype=np.int64)
        for b in range(int(size.max(initial=0))):
            byte = data[np.minimum(starts + 1 + b, len(data) - 1)].astype(np.int64)
            values |= np.where(size > b, byte, 0) << (8 * b)
        return np.where(ctrl & 0x80, -values, values)

    def read_floats(self, n: int) -> np.ndarray:
        """`n` floats (mantissa, exponent pairs) as float64, decoded with numpy."""
        return ints_to_floats(self.read_ints(2 * n))

    def read_tensor(self) -> np.ndarray:
        """A DNN tensor (version 2): shape (n, k, nr, nc) of little-endian float32."""
        version = self.read_int()
        if version != 2:
            raise ModelError(f"Unsupported dlib tensor version {version} at offset {self.pos}.")
        shape = tuple(self.read_int() for _ in range(4))
        count = int(np.prod(shape))
        raw = self._take(4 * count)
        return np.frombuffer(raw, dtype="<f4").reshape(shape).astype(np.float32)

    def read_alias_tensor(self) -> tuple[int, int, int, int]:
        """The shape of an alias tensor (a view into a layer's parameter tensor)."""
        version = self.read_int()
        if version != 1:
            raise ModelError(f"Unsupported dlib alias_tensor version {version}.")
        return tuple(self.read_int() for _ in range(4))

    def read_matrix(self) -> np.ndarray:
        """A `dlib::matrix<float|double>`: rows, cols (negated in newer files), then floats."""
        rows, cols = self.read_int(), self.read_int()
        rows, cols = abs(rows), abs(cols)
        return self.read_floats(rows * cols).reshape(rows, cols)


# ---------------------------------------------------------------------------------------------
# DNN layers


def _read_con(s: DlibStream, tag: str) -> dict[str, Any]:
    params = s.read_tensor()
    layer = {
        "num_filters": s.read_int(),
        "nr": s.read_int(),
        "nc": s.read_int(),
        "stride_y": s.read_int(),
        "stride_x": s.read_int(),
        "padding_y": s.read_int(),
        "padding_x": s.read_int(),
        "filters_shape": s.read_alias_tensor(),
        "biases_shape": s.read_alias_tensor(),
    }
    for _ in range(4):  # learning-rate and weight-decay multipliers
        s.read_float()
    n_w = int(np.prod(layer["filters_shape"]))
    flat = params.reshape(-1)
    layer["weight"] = flat[:n_w].reshape(layer["filters_shape"])
    layer["bias"] = flat[n_w : n_w + int(np.prod(layer["biases_shape"]))].copy()
    return layer


def _read_affine(s: DlibStream, tag: str) -> dict[str, Any]:
    params = s.read_tensor().reshape(-1)
    gamma = s.read_alias_tensor()
    s.read_alias_tensor()
    mode = s.read_int()
    n = int(np.prod(gamma))
    return {"gamma": params[:n].copy(), "beta": params[n : 2 * n].copy(), "mode": mode}


def _read_bn(s: DlibStream, tag: str) -> dict[str, Any]:
    params = s.read_tensor().reshape(-1)
    gamma = s.read_alias_tensor()
    s.read_alias_tensor()
    s.read_tensor()  # means of the last training batch
    s.read_tensor()  # invstds of the last training batch
    running_mean = s.read_tensor().reshape(-1)
    running_var = s.read_tensor().reshape(-1)
    s.read_int()  # num_updates
    s.read_int()  # running_stats_window_size
    for _ in range(4):
        s.read_float()
    eps = s.read_float()
    n = int(np.prod(gamma))
    return {
        "gamma": params[:n].copy(),
        "beta": params[n : 2 * n].copy(),
        "running_mean": running_mean,
        "running_var": running_var,
        "eps": eps,
    }


def _read_fc(s: DlibStream, tag: str) -> dict[str, Any]:
    num_outputs = s.read_int()
    num_inputs = s.read_int()
    params = s.read_tensor().reshape(-1)
    s.read_alias_tensor()
    s.read_alias_tensor()
    bias_mode = s.read_int()  # 0: has bias, 1: no bias
    for _ in range(4):
        s.read_float()
    weight = params[: num_inputs * num_outputs].reshape(num_inputs, num_outputs)
    bias = params[num_inputs * num_outputs :].copy() if bias_mode == 0 else None
    return {"num_outputs": num_outputs, "num_inputs": num_inputs, "weight": weight, "bias": bias}


def _read_pool(s: DlibStream, tag: str) -> dict[str, Any]:
    keys = ("nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x")
    return {k: s.read_int() for k in keys}


def _read_nothing(s: DlibStream, tag: str) -> dict[str, Any]:
    return {}


LAYER_READERS = {
    "con_4": _read_con,
    "affine_": _read_affine,
    "bn_con2": _read_bn,
    "bn_fc2": _read_bn,
    "fc_2": _read_fc,
    "max_pool_2": _read_pool,
    "avg_pool_2": _read_pool,
    "relu_": _read_nothing,
    "add_prev_": _read_nothing,
}


def _read_input(s: DlibStream, tag: str) -> dict[str, Any]:
    layer: dict[str, Any] = {"type": tag}
    if tag in ("input_rgb_image_sized", "input_rgb_image", "input_rgb_image_pyramid"):
        layer["avg_rgb"] = (s.read_float(), s.read_float(), s.read_float())
        if tag == "input_rgb_image_sized":
            layer["nr"], layer["nc"] = s.read_int(), s.read_int()
    elif not tag.startswith("input"):
        raise ModelError(f"Unsupported dlib input layer '{tag}'.")
    return layer


def _read_loss(s: DlibStream) -> dict[str, Any]:
    tag = s.read_string()
    loss: dict[str, Any] = {"type": tag}
    if tag == "loss_metric_2":
        loss["margin"], loss["distance_threshold"] = s.read_float(), s.read_float()
    elif tag == "loss_mmod_":
        version = s.read_int()
        if version != 1:
            raise ModelError(f"Unsupported mmod_options version {version}.")
        loss["detector_width"], loss["detector_height"] = s.read_int(), s.read_int()
        loss["loss_per_false_alarm"] = s.read_float()
        loss["loss_per_missed_target"] = s.read_float()
        loss["truth_match_iou_threshold"] = s.read_float()
        loss["overlaps_nms"] = (s.read_float(), s.read_float())  # iou, percent covered
        loss["overlaps_ignore"] = (s.read_float(), s.read_float())
    else:
        raise ModelError(f"Unsupported dlib loss layer '{tag}'.")
    return loss


def _peek_string(s: DlibStream) -> str | None:
    """The string at the cursor if one plausibly starts there (cursor unchanged)."""
    pos = s.pos
    try:
        size = s.read_int()
        if not 0 < size < 64:
            return None
        text = bytes(s._take(size)).decode("latin-1")
        return text if text.isascii() and text.isprintable() else None
    except ModelError:
        return None
    finally:
        s.pos = pos


@dataclass
class DlibNet:
    """A parsed dlib DNN: loss options, input layer, and layers from the input upwards.

    `layers` holds dicts with a "type" (dlib's serialization tag, e.g. "con_4") and the layer's
    parameters as numpy arrays; tag and skip layers appear as {"type": "marker"}.
    """

    loss: dict[str, Any]
    input: dict[str, Any]
    layers: list[dict[str, Any]] = field(default_factory=list)

    def of_type(self, *types: str) -> list[dict[str, Any]]:
        """The layers of the given types, in order from the input."""
        return [layer for layer in self.layers if layer["type"] in types]


def parse_dnn(data: bytes) -> DlibNet:
    """Parse a serialized `dlib::loss_*<...>` network (e.g. `net_type` of dlib's examples).

    >>> net = parse_dnn(Path("mmod_human_face_detector.dat").read_bytes())  # doctest: +SKIP
    """
    s = DlibStream(data)
    if s.read_int() != 1:
        raise ModelError("Not a dlib DNN file: unexpected add_loss_layer version.")
    loss = _read_loss(s)
    versions: list[int] = []
    while True:
        name = _peek_string(s)
        if name is not None and name.startswith("input"):
            break
        versions.append(s.read_int())
        if len(versions) > 10_000 or versions[-1] not in (1, 2, 3):
            raise ModelError(f"Unexpected dlib layer version {versions[-1]} at offset {s.pos}.")
    if not versions or versions[-1] not in (2, 3):
        raise ModelError("Unexpected dlib network layout: no layer above the input layer.")
    input_version = versions.pop()
    input_layer = _read_input(s, s.read_string())
    layers = [_read_layer(s)]
    _read_trailer(s, input_version, is_input=True)
    for version in reversed(versions):
        if version == 1:  # tag or skip layer: no payload
            layers.append({"type": "marker"})
            continue
        layers.append(_read_layer(s))
        _read_trailer(s, version, is_input=False)
    if not s.at_end():
        raise ModelError(f"Unexpected {len(s.data) - s.pos} trailing bytes in dlib file.")
    return DlibNet(loss=loss, input=input_layer, layers=layers)


def _read_layer(s: DlibStream) -> dict[str, Any]:
    tag = s.read_string()
    reader = LAYER_READERS.get(tag)
    if reader is None:
        raise ModelError(f"Unsupported dlib layer '{tag}' at offset {s.pos}.")
    return {"type": tag, **reader(s, tag)}


def _read_trailer(s: DlibStream, version: int, is_input: bool) -> None:
    """Skip the training state an `add_layer` writes after its layer."""
    for _ in range(3):
        s.read_bool()
    s.read_tensor()  # x_grad
    s.read_tensor()  # cached_output
    if is_input:
        s.read_tensor()  # grad_final
        if version >= 3:
            s.read_int()  # sample_expansion_factor
    elif version >= 2:
        s.read_tensor()  # params_grad


def read_dnn(path: str | Path) -> DlibNet:
    """Parse a dlib DNN file from disk.

    >>> read_dnn("dlib_face_recognition_resnet_model_v1.dat").loss["type"]  # doctest: +SKIP
    'loss_metric_2'
    """
    return parse_dnn(Path(path).read_bytes())


# ---------------------------------------------------------------------------------------------
# Shape predictor (cascade of regression trees)


def parse_shape_predictor(data: bytes) -> dict[str, np.ndarray]:
    """Parse a serialized `dlib::shape_predictor` into dense arrays.

    Returns `initial_shape` (P, 2) in the unit square of the face box; for cascade level c and tree
    t: `split_features` (C, T, S, 2) pixel indices and `split_thresholds` (C, T, S) of the S inner
    nodes in breadth-first order, `leaf_values` (C, T, S + 1, P, 2) shape increments; and the
    feature pixels of each level, `anchor_idx` (C, F) shape points and `deltas` (C, F, 2) offsets.

    >>> sp = parse_shape_predictor(Path("shape_predictor_5_face_landmarks.dat").read_bytes())
    >>> sp["leaf_values"].shape  # doctest: +SKIP
    (15, 500, 16, 5, 2)
    """
    s = DlibStream(data)
    if s.read_int() != 1:
        raise ModelError("Not a dlib shape_predictor file: unexpected version.")
    initial = s.read_matrix().reshape(-1)
    dim = initial.size
    forests = []
    for _ in range(s.read_int()):
        trees = []
        for _ in range(s.read_int()):
            num_splits = s.read_int()
            splits = s.read_ints(4 * num_splits).reshape(num_splits, 4)
            num_leaves = s.read_int()
            leaves = s.read_ints(num_leaves * (2 + 2 * dim)).reshape(num_leaves, 2 + 2 * dim)
            if num_leaves != num_splits + 1 or np.any(np.abs(leaves[:, :2]) != (dim, 1)):
                raise ModelError("Unexpected regression tree layout in shape_predictor file.")
            thresholds = ints_to_floats(splits[:, 2:].reshape(-1))
            values = ints_to_floats(leaves[:, 2:].reshape(-1)).reshape(num_leaves, dim)
            trees.append((splits[:, :2], thresholds, values))
        forests.append(trees)
    anchors = [s.read_ints(s.read_int()) for _ in range(s.read_int())]
    deltas = [s.read_floats(2 * s.read_int()).reshape(-1, 2) for _ in range(s.read_int())]
    if not s.at_end():
        raise ModelError(f"Unexpected {len(s.data) - s.pos} trailing bytes in shape predictor.")
    return {
        "initial_shape": initial.reshape(-1, 2).astype(np.float32),
        "split_features": np.array([[t[0] for t in f] for f in forests], dtype=np.int64),
        "split_thresholds": np.array([[t[1] for t in f] for f in forests], dtype=np.float32),
        "leaf_values": np.array([[t[2] for t in f] for f in forests], dtype=np.float32).reshape(
            len(forests), len(forests[0]), -1, dim // 2, 2
        ),
        "anchor_idx": np.array(anchors, dtype=np.int64),
        "deltas": np.array(deltas, dtype=np.float32),
    }
