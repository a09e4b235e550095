"""LRN across channels (DESIGN section 1): a host op whose codes the fabric reproduces
exactly through per-centre-code cut points on the integer window sum of squares.
``attrs``: ``size, alpha, beta, bias``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from kcnn import hostops
from kcnn.codes import encode_thresholds
from kcnn.config import BuildParams
from kcnn.errors import KcnnError
from kcnn.hostops import LRN_BETAS, lrn_cut_points
from kcnn.ops.base import Op, check_rank, is_int, is_number, register
from kcnn.protocol import FORMATS, LIMITS, format_words, pack_int32
from kcnn.tiling import Step, base_fields, row_bands

if TYPE_CHECKING:
    from kcnn.model import Layer


@register
class Lrn(Op):
    name = "lrn"
    host = True
    fabric_step = True
    rank = 3
    keeps_sign = True
    onnx_types = ("LRN",)

    def import_node(self, imp, node) -> None:
        act = imp.activation(node)
        imp.require_4d(node, act)
        beta = imp.attr(node, "beta", 0.75, float)
        exact = next((b for b in LRN_BETAS if abs(beta - b) < 1e-6), None)
        if exact is None:
            raise imp.error(
                node,
                f"LRN beta={beta} has no exact +-*/sqrt form for the host; "
                f"supported beta: {', '.join(map(str, LRN_BETAS))}",
            )
        size = imp.attr(node, "size", None, int)
        if not isinstance(size, int) or size < 1 or size % 2 == 0:
            raise imp.error(node, f"LRN size={size} must be a positive odd integer")
        attrs = {
            "size": size,
            "alpha": imp.attr(node, "alpha", 1e-4, float),
            "beta": exact,
            "bias": imp.attr(node, "bias", 1.0, float),
        }
        # bias > 0 and alpha >= 0 keep the base of the power positive for every input.
        if not (np.isfinite(attrs["alpha"]) and attrs["alpha"] >= 0):
            raise imp.error(node, f"LRN alpha={attrs['alpha']} must be finite and >= 0")
        if not (np.isfinite(attrs["bias"]) and attrs["bias"] > 0):
            raise imp.error(node, f"LRN bias={attrs['bias']} must be finite and > 0")
        imp.push(node, "lrn", act.shape, attrs=attrs)

    def output_shape(self, layer, shapes, fail) -> tuple:
        check_rank(self, layer, fail)
        a = layer.attrs
        size, alpha, beta, bias = (a.get(k) for k in ("size", "alpha", "beta", "bias"))
        if not (
            is_int(size)
            and size >= 1
            and size % 2
            and is_number(alpha)
            and np.isfinite(alpha)
            and alpha >= 0
            and beta in LRN_BETAS
            and is_number(bias)
            and np.isfinite(bias)
            and bias > 0
        ):
            raise fail(
                f"LRN needs an odd size >= 1, a finite alpha >= 0, beta in {LRN_BETAS} and a "
                f"finite bias > 0, got {a}",
                layer.name,
                "attrs",
            )
        return tuple(layer.in_shape)

    def simulate(self, sim, layer, inputs):
        """Evaluated from the integer window sums of squares (:func:`kcnn.hostops.lrn_codes`),
        the form the fabric reproduces exactly, then re-encoded."""
        book = sim.model.maps[layer.in_map]
        y = hostops.lrn_codes(inputs[0], book.aq, book.scale, layer.attrs)
        return encode_thresholds(y, sim.model.maps[layer.out_map].boundaries)

    def onnx_node(self, layer):
        a = layer.attrs
        return "LRN", {k: a[k] for k in ("size", "alpha", "beta", "bias")}

    def tile(self, model, layer, index, in_format, out_format, params):
        return _lrn_step(model, layer, index, in_format, out_format, params)


def _lrn_step(
    model, layer: Layer, index: int, in_format: str, out_format: str, params: BuildParams
) -> Step:
    c, h, w = layer.in_shape
    size = int(layer.attrs["size"])
    if size > LIMITS["LRN_SIZE_MAX"] or params.P < size + 1:
        raise KcnnError(
            f"LRN size {size}: the kernel takes windows up to {LIMITS['LRN_SIZE_MAX']} "
            f"channels and P >= size + 1 partitions (P = {params.P})",
            layer=layer.name,
            field="size",
        )
    book = model.maps[layer.in_map]
    thresholds = model.maps[layer.out_map].boundaries
    if np.any(thresholds <= 0):
        raise KcnnError(
            "LRN output thresholds must be positive", layer=layer.name, field="boundaries"
        )
    try:
        cuts = lrn_cut_points(book.aq, book.scale, layer.attrs, thresholds)
    except ValueError as exc:
        raise KcnnError(str(exc), layer=layer.name, field="attrs") from None
    squares = np.zeros(16, np.int64)
    squares[1 : len(book.aq) + 1] = np.asarray(book.aq, np.int64) ** 2
    full = np.full((15, len(thresholds)), -1, np.int64)
    full[: len(book.aq)] = cuts
    rows = [pack_int32(row) for row in full]
    constants = np.concatenate([pack_int32(squares), *rows]).astype(np.uint64)
    # LRN mixes channels, not rows: bands need no halo.
    steps = []
    bands = row_bands(h, w, h, 1, 0, 1, 1, params, layer)
    for n, (r0, r1, o0, o1) in enumerate(bands):
        rows = r1 - r0
        fields = {
            **base_fields("LRN", index + n),
            "j1": book.J - 1,
            "jo1": len(thresholds),
            "in_c": c,
            "in_h": rows,
            "in_w": w,
            "out_c": c,
            "out_h": rows,
            "out_w": w,
            "kh": size,
            "in_format": FORMATS[in_format],
            "out_format": FORMATS[out_format],
            "const_words": constants.size,
            "map_words": format_words(in_format, c, rows, w),
            "out_words": format_words(out_format, c, rows, w),
        }
        steps.append(
            Step(
                index + n,
                "LRN",
                layer,
                fields,
                constants,
                [],
                in_format,
                out_format,
                (c, rows, w),
                (c, rows, w),
                params=params,
                band=(r0, r1, o0, o1) if len(bands) > 1 else None,
            )
        )
    return steps


# ---- the kernel's loop trips ------------------------------------------------------------------
