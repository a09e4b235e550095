"""Exact per-layer counts (DESIGN section 2) from the simulator's codes.

Kept off the ``run`` path: only ``kcnn report --input`` and ``kcnn eval --counts`` pay for
the extra pass.
"""

from __future__ import annotations

import numpy as np

from kcnn.inputs import DEFAULT_BATCH, batches
from kcnn.model import Model
from kcnn.sim.engine import simulator


def measure(model: Model, x: np.ndarray, batch: int = DEFAULT_BATCH) -> dict:
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
    runner = simulator(model)
    for _, chunk in batches(x, batch):
        _, _, maps = runner.run(chunk, trace=True)
        for layer in fabric:
            codes = maps[sources[layer.name]]
            active = codes != 0
            active = active.reshape(len(chunk), *layer.in_shape)
            pairs[layer.name] += len(chunk) * layer.kind.effective_pairs(
                layer.attrs, layer.codes != 0, active
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
