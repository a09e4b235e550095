"""The bit-accurate simulator: a `.kcnn` executed on codes and integers (DESIGN section 1).

Each weighted layer is one float64 GEMM of the decoded integer weights ``Wq[codes]`` with
the decoded integer activations ``Aq[codes]`` (the op's ``simulate`` in :mod:`kcnn.ops`).
Every partial sum is bounded by the accumulator proof the loader checked (< 2^31 <= 2^53),
so float64 holds it exactly and the summation order does not matter: the result equals
the cluster PEs' table look-ups and additions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kcnn.codes import encode_thresholds
from kcnn.model import Layer, Model
from kcnn.runner import GraphRunner

EXACT_LIMIT = 2**53


@dataclass
class DecodedTables:
    """A weighted layer's decoded integer tables, made once per model."""

    weights: np.ndarray  # as the op multiplies them (``weight_matrix``)
    bias: np.ndarray  # float64, one per output channel
    activations: np.ndarray  # float64 value of each input code


class NumpyFabric:
    """Whole layers on a batch, each by its op's numpy model."""

    batched = True

    def __init__(self, model: Model):
        self.model = model
        self._tables: dict[str, DecodedTables] = {}
        for layer in model.fabric_layers():
            decoded = np.concatenate([[0.0], layer.wq.astype(np.float64)])[layer.codes]
            self._tables[layer.name] = DecodedTables(
                layer.kind.weight_matrix(layer, decoded),
                layer.bias.astype(np.float64),
                np.concatenate([[0.0], model.maps[layer.in_map].aq.astype(np.float64)]),
            )

    def table(self, layer: Layer) -> DecodedTables:
        return self._tables[layer.name]

    def acc(self, layer: Layer, codes: np.ndarray) -> np.ndarray:
        """A weighted layer's accumulators (float64, exact) before its threshold bank."""
        return layer.kind.accumulate(self, layer, codes)

    def emit(self, layer: Layer, acc: np.ndarray, others: list | tuple = ()) -> np.ndarray:
        """A thresholded layer's output from its ``acc``: plus the residual table of its
        second input's codes (``others``), then codes through its threshold bank and
        interval codes, or ``acc`` itself (int64) for the logits layer."""
        if others:
            acc = acc + layer.residual_table.astype(np.float64)[others[0]]
        assert np.all(np.abs(acc) < EXACT_LIMIT), "accumulator proof violated"
        if layer.thresholds is None:
            return acc.astype(np.int64)
        index = encode_thresholds(acc, layer.thresholds.astype(np.float64))
        return index if layer.out_table is None else layer.out_table[index]

    def begin(self, x: np.ndarray) -> None:
        pass

    def runs(self, layer: Layer) -> bool:
        return not layer.kind.on_logits

    def keeps(self, tensor: str) -> bool:
        return True  # every value is in host memory anyway

    def run_layer(self, layer: Layer, inputs: list, need: bool) -> np.ndarray:
        return layer.kind.simulate(self, layer, inputs)

    def close(self) -> None:
        pass


def simulator(model: Model) -> GraphRunner:
    """The simulator of ``model``: its decoded tables are built once and reused for every
    batch; ``.run(x, trace)`` as :class:`kcnn.runner.GraphRunner`."""
    return GraphRunner(model, NumpyFabric(model))


def run(model: Model, x: np.ndarray, trace: bool = False):
    """One-off simulation (prepares the tables on every call)."""
    return simulator(model).run(x, trace=trace)
