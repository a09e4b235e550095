"""Conv: a clustered convolution on the cluster PEs (DESIGN sections 1 and 4).

Average pooling imports as a conv with constant weights 1/(kh*kw) (a depthwise layer).
``attrs``: ``kernel, strides, pads, dilations, groups`` (pads as ONNX orders them: top,
left, bottom, right); ``average_pool`` marks an imported average pooling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from kcnn.config import BuildParams
from kcnn.errors import KcnnError
from kcnn.ops.base import (
    Op,
    check_rank,
    conv_output_hw,
    is_int,
    register,
    sliding_windows,
    window_attrs,
    window_ints,
)
from kcnn.protocol import (
    FORMATS,
    RAW_FORMATS,
    ceil_div,
    encoder_keys,
    format_words,
    pack_int32,
    pixel_encoder_words,
)
from kcnn.tiling import (
    CONV_FLOOR,
    POSITION_BITS,
    Placement,
    Step,
    WindowTooLarge,
    answer_words,
    make_job,
    partition_entries,
    place,
    row_bands,
    split_jobs,
    weight_constants,
    weighted_fields,
)

if TYPE_CHECKING:
    from kcnn.model import Layer


@register
class Conv(Op):
    name = "conv"
    weighted = True
    thresholded = True
    fabric_step = True
    rank = 3
    onnx_types = ("Conv", "AveragePool", "GlobalAveragePool", "ReduceMean")

    def import_node(self, imp, node) -> None:
        if node.op_type == "Conv":
            _import_conv(imp, node)
        else:
            _import_average_pool(imp, node)

    def output_shape(self, layer, shapes, fail) -> tuple:
        check_rank(self, layer, fail)
        shape = layer.in_shape
        kernel = window_ints(layer, "kernel", 2, 1, fail)
        strides = window_ints(layer, "strides", 2, 1, fail)
        pads = window_ints(layer, "pads", 4, 0, fail)
        dilations = window_ints(layer, "dilations", 2, 1, fail)
        oh, ow = conv_output_hw(shape[1:], kernel, strides, pads, dilations)
        if oh < 1 or ow < 1:
            raise fail("the window is larger than the padded input", layer.name, "attrs")
        groups = layer.attrs.get("groups")
        c_out = layer.codes.shape[0]
        if not is_int(groups) or groups < 1 or shape[0] % groups or c_out % groups:
            raise fail(
                f"attrs.groups = {groups!r} must divide {shape[0]} inputs and {c_out} outputs",
                layer.name,
                "attrs",
            )
        expected = (c_out, shape[0] // groups, *kernel)
        if layer.codes.shape != expected:
            raise fail(
                f"weight_shape {list(layer.codes.shape)} does not match {list(expected)}",
                layer.name,
                "weight_shape",
            )
        return (c_out, oh, ow)

    def input_counts(self) -> tuple[int, ...]:
        return (1, 2)  # the second: a residual Add's other operand, through a table

    def dense_macs(self, layer) -> int:
        weights = layer.codes if layer.codes is not None else layer.weight
        _, oh, ow = layer.out_shape
        return int(weights.size) * oh * ow

    def effective_pairs(self, attrs, weight_nz, act_nz) -> float:
        n = act_nz.shape[0]
        if n == 0:
            return 0.0
        c_out, c_in_g, kh, kw = weight_nz.shape
        groups = attrs["groups"]
        top, left, bottom, right = attrs["pads"]
        sh, sw = attrs["strides"]
        dh, dw = attrs["dilations"]
        _, c_in, h, w = act_nz.shape
        # Weight taps summed over each group's output channels, by global input channel.
        taps = weight_nz.reshape(groups, c_out // groups, c_in_g, kh, kw).sum(
            axis=1, dtype=np.int64
        )
        taps = taps.reshape(c_in, kh, kw)
        padded = np.zeros((c_in, h + top + bottom, w + left + right), np.int64)
        padded[:, top : top + h, left : left + w] = act_nz.sum(axis=0, dtype=np.int64)
        oh = (h + top + bottom - dh * (kh - 1) - 1) // sh + 1
        ow = (w + left + right - dw * (kw - 1) - 1) // sw + 1
        total = 0
        for i in range(kh):
            for j in range(kw):
                window = padded[
                    :,
                    i * dh : i * dh + sh * (oh - 1) + 1 : sh,
                    j * dw : j * dw + sw * (ow - 1) + 1 : sw,
                ]
                total += int(window.sum(axis=(1, 2)) @ taps[:, i, j])
        return total / n

    def simulate(self, sim, layer, inputs):
        return sim.emit(layer, self.accumulate(sim, layer, inputs[0]), inputs[1:])

    def accumulate(self, sim, layer, value):
        """The layer's ``acc`` (float64, exact) on the codes ``value``."""
        table = sim.table(layer)
        a = table.activations[value]
        groups, per_group, taps = table.weights.shape
        attrs = layer.attrs
        patches = sliding_windows(
            a, attrs["kernel"], attrs["strides"], attrs["pads"], attrs["dilations"]
        )
        n, (oh, ow) = a.shape[0], patches.shape[-2:]
        cols = patches.reshape(n, groups, taps, oh * ow)
        acc = np.matmul(table.weights[None], cols)  # (N, G, C_out/G, OH*OW)
        return acc.reshape(n, groups * per_group, oh, ow) + table.bias[:, None, None]

    def weight_matrix(self, layer, decoded: np.ndarray) -> np.ndarray:
        """Decoded weights as the simulator multiplies them: ``(groups, C_out/groups,
        taps)``."""
        groups = layer.attrs["groups"]
        return decoded.reshape(groups, decoded.shape[0] // groups, -1)

    def onnx_node(self, layer):
        a = layer.attrs
        return "Conv", {
            "kernel_shape": a["kernel"],
            "strides": a["strides"],
            "pads": a["pads"],
            "dilations": a["dilations"],
            "group": a["groups"],
        }

    def tile(self, model, layer, index, in_format, out_format, params, *, allow_bands=True):
        """``allow_bands`` False: one step over the whole map, or :class:`WindowTooLarge`
        (the planner's cheap check of a block of groups, before any job is packed)."""
        return _conv_steps(model, layer, index, in_format, out_format, params, allow_bands)

    def input_units(self, layer):
        return layer.codes.reshape(layer.codes.shape[0], layer.codes.shape[1], -1), False

    def block(self, layer, weights, t0, t1):
        codes = weights[:, t0:t1].reshape(weights.shape[0], t1 - t0, *layer.codes.shape[2:])
        return codes, (layer.attrs["groups"] * (t1 - t0), *layer.in_shape[1:])


# ---- import ------------------------------------------------------------------------------


def _import_conv(imp, node):
    act = imp.activation(node)
    imp.require_4d(node, act)
    weight = imp.floats(node, 1, "weight")
    if weight.ndim != 4 or weight.size == 0:
        raise imp.error(node, "only 2-D convolutions with a non-empty weight are supported")
    declared = imp.attr(node, "kernel_shape", None, list)
    if declared is not None and list(declared) != list(weight.shape[2:]):
        raise imp.error(
            node, f"kernel_shape {list(declared)} does not match the weight {weight.shape}"
        )
    groups = imp.attr(node, "group", 1, int)
    if not isinstance(groups, int) or groups < 1:
        raise imp.error(node, f"group={groups} must be a positive integer")
    c_in = act.shape[0]
    bias = imp.optional_const(node, 2, "bias")
    if bias is not None and bias.size != weight.shape[0]:
        raise imp.error(node, f"bias has {bias.size} values for {weight.shape[0]} channels")
    if c_in != weight.shape[1] * groups or weight.shape[0] % groups:
        raise imp.error(
            node,
            f"weight shape {weight.shape} does not match {c_in} input channels in {groups} groups",
        )
    attrs = window_attrs(imp, node, act.shape[1:], list(weight.shape[2:]))
    attrs["groups"] = groups
    oh, ow = conv_output_hw(
        act.shape[1:], attrs["kernel"], attrs["strides"], attrs["pads"], attrs["dilations"]
    )
    c_out = weight.shape[0]
    bias = np.zeros(c_out) if bias is None else bias.astype(np.float64).reshape(c_out)
    imp.push(node, "conv", (c_out, oh, ow), attrs=attrs, weight=weight, float_bias=bias)


def _import_average_pool(imp, node):
    """Average pooling is a depthwise conv with constant weights 1/(kh*kw)."""
    act = imp.activation(node)
    imp.require_4d(node, act)
    keep_dims = True
    if node.op_type == "ReduceMean":
        # The dynamo exporter writes global average pooling as a mean over H and W.
        axes = imp.attr(node, "axes", None, list)
        if axes is None and len(node.input) > 1 and node.input[1]:
            axes = [int(a) for a in imp.const(node, 1, "axes").reshape(-1)]
        if axes is None or sorted(a % 4 for a in axes) != [2, 3]:
            raise imp.error(node, f"ReduceMean over axes {axes} is not supported; only H, W")
        keep_dims = bool(imp.attr(node, "keepdims", 1, int))
    if node.op_type in ("GlobalAveragePool", "ReduceMean"):
        attrs = {
            "kernel": list(act.shape[1:]),
            "strides": [1, 1],
            "pads": [0, 0, 0, 0],
            "dilations": [1, 1],
        }
    else:
        kernel = imp.ints(node, "kernel_shape", None, 2, 1)
        attrs = window_attrs(imp, node, act.shape[1:], kernel)
        if any(attrs["pads"]) and not imp.attr(node, "count_include_pad", 0, int):
            # Border windows divide by fewer taps: not a constant-weight layer.
            if attrs.pop("dilations") != [1, 1]:
                raise imp.error(node, "dilated average pooling is not supported")
            oh, ow = conv_output_hw(
                act.shape[1:], attrs["kernel"], attrs["strides"], attrs["pads"], [1, 1]
            )
            imp.push(node, "avgpool", (act.shape[0], oh, ow), attrs=attrs)
            return
    channels = act.shape[0]
    kh, kw = attrs["kernel"]
    attrs["groups"] = channels
    oh, ow = conv_output_hw(
        act.shape[1:], attrs["kernel"], attrs["strides"], attrs["pads"], attrs["dilations"]
    )
    weight = np.full((channels, 1, kh, kw), 1.0 / (kh * kw))
    layer = imp.push(
        node,
        "conv",
        (channels, oh, ow),
        attrs=attrs,
        weight=weight,
        float_bias=np.zeros(channels),
    )
    # Its activation follows its input's sign (the lowering settles it).
    layer.attrs["average_pool"] = True
    if not keep_dims:
        imp.reads = [layer.name]
        imp.push(node, "flatten", (channels,))


# ---- tiling ------------------------------------------------------------------------------


def _conv_rows(
    codes_g: np.ndarray, placement: Placement, g: int, cg: int, p: int, khb: int, kwb: int
) -> tuple[list[np.ndarray], int]:
    """Per partition: (channels x positions) codes of the job's channels ``codes_g``
    (channels, cg, kh, kw) of group ``g``, and the group's first slot."""
    n, _, kh, kw = codes_g.shape
    cell = 1 << (khb + kwb)
    slot0 = g * placement.slots_per_group
    pad = np.zeros((n, cg, 1 << khb, 1 << kwb), np.uint8)
    pad[:, :, :kh, :kw] = codes_g
    taps = pad.reshape(n, cg, cell)
    span = placement.slots_per_group * cell
    rows = [np.zeros((n, span), np.uint8) for _ in range(p)]
    for parts, members in placement.sets[g]:
        if not members:
            continue
        # The set's channels side by side at their slots; each output channel deals its
        # non-zero taps round-robin to the set's copies: every copy holds every channel of
        # the set, so any split is exact, and this one balances the copies to +-1.
        local = np.zeros((n, span), np.uint8)
        for rel in members:
            slot = int(placement.slots[g * cg + rel]) - slot0
            local[:, slot * cell : (slot + 1) * cell] = taps[:, rel]
        nonzero = local != 0
        rank = np.cumsum(nonzero, axis=1) - 1
        for r, part in enumerate(parts):
            mine = nonzero & (rank % len(parts) == r)
            rows[part][mine] = local[mine]
    return rows, slot0


# ---- conv -----------------------------------------------------------------------------------


def space_to_depth(codes: np.ndarray, s: int) -> np.ndarray:
    """Weights ``(Co, Ci, kh, kw)`` of a stride-``s`` conv as the stride-1 conv on the
    space-to-depth input: channel ``ci*s*s + (i mod s)*s + (j mod s)``, tap
    ``(i div s, j div s)``."""
    co, ci, kh, kw = codes.shape
    kh2, kw2 = ceil_div(kh, s), ceil_div(kw, s)
    pad = np.zeros((co, ci, kh2 * s, kw2 * s), codes.dtype)
    pad[:, :, :kh, :kw] = codes
    out = pad.reshape(co, ci, kh2, s, kw2, s).transpose(0, 1, 3, 5, 2, 4)
    return out.reshape(co, ci * s * s, kh2, kw2)


def _log2_ceil(n: int) -> int:
    return max(0, int(n - 1).bit_length())


@dataclass
class _ConvGeometry:
    """A conv as the kernel computes it: after space-to-depth of an F32 input (stride
    ``s2d``), or at stride 1 with the outputs subsampled by ``sub``."""

    codes: np.ndarray
    c_in: int
    h: int
    w: int
    kh: int
    kw: int
    dh: int
    dw: int
    pt: int
    pl: int
    s2d: int
    sub: int
    padding: tuple  # F32 rows/columns the host adds (top, left, bottom, right)
    grid: tuple  # (out_h, out_w) the kernel answers: the layer's, unless host_stride
    host_stride: tuple | None  # the host keeps every (a, b)-th row and column of the grid


def _conv_geometry(layer: Layer, in_format: str) -> _ConvGeometry:
    a = layer.attrs
    c_in, h, w = layer.in_shape
    (kh, kw), (sh, sw), (dh, dw) = a["kernel"], a["strides"], a["dilations"]
    pt, pl, pb, pr = a["pads"]
    codes = layer.codes
    s2d, sub, padding, host_stride = 1, 1, (0, 0, 0, 0), None
    grid = tuple(layer.out_shape[1:])
    if sh != sw:
        # The kernel's stride is square: it answers the outputs at the common stride, and
        # the host keeps every (sh/g)-th row and (sw/g)-th column of them.
        sub = math.gcd(sh, sw)
        host_stride = (sh // sub, sw // sub)
        grid = tuple(
            (size + before + after - dilation * (k - 1) - 1) // sub + 1
            for size, before, after, dilation, k in ((h, pt, pb, dh, kh), (w, pl, pr, dw, kw))
        )
    elif in_format in RAW_FORMATS and sh in (2, 4) and dh == dw == 1 and a["groups"] == 1:
        s2d = sh
        hp = ceil_div(h + pt + pb, s2d) * s2d
        wp = ceil_div(w + pl + pr, s2d) * s2d
        padding = (pt, pl, hp - h - pt, wp - w - pl)
        codes = space_to_depth(codes, s2d)
        c_in, h, w = c_in * s2d * s2d, hp // s2d, wp // s2d
        kh, kw = codes.shape[2], codes.shape[3]
        pt = pl = 0
    elif sh > 1:
        sub = sh
    if not (pt <= 255 and pl <= 255 and dh <= 255 and dw <= 255):
        raise KcnnError("padding or dilation above 255", layer=layer.name, field="pads")
    return _ConvGeometry(
        codes, c_in, h, w, kh, kw, dh, dw, pt, pl, s2d, sub, padding, grid, host_stride
    )


def _conv_steps(
    model,
    layer: Layer,
    index: int,
    in_format: str,
    out_format: str,
    params: BuildParams,
    allow_bands: bool = True,
) -> list[Step]:
    """A conv layer's steps: one, or one per band of output rows when its input map does
    not fit the tile (the host then cuts the map into bands and joins their answers;
    ``allow_bands`` False refuses instead)."""
    geo = _conv_geometry(layer, in_format)
    c_in, h, w = geo.c_in, geo.h, geo.w
    c_out, (oh, ow) = layer.out_shape[0], geo.grid
    groups = layer.attrs["groups"]
    khb, kwb = _log2_ceil(geo.kh), _log2_ceil(geo.kw)
    cg = c_in // groups
    if c_in > params.CH_MAX:
        raise WindowTooLarge(
            f"{c_in} input channels, more than the placement table holds (CH_MAX={params.CH_MAX})",
            layer=layer.name,
            field="CH_MAX",
        )
    book = model.maps[layer.in_map]
    distinct = np.arange(c_in)
    if geo.s2d > 1:
        distinct = np.arange(c_in) // geo.s2d  # the s2d channels of one (channel, row phase)
    plane = ceil_div(h, 4) * ceil_div(w, 4) * 16
    capacity_slots = params.IN_DEPTH // params.P // plane
    placement = place(geo.codes, groups, params.P, distinct, index, capacity_slots)
    lc = placement.slots_per_group
    slots_total = int(placement.slots.max()) + 1
    if (lc << (khb + kwb)) > (1 << POSITION_BITS):
        raise WindowTooLarge(
            f"a partition's window of {lc << (khb + kwb)} positions exceeds {1 << POSITION_BITS}",
            layer=layer.name,
            field="kernel",
        )
    # FLAT and ACC outputs are in C order and a subsampled map in its own blocks: the
    # reducer writes them into the output memory and EMIT streams it after the job, so a
    # band's smallest job (one channel, behind the partial word the jobs before left) must
    # fit it.
    buffered = out_format in ("FLAT", "ACC") or geo.sub > 1
    out_fits = None
    if buffered:
        out_fits = partial(_buffered_fits, out_format, ow, params.OUT_DEPTH)
    if layer.residual_table is not None and layer.thresholds is not None:
        if geo.host_stride is not None:
            raise KcnnError(
                "a residual Add into a conv with unequal strides is not supported",
                layer=layer.name,
                field="strides",
            )
        # The band's shortcut map is held whole on chip, in OUT_DEPTH codes.
        fits_buffer = out_fits
        words = partial(format_words, out_format, c_out, w=ow)

        def out_fits(rows, fits_buffer=fits_buffer, words=words):
            shortcut_ok = 16 * words(h=rows) <= params.OUT_DEPTH
            return shortcut_ok and (fits_buffer is None or fits_buffer(rows))

    bands = row_bands(
        geo.h,
        geo.w,
        oh,
        geo.sub,
        geo.pt,
        (geo.kh - 1) * geo.dh + 1,
        slots_total,
        params,
        layer,
        out_fits=out_fits,
        allow_bands=allow_bands,
    )
    per_group = c_out // groups
    group_rows = []
    for g in range(groups):
        codes_g = geo.codes[g * per_group : (g + 1) * per_group]
        rows, slot0 = _conv_rows(codes_g, placement, g, cg, params.P, khb, kwb)
        group_rows.append((rows, slot0, partition_entries(rows, layer, book)))
    consts = weight_constants(layer, book)
    placement_words = (placement.masks & 0xFFFFFFFF) | (placement.slots << 32)
    consts.append(placement_words.astype(np.uint64))
    if in_format == "F32":
        keys = np.full(16, 0x7FFFFFFF, np.int64)
        boundaries = book.boundaries
        keys[: len(boundaries)] = encoder_keys(boundaries)
        consts.append(pack_int32(keys))
    constants = np.concatenate(consts).astype(np.uint64)
    pixel_tables = model.pixels.encoder(book.boundaries) if in_format == "U8" else None
    banded = len(bands) > 1
    steps = []
    # FLAT and ACC outputs pack on across the jobs (C order over the whole step, also
    # across groups): a job answers the words its outputs complete, the last job the tail.
    per_word = {"FLAT": 16, "ACC": 2}.get(out_format, 1)
    for n_band, (r0, r1, o0, o1) in enumerate(bands):
        band_oh = o1 - o0
        jobs = []
        limit, per_channel = 0, band_oh * ow
        if buffered:
            # an int32 takes 8 codes of the output memory; blocks are stored whole
            limit = params.OUT_DEPTH // 8 if out_format == "ACC" else params.OUT_DEPTH
            if out_format == "BLOCKED":
                per_channel = ceil_div(band_oh, 4) * ceil_div(ow, 4) * 16
        before = 0  # outputs of the jobs before (FLAT, ACC)
        for g, (rows, slot0, entries) in enumerate(group_rows):
            blocks = split_jobs(entries, params, limit, per_channel, before % per_word, per_word)
            for start, stop in blocks:
                ch0 = g * per_group + start
                n = stop - start
                if out_format == "BLOCKED":
                    out_words = answer_words(out_format, (n, band_oh, ow))
                else:
                    after = before + n * per_channel
                    out_words = after // per_word - before // per_word
                    if ch0 + n == c_out and after % per_word:
                        out_words += 1  # the last job's partial tail
                    before = after
                jobs.append(
                    make_job(
                        len(jobs),
                        ch0,
                        [r[start:stop] for r in rows],
                        slot0,
                        rows[0].shape[1],
                        layer.bias[ch0 : ch0 + n],
                        params,
                        CONV_FLOOR,
                        out_words,
                        buffered,
                    )
                )
        band_pt = max(0, geo.pt - o0 * geo.sub) if banded else geo.pt
        in_rows = r1 - r0
        step_constants = constants
        if pixel_tables is not None:
            window = _pixel_window(layer.in_shape, geo, r0, r1)
            encoder = pixel_encoder_words(*pixel_tables, window)
            step_constants = np.concatenate([constants, encoder])
        fields = weighted_fields(
            "CONV",
            index + n_band,
            layer,
            book,
            jobs,
            step_constants,
            _map_words(in_format, layer.in_shape, geo, (c_in, in_rows, w)),
            in_c=c_in,
            in_h=in_rows,
            in_w=w,
            out_c=c_out,
            out_h=band_oh,
            out_w=ow,
            kh=geo.kh,
            kw=geo.kw,
            dh=geo.dh,
            dw=geo.dw,
            pad_t=band_pt,
            pad_l=geo.pl,
            khb=khb,
            kwb=kwb,
            in_format=FORMATS[in_format],
            out_format=FORMATS[out_format],
            s2d=geo.s2d,
            sub=geo.sub,
            groups=groups,
        )
        steps.append(
            Step(
                index + n_band,
                "CONV",
                layer,
                fields,
                step_constants,
                jobs,
                in_format,
                out_format,
                (c_in, in_rows, w),
                (c_out, band_oh, ow),
                geo.padding,
                params,
                band=(r0, r1, o0, o1) if banded else None,
                grid_shape=(c_out, *geo.grid),
                host_stride=geo.host_stride,
            )
        )
    return steps


def _buffered_fits(out_format: str, ow: int, depth: int, rows: int) -> bool:
    """Whether one conv job of ``rows`` output rows fits the output memory (``depth``
    codes; an int32 takes 8): a FLAT or ACC channel behind the largest partial word the
    jobs before can leave (outputs pack on across jobs: a multiple of the channel's
    outputs mod a word), a BLOCKED (subsampled) channel as whole blocks."""
    per_channel = rows * ow
    if out_format == "FLAT":
        return per_channel + 16 - np.gcd(per_channel, 16) <= depth
    if out_format == "ACC":
        return per_channel + 2 - np.gcd(per_channel, 2) <= depth // 8
    return ceil_div(rows, 4) * ceil_div(ow, 4) * 16 <= depth


def _map_words(in_format: str, raw_shape, geo: _ConvGeometry, stored) -> int:
    """Words of a conv step's map section; a raw image map (F32, U8) is the padded raw
    image's rows the stored rows come from (``s2d`` raw rows per stored row)."""
    c, rows, _ = stored
    if in_format in RAW_FORMATS:
        raw_c, _, raw_w = raw_shape
        t, left, b, r = geo.padding
        return format_words(in_format, raw_c, rows * geo.s2d, raw_w + left + r)
    return format_words(in_format, c, rows, stored[2])


def _pixel_window(raw_shape, geo: _ConvGeometry, r0: int, r1: int) -> tuple:
    """``(row0, row1, col0, col1)``: where a U8 section of stored rows ``r0..r1`` holds
    the image, not the padding the host adds (docs/job-format.md, "the pixel encoder")."""
    _, h, w = raw_shape
    top, left = geo.padding[0], geo.padding[1]
    rows = (r1 - r0) * geo.s2d
    first = geo.s2d * r0

    def clip(v):
        return min(max(v, 0), rows)

    return clip(top - first), clip(top + h - first), left, left + w


# ---- fc ---------------------------------------------------------------------------------------
