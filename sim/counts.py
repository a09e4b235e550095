"""Exact per-layer counts (DESIGN section 2) from the simulator's codes.

Kept off the ``run`` path: only ``kcnn report --input`` and ``kcnn eval --counts`` pay for
the extra pass.
"""

from __future__ import annotations

import numpy as np

from kcnn.counts import effective_pairs
from kcnn.inputs import DEFAULT_BATCH, batches
from kcnn.kfile import KcnnModel
from kcnn.sim.engine import Simulator


def measure(model: KcnnModel, x: np.ndarray, batch: int = DEFAULT_BATCH) -> dict:
    """``{"images", "counts_from": "sim", "layers": {name: {...}}}`` measured on ``x``."""
    fabric = [layer for layer in model.layers if layer.is_fabric]
    sources = {}
    previous = "input"
    for layer in model.layers:
        if layer.is_fabric:
            sources[layer.name] = previous
        previous = layer.name
    pairs = dict.fromkeys(sources, 0.0)
    nonzero = dict.fromkeys(sources, 0)
    values = dict.fromkeys(sources, 0)
    simulator = Simulator(model)
    for _, chunk in batches(x, batch):
        _, _, maps = simulator.run(chunk, trace=True)
        for layer in fabric:
            codes = maps[sources[layer.name]]
            active = codes != 0
            pairs[layer.name] += len(chunk) * effective_pairs(
                layer.op, layer.attrs, layer.codes != 0, active.reshape(len(chunk), *layer.in_shape)
            )
            nonzero[layer.name] += int(np.count_nonzero(active))
            values[layer.name] += int(active.size)
    return {
        "images": int(len(x)),
        "counts_from": "sim",
        "layers": {
            name: {
                "effective_pairs": pairs[name] / len(x),
                "act_density": nonzero[name] / values[name],
            }
            for name in sources
        },
    }
