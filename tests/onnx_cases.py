"""Small ONNX models for every op and pattern the importer must accept or refuse.

Each model is built with ``onnx.helper`` from seeded random weights and runs in
milliseconds. Supported cases come in two styles, chosen by opset:

* opset 9, the old model-zoo style: input fixed to batch 1 and every initializer also
  listed as a graph input;
* opsets 13 and 18, the current exporter style: dynamic batch dimension ``"N"`` and
  initializers that are not graph inputs.

``SUPPORTED`` maps ``"<case>_op<opset>"`` to a builder returning ``(model, x)``; ``x`` is
float32 with a batch of 3 even when the model input is fixed to batch 1 (then feed it one
row at a time). ``UNSUPPORTED`` maps a case name to ``(builder, substrings)``: the builder
returns a model the importer must refuse, with a message containing every substring
(the first one is always the name of the offending node or graph input).

Every node has a name (``conv_a``, ``relu_a``, ...) while activations are numbered
tensors (``t1``, ``t2``, ...), so a test that looks for a node name in an error message
cannot be satisfied by an activation name. Weights are named after their node.

The only supported pattern: each Conv/Gemm/MatMul(+Add) that is not the last one is
followed, after optional BatchNormalization / MaxPool / Dropout / Identity, by a Relu;
the network ends with a Conv or Gemm/MatMul(+Add) without Relu, optionally followed by
Softmax. Pooling, LRN, Flatten and flattening Reshapes may sit between layers.
"""

from __future__ import annotations

import functools

import numpy as np
from onnx import TensorProto, helper, numpy_helper, shape_inference

#: Opsets of the supported cases: 9 is the zoo style, the others the exporter style.
OPSETS = (9, 13, 18)
#: Batch of every ``x`` a supported builder returns.
BATCH = 3


def is_zoo_style(opset: int) -> bool:
    """Whether models at ``opset`` use the old zoo style (batch 1, initializers as inputs).

    Parameters
    ----------
    opset : int
        Default-domain opset of the model.

    Returns
    -------
    bool
        True for opsets before 11, the era of the original model zoo.
    """
    return opset < 11


class _Net:
    """Accumulates the nodes and initializers of one test graph."""

    def __init__(self, opset, in_shape, *, seed=0, inputs=("x",)):
        self.opset = opset
        self.zoo = is_zoo_style(opset)
        self.rng = np.random.default_rng(seed)
        self.in_shape = tuple(in_shape)
        self.inputs = list(inputs)
        self.nodes = []
        self.inits = []
        self._count = 0

    # ---- plumbing ---------------------------------------------------------------

    def _tensor(self):
        self._count += 1
        return f"t{self._count}"

    def const(self, name, array):
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def he(self, name, shape, fan_in):
        std = np.float32(np.sqrt(2.0 / fan_in))
        return self.const(name, self.rng.standard_normal(shape, dtype=np.float32) * std)

    def small(self, name, shape, std=0.1):
        return self.const(name, self.rng.standard_normal(shape, dtype=np.float32) * std)

    def node(self, op, name, inputs, *, n_out=1, **attrs):
        outputs = [self._tensor() for _ in range(n_out)]
        self.nodes.append(helper.make_node(op, list(inputs), outputs, name=name, **attrs))
        return outputs

    def op(self, op, name, inputs, **attrs):
        return self.node(op, name, inputs, **attrs)[0]

    def _graph(self, outputs, *, batch, inits_as_inputs):
        inputs = [
            helper.make_tensor_value_info(n, TensorProto.FLOAT, [batch, *self.in_shape])
            for n in self.inputs
        ]
        if inits_as_inputs:
            inputs += [
                helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in self.inits
            ]
        return helper.make_graph(
            list(self.nodes), "kcnn_case", inputs, outputs, initializer=list(self.inits)
        )

    def _model(self, graph):
        opsets = [helper.make_opsetid("", self.opset)]
        return helper.make_model(
            graph,
            opset_imports=opsets,
            ir_version=helper.find_min_ir_version_for(opsets),
            producer_name="kcnn-tests",
        )

    def shape(self, tensor):
        """Static shape of ``tensor`` at batch 1, from ONNX shape inference."""
        if tensor in self.inputs:
            return (1, *self.in_shape)
        out = helper.make_tensor_value_info(tensor, TensorProto.FLOAT, None)
        model = self._model(self._graph([out], batch=1, inits_as_inputs=False))
        inferred = shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
        for vi in list(inferred.graph.output) + list(inferred.graph.value_info):
            if vi.name == tensor and vi.type.tensor_type.HasField("shape"):
                return tuple(d.dim_value for d in vi.type.tensor_type.shape.dim)
        raise AssertionError(f"shape inference gave no shape for {tensor}")

    def model(self, out):
        """The finished model with ``out`` as its only output."""
        batch = 1 if self.zoo else "N"
        dims = [batch, *self.shape(out)[1:]]
        graph = self._graph(
            [helper.make_tensor_value_info(out, TensorProto.FLOAT, dims)],
            batch=batch,
            inits_as_inputs=self.zoo,
        )
        return self._model(graph)

    def finish(self, out):
        """``(model, x)`` with ``x`` a seeded float32 batch of :data:`BATCH`."""
        x = self.rng.standard_normal((BATCH, *self.in_shape), dtype=np.float32)
        return self.model(out), x

    # ---- layers -----------------------------------------------------------------

    def conv(
        self, name, x, cout, k, *, bias=True, group=1, strides=None, pads=None, dilations=None
    ):
        kh, kw = (k, k) if isinstance(k, int) else k
        cin = self.shape(x)[1]
        w = self.he(f"{name}.w", (cout, cin // group, kh, kw), cin // group * kh * kw)
        inputs = [x, w] + ([self.small(f"{name}.b", (cout,))] if bias else [])
        attrs = {
            "kernel_shape": [kh, kw],
            "group": group,
            "strides": strides,
            "pads": pads,
            "dilations": dilations,
        }
        # Leave defaults out, as exporters do, so the importer has to supply them.
        attrs = {k: v for k, v in attrs.items() if v is not None and (k != "group" or v != 1)}
        return self.op("Conv", name, inputs, **attrs)

    def gemm(self, name, x, n_out, *, bias=True, trans_b=True, alpha=None, beta=None):
        n_in = self.shape(x)[1]
        shape = (n_out, n_in) if trans_b else (n_in, n_out)
        inputs = [x, self.he(f"{name}.w", shape, n_in)]
        if bias:
            inputs.append(self.small(f"{name}.b", (n_out,)))
        attrs = {"transB": 1} if trans_b else {}
        if alpha is not None:
            attrs["alpha"] = alpha
        if beta is not None:
            attrs["beta"] = beta
        return self.op("Gemm", name, inputs, **attrs)

    def matmul(self, name, x, n_out, *, bias=True):
        n_in = self.shape(x)[-1]
        y = self.op("MatMul", name, [x, self.he(f"{name}.w", (n_in, n_out), n_in)])
        if bias:
            y = self.op("Add", f"{name}_add", [y, self.small(f"{name}.b", (n_out,))])
        return y

    def bn(self, name, x):
        c = self.shape(x)[1]
        rng = self.rng
        params = [
            self.const(f"{name}.scale", rng.uniform(0.5, 1.5, c).astype(np.float32)),
            self.small(f"{name}.bias", (c,)),
            self.small(f"{name}.mean", (c,)),
            self.const(f"{name}.var", rng.uniform(0.5, 1.5, c).astype(np.float32)),
        ]
        return self.op("BatchNormalization", name, [x, *params], epsilon=1e-5, momentum=0.9)

    def relu(self, name, x):
        return self.op("Relu", name, [x])

    def clip(self, name, x, low, high):
        if self.opset < 11:
            return self.op("Clip", name, [x], min=low, max=high)
        bounds = [
            self.const(f"{name}.{k}", np.array(v, np.float32))
            for k, v in (("min", low), ("max", high))
        ]
        return self.op("Clip", name, [x, *bounds])

    def maxpool(self, name, x, k, strides=None, pads=None):
        attrs = {"kernel_shape": [k, k]}
        if strides is not None:
            attrs["strides"] = [strides, strides]
        if pads is not None:
            attrs["pads"] = pads
        return self.op("MaxPool", name, [x], **attrs)

    def avgpool(self, name, x, k, strides=None, pads=None, count_include_pad=None):
        attrs = {"kernel_shape": [k, k]}
        if strides is not None:
            attrs["strides"] = [strides, strides]
        if pads is not None:
            attrs["pads"] = pads
        if count_include_pad is not None:
            attrs["count_include_pad"] = count_include_pad
        return self.op("AveragePool", name, [x], **attrs)

    def lrn(self, name, x, *, size=5, alpha=1e-4, beta=0.75, bias=1.0):
        return self.op("LRN", name, [x], size=size, alpha=alpha, beta=beta, bias=bias)

    def flatten(self, name, x):
        return self.op("Flatten", name, [x], axis=1)

    def reshape(self, name, x, shape, *, constant_node=False):
        shape = np.array(shape, dtype=np.int64)
        if constant_node:
            s = self.op("Constant", f"{name}_shape", [], value=numpy_helper.from_array(shape))
        else:
            s = self.const(f"{name}.shape", shape)
        return self.op("Reshape", name, [x, s])

    def dropout(self, name, x, *, mask=False, ratio=0.5, ratio_input=True):
        n_out = 2 if mask else 1
        if self.opset < 12:
            return self.node("Dropout", name, [x], n_out=n_out, ratio=ratio)[0]
        # From opset 12 the ratio is an optional input, which exporters may omit.
        inputs = [x]
        if ratio_input:
            inputs.append(self.const(f"{name}.ratio", np.array(ratio, dtype=np.float32)))
        return self.node("Dropout", name, inputs, n_out=n_out)[0]

    def softmax(self, name, x):
        # Opset 9 coerces to 2-D at ``axis`` (1 = per row of a 2-D input); opset 13
        # exporters write the new default, the last axis.
        return self.op("Softmax", name, [x], axis=1 if self.opset < 13 else -1)


# ---- supported cases ----------------------------------------------------------------


def conv_stride_pad_dilation(opset):
    """Conv with strides, asymmetric pads, dilations and no bias -> Relu -> Conv (last)."""
    net = _Net(opset, (3, 11, 10), seed=1)
    y = net.conv(
        "conv_a", "x", 4, 3, bias=False, strides=[2, 1], pads=[1, 0, 2, 1], dilations=[2, 1]
    )
    y = net.relu("relu_a", y)
    y = net.conv("conv_b", y, 3, (2, 3))
    return net.finish(y)


def conv_groups(opset):
    """Grouped Conv with bias, depthwise Conv, depthwise with channel multiplier 2, Gemm."""
    net = _Net(opset, (4, 8, 8), seed=2)
    y = net.relu("relu_a", net.conv("conv_a", "x", 6, 3, group=2, pads=[1, 1, 1, 1]))
    y = net.conv("conv_dw", y, 6, 3, bias=False, group=6, pads=[1, 1, 1, 1])
    y = net.relu("relu_dw", y)
    y = net.conv("conv_mult", y, 12, 3, group=6, strides=[2, 2])
    y = net.relu("relu_mult", y)
    y = net.flatten("flatten", y)
    return net.finish(net.gemm("fc", y, 5))


def gemm_variants(opset):
    """Flatten -> Gemm(transB=1, alpha, beta) -> Relu -> Gemm(transB=0) -> Relu -> Gemm.

    The last Gemm has no bias from opset 11 on, where C became optional.
    """
    net = _Net(opset, (2, 4, 4), seed=3)
    y = net.relu("relu_a", net.conv("conv_a", "x", 4, 3, pads=[1, 1, 1, 1]))
    y = net.flatten("flatten", y)
    y = net.relu("relu_fc_a", net.gemm("fc_a", y, 12, alpha=0.5, beta=2.0))
    y = net.gemm("fc_b", y, 10, trans_b=False, alpha=1.25, beta=0.75)
    y = net.relu("relu_fc_b", y)
    return net.finish(net.gemm("fc_c", y, 5, bias=opset < 11))


def matmul_add(opset):
    """Flatten -> MatMul+Add -> Relu -> MatMul+Add -> Relu -> MatMul (last, no bias)."""
    net = _Net(opset, (2, 4, 4), seed=4)
    y = net.relu("relu_a", net.conv("conv_a", "x", 4, 3, pads=[1, 1, 1, 1]))
    y = net.flatten("flatten", y)
    y = net.relu("relu_fc_a", net.matmul("fc_a", y, 12))
    y = net.relu("relu_fc_b", net.matmul("fc_b", y, 10))
    return net.finish(net.matmul("fc_c", y, 5, bias=False))


def conv_bn_relu(opset):
    """Conv (no bias) -> BN -> Relu -> Conv (bias) -> BN -> Relu -> Conv (last)."""
    net = _Net(opset, (3, 8, 8), seed=5)
    y = net.conv("conv_a", "x", 6, 3, bias=False, pads=[1, 1, 1, 1])
    y = net.relu("relu_a", net.bn("bn_a", y))
    y = net.conv("conv_b", y, 6, 3, strides=[2, 2])
    y = net.relu("relu_b", net.bn("bn_b", y))
    return net.finish(net.conv("conv_c", y, 4, 1))


def gemm_bn_relu(opset):
    """Flatten (on the input) -> Gemm -> BN (2-D) -> Relu -> Gemm (last)."""
    net = _Net(opset, (2, 4, 4), seed=6)
    y = net.flatten("flatten", "x")
    y = net.relu("relu_a", net.bn("bn_a", net.gemm("fc_a", y, 12)))
    return net.finish(net.gemm("fc_b", y, 5))


def conv_maxpool_relu(opset):
    """Conv -> MaxPool -> Relu (to commute), MaxPool with pads 1 and with pads [0,0,1,1]."""
    net = _Net(opset, (3, 20, 20), seed=7)
    y = net.conv("conv_a", "x", 4, 3, pads=[1, 1, 1, 1])
    y = net.relu("relu_a", net.maxpool("pool_a", y, 2, strides=2))
    y = net.relu("relu_b", net.conv("conv_b", y, 6, 3))
    y = net.maxpool("pool_b", y, 3, strides=2, pads=[1, 1, 1, 1])
    y = net.conv("conv_c", y, 6, 1)
    y = net.maxpool("pool_c", y, 3, strides=2, pads=[0, 0, 1, 1])
    y = net.relu("relu_c", y)
    y = net.flatten("flatten", y)
    return net.finish(net.gemm("fc", y, 5))


def avgpool(opset):
    """AveragePool with pads and count_include_pad=1, without pads, GlobalAveragePool."""
    net = _Net(opset, (3, 12, 12), seed=8)
    y = net.relu("relu_a", net.conv("conv_a", "x", 4, 3, pads=[1, 1, 1, 1]))
    y = net.avgpool("pool_a", y, 3, strides=2, pads=[1, 1, 1, 1], count_include_pad=1)
    y = net.relu("relu_b", net.conv("conv_b", y, 6, 3, pads=[1, 1, 1, 1]))
    y = net.avgpool("pool_b", y, 2, strides=2)
    y = net.relu("relu_c", net.conv("conv_c", y, 8, 1))
    y = net.op("GlobalAveragePool", "gap", [y])
    y = net.flatten("flatten", y)
    return net.finish(net.gemm("fc", y, 5))


def dropout_identity(opset):
    """Dropout and Identity between layers, Dropout also between a Gemm and its Relu.

    ``drop_a`` has its optional mask output at opsets 9 and 13; from opset 12 on it takes
    its ratio as an input and ``drop_b`` omits that optional input.
    """
    net = _Net(opset, (3, 8, 8), seed=9)
    y = net.relu("relu_a", net.conv("conv_a", "x", 4, 3, pads=[1, 1, 1, 1]))
    y = net.dropout("drop_a", y, mask=opset in (9, 13))
    y = net.op("Identity", "ident_a", [y])
    y = net.relu("relu_b", net.conv("conv_b", y, 4, 3, strides=[2, 2]))
    y = net.flatten("flatten", y)
    y = net.dropout("drop_b", net.gemm("fc_a", y, 12), ratio=0.25, ratio_input=False)
    y = net.relu("relu_fc_a", y)
    y = net.op("Identity", "ident_b", [y])
    return net.finish(net.gemm("fc_b", y, 5))


def _reshape_case(opset, shape_of_n, *, constant_node=False, seed):
    net = _Net(opset, (3, 8, 8), seed=seed)
    y = net.relu("relu_a", net.conv("conv_a", "x", 4, 3, pads=[1, 1, 1, 1]))
    y = net.maxpool("pool_a", y, 2, strides=2)
    n = int(np.prod(net.shape(y)[1:]))
    y = net.reshape("reshape_a", y, shape_of_n(n), constant_node=constant_node)
    y = net.relu("relu_fc_a", net.gemm("fc_a", y, 10))
    return net.finish(net.gemm("fc_b", y, 5))


def reshape_1_n(opset):
    """4-D map -> Reshape to (1, n) (only valid at batch 1: zoo style) -> Gemm."""
    return _reshape_case(opset, lambda n: (1, n), seed=10)


def reshape_minus1_n(opset):
    """4-D map -> Reshape to (-1, n) -> Gemm."""
    return _reshape_case(opset, lambda n: (-1, n), seed=11)


def reshape_0_n(opset):
    """4-D map -> Reshape to (0, n) (0 copies the batch dimension) -> Gemm."""
    return _reshape_case(opset, lambda n: (0, n), seed=12)


def reshape_constant_node(opset):
    """Reshape whose shape comes from a Constant node: (1, n) in zoo style, else (-1, n)."""
    zoo = is_zoo_style(opset)
    return _reshape_case(opset, lambda n: (1 if zoo else -1, n), constant_node=True, seed=13)


def lrn(opset):
    """Relu -> LRN -> MaxPool -> Conv (host-op pattern), with beta 0.75 and beta 0.5.

    ``lrn_a`` has AlexNet's constants; ``lrn_b`` has a large alpha so an error in the
    LRN formula changes the output visibly.
    """
    net = _Net(opset, (3, 12, 12), seed=14)
    y = net.relu("relu_a", net.conv("conv_a", "x", 8, 3, pads=[1, 1, 1, 1]))
    y = net.lrn("lrn_a", y)
    y = net.maxpool("pool_a", y, 3, strides=2)
    y = net.relu("relu_b", net.conv("conv_b", y, 8, 3, group=2, pads=[1, 1, 1, 1]))
    y = net.lrn("lrn_b", y, size=3, alpha=0.3, beta=0.5, bias=2.0)
    y = net.maxpool("pool_b", y, 3, strides=2, pads=[0, 0, 1, 1])
    return net.finish(net.conv("conv_c", y, 4, 1))


def softmax_last(opset):
    """Flatten -> Gemm -> Relu -> Gemm -> Softmax (axis 1 at opset 9, -1 from 13)."""
    net = _Net(opset, (2, 4, 4), seed=15)
    y = net.flatten("flatten", "x")
    y = net.relu("relu_a", net.gemm("fc_a", y, 12))
    return net.finish(net.softmax("softmax", net.gemm("fc_b", y, 5)))


def _fill(net, name, shape, value):
    """A weight produced by ConstantOfShape from an int64 shape initializer."""
    s = net.const(f"{name}.shape", np.array(shape, dtype=np.int64))
    fill = helper.make_tensor("value", TensorProto.FLOAT, [1], [value])
    return net.op("ConstantOfShape", f"{name}_fill", [s], value=fill)


def constant_of_shape_weights(opset):
    """Conv and Gemm weights and biases filled by ConstantOfShape, as in the light zoo."""
    net = _Net(opset, (3, 6, 6), seed=16)
    w = _fill(net, "conv_a_w", (4, 3, 3, 3), 0.02)
    b = _fill(net, "conv_a_b", (4,), 0.01)
    y = net.relu("relu_a", net.op("Conv", "conv_a", ["x", w, b], kernel_shape=[3, 3]))
    y = net.relu("relu_b", net.conv("conv_b", y, 6, 3, pads=[1, 1, 1, 1]))
    y = net.flatten("flatten", y)
    n = net.shape(y)[1]
    w = _fill(net, "fc_w", (5, n), 0.05)
    b = _fill(net, "fc_b", (5,), 0.01)
    return net.finish(net.op("Gemm", "fc", [y, w, b], transB=1))


def constant_node_weight(opset):
    """Conv and Gemm weights from Constant nodes.

    From opset 13 the Gemm bias uses Constant's ``value_floats`` form (a 1-D float
    tensor), which exporters also emit; before that only ``value`` exists.
    """
    net = _Net(opset, (3, 6, 6), seed=17)
    rng = net.rng
    w = rng.standard_normal((4, 3, 3, 3), dtype=np.float32) * np.float32(np.sqrt(2 / 27))
    w = net.op("Constant", "conv_a_w_const", [], value=numpy_helper.from_array(w))
    y = net.op("Conv", "conv_a", ["x", w, net.small("conv_a.b", (4,))], kernel_shape=[3, 3])
    y = net.flatten("flatten", net.relu("relu_a", y))
    n = net.shape(y)[1]
    w = rng.standard_normal((5, n), dtype=np.float32) * np.float32(np.sqrt(2 / n))
    w = net.op("Constant", "fc_w_const", [], value=numpy_helper.from_array(w))
    b = (rng.standard_normal(5, dtype=np.float32) * np.float32(0.1)).tolist()
    if opset >= 13:
        b = net.op("Constant", "fc_b_const", [], value_floats=b)
    else:
        b = net.op(
            "Constant",
            "fc_b_const",
            [],
            value=helper.make_tensor("value", TensorProto.FLOAT, [5], b),
        )
    return net.finish(net.op("Gemm", "fc", [y, w, b], transB=1))


def everything(opset):
    """Conv+BN+Relu -> LRN -> MaxPool -> Conv(group 2)+Relu -> MaxPool(pads [0,0,1,1])
    -> Reshape(0, n) -> Gemm+Relu -> Dropout -> Gemm -> Softmax."""
    net = _Net(opset, (3, 16, 16), seed=18)
    y = net.conv("conv_a", "x", 8, 3, bias=False, pads=[1, 1, 1, 1])
    y = net.relu("relu_a", net.bn("bn_a", y))
    y = net.lrn("lrn_a", y)
    y = net.maxpool("pool_a", y, 3, strides=2)
    y = net.relu("relu_b", net.conv("conv_b", y, 8, 3, group=2, pads=[1, 1, 1, 1]))
    y = net.maxpool("pool_b", y, 3, strides=2, pads=[0, 0, 1, 1])
    y = net.reshape("reshape_a", y, (0, int(np.prod(net.shape(y)[1:]))))
    y = net.relu("relu_fc_a", net.gemm("fc_a", y, 16))
    y = net.dropout("drop_a", y, mask=opset in (9, 13))
    y = net.gemm("fc_b", y, 5)
    return net.finish(net.softmax("softmax", y))


def residual_identity(opset):
    """ResNet basic block with an identity shortcut: the Add goes into conv_b's
    accumulator, the Relu after it into conv_b's threshold bank."""
    net = _Net(opset, (3, 8, 8), seed=40)
    a = net.relu("relu_a", net.bn("bn_a", net.conv("conv_a", "x", 6, 3, pads=[1, 1, 1, 1])))
    b = net.relu("relu_b1", net.conv("conv_b1", a, 6, 3, pads=[1, 1, 1, 1]))
    b = net.bn("bn_b2", net.conv("conv_b2", b, 6, 3, pads=[1, 1, 1, 1]))
    y = net.relu("relu_res", net.op("Add", "add_res", [b, a]))
    y = net.op("GlobalAveragePool", "gap", [y])
    return net.finish(net.gemm("fc", net.flatten("flatten", y), 5))


def residual_projection(opset):
    """ResNet block with a strided 1x1 projection shortcut (both Add operands linear)."""
    net = _Net(opset, (3, 8, 8), seed=41)
    a = net.relu("relu_a", net.conv("conv_a", "x", 4, 3, pads=[1, 1, 1, 1]))
    b = net.conv("conv_b", a, 8, 3, strides=[2, 2], pads=[1, 1, 1, 1])
    p = net.bn("bn_p", net.conv("conv_p", a, 8, 1, strides=[2, 2]))
    y = net.relu("relu_res", net.op("Add", "add_res", [b, p]))
    return net.finish(net.conv("conv_c", y, 5, 4))


def add_of_activations(opset):
    """Add of two maps that both passed a Relu: the fabric add layer."""
    net = _Net(opset, (3, 6, 6), seed=42)
    a = net.relu("relu_a", net.conv("conv_a", "x", 4, 3, pads=[1, 1, 1, 1]))
    b = net.relu("relu_b", net.conv("conv_b", a, 4, 3, pads=[1, 1, 1, 1]))
    y = net.op("Add", "add_res", [a, b])
    return net.finish(net.conv("conv_c", y, 4, 6))


def fire_concat(opset):
    """SqueezeNet fire module: squeeze 1x1, expand 1x1 and 3x3 joined by a Concat."""
    net = _Net(opset, (3, 8, 8), seed=43)
    s = net.relu("relu_s", net.conv("squeeze", "x", 4, 1))
    e1 = net.relu("relu_e1", net.conv("expand1", s, 4, 1))
    e3 = net.relu("relu_e3", net.conv("expand3", s, 4, 3, pads=[1, 1, 1, 1]))
    y = net.op("Concat", "concat", [e1, e3], axis=1)
    y = net.maxpool("pool", y, 2, strides=2)
    return net.finish(net.conv("conv_c", y, 5, 4))


def linear_bottleneck(opset):
    """MobileNet-v2 inverted residual: expand + ReLU6, depthwise + ReLU6, a linear 1x1
    projection (a signed map) and the residual Add of two linear maps."""
    net = _Net(opset, (4, 8, 8), seed=44)
    x = net.bn("bn_in", net.conv("stem", "x", 4, 3, pads=[1, 1, 1, 1]))  # linear: signed
    e = net.clip("relu6_e", net.conv("expand", x, 8, 1), 0.0, 6.0)
    d = net.clip("relu6_d", net.conv("depthwise", e, 8, 3, group=8, pads=[1, 1, 1, 1]), 0.0, 6.0)
    p = net.bn("bn_p", net.conv("project", d, 4, 1))
    y = net.op("Add", "add_res", [p, x])
    return net.finish(net.conv("conv_c", y, 5, 8))


def monotone_activations(opset):
    """Each monotone activation folded into the thresholds of the conv before it."""
    net = _Net(opset, (3, 6, 6), seed=45)
    y = net.op("LeakyRelu", "leaky", [net.conv("conv_a", "x", 4, 3, pads=[1, 1, 1, 1])], alpha=0.1)
    y = net.op("Sigmoid", "sigmoid", [net.conv("conv_b", y, 4, 3, pads=[1, 1, 1, 1])])
    y = net.op("Tanh", "tanh", [net.conv("conv_c", y, 4, 3, pads=[1, 1, 1, 1])])
    y = net.op("HardSigmoid", "hsig", [net.conv("conv_d", y, 4, 3, pads=[1, 1, 1, 1])], alpha=0.3)
    y = net.clip("clip", net.conv("conv_e", y, 4, 3, pads=[1, 1, 1, 1]), -1.0, 2.0)
    return net.finish(net.conv("conv_f", y, 5, 6))


def avgpool_exclude_pad(opset):
    """AveragePool with pads and count_include_pad=0 (divisor varies at the borders): an
    exact host op between two maps."""
    net = _Net(opset, (3, 6, 6), seed=38)
    y = net.relu("relu_a", net.conv("conv_a", "x", 4, 3, pads=[1, 1, 1, 1]))
    y = net.avgpool("pool_a", y, 3, strides=1, pads=[1, 1, 1, 1], count_include_pad=0)
    return net.finish(net.conv("conv_b", y, 4, 3))


def preactivation_bn(opset):
    """DenseNet-style: BatchNormalization + Relu on a Concat, which no conv can take: a
    per-channel code table."""
    net = _Net(opset, (3, 6, 6), seed=46)
    a = net.relu("relu_a", net.conv("conv_a", "x", 4, 3, pads=[1, 1, 1, 1]))
    b = net.relu("relu_b", net.conv("conv_b", a, 4, 3, pads=[1, 1, 1, 1]))
    y = net.op("Concat", "concat", [a, b], axis=1)
    y = net.relu("relu_bn", net.bn("bn_pre", y))
    return net.finish(net.conv("conv_c", y, 5, 6))


_SUPPORTED_CASES = {
    "conv_stride_pad_dilation": (conv_stride_pad_dilation, OPSETS),
    "conv_groups": (conv_groups, OPSETS),
    "gemm_variants": (gemm_variants, OPSETS),
    "matmul_add": (matmul_add, OPSETS),
    "conv_bn_relu": (conv_bn_relu, OPSETS),
    "gemm_bn_relu": (gemm_bn_relu, OPSETS),
    "conv_maxpool_relu": (conv_maxpool_relu, OPSETS),
    "avgpool": (avgpool, OPSETS),
    "dropout_identity": (dropout_identity, OPSETS),
    # (1, n) breaks a dynamic batch, so it only exists in the batch-1 zoo style.
    "reshape_1_n": (reshape_1_n, (9,)),
    "reshape_minus1_n": (reshape_minus1_n, OPSETS),
    "reshape_0_n": (reshape_0_n, OPSETS),
    "reshape_constant_node": (reshape_constant_node, OPSETS),
    "lrn": (lrn, OPSETS),
    "softmax_last": (softmax_last, OPSETS),
    "constant_of_shape_weights": (constant_of_shape_weights, OPSETS),
    "constant_node_weight": (constant_node_weight, OPSETS),
    "everything": (everything, OPSETS),
    "residual_identity": (residual_identity, OPSETS),
    "residual_projection": (residual_projection, OPSETS),
    "add_of_activations": (add_of_activations, OPSETS),
    "fire_concat": (fire_concat, OPSETS),
    "linear_bottleneck": (linear_bottleneck, OPSETS),
    "monotone_activations": (monotone_activations, OPSETS),
    "avgpool_exclude_pad": (avgpool_exclude_pad, OPSETS),
    "preactivation_bn": (preactivation_bn, OPSETS),
}

#: ``{"<case>_op<opset>": builder}``; each builder returns ``(model, x)``.
SUPPORTED = {
    f"{name}_op{opset}": functools.partial(builder, opset)
    for name, (builder, opsets) in _SUPPORTED_CASES.items()
    for opset in opsets
}


# ---- unsupported cases --------------------------------------------------------------


def silu():
    """Conv -> x * Sigmoid(x) (SiLU, as the TorchScript exporter writes it) -> Conv."""
    net = _Net(13, (3, 6, 6), seed=30)
    y = net.conv("conv_a", "x", 4, 3)
    y = net.op("Mul", "silu_mul", [y, net.op("Sigmoid", "silu_sig", [y])])
    return net.model(net.conv("conv_b", y, 4, 3))


def squeeze_excitation():
    """A map times a gate computed from it (squeeze-excitation)."""
    net = _Net(13, (4, 6, 6), seed=31)
    y = net.relu("relu_a", net.conv("conv_a", "x", 4, 3, pads=[1, 1, 1, 1]))
    g = net.op("GlobalAveragePool", "se_pool", [y])
    g = net.op("Sigmoid", "se_gate", [net.conv("se_fc", g, 4, 1)])
    y = net.op("Mul", "se_scale", [y, g])
    return net.model(net.conv("conv_b", y, 4, 3))


def maxpool_on_input():
    """MaxPool straight on the (signed) network input."""
    net = _Net(13, (3, 8, 8), seed=33)
    y = net.maxpool("pool_in", "x", 2, strides=2)
    y = net.relu("relu_a", net.conv("conv_a", y, 4, 3))
    return net.model(net.conv("conv_b", y, 4, 1))


def softmax_in_middle():
    """Gemm -> Relu -> Softmax -> Gemm: Softmax that is not the last op."""
    net = _Net(13, (2, 4, 4), seed=34)
    y = net.flatten("flatten", "x")
    y = net.relu("relu_a", net.gemm("fc_a", y, 12))
    y = net.op("Softmax", "soft_mid", [y], axis=-1)
    return net.model(net.gemm("fc_b", y, 5))


def reshape_not_flatten():
    """Reshape of a 4-D map to (1, 2, n/2) (zoo style, batch 1) -> MatMul."""
    net = _Net(9, (4, 4, 4), seed=35)
    y = net.relu("relu_a", net.conv("conv_a", "x", 4, 3, pads=[1, 1, 1, 1]))
    n = int(np.prod(net.shape(y)[1:]))
    y = net.reshape("reshape_a", y, (1, 2, n // 2))
    return net.model(net.matmul("fc_a", y, 5, bias=False))


def lrn_beta_0_6():
    """LRN with beta 0.6: x**-0.6 has no exact form in +, -, *, / and sqrt."""
    net = _Net(13, (3, 6, 6), seed=36)
    y = net.relu("relu_a", net.conv("conv_a", "x", 4, 3, pads=[1, 1, 1, 1]))
    y = net.lrn("lrn_a", y, beta=0.6)
    return net.model(net.conv("conv_b", y, 4, 3))


def two_inputs():
    """Two real graph inputs (zoo style, so initializers are inputs too), added."""
    net = _Net(9, (3, 6, 6), seed=37, inputs=("x_a", "x_b"))
    y = net.op("Add", "add_in", ["x_a", "x_b"])
    y = net.relu("relu_a", net.conv("conv_a", y, 4, 3))
    return net.model(net.conv("conv_b", y, 4, 3))


def conv_weight_from_input():
    """Conv whose weight is the network input itself (zoo style, so its shape is fixed).

    The input feeds the weight directly rather than through another node, so the first
    thing wrong is the non-constant weight, not an unsupported op on the way to it.
    """
    net = _Net(9, (3, 5, 5), seed=39)
    return net.model(net.op("Conv", "conv_a", ["x", "x"], kernel_shape=[5, 5]))


#: ``{name: (builder, substrings)}``; each builder returns a model to refuse, and the
#: error message must contain every substring (the first names the culprit).
UNSUPPORTED = {
    "silu": (silu, ["silu_mul", "SiLU", "op Mul"]),
    "squeeze_excitation": (squeeze_excitation, ["se_scale", "squeeze-excitation", "op Mul"]),
    "maxpool_on_input": (maxpool_on_input, ["pool_in", "signed"]),
    "softmax_in_middle": (softmax_in_middle, ["soft_mid", "Softmax"]),
    "reshape_not_flatten": (reshape_not_flatten, ["reshape_a", "Reshape"]),
    "lrn_beta_0_6": (lrn_beta_0_6, ["lrn_a", "beta"]),
    "two_inputs": (two_inputs, ["x_a", "x_b"]),
    "conv_weight_from_input": (conv_weight_from_input, ["conv_a", "constant"]),
}
