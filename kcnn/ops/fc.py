"""FC: a clustered fully connected layer (ONNX Gemm or MatMul) on the cluster PEs.

Its weight is ``(out, in)``; it reads its input map in the ``FLAT`` format.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from kcnn.config import BuildParams
from kcnn.ops.base import Op, check_rank, register
from kcnn.protocol import FORMATS, ceil_div, format_words
from kcnn.tiling import (
    FC_FLOOR,
    POSITION_BITS,
    Step,
    WindowTooLarge,
    make_job,
    partition_entries,
    split_jobs,
    weight_constants,
    weighted_fields,
)

if TYPE_CHECKING:
    from kcnn.model import Layer


@register
class Fc(Op):
    name = "fc"
    weighted = True
    thresholded = True
    fabric_step = True
    rank = 1
    reads_vector = True
    onnx_types = ("Gemm", "MatMul")

    def import_node(self, imp, node) -> None:
        act = imp.activation(node)
        if len(act.shape) != 1:
            raise imp.error(node, "expects a 2-D input; flatten the map first")
        if node.op_type == "MatMul":
            weight = imp.floats(node, 1, "weight")
            if weight.ndim != 2 or weight.shape[0] != act.shape[0] or weight.size == 0:
                raise imp.error(
                    node, f"weight shape {weight.shape} does not take {act.shape[0]} inputs"
                )
            out = weight.shape[1]
            imp.push(node, "fc", (out,), weight=weight.T.copy(), float_bias=np.zeros(out))
            return
        if imp.attr(node, "transA", 0, int):
            raise imp.error(node, "transA=1 is not supported")
        weight = imp.floats(node, 1, "weight B")
        if weight.ndim != 2 or weight.size == 0:
            raise imp.error(
                node, f"weight B has shape {list(weight.shape)}; a 2-D matrix is needed"
            )
        weight = weight if imp.attr(node, "transB", 0, int) else weight.T
        alpha, beta = (imp.attr(node, key, 1.0, float) for key in ("alpha", "beta"))
        if not (np.isfinite(alpha) and np.isfinite(beta)):
            raise imp.error(node, f"alpha={alpha} and beta={beta} must be finite")
        weight = weight * alpha
        out = weight.shape[0]
        if weight.shape[1] != act.shape[0]:
            raise imp.error(
                node, f"weight shape {weight.shape} does not take {act.shape[0]} inputs"
            )
        c = imp.optional_const(node, 2, "bias C")
        if c is not None and c.size not in (1, out):
            raise imp.error(node, f"bias C has {c.size} values for {out} outputs")
        bias = np.zeros(out)
        if c is not None:
            bias = np.broadcast_to(c.astype(np.float64).reshape(-1), (out,)) * beta
        imp.push(node, "fc", (out,), weight=weight, float_bias=np.array(bias, dtype=np.float64))

    def output_shape(self, layer, shapes, fail) -> tuple:
        check_rank(self, layer, fail)
        expected = (layer.out_shape[0], layer.in_shape[0])
        if layer.codes.shape != expected:
            raise fail(
                f"weight_shape {list(layer.codes.shape)} does not match {list(expected)}",
                layer.name,
                "weight_shape",
            )
        return (layer.codes.shape[0],)

    def input_counts(self) -> tuple[int, ...]:
        return (1, 2)  # the second: a residual Add's other operand, through a table

    def dense_macs(self, layer) -> int:
        weights = layer.codes if layer.codes is not None else layer.weight
        return int(weights.size)

    def effective_pairs(self, attrs, weight_nz, act_nz) -> float:
        n = act_nz.shape[0]
        if n == 0:
            return 0.0
        per_input = act_nz.sum(axis=0, dtype=np.int64)
        return float(per_input @ weight_nz.sum(axis=0, dtype=np.int64)) / n

    def simulate(self, sim, layer, inputs):
        return sim.emit(layer, self.accumulate(sim, layer, inputs[0]), inputs[1:])

    def accumulate(self, sim, layer, value):
        """The layer's ``acc`` (float64, exact) on the codes ``value``."""
        table = sim.table(layer)
        a = table.activations[value]
        return a.reshape(a.shape[0], -1) @ table.weights + table.bias

    def weight_matrix(self, layer, decoded: np.ndarray) -> np.ndarray:
        """Decoded weights as the simulator multiplies them: ``(in, out)``."""
        return np.ascontiguousarray(decoded.T)

    def onnx_node(self, layer):
        return "Gemm", {"transB": 1}

    def tile(self, model, layer, index, in_format, out_format, params):
        return _fc_step(model, layer, index, in_format, out_format, params)

    def input_units(self, layer):
        return layer.codes.reshape(layer.codes.shape[0], -1, 1), True

    def block(self, layer, weights, t0, t1):
        return weights[:, t0:t1, 0], (t1 - t0,)


def _fc_step(
    model, layer: Layer, index: int, in_format: str, out_format: str, params: BuildParams
) -> Step:
    book = model.maps[layer.in_map]
    weights = layer.codes.reshape(layer.codes.shape[0], -1)
    rows_out, n_in = weights.shape
    p = params.P
    span = ceil_div(n_in, p)
    if span > (1 << POSITION_BITS):
        raise WindowTooLarge(
            f"{n_in} inputs need {span} positions per partition, more than {1 << POSITION_BITS}",
            layer=layer.name,
            field="in_shape",
        )
    if span > params.IN_DEPTH // p:
        raise WindowTooLarge(
            f"{n_in} inputs need {span} codes per partition, more than the tile holds "
            f"(IN_DEPTH/P={params.IN_DEPTH // p})",
            layer=layer.name,
            field="IN_DEPTH",
        )
    padded = np.zeros((rows_out, span * p), np.uint8)
    padded[:, :n_in] = weights
    rows = [padded[:, s::p] for s in range(p)]
    entries = partition_entries(rows, layer, book)
    # The kernel packs an fc step's outputs on across its jobs: a job writes the words it
    # completes, the last job the partial tail.
    per_word = 16 if out_format == "FLAT" else 2
    blocks = split_jobs(entries, params, 0, 1)
    jobs = []
    for n, (start, stop) in enumerate(blocks):
        out_words = stop // per_word - start // per_word
        if n + 1 == len(blocks) and stop % per_word:
            out_words += 1
        jobs.append(
            make_job(
                n,
                start,
                [r[start:stop] for r in rows],
                0,
                span,
                layer.bias[start:stop],
                params,
                FC_FLOOR,
                out_words,
                False,
            )
        )
    constants = np.concatenate(weight_constants(layer, book)).astype(np.uint64)
    fields = weighted_fields(
        "FC",
        index,
        layer,
        book,
        jobs,
        constants,
        format_words("FLAT", n_in, 1, 1),
        in_c=n_in,
        out_c=rows_out,
        in_format=FORMATS[in_format],
        out_format=FORMATS[out_format],
    )
    return Step(
        index,
        "FC",
        layer,
        fields,
        constants,
        jobs,
        in_format,
        out_format,
        (n_in,),
        (rows_out,),
        params=params,
    )


# ---- pool and LRN ---------------------------------------------------------------------------
