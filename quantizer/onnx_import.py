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
        self.consts: dict[str, np.ndarray] = {
            init.name: numpy_helper.to_array(init) for init in model.graph.initializer
        }
        self.shapes = {}
        for info in (*model.graph.value_info, *model.graph.output, *model.graph.input):
            dims = info.type.tensor_type.shape.dim
            self.shapes[info.name] = tuple(d.dim_value if d.dim_value > 0 else -1 for d in dims)
        self.layers: list[Layer] = []
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

    def attr(self, node, name: str, default=None):
        for attribute in node.attribute:
            if attribute.name == name:
                return self.onnx.helper.get_attribute_value(attribute)
        return default

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
        return self.consts[name]

    def optional_const(self, node, index: int, what: str):
        if index < len(node.input) and node.input[index]:
            return self.const(node, index, what)
        return None

    def activation(self, node, index: int = 0) -> _Activation:
        """The activation input of ``node``; it must be the chain's current tensor."""
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
    strides = list(imp.attr(node, "strides", [1, 1]))
    dilations = list(imp.attr(node, "dilations", [1, 1]))
    pads = list(imp.attr(node, "pads", [0, 0, 0, 0]))
    auto_pad = imp.attr(node, "auto_pad", b"NOTSET")
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
    if len(kernel) != 2 or len(strides) != 2 or len(pads) != 4:
        raise imp.error(node, "only 2-D windows are supported")
    if imp.attr(node, "ceil_mode", 0):
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
    weight = imp.const(node, 1, "weight").astype(np.float64)
    if weight.ndim != 4:
        raise imp.error(node, "only 2-D convolutions are supported")
    bias = imp.optional_const(node, 2, "bias")
    groups = int(imp.attr(node, "group", 1))
    c_in = act.shape[0]
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
    if imp.attr(node, "transA", 0):
        raise imp.error(node, "transA=1 is not supported")
    weight = imp.const(node, 1, "weight B").astype(np.float64)
    weight = weight if imp.attr(node, "transB", 0) else weight.T
    weight = weight * float(imp.attr(node, "alpha", 1.0))
    out = weight.shape[0]
    if weight.shape[1] != act.shape[0]:
        raise imp.error(node, f"weight shape {weight.shape} does not take {act.shape[0]} inputs")
    c = imp.optional_const(node, 2, "bias C")
    bias = (
        np.zeros(out)
        if c is None
        else np.broadcast_to(
            c.astype(np.float64).reshape(-1) if c.size == out else c.astype(np.float64), (out,)
        )
        * float(imp.attr(node, "beta", 1.0))
    )
    imp.push(node, "fc", (out,), weight=weight, bias=np.array(bias, dtype=np.float64))


@handles("MatMul")
def _matmul(imp: _Importer, node):
    act = imp.activation(node)
    if len(act.shape) != 1:
        raise imp.error(node, "expects a 2-D input; flatten the map first")
    weight = imp.const(node, 1, "weight").astype(np.float64)
    if weight.ndim != 2 or weight.shape[0] != act.shape[0]:
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
    imp.push(node, "bias_add", act.shape, bias=imp.consts[names[const_index[0]]].astype(np.float64))


@handles("Relu")
def _relu(imp: _Importer, node):
    act = imp.activation(node)
    imp.push(node, "relu", act.shape)


@handles("BatchNormalization")
def _batchnorm(imp: _Importer, node):
    act = imp.activation(node)
    imp.only_first_output_used(node)
    params = [
        imp.const(node, i, what).astype(np.float64)
        for i, what in enumerate(("", "scale", "B", "mean", "var"))
        if i
    ]
    eps = float(imp.attr(node, "epsilon", 1e-5))
    gain = params[0] / np.sqrt(params[3] + eps)
    imp.push(node, "batchnorm", act.shape, weight=gain, bias=params[1] - params[2] * gain)


@handles("MaxPool")
def _maxpool(imp: _Importer, node):
    act = imp.activation(node)
    imp.require_4d(node, act)
    imp.only_first_output_used(node)
    attrs = _window_attrs(imp, node, act.shape[1:], list(imp.attr(node, "kernel_shape")))
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
    attrs = _window_attrs(imp, node, act.shape[1:], list(imp.attr(node, "kernel_shape")))
    if any(attrs["pads"]) and not imp.attr(node, "count_include_pad", 0):
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
    if imp.attr(node, "axis", 1) != 1:
        raise imp.error(node, "only Flatten with axis=1 is supported")
    _flatten(imp, node)


@handles("Reshape")
def _reshape(imp: _Importer, node):
    act = imp.activation(node)
    shape = [int(s) for s in imp.const(node, 1, "shape").reshape(-1)]
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


#: LRN exponents with an exact form in + - * / sqrt (see kcnn.hostops).
LRN_BETAS = (0.5, 0.75, 1.0)


@handles("LRN")
def _lrn(imp: _Importer, node):
    act = imp.activation(node)
    imp.require_4d(node, act)
    beta = float(imp.attr(node, "beta", 0.75))
    exact = next((b for b in LRN_BETAS if abs(beta - b) < 1e-6), None)
    if exact is None:
        raise imp.error(
            node,
            f"LRN beta={beta} has no exact +-*/sqrt form for the host; "
            f"supported beta: {', '.join(map(str, LRN_BETAS))}",
        )
    attrs = {
        "size": int(imp.attr(node, "size")),
        "alpha": float(imp.attr(node, "alpha", 1e-4)),
        "beta": exact,
        "bias": float(imp.attr(node, "bias", 1.0)),
    }
    imp.push(node, "lrn", act.shape, attrs=attrs)


@handles("Softmax")
def _softmax(imp: _Importer, node):
    act = imp.activation(node)
    if len(act.shape) != 1:
        raise imp.error(node, "Softmax is supported only on the 2-D logits")
    axis = int(imp.attr(node, "axis", 1 if imp.opset < 13 else -1))
    if axis not in (1, -1):
        raise imp.error(node, f"Softmax axis={axis} is not supported; use the class axis")
    imp.push(node, "softmax", act.shape)


@handles("Constant")
def _constant(imp: _Importer, node):
    value = imp.attr(node, "value")
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
    value = imp.attr(node, "value")
    fill = (
        imp.numpy_helper.to_array(value).reshape(-1)
        if value is not None
        else np.zeros(1, np.float32)
    )
    imp.consts[node.output[0]] = np.full(shape, fill[0], dtype=fill.dtype)


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
    imp = _Importer(onnx, model, source)
    inputs = [i for i in model.graph.input if i.name not in imp.consts]
    if len(inputs) != 1:
        raise KcnnError(
            f"the model must have exactly one data input, found {[i.name for i in inputs]}",
            file=source,
            field="graph.input",
        )
    shape = imp.shapes[inputs[0].name]
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
