"""Reduce the ONNX model zoo's light graphs to small, self-contained files for CI.

Runs in the main environment (onnx, numpy and kcnn; no torch). From the repository root::

    python tools/zoo_graphs.py            # write tests/data/architectures/zoo_*_reduced.onnx
    python tools/zoo_graphs.py --check    # exit 1 unless a rerun gives the same bytes

The onnx package ships nine model-zoo graphs (onnx/backend/test/data/light/) as the Caffe2
converter wrote them: opset 9, IR version 3, full-size layers whose weights are
ConstantOfShape fills. Each is rebuilt node for node, with the same node names, ops and
attributes, but every conv and Gemm output width divided by a factor and a smaller input,
and with every size that follows from those recomputed: group counts of depthwise convs,
the weights' shapes, the 5-D Reshape of ShuffleNet's channel shuffle, the Reshape before
the Gemm, and the kernel of a pool that covered the whole map. Shapes come from onnx's own
shape inference, node by node, and the finished graph is checked with its checker and
strict shape inference.

The fills become seeded initializers (graph inputs too, as IR version 3 wants): conv and
Gemm weights He-normal and magnitude-pruned to the census's densities, BatchNorm scales and
variances and Caffe "Scale" factors near 1, every other parameter small and normal. They
test what the quantizer and the kernel accept, not accuracy. ``manifest.json`` records
each file under its ``zoo`` key; ``tests/test_architectures.py`` checks it.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np
import onnx
from generated_files import arguments, write_or_check
from onnx import TensorProto, defs, helper, numpy_helper, shape_inference

from kcnn.models.bvlc import seeded_parameter

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "architectures"
MANIFEST_KEY = "zoo"
SEED = 0
MAX_FILE_BYTES = 300 * 1024


def zoo_folder() -> Path:
    """The light model-zoo graphs inside the installed onnx package."""
    return Path(onnx.__file__).resolve().parent / "backend" / "test" / "data" / "light"


@dataclass(frozen=True)
class Reduction:
    divisor: int  # every conv output width is divided by this (rounded up)
    side: int  # the input's height and width
    multiple: int = 1  # widths are rounded up to multiples of this: the grouped convs' groups
    #: Gemm output widths are divided by this instead: the 4096-wide hidden layers of the
    #: VGG-like heads would otherwise make most of the file.
    gemm_divisor: int | None = None


#: Per graph: an input that leaves the last stage's map 2x2 (SqueezeNet's 3x3), so that
#: every stride and pool of the real model still has more than one pixel to work on, and
#: widths that keep each file under MAX_FILE_BYTES and its C-sim run to a few seconds.
#: (At 1/24 ResNet-50 found an onnxruntime fusion bug that the quantizer's session now
#: avoids: kcnn.quantizer.export_onnx.DISABLED_OPTIMIZERS.)
REDUCTIONS = {
    "bvlc_alexnet": Reduction(divisor=16, side=99, multiple=2, gemm_divisor=64),
    "zfnet512": Reduction(divisor=16, side=96, gemm_divisor=64),
    "vgg19": Reduction(divisor=20, side=64, gemm_divisor=64),
    "resnet50": Reduction(divisor=32, side=64),
    "squeezenet": Reduction(divisor=8, side=64),
    "inception_v1": Reduction(divisor=16, side=64),
    "inception_v2": Reduction(divisor=16, side=64),
    "densenet121": Reduction(divisor=16, side=64),
    "shufflenet": Reduction(divisor=8, side=64, multiple=4),
}


def file_name(key: str) -> str:
    return f"zoo_{key}_reduced.onnx"


def _dims(value_type: onnx.TypeProto) -> list[int]:
    return [d.dim_value for d in value_type.tensor_type.shape.dim]


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _set_ints(node: onnx.NodeProto, name: str, values) -> None:
    for attribute in node.attribute:
        if attribute.name == name:
            node.attribute.remove(attribute)
            break
    node.attribute.append(helper.make_attribute(name, values))


class Reducer:
    """Rebuilds one zoo graph with narrower layers and a smaller input, node by node in
    graph order, so that every parameter's shape is known from the maps before it."""

    def __init__(self, source: onnx.ModelProto, reduction: Reduction) -> None:
        self.source = source
        self.reduction = reduction
        self.rng = np.random.default_rng(SEED)
        graph = source.graph
        self.opset = next(o.version for o in source.opset_import if o.domain in ("", "ai.onnx"))
        inferred = shape_inference.infer_shapes(source, strict_mode=True, data_prop=True)
        self.old = {
            v.name: _dims(v.type)
            for v in (*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output)
        }
        self.old_data = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        fills = {n.output[0] for n in graph.node if n.op_type == "ConstantOfShape"}
        shape_inputs = {n.input[0] for n in graph.node if n.op_type == "ConstantOfShape"}
        #: Parameters: the fills and the initializers that are not a fill's shape.
        self.params = fills | (set(self.old_data) - shape_inputs)
        self.producer = {out: n for n in graph.node for out in n.output}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self.types: dict[str, onnx.TypeProto] = {}
        self.made: dict[str, np.ndarray] = {}  # new parameters, in the order made
        (self.image,) = [i.name for i in graph.input if i.name not in self.old_data]
        self.types[self.image] = helper.make_tensor_type_proto(
            TensorProto.FLOAT, [1, self.old[self.image][1], reduction.side, reduction.side]
        )

    # ------------------------------------------------------------------ widths and values

    def width(self, old: int, divisor: int | None = None) -> int:
        """A reduced output width: ``old / divisor`` rounded up to the multiple."""
        step = self.reduction.multiple
        divisor = divisor or self.reduction.divisor
        return step * max(1, math.ceil(old / (divisor * step)))

    def draw(self, op: str, slot: int, shape: list[int], attrs: dict) -> np.ndarray:
        """Seeded values for input ``slot`` of an ``op`` node, in the shape that node sees."""
        return seeded_parameter(self.rng, op, slot, shape, bool(attrs.get("transB", 0)))

    def put(self, name: str, values: np.ndarray) -> None:
        if name in self.made:
            raise ValueError(f"parameter {name!r} is used twice; its shape would be ambiguous")
        self.made[name] = np.asarray(values)

    def param(self, node: onnx.NodeProto, slot: int, seen: list[int]) -> None:
        """Make the parameter at input ``slot`` of ``node``, which the node sees with shape
        ``seen``: stored as it is, or through the Unsqueeze or Reshape the converter put on
        the weight (then stored in the shape before that op)."""
        name = node.input[slot]
        values = self.draw(node.op_type, slot, seen, _attrs(node)).astype(np.float32)
        view = self.producer.get(name)
        if name in self.params:
            self.put(name, values)
        elif view is not None and view.op_type == "Unsqueeze" and view.input[0] in self.params:
            axes = sorted(_attrs(view)["axes"])
            if any(seen[a] != 1 for a in axes):
                raise ValueError(f"{view.name}: Unsqueeze axes {axes} are not 1 in {seen}")
            self.put(
                view.input[0], values.reshape([d for a, d in enumerate(seen) if a not in axes])
            )
        elif view is not None and view.op_type == "Reshape" and view.input[0] in self.params:
            stored = self.old[view.input[0]]
            ones = len(stored) - len(seen)
            if ones < 0 or any(d != 1 for d in stored[:ones]):
                raise ValueError(f"{view.name}: cannot widen {stored} to a view of {seen}")
            self.put(view.input[0], values.reshape([1] * ones + seen))
            self.put(view.input[1], np.array(seen, np.int64))
        else:
            raise ValueError(f"{node.name}: input {name!r} is neither a map nor a parameter")
        self.types[name] = helper.make_tensor_type_proto(TensorProto.FLOAT, seen)

    # ------------------------------------------------------------------ nodes

    def shape(self, name: str) -> list[int]:
        return _dims(self.types[name])

    def is_param(self, name: str) -> bool:
        view = self.producer.get(name)
        return name in self.params or (
            view is not None
            and view.op_type in ("Unsqueeze", "Reshape")
            and view.input[0] in self.params
        )

    def sum_partner(self, name: str) -> str | None:
        """The map that ``name`` is summed with, if it reaches a Sum through per-channel ops
        only and that map is already made: the conv must then match its width. Rounding each
        width on its own would not: ShuffleNet sums a unit's input, a concat of two rounded
        widths, with its branch, one rounded width."""
        while len(self.consumers.get(name, [])) == 1:
            (node,) = self.consumers[name]
            if node.op_type == "Sum":
                known = [i for i in node.input if i != name and i in self.types]
                return known[0] if known else None
            per_channel = node.op_type in ("BatchNormalization", "Relu", "Dropout") or (
                node.op_type in ("Mul", "Add")
                and sum(not self.is_param(i) for i in node.input) == 1
            )
            if not per_channel:
                return None
            name = node.output[0]
        return None

    def conv(self, node: onnx.NodeProto) -> None:
        _, channels, *_ = self.shape(node.input[0])
        out, _, *kernel = self.old[node.input[1]]
        groups = _attrs(node).get("group", 1)
        if groups > 1 and groups == out == self.old[node.input[0]][1]:
            groups = out = channels  # depthwise stays depthwise
            _set_ints(node, "group", groups)
        else:
            partner = self.sum_partner(node.output[0])
            out = self.shape(partner)[1] if partner else self.width(out)
        if channels % groups or out % groups:
            raise ValueError(f"{node.name}: {channels} -> {out} channels in {groups} groups")
        self.param(node, 1, [out, channels // groups, *kernel])
        if len(node.input) > 2:
            self.param(node, 2, [out])

    def gemm(self, node: onnx.NodeProto) -> None:
        attrs = _attrs(node)
        width = self.shape(node.input[0])[0 if attrs.get("transA", 0) else 1]
        old = self.old[node.input[1]]
        out = self.width(old[0] if attrs.get("transB", 0) else old[1], self.reduction.gemm_divisor)
        self.param(node, 1, [out, width] if attrs.get("transB", 0) else [width, out])
        if len(node.input) > 2:
            self.param(node, 2, [out])

    def per_channel(self, node: onnx.NodeProto) -> None:
        """BatchNormalization's four vectors, or the constant of a Caffe Scale's Mul/Add:
        the map's channel count where the original had its channel count."""
        (data,) = [i for i in node.input if not self.is_param(i)]
        old_channels, channels = self.old[data][1], self.shape(data)[1]
        for slot, name in enumerate(node.input):
            if name == data:
                continue
            seen = list(self.old[name])
            # BatchNorm's vectors are per channel; a Mul/Add constant broadcasts against the
            # map from the right, so its channel axis is the map's axis 1 counted from there.
            axis = (
                0 if node.op_type == "BatchNormalization" else len(seen) - len(self.old[data]) + 1
            )
            if seen[axis] != old_channels:
                raise ValueError(f"{node.name}: {name} {seen} is not per channel")
            seen[axis] = channels
            self.param(node, slot, seen)

    def reshape(self, node: onnx.NodeProto) -> None:
        """The converter's fixed-shape Reshapes of maps: ShuffleNet's split of the channels
        into groups and its merge back, and the flattening before the Gemm."""
        old_in, old_to = self.old[node.input[0]], [int(d) for d in self.old_data[node.input[1]]]
        new_in = self.shape(node.input[0])
        if len(old_in) == 4 and len(old_to) == 5:
            groups = old_to[1]
            if old_to != [old_in[0], groups, old_in[1] // groups, *old_in[2:]]:
                raise ValueError(f"{node.name}: {old_in} -> {old_to} is not a channel split")
            to = [new_in[0], groups, new_in[1] // groups, *new_in[2:]]
        elif len(old_in) == 5 and len(old_to) == 4:
            if old_to != [old_in[0], old_in[1] * old_in[2], *old_in[3:]]:
                raise ValueError(f"{node.name}: {old_in} -> {old_to} is not a channel merge")
            to = [new_in[0], new_in[1] * new_in[2], *new_in[3:]]
        elif len(old_to) == 2 and old_to == [old_in[0], int(np.prod(old_in[1:]))]:
            to = [new_in[0], int(np.prod(new_in[1:]))]
        else:
            raise ValueError(f"{node.name}: no rule reshapes {old_in} to {old_to}")
        self.put(node.input[1], np.array(to, np.int64))
        self.types[node.input[1]] = helper.make_tensor_type_proto(TensorProto.INT64, [len(to)])

    def pool(self, node: onnx.NodeProto) -> None:
        """A pool whose window covered the whole map (its output 1x1) covers the whole new
        map, with the same overhang into its padding; every other pool keeps its window."""
        old_in, old_out = self.old[node.input[0]][2:], self.old[node.output[0]][2:]
        if all(d == 1 for d in old_out) and any(d > 1 for d in old_in):
            kernel = _attrs(node)["kernel_shape"]
            new_in = self.shape(node.input[0])[2:]
            _set_ints(
                node,
                "kernel_shape",
                [k - o + s for k, o, s in zip(kernel, old_in, new_in, strict=True)],
            )

    def infer(self, node: onnx.NodeProto) -> None:
        schema = defs.get_schema(node.op_type, self.opset)
        data = {
            name: numpy_helper.from_array(self.made[name], name)
            for name in node.input
            if name in self.made and self.made[name].dtype == np.int64
        }
        types = {name: self.types[name] for name in node.input if name}
        outputs = shape_inference.infer_node_outputs(schema, node, types, data)
        for name, value_type in outputs.items():
            if name in self.types:
                raise ValueError(f"{node.name}: output {name!r} written twice")
            self.types[name] = value_type

    def run(self, name: str) -> onnx.ModelProto:
        nodes = []
        for original in self.source.graph.node:
            if original.op_type == "ConstantOfShape":
                continue
            node = onnx.NodeProto()
            node.CopyFrom(original)
            nodes.append(node)
            if node.op_type in ("Unsqueeze", "Reshape") and node.input[0] in self.params:
                continue  # a view of a weight: made with the node that uses it
            if node.op_type == "Conv":
                self.conv(node)
            elif node.op_type == "Gemm":
                self.gemm(node)
            elif node.op_type in ("BatchNormalization", "Mul", "Add"):
                self.per_channel(node)
            elif node.op_type == "Reshape":
                self.reshape(node)
            elif node.op_type in ("AveragePool", "MaxPool"):
                self.pool(node)
            elif any(self.is_param(i) for i in node.input):
                raise ValueError(f"{node.name}: no rule for the parameters of a {node.op_type}")
            self.infer(node)
        for node in nodes:  # the views' outputs, typed now that their weights are made
            if node.op_type in ("Unsqueeze", "Reshape") and node.output[0] not in self.types:
                self.infer(node)
        return self.model(name, nodes)

    def model(self, name: str, nodes: list[onnx.NodeProto]) -> onnx.ModelProto:
        graph = self.source.graph
        initializers = [numpy_helper.from_array(values, n) for n, values in self.made.items()]
        new_graph = helper.make_graph(
            nodes,
            graph.name,
            # IR version 3: an initializer is a graph input's default, so each is an input.
            [helper.make_value_info(self.image, self.types[self.image])]
            + [
                helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
                for n, v in self.made.items()
            ],
            [helper.make_value_info(o.name, self.types[o.name]) for o in graph.output],
            initializers,
        )
        model = helper.make_model(
            new_graph,
            opset_imports=list(self.source.opset_import),
            producer_name="kcnn tools/zoo_graphs.py",
            doc_string=f"{name} reduced from onnx's light zoo graph (see tools/zoo_graphs.py)",
        )
        model.ir_version = self.source.ir_version
        return model


def reduce_zoo_graph(key: str) -> onnx.ModelProto:
    """The reduced light graph ``key``, checked by onnx's checker, and by strict shape
    inference of the whole graph giving every tensor the shape it was built with."""
    source = onnx.load(str(zoo_folder() / f"light_{key}.onnx"))
    reducer = Reducer(source, REDUCTIONS[key])
    model = reducer.run(f"light_{key}")
    onnx.checker.check_model(model, full_check=True)
    inferred = shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    for value in (*inferred.graph.value_info, *inferred.graph.output):
        if value.name in reducer.types and _dims(value.type) != reducer.shape(value.name):
            raise ValueError(
                f"{key}: {value.name} is {_dims(value.type)}, built as {reducer.shape(value.name)}"
            )
    return model


def made(reduction: Reduction) -> str:
    """How a file was reduced, for the manifest."""
    rounding = f"a multiple of {reduction.multiple}" if reduction.multiple > 1 else "an integer"
    return (
        f"the light graph node for node, every conv output width / {reduction.divisor} and "
        f"every Gemm output width / {reduction.gemm_divisor or reduction.divisor} (rounded up "
        f"to {rounding}, a depthwise conv kept depthwise, a branch summed with a map given "
        f"that map's width), {reduction.side}x{reduction.side} input; seeded weights"
    )


def main(argv: list[str] | None = None) -> int:
    args = arguments(__doc__.splitlines()[0], OUT, argv)

    outputs, entries = {}, []
    for key, reduction in REDUCTIONS.items():
        model = reduce_zoo_graph(key)
        blob = model.SerializeToString()
        if len(blob) >= MAX_FILE_BYTES:
            raise RuntimeError(f"{key}: {len(blob)} bytes, over the {MAX_FILE_BYTES} budget")
        path = file_name(key)
        outputs[path] = blob
        shape = _dims(model.graph.input[0].type)
        entries.append(
            {
                "file": path,
                "architecture": key,
                "source": f"onnx/backend/test/data/light/light_{key}.onnx",
                "opset": next(o.version for o in model.opset_import if o.domain == ""),
                "input_shape": shape,
                "bytes": len(blob),
                "sha256": hashlib.sha256(blob).hexdigest(),
                "made": made(reduction),
            }
        )
        params = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
        print(f"{path}: {len(blob)} bytes, {params} parameters, input {shape}")

    manifest_path = args.out / "manifest.json"
    # The rest of the manifest is tools/architectures.py's: kept as it is.
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    manifest[MANIFEST_KEY] = {
        "made_by": "python tools/zoo_graphs.py",
        "seed": SEED,
        "versions": {package: version(package) for package in ("onnx", "numpy")},
        "files": entries,
    }
    outputs["manifest.json"] = (json.dumps(manifest, indent=1) + "\n").encode()

    changed = write_or_check(args.out, outputs, args.check)
    print(f"{len(entries)} files; changed: {', '.join(changed) or 'none'}")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
