"""Layer streaming shared by the back-ends that run jobs (``csim`` and ``board``).

Every fabric layer, and every max-pool that follows a conv on the fabric, is split by the
job packer into jobs whose constant parts are packed once, here, at load; per image only
the input tiles are packed and each job's output words are placed back into the map.
Everything else runs with the simulator's own host code, so the back-ends differ only in
:meth:`StreamingEngine.execute`.
"""

from __future__ import annotations

import numpy as np

from kcnn.jobs import (
    PackedJob,
    PackedLayer,
    fabric_pools,
    pack_inputs,
    pack_layer,
    padded_input,
    unpack_outputs,
)
from kcnn.kfile import KcnnModel
from kcnn.sim.engine import Simulator, maxpool_codes


class StreamingEngine(Simulator):
    """A :class:`Simulator` whose fabric layers run as jobs on ``execute``."""

    def __init__(self, model: KcnnModel, params: dict):
        self.model = model
        self.params = params
        pools = fabric_pools(model)
        self.packed: dict[str, PackedLayer] = {}
        for index, layer in enumerate(model.layers):
            if layer.is_fabric or layer.name in pools:
                self.packed[layer.name] = pack_layer(model, layer, index, params)

    def execute(self, pj: PackedJob, inputs: np.ndarray, layer: str, image: int) -> np.ndarray:
        """Run one job of ``layer`` for batch item ``image``; returns its output words."""
        raise NotImplementedError

    def fabric(self, name: str, codes: np.ndarray) -> np.ndarray:
        """A fabric layer (or fabric max-pool) on a batch: codes uint8 or acc int64."""
        packed = self.packed[name]
        layer = packed.layer
        out = np.zeros((codes.shape[0], *layer.out_shape), np.int64 if packed.acc_out else np.uint8)
        view = out if layer.op != "fc" else out.reshape(codes.shape[0], -1, 1, 1)
        for n in range(codes.shape[0]):
            padded = padded_input(layer, codes[n])
            for pj in packed.jobs:
                words = self.execute(pj, pack_inputs(padded, pj.job), name, n)
                job = pj.job
                view[n, job.ch0 : job.ch0 + job.channels, job.row0 : job.row0 + job.rows] = (
                    unpack_outputs(words, pj, packed.acc_out)
                )
        return out

    def layer_output(self, layer, codes: np.ndarray) -> np.ndarray:
        return self.fabric(layer.name, codes)

    def pool(self, layer, codes: np.ndarray) -> np.ndarray:
        if layer.name in self.packed:
            return self.fabric(layer.name, codes)
        return maxpool_codes(layer, codes)
