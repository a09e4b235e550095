"""The layer graph every part of KCNN works on (DESIGN section 1).

A network is a chain: the input, then layers in order, each reading the previous
layer's output. Fabric layers (``conv``, ``fc``) run on the accelerator; ``maxpool`` and
``flatten`` act on codes; host ops (``lrn``, ``softmax``) run on the CPU in float64.
Only numpy is needed here: the loader, the simulator and the board share this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FABRIC_OPS = ("conv", "fc")
HOST_OPS = ("lrn", "softmax")


@dataclass
class Layer:
    """One lowered layer.

    ``attrs`` by op: conv ``kernel, strides, pads, dilations, groups`` (pads as ONNX
    orders them: top, left, bottom, right); maxpool ``kernel, strides, pads``;
    lrn ``size, alpha, beta, bias``. ``weight`` is ``(C_out, C_in/groups, kh, kw)`` for
    conv and ``(out, in)`` for fc; ``bias`` has one entry per output channel.
    ``nodes`` lists the ONNX nodes folded into this layer, for error messages.
    """

    name: str
    op: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    attrs: dict = field(default_factory=dict)
    relu: bool = False
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    nodes: list[str] = field(default_factory=list)

    @property
    def is_fabric(self) -> bool:
        return self.op in FABRIC_OPS

    @property
    def is_host(self) -> bool:
        return self.op in HOST_OPS


@dataclass
class Graph:
    """A chain of layers after an input of shape ``input_shape`` (no batch)."""

    name: str
    input_name: str
    input_shape: tuple[int, ...]
    layers: list[Layer]

    def fabric_layers(self) -> list[Layer]:
        return [layer for layer in self.layers if layer.is_fabric]

    def last_fabric_index(self) -> int:
        return max(i for i, layer in enumerate(self.layers) if layer.is_fabric)

    def layer(self, name: str) -> Layer:
        for candidate in self.layers:
            if candidate.name == name:
                return candidate
        raise KeyError(name)


def conv_output_hw(in_hw, kernel, strides, pads, dilations):
    """Output height and width of a convolution or pooling window (floor mode)."""
    out = []
    for axis in range(2):
        span = dilations[axis] * (kernel[axis] - 1) + 1
        padded = in_hw[axis] + pads[axis] + pads[axis + 2]
        out.append((padded - span) // strides[axis] + 1)
    return tuple(out)


def dense_macs(layer: Layer) -> int:
    """MACs of the dense float layer per image, padding taps included."""
    if layer.op == "conv":
        c_out, c_in_g, kh, kw = layer.weight.shape
        _, oh, ow = layer.out_shape
        return int(c_out) * oh * ow * int(c_in_g) * int(kh) * int(kw)
    if layer.op == "fc":
        return int(layer.weight.size)
    return 0
