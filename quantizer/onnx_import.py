"""ONNX import: load a model and lower it to the layer chain of DESIGN section 1.

Each op of :mod:`kcnn.ops` imports the ONNX node types it names (``onnx_types``); the
nodes that make no layer (constants, Identity, Dropout) are handled here. The result is a
*raw* chain in which Relu, BatchNormalization and bias additions are still separate
layers; the passes in :mod:`kcnn.quantizer.lowering` then fold and check them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kcnn.errors import KcnnError, require
from kcnn.limits import MAX_MAP_VALUES, MAX_MODEL_WEIGHTS, MAX_TENSOR_VALUES
from kcnn.model import Layer, Model
from kcnn.ops import all_ops

_HANDLERS: dict = {op_type: op.import_node for op in all_ops() for op_type in op.onnx_types}


def handles(*op_types):
    """Register a handler for ONNX nodes that make no layer of their own."""

    def register(func):
        for op_type in op_types:
            if op_type in _HANDLERS:
                raise ValueError(f"ONNX op {op_type} has two handlers")
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
    """A tensor of the graph that a layer made (or the network input)."""

    name: str  # the ONNX tensor
    shape: tuple[int, ...]  # without batch
    layer: str  # the layer whose output it is, or "input"


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
        self.tensors: dict[str, _Activation] = {}
        # Tensors that are views of a map inside a channel shuffle (kcnn.ops.shuffle).
        self.views: dict[str, tuple] = {}
        self.reads: list[str] = []  # the layers the node being imported reads, in order
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
        """The activation input ``index`` of ``node``: a tensor an earlier layer made."""
        if index >= len(node.input) or not node.input[index]:
            raise self.error(node, f"input {index} is missing")
        name = self.alias.get(node.input[index], node.input[index])
        if name not in self.tensors:
            if name in self.consts:
                raise self.error(node, "expected an activation input, got a constant")
            raise self.error(node, f"reads tensor {name!r}, which no earlier node made")
        tensor = self.tensors[name]
        self.reads.append(tensor.layer)
        return tensor

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
        first = self.reads[0]
        layer = Layer(
            name=name,
            op=op,
            in_shape=self.shape_of(first),
            out_shape=tuple(int(d) for d in out_shape),
            nodes=[node.name],
            node_ops=[node.op_type],
            inputs=list(self.reads),
            **fields,
        )
        self.layers.append(layer)
        self.tensors[node.output[0]] = _Activation(node.output[0], layer.out_shape, name)
        self.last = node.output[0]
        return layer

    def shape_of(self, layer: str) -> tuple[int, ...]:
        return next(t.shape for t in self.tensors.values() if t.layer == layer)

    def pass_through(self, node):
        source = node.input[0] if node.input else ""
        source = self.alias.get(source, source)
        if source in self.consts:  # exporters share equal constants through an Identity
            self.consts[node.output[0]] = self.consts[source]
            return
        self.activation(node)
        self.only_first_output_used(node)
        self.alias[node.output[0]] = source

    def require_4d(self, node, act: _Activation):
        if len(act.shape) != 3:
            raise self.error(node, f"expects a 4-D (N, C, H, W) input, got shape (N, {act.shape})")


@handles("Dropout", "Identity")
def _identity(imp: _Importer, node):
    imp.pass_through(node)


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


#: Ops never folded at import: they make constants themselves or are handled above.
_NOT_FOLDED = {"Constant", "ConstantOfShape", "Identity", "Dropout"}


def _folds(imp: _Importer, node) -> bool:
    """Evaluate a node whose inputs are all constants (weights reshaped, transposed or
    scaled by the exporter) with onnx's reference evaluator, once its outputs' declared
    sizes are known to fit the limits; True when it did."""
    inputs = [imp.alias.get(n, n) for n in node.input if n]
    if node.op_type in _NOT_FOLDED or not inputs or not all(n in imp.consts for n in inputs):
        return False
    if node.domain not in ("", "ai.onnx"):
        return False
    for out in node.output:
        dims = imp.shapes.get(out)
        if out and (dims is None or any(d < 0 for d in dims)):
            raise imp.error(
                node, f"computes constant {out!r} of unknown size: it cannot be folded safely"
            )
        imp.folded += _declared_size(dims or (), out, imp.source)
    if imp.folded > MAX_MODEL_WEIGHTS:
        raise imp.error(
            node, f"folding its constants would exceed {MAX_MODEL_WEIGHTS:,} values in all"
        )
    from onnx.reference import ReferenceEvaluator

    helper = imp.onnx.helper
    feeds = {name: imp.consts[imp.alias.get(name, name)] for name in node.input if name}
    graph = helper.make_graph(
        [node],
        "fold",
        [helper.make_tensor_value_info(n, 0, None) for n in feeds],
        [helper.make_tensor_value_info(n, 0, None) for n in node.output if n],
    )
    # The node's meaning depends on the model's opset (Unsqueeze's axes moved to an input).
    single = helper.make_model(graph, opset_imports=[helper.make_opsetid("", imp.opset)])
    try:
        values = ReferenceEvaluator(single).run(None, feeds)
    except Exception as exc:  # the evaluator raises many kinds
        raise imp.error(node, f"folding it on its constant inputs failed: {exc}") from exc
    for out, value in zip([o for o in node.output if o], values, strict=True):
        imp.consts[out] = np.asarray(value)
    return True


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


def import_onnx(path_or_model, name: str | None = None) -> Model:
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
    imp.tensors[inputs[0].name] = _Activation(inputs[0].name, tuple(shape[1:]), "input")
    imp.last = inputs[0].name
    for node in model.graph.node:
        imp.reads = []
        if _folds(imp, node):
            continue
        handler = _HANDLERS.get(node.op_type)
        if handler is None or node.domain not in ("", "ai.onnx"):
            raise imp.error(
                node,
                f"unsupported op {node.op_type!r}; supported ops: {', '.join(supported_ops())}",
            )
        handler(imp, node)
    outputs = [imp.alias.get(o.name, o.name) for o in model.graph.output]
    if outputs != [imp.last]:
        raise KcnnError(
            f"the graph must have one output, the last node's ({imp.last!r}), got {outputs}",
            file=source,
            field="graph.output",
        )
    model_name = name or (Path(source).stem if source != "<model>" else model.graph.name)
    return Model(name=model_name or "model", input_shape=tuple(shape[1:]), layers=imp.layers)
