"""ONNX import: load a model and lower it to the layer chain of DESIGN section 1.

Node handlers are registered per op type. They build a *raw* chain in which Relu,
BatchNormalization and bias additions are still separate steps; the passes in
:mod:`kcnn.quantizer.lowering` then fold and check them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kcnn.errors import KcnnError, require
from kcnn.graph import Graph, Layer, conv_output_hw
from kcnn.hostops import LRN_BETAS
from kcnn.limits import MAX_MAP_VALUES, MAX_MODEL_WEIGHTS, MAX_TENSOR_VALUES

_HANDLERS: dict = {}


def handles(*op_types):
    """Register a node handler for the given ONNX op types."""

    def register(func):
        for op_type in op_types:
            _HANDLERS[op_type] = func
        return func

    return register


def supported_ops() -> list[str]:
    return sorted(_HANDLERS)


def layer_name(node) -> str:
    """A short layer name: PyTorch's exporter names nodes ``/<module path>/<Op>``; keep the
    module (``/features/features.0/Conv`` -> ``features.0``, ``/conv1/Conv`` -> ``conv1``)."""
    name = node.name or node.output[0]
    parts = [p for p in name.split("/") if p]
    if name.startswith("/") and len(parts) >= 2 and parts[-1].startswith(node.op_type):
        return parts[-2]
    return "/".join(parts) if name.startswith("/") and parts else name


@dataclass
class _Activation:
    """The chain's current activation tensor."""

    name: str
    shape: tuple[int, ...]  # without batch


class _Importer:
    def __init__(self, onnx, model, source: str):
        self.onnx = onnx
        self.source = source
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
        from onnx import numpy_helper

        self.numpy_helper = numpy_helper
        self.consts: dict[str, np.ndarray] = {}
        for init in model.graph.initializer:
            try:
                self.consts[init.name] = numpy_helper.to_array(init)
            except Exception as exc:  # onnx raises ValueError, TypeError and others
                raise KcnnError(
                    f"initializer {init.name!r} is unreadable (declared shape "
                    f"{list(init.dims)}, data does not match): {exc}",
                    file=source,
                    field=init.name,
                ) from exc
        self.shapes = {}
        for info in (*model.graph.value_info, *model.graph.output, *model.graph.input):
            dims = info.type.tensor_type.shape.dim
            self.shapes[info.name] = tuple(d.dim_value if d.dim_value > 0 else -1 for d in dims)
        self.layers: list[Layer] = []
        self.folded = sum(int(v.size) for v in self.consts.values())
        self.names: set[str] = set()
        self.current: _Activation | None = None
        self.alias: dict[str, str] = {}
        self.used = set()
        for node in model.graph.node:
            self.used.update(i for i in node.input if i)
        self.used.update(o.name for o in model.graph.output)

    # ---- helpers for handlers -------------------------------------------------
    def error(self, node, message: str) -> KcnnError:
        return KcnnError(
            f"{message} (node {node.name or '<unnamed>'!r}, op {node.op_type})",
            file=self.source,
            layer=node.name or None,
        )

    def attr(self, node, name: str, default=None, kind=None):
        """Attribute ``name`` of ``node`` (``default`` when absent), of type ``kind`` when
        given (``float`` admits integers too)."""
        for attribute in node.attribute:
            if attribute.name == name:
                value = self.onnx.helper.get_attribute_value(attribute)
                break
        else:
            return default
        allowed = (int, float) if kind is float else kind
        if kind is not None and not isinstance(value, allowed):
            shown = value if isinstance(value, (int, float, bytes, str, list)) else type(value)
            names = "/".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            raise self.error(node, f"attribute {name}={shown!r} is not of type {names}")
        return float(value) if kind is float else value

    def const(self, node, index: int, what: str) -> np.ndarray:
        name = node.input[index] if index < len(node.input) else ""
        if not name:
            raise self.error(node, f"missing {what}")
        name = self.alias.get(name, name)
        if name not in self.consts:
            raise self.error(
                node,
                f"{what} {name!r} must be a constant (initializer, Constant or "
                "ConstantOfShape); weights computed from the input are not supported",
            )
        value = self.consts[name]
        if value.dtype.kind not in "biuf":
            raise self.error(node, f"{what} {name!r} has dtype {value.dtype}, not a number")
        if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
            raise self.error(node, f"{what} {name!r} holds NaN or infinite values")
        return value

    def floats(self, node, index: int, what: str, shape=None) -> np.ndarray:
        """A float64 constant input, of ``shape`` when given."""
        value = self.const(node, index, what).astype(np.float64)
        if shape is not None and value.shape != tuple(shape):
            raise self.error(node, f"{what} has shape {list(value.shape)}, expected {list(shape)}")
        return value

    def ints(self, node, name: str, default, length: int, low: int):
        """An integer list attribute of ``length`` entries, each >= ``low``."""
        value = self.attr(node, name, default)
        if value is None:
            raise self.error(node, f"attribute {name} is required")
        value = list(value) if isinstance(value, (list, tuple)) else [value]
        if len(value) != length or not all(isinstance(v, int) for v in value):
            raise self.error(
                node, f"attribute {name}={value} must be {length} integers (2-D windows only)"
            )
        if any(v < low for v in value):
            raise self.error(node, f"attribute {name}={value} must be >= {low}")
        return value

    def optional_const(self, node, index: int, what: str):
        if index < len(node.input) and node.input[index]:
            return self.const(node, index, what)
        return None

    def activation(self, node, index: int = 0) -> _Activation:
        """The activation input of ``node``; it must be the chain's current tensor."""
        if index >= len(node.input) or not node.input[index]:
            raise self.error(node, f"input {index} is missing")
        name = self.alias.get(node.input[index], node.input[index])
        if self.current is None or name != self.current.name:
            if name in self.consts:
                raise self.error(node, "expected an activation input, got a constant")
            raise self.error(
                node,
                f"reads tensor {name!r}, which is not the output of the previous layer: "
                "only a single chain of layers is supported (no branches or residual adds)",
            )
        return self.current

    def only_first_output_used(self, node):
        for extra in node.output[1:]:
            if extra and extra in self.used:
                raise self.error(
                    node, f"its extra output {extra!r} is used; only the first output is supported"
                )

    def push(self, node, op: str, out_shape, **fields) -> Layer:
        out_shape = tuple(int(d) for d in out_shape)
        if any(d < 1 for d in out_shape):
            raise self.error(
                node,
                f"its output would have shape {list(out_shape)}: the window does not fit "
                "its input (kernel larger than the padded input, or a zero size)",
            )
        if int(np.prod(out_shape, dtype=np.float64)) > MAX_MAP_VALUES:
            raise self.error(
                node,
                f"its output map {list(out_shape)} holds more than {MAX_MAP_VALUES:,} "
                "values per image",
            )
        name = layer_name(node)
        if name in self.names or name == "input":
            name = f"{name}_{len(self.layers)}"
        self.names.add(name)
        layer = Layer(
            name=name,
            op=op,
            in_shape=self.current.shape,
            out_shape=tuple(int(d) for d in out_shape),
            nodes=[node.name],
            **fields,
        )
        self.layers.append(layer)
        self.current = _Activation(node.output[0], layer.out_shape)
        return layer

    def pass_through(self, node):
        self.activation(node)
        self.only_first_output_used(node)
        self.alias[node.output[0]] = self.current.name

    def require_4d(self, node, act: _Activation):
        if len(act.shape) != 3:
            raise self.error(node, f"expects a 4-D (N, C, H, W) input, got shape (N, {act.shape})")


def _window_attrs(imp: _Importer, node, in_hw, kernel):
    if len(kernel) != 2 or not all(isinstance(k, int) and k >= 1 for k in kernel):
        raise imp.error(node, f"kernel {kernel} must be two sizes >= 1 (2-D windows only)")
    strides = imp.ints(node, "strides", [1, 1], 2, 1)
    dilations = imp.ints(node, "dilations", [1, 1], 2, 1)
    pads = imp.ints(node, "pads", [0, 0, 0, 0], 4, 0)
    auto_pad = imp.attr(node, "auto_pad", b"NOTSET", (bytes, str))
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pads = [0, 0, 0, 0]
        for axis in range(2):
            out = -(-in_hw[axis] // strides[axis])
            span = dilations[axis] * (kernel[axis] - 1) + 1
            total = max(0, (out - 1) * strides[axis] + span - in_hw[axis])
            small, large = total // 2, total - total // 2
            begin, end = (small, large) if auto_pad == "SAME_UPPER" else (large, small)
            pads[axis], pads[axis + 2] = begin, end
    elif auto_pad == "VALID":
        pads = [0, 0, 0, 0]
    elif auto_pad != "NOTSET":
        raise imp.error(node, f"auto_pad {auto_pad!r} is not supported")
    if imp.attr(node, "ceil_mode", 0, int):
        # Ceil mode equals floor mode with enough extra padding at the end; the extra
        # taps read padding, which never wins a max over a non-negative map.
        for axis in range(2):
            span = dilations[axis] * (kernel[axis] - 1) + 1
            padded = in_hw[axis] + pads[axis] + pads[axis + 2]
            out_ceil = -(-(padded - span) // strides[axis]) + 1
            if (out_ceil - 1) * strides[axis] >= in_hw[axis] + pads[axis]:
                out_ceil -= 1
            pads[axis + 2] += max(0, (out_ceil - 1) * strides[axis] + span - padded)
    return {
        "kernel": [int(k) for k in kernel],
        "strides": [int(s) for s in strides],
        "pads": [int(p) for p in pads],
        "dilations": [int(d) for d in dilations],
    }


@handles("Conv")
def _conv(imp: _Importer, node):
    act = imp.activation(node)
    imp.require_4d(node, act)
    weight = imp.floats(node, 1, "weight")
    if weight.ndim != 4 or weight.size == 0:
        raise imp.error(node, "only 2-D convolutions with a non-empty weight are supported")
    declared = imp.attr(node, "kernel_shape", None, list)
    if declared is not None and list(declared) != list(weight.shape[2:]):
        raise imp.error(
            node, f"kernel_shape {list(declared)} does not match the weight {weight.shape}"
        )
    groups = imp.attr(node, "group", 1, int)
    if not isinstance(groups, int) or groups < 1:
        raise imp.error(node, f"group={groups} must be a positive integer")
    c_in = act.shape[0]
    bias = imp.optional_const(node, 2, "bias")
    if bias is not None and bias.size != weight.shape[0]:
        raise imp.error(node, f"bias has {bias.size} values for {weight.shape[0]} channels")
    if c_in != weight.shape[1] * groups or weight.shape[0] % groups:
        raise imp.error(
            node,
            f"weight shape {weight.shape} does not match {c_in} input channels in {groups} groups",
        )
    attrs = _window_attrs(imp, node, act.shape[1:], list(weight.shape[2:]))
    attrs["groups"] = groups
    oh, ow = conv_output_hw(
        act.shape[1:], attrs["kernel"], attrs["strides"], attrs["pads"], attrs["dilations"]
    )
    c_out = weight.shape[0]
    bias = np.zeros(c_out) if bias is None else bias.astype(np.float64).reshape(c_out)
    imp.push(node, "conv", (c_out, oh, ow), attrs=attrs, weight=weight, bias=bias)


@handles("Gemm")
def _gemm(imp: _Importer, node):
    act = imp.activation(node)
    if len(act.shape) != 1:
        raise imp.error(node, "expects a 2-D input; flatten the map first")
    if imp.attr(node, "transA", 0, int):
        raise imp.error(node, "transA=1 is not supported")
    weight = imp.floats(node, 1, "weight B")
    if weight.ndim != 2 or weight.size == 0:
        raise imp.error(node, f"weight B has shape {list(weight.shape)}; a 2-D matrix is needed")
    weight = weight if imp.attr(node, "transB", 0, int) else weight.T
    alpha, beta = (imp.attr(node, key, 1.0, float) for key in ("alpha", "beta"))
    if not (np.isfinite(alpha) and np.isfinite(beta)):
        raise imp.error(node, f"alpha={alpha} and beta={beta} must be finite")
    weight = weight * alpha
    out = weight.shape[0]
    if weight.shape[1] != act.shape[0]:
        raise imp.error(node, f"weight shape {weight.shape} does not take {act.shape[0]} inputs")
    c = imp.optional_const(node, 2, "bias C")
    if c is not None and c.size not in (1, out):
        raise imp.error(node, f"bias C has {c.size} values for {out} outputs")
    bias = (
        np.zeros(out)
        if c is None
        else np.broadcast_to(
            c.astype(np.float64).reshape(-1) if c.size == out else c.astype(np.float64), (out,)
        )
        * beta
    )
    imp.push(node, "fc", (out,), weight=weight, bias=np.array(bias, dtype=np.float64))


@handles("MatMul")
def _matmul(imp: _Importer, node):
    act = imp.activation(node)
    if len(act.shape) != 1:
        raise imp.error(node, "expects a 2-D input; flatten the map first")
    weight = imp.floats(node, 1, "weight")
    if weight.ndim != 2 or weight.shape[0] != act.shape[0] or weight.size == 0:
        raise imp.error(node, f"weight shape {weight.shape} does not take {act.shape[0]} inputs")
    imp.push(node, "fc", (weight.shape[1],), weight=weight.T.copy(), bias=np.zeros(weight.shape[1]))


@handles("Add")
def _add(imp: _Importer, node):
    names = [imp.alias.get(n, n) for n in node.input]
    const_index = [i for i, n in enumerate(names) if n in imp.consts]
    if len(const_index) != 1:
        raise imp.error(
            node,
            "adds two activations: residual adds are not supported; an Add "
            "is accepted only as the bias of the preceding MatMul or Conv",
        )
    act = imp.activation(node, 1 - const_index[0])
    imp.push(node, "bias_add", act.shape, bias=imp.floats(node, const_index[0], "addend"))


@handles("Relu")
def _relu(imp: _Importer, node):
    act = imp.activation(node)
    imp.push(node, "relu", act.shape)


@handles("BatchNormalization")
def _batchnorm(imp: _Importer, node):
    act = imp.activation(node)
    imp.only_first_output_used(node)
    channels = act.shape[0]
    params = [
        imp.floats(node, i, what, (channels,))
        for i, what in enumerate(("", "scale", "B", "mean", "var"))
        if i
    ]
    eps = imp.attr(node, "epsilon", 1e-5, float)
    if not np.isfinite(eps) or np.any(params[3] + eps <= 0):
        raise imp.error(node, "var + epsilon must be positive: a variance is negative")
    gain = params[0] / np.sqrt(params[3] + eps)
    imp.push(node, "batchnorm", act.shape, weight=gain, bias=params[1] - params[2] * gain)


@handles("MaxPool")
def _maxpool(imp: _Importer, node):
    act = imp.activation(node)
    imp.require_4d(node, act)
    imp.only_first_output_used(node)
    attrs = _window_attrs(imp, node, act.shape[1:], imp.ints(node, "kernel_shape", None, 2, 1))
    if attrs.pop("dilations") != [1, 1]:
        raise imp.error(node, "dilated max-pooling is not supported")
    oh, ow = conv_output_hw(act.shape[1:], attrs["kernel"], attrs["strides"], attrs["pads"], [1, 1])
    imp.push(node, "maxpool", (act.shape[0], oh, ow), attrs=attrs)


def _average_as_conv(imp: _Importer, node, act: _Activation, attrs):
    """Average pooling is a depthwise conv with constant weights 1/(kh*kw)."""
    channels = act.shape[0]
    kh, kw = attrs["kernel"]
    attrs["groups"] = channels
    oh, ow = conv_output_hw(
        act.shape[1:], attrs["kernel"], attrs["strides"], attrs["pads"], attrs["dilations"]
    )
    weight = np.full((channels, 1, kh, kw), 1.0 / (kh * kw))
    layer = imp.push(
        node, "conv", (channels, oh, ow), attrs=attrs, weight=weight, bias=np.zeros(channels)
    )
    # Pooling a non-negative map keeps it non-negative, so the fabric's ReLU is exact.
    layer.relu = True
    layer.attrs["average_pool"] = True


@handles("AveragePool")
def _averagepool(imp: _Importer, node):
    act = imp.activation(node)
    imp.require_4d(node, act)
    attrs = _window_attrs(imp, node, act.shape[1:], imp.ints(node, "kernel_shape", None, 2, 1))
    if any(attrs["pads"]) and not imp.attr(node, "count_include_pad", 0, int):
        raise imp.error(
            node,
            "AveragePool with padding and count_include_pad=0 divides border "
            "windows by fewer taps, which is not a constant-weight layer; use "
            "count_include_pad=1 or no padding",
        )
    _average_as_conv(imp, node, act, attrs)


@handles("GlobalAveragePool")
def _global_averagepool(imp: _Importer, node):
    act = imp.activation(node)
    imp.require_4d(node, act)
    attrs = {
        "kernel": list(act.shape[1:]),
        "strides": [1, 1],
        "pads": [0, 0, 0, 0],
        "dilations": [1, 1],
    }
    _average_as_conv(imp, node, act, attrs)


def _flatten(imp: _Importer, node):
    act = imp.current
    if len(act.shape) == 1:
        imp.alias[node.output[0]] = act.name
        return
    imp.push(node, "flatten", (int(np.prod(act.shape)),))


@handles("Flatten")
def _flatten_node(imp: _Importer, node):
    imp.activation(node)
    if imp.attr(node, "axis", 1, int) != 1:
        raise imp.error(node, "only Flatten with axis=1 is supported")
    _flatten(imp, node)


@handles("Reshape")
def _reshape(imp: _Importer, node):
    act = imp.activation(node)
    target = imp.const(node, 1, "shape")
    if target.dtype.kind not in "iu":
        raise imp.error(node, f"the shape input has dtype {target.dtype}, not int64")
    shape = [int(s) for s in target.reshape(-1)]
    n = int(np.prod(act.shape))
    if (
        len(shape) != 2
        or shape[0] not in (1, -1, 0)
        or shape[1] not in (n, -1)
        or (shape[0] == -1 and shape[1] == -1)
    ):
        raise imp.error(
            node,
            f"Reshape to {shape} is not supported: only a flatten to "
            f"(1, {n}), (-1, {n}) or (0, {n}) right after a map",
        )
    _flatten(imp, node)


@handles("Dropout", "Identity")
def _identity(imp: _Importer, node):
    imp.pass_through(node)


@handles("LRN")
def _lrn(imp: _Importer, node):
    act = imp.activation(node)
    imp.require_4d(node, act)
    beta = imp.attr(node, "beta", 0.75, float)
    exact = next((b for b in LRN_BETAS if abs(beta - b) < 1e-6), None)
    if exact is None:
        raise imp.error(
            node,
            f"LRN beta={beta} has no exact +-*/sqrt form for the host; "
            f"supported beta: {', '.join(map(str, LRN_BETAS))}",
        )
    size = imp.attr(node, "size", None, int)
    if not isinstance(size, int) or size < 1 or size % 2 == 0:
        raise imp.error(node, f"LRN size={size} must be a positive odd integer")
    attrs = {
        "size": size,
        "alpha": imp.attr(node, "alpha", 1e-4, float),
        "beta": exact,
        "bias": imp.attr(node, "bias", 1.0, float),
    }
    # bias > 0 and alpha >= 0 keep the base of the power positive for every input.
    if not (np.isfinite(attrs["alpha"]) and attrs["alpha"] >= 0):
        raise imp.error(node, f"LRN alpha={attrs['alpha']} must be finite and >= 0")
    if not (np.isfinite(attrs["bias"]) and attrs["bias"] > 0):
        raise imp.error(node, f"LRN bias={attrs['bias']} must be finite and > 0")
    imp.push(node, "lrn", act.shape, attrs=attrs)


@handles("Softmax")
def _softmax(imp: _Importer, node):
    act = imp.activation(node)
    if len(act.shape) != 1:
        raise imp.error(node, "Softmax is supported only on the 2-D logits")
    axis = imp.attr(node, "axis", 1 if imp.opset < 13 else -1, int)
    if axis not in (1, -1):
        raise imp.error(node, f"Softmax axis={axis} is not supported; use the class axis")
    imp.push(node, "softmax", act.shape)


@handles("Constant")
def _constant(imp: _Importer, node):
    value = imp.attr(node, "value", None, imp.onnx.TensorProto)
    if value is not None:
        imp.consts[node.output[0]] = imp.numpy_helper.to_array(value)
        return
    for key, dtype in (
        ("value_float", np.float32),
        ("value_floats", np.float32),
        ("value_int", np.int64),
        ("value_ints", np.int64),
    ):
        found = imp.attr(node, key)
        if found is not None:
            imp.consts[node.output[0]] = np.array(found, dtype=dtype)
            return
    raise imp.error(
        node, "only Constant nodes with a tensor, float(s) or int(s) value are supported"
    )


@handles("ConstantOfShape")
def _constant_of_shape(imp: _Importer, node):
    shape = [int(s) for s in imp.const(node, 0, "shape").reshape(-1)]
    if any(d < 0 for d in shape):
        raise imp.error(node, f"shape {shape} has a negative dimension")
    elements = int(np.prod(shape, dtype=np.float64))
    imp.folded += elements
    if elements > MAX_TENSOR_VALUES or imp.folded > MAX_MODEL_WEIGHTS:
        raise imp.error(
            node,
            f"would build a constant of {elements:,} values (limits: {MAX_TENSOR_VALUES:,} "
            f"per tensor, {MAX_MODEL_WEIGHTS:,} for all constants)",
        )
    value = imp.attr(node, "value", None, imp.onnx.TensorProto)
    fill = (
        imp.numpy_helper.to_array(value).reshape(-1)
        if value is not None
        else np.zeros(1, np.float32)
    )
    imp.consts[node.output[0]] = np.full(shape, fill[0], dtype=fill.dtype)


def _declared_size(dims, what: str, source) -> int:
    if any(d < 0 for d in dims):
        raise KcnnError(f"declares a negative dimension {list(dims)}", file=source, field=what)
    size = int(np.prod([int(d) for d in dims], dtype=np.float64))
    if size > MAX_TENSOR_VALUES:
        raise KcnnError(
            f"declares {size:,} values {list(dims)}, more than the limit of "
            f"{MAX_TENSOR_VALUES:,} per tensor",
            file=source,
            field=what,
        )
    return size


def check_limits(model, source) -> None:
    """Refuse a graph whose declared tensors exceed the limits of :mod:`kcnn.limits`
    before anything (numpy, onnxruntime's constant folding) allocates them."""
    total = 0
    for init in model.graph.initializer:
        total += _declared_size(init.dims, init.name, source)
    for node in model.graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                total += _declared_size(attribute.t.dims, node.name or node.op_type, source)
    if total > MAX_MODEL_WEIGHTS:
        raise KcnnError(
            f"its constants hold {total:,} values, more than the limit of {MAX_MODEL_WEIGHTS:,}",
            file=source,
            field="graph.initializer",
        )
    # Shape inference has sized every tensor, ConstantOfShape outputs included.
    for info in (*model.graph.value_info, *model.graph.output, *model.graph.input):
        dims = [d.dim_value for d in info.type.tensor_type.shape.dim if d.dim_value > 0]
        _declared_size(dims, info.name, source)


def load_onnx(path_or_model):
    """Load an ONNX model (path or ModelProto) and run shape inference."""
    onnx = require("onnx", "quantize", "reading ONNX models")
    if isinstance(path_or_model, (str, Path)):
        path = Path(path_or_model)
        if not path.is_file():
            raise KcnnError("no such ONNX file", file=path)
        try:
            model = onnx.load(str(path))
        except Exception as exc:  # onnx raises DecodeError and others
            raise KcnnError(f"not a readable ONNX model: {exc}", file=path) from exc
        source = str(path)
    else:
        model, source = path_or_model, "<model>"
    try:
        model = onnx.shape_inference.infer_shapes(model)
    except Exception as exc:
        raise KcnnError(f"ONNX shape inference failed: {exc}", file=source) from exc
    return onnx, model, source


def import_onnx(path_or_model, name: str | None = None) -> Graph:
    """Lower an ONNX model to the raw layer chain (before the lowering passes)."""
    onnx, model, source = load_onnx(path_or_model)
    check_limits(model, source)
    imp = _Importer(onnx, model, source)
    inputs = [i for i in model.graph.input if i.name not in imp.consts]
    if len(inputs) != 1:
        raise KcnnError(
            f"the model must have exactly one data input, found {[i.name for i in inputs]}",
            file=source,
            field="graph.input",
        )
    shape = imp.shapes[inputs[0].name]
    if inputs[0].type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        raise KcnnError(
            f"input {inputs[0].name!r} is not float32", file=source, field="graph.input"
        )
    if len(shape) < 2 or any(d <= 0 for d in shape[1:]):
        raise KcnnError(
            f"input {inputs[0].name!r} needs a fixed shape after the batch dimension, got {shape}",
            file=source,
            field="graph.input",
        )
    imp.current = _Activation(inputs[0].name, tuple(shape[1:]))
    for node in model.graph.node:
        handler = _HANDLERS.get(node.op_type)
        if handler is None or node.domain not in ("", "ai.onnx"):
            raise imp.error(
                node,
                f"unsupported op {node.op_type!r}; supported ops: {', '.join(supported_ops())}",
            )
        handler(imp, node)
    outputs = [imp.alias.get(o.name, o.name) for o in model.graph.output]
    if outputs != [imp.current.name]:
        raise KcnnError(
            f"the graph output must be the end of the layer chain "
            f"({imp.current.name!r}), got {outputs}",
            file=source,
            field="graph.output",
        )
    model_name = name or (Path(source).stem if source != "<model>" else model.graph.name)
    return Graph(
        name=model_name or "model",
        input_name=inputs[0].name,
        input_shape=tuple(shape[1:]),
        layers=imp.layers,
    )
