"""The bit-accurate simulator: a `.kcnn` executed on codes and integers (DESIGN section 1).

Each fabric layer is one float64 GEMM of the decoded integer weights ``Wq[codes]`` with the
decoded integer activations ``Aq[codes]``. Every partial sum is bounded by the accumulator
proof the loader checked (< 2^31 <= 2^53), so float64 holds it exactly and the summation
order does not matter: the result equals the cluster PEs' table look-ups and additions.
"""

from __future__ import annotations

import numpy as np

from kcnn import hostops
from kcnn.codes import encode_input, encode_thresholds
from kcnn.kfile import KcnnModel, QLayer

EXACT_LIMIT = 2**53


def _windows(x: np.ndarray, kernel, strides, pads, dilations, fill=0) -> np.ndarray:
    """Sliding windows of ``(N, C, H, W)`` as ``(N, C, kh, kw, OH, OW)`` (a view when possible)."""
    top, left, bottom, right = pads
    if any(pads):
        x = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=fill)
    kh, kw = kernel
    dh, dw = dilations
    span = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    view = np.lib.stride_tricks.sliding_window_view(x, span, axis=(2, 3))
    view = view[:, :, :: strides[0], :: strides[1], ::dh, ::dw]
    return view.transpose(0, 1, 4, 5, 2, 3)


def conv_acc(layer: QLayer, a: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Accumulators of a conv without bias: ``a`` decoded activations (float64),
    ``weights`` the decoded weights as ``(groups, C_out/groups, taps)``."""
    attrs = layer.attrs
    groups, per_group, taps = weights.shape
    n = a.shape[0]
    patches = _windows(a, attrs["kernel"], attrs["strides"], attrs["pads"], attrs["dilations"])
    oh, ow = patches.shape[-2:]
    cols = patches.reshape(n, groups, taps, oh * ow)
    acc = np.matmul(weights[None], cols)  # (N, G, C_out/G, OH*OW)
    return acc.reshape(n, groups * per_group, oh, ow)


class _Prepared:
    """A fabric layer's decoded integer tables, made once per model."""

    def __init__(self, layer: QLayer, in_book):
        w = np.concatenate([[0.0], layer.wq.astype(np.float64)])[layer.codes]
        if layer.op == "fc":
            self.weights = np.ascontiguousarray(w.T)  # (in, out): acc = a @ weights
            self.bias = layer.bias.astype(np.float64)
        else:
            groups = layer.attrs["groups"]
            self.weights = w.reshape(groups, w.shape[0] // groups, -1)
            self.bias = layer.bias.astype(np.float64)[:, None, None]
        self.activations = np.concatenate([[0.0], in_book.aq.astype(np.float64)])
        self.thresholds = None if layer.thresholds is None else layer.thresholds.astype(np.float64)
        self.logit_scale = layer.w_scale * in_book.scale


class Simulator:
    """Executes a loaded model; decoded tables are built once and reused for every batch."""

    def __init__(self, model: KcnnModel):
        self.model = model
        self.prepared = {
            layer.name: _Prepared(layer, model.maps[layer.in_map])
            for layer in model.layers
            if layer.is_fabric
        }

    def fabric_layer(self, layer: QLayer, codes: np.ndarray) -> np.ndarray:
        """Integer accumulators (as float64) of one conv or fc layer for a batch of codes."""
        prep = self.prepared[layer.name]
        a = prep.activations[codes]
        if layer.op == "fc":
            acc = a.reshape(a.shape[0], -1) @ prep.weights
        else:
            acc = conv_acc(layer, a, prep.weights)
        acc += prep.bias
        assert np.all(np.abs(acc) < EXACT_LIMIT), "accumulator proof violated"
        return acc

    def layer_output(self, layer: QLayer, codes: np.ndarray) -> np.ndarray:
        """A fabric layer's output codes (uint8), or its ``acc`` (int64) for the last layer."""
        acc = self.fabric_layer(layer, codes)
        thresholds = self.prepared[layer.name].thresholds
        if thresholds is None:
            return acc.astype(np.int64)
        return encode_thresholds(acc, thresholds)

    def pool(self, layer: QLayer, codes: np.ndarray) -> np.ndarray:
        return maxpool_codes(layer, codes)

    def run(self, x: np.ndarray, trace: bool = False):
        """Run ``x`` (float32 ``(N, *input_shape)``) through the model.

        Returns ``(output, logits, maps)``: the model output (trailing host ops applied), the
        float64 logits ``acc * s_w * s_a``, and with ``trace`` every map's codes and the
        last layer's ``acc`` (int64) by layer name (``"input"`` for the encoded input).
        Back-ends that run fabric layers elsewhere override ``layer_output`` and ``pool``.
        """
        model = self.model
        codes = encode_input(x, model.maps["input"].boundaries)
        maps = {"input": codes} if trace else {}
        out = logits = None
        for layer in model.layers:
            if layer.is_fabric:
                result = self.layer_output(layer, codes)
                if layer.thresholds is None:
                    scale = layer.w_scale * model.maps[layer.in_map].scale
                    out = logits = result.astype(np.float64) * scale
                    if trace:
                        maps[layer.name] = result
                    continue
                codes = result
            elif layer.op == "maxpool":
                codes = self.pool(layer, codes)
            elif layer.op == "flatten":
                codes = codes.reshape(codes.shape[0], -1)
            elif layer.out_map is None:  # a trailing host op on the logits
                out = hostops.apply(layer.op, layer.attrs, out)
                continue
            else:
                codes = host_op_codes(model, layer, codes)
            if trace:
                maps[layer.name] = codes
        return out, logits, maps


def host_op_codes(model: KcnnModel, layer: QLayer, codes: np.ndarray) -> np.ndarray:
    """A host op between two coded maps: decode, apply in float64, re-encode. LRN is
    evaluated from the integer window sums of squares (kcnn.hostops.lrn_codes), the form
    the fabric reproduces exactly."""
    book = model.maps[layer.in_map]
    if layer.op == "lrn":
        y = hostops.lrn_codes(codes, book.aq, book.scale, layer.attrs)
    else:
        y = hostops.apply(layer.op, layer.attrs, book.decode(codes))
    return encode_thresholds(y, model.maps[layer.out_map].boundaries)


def maxpool_codes(layer: QLayer, codes: np.ndarray) -> np.ndarray:
    """Max-pooling on codes (codes are ordered like values; padding is code 0)."""
    attrs = layer.attrs
    windows = _windows(codes, attrs["kernel"], attrs["strides"], attrs["pads"], [1, 1])
    return windows.max(axis=(2, 3))


def run(model: KcnnModel, x: np.ndarray, trace: bool = False):
    """One-off :meth:`Simulator.run` (prepares the tables on every call)."""
    return Simulator(model).run(x, trace=trace)
