"""The job tiler: one fabric layer and the build parameters -> its jobs (DESIGN section 4).

A job is an output-channel block x an output-row block that fits the on-chip caches: its
input tile (the rows the block's windows read, halo included, of the block's group) in
``IN_DEPTH`` codes, the block's weights in ``W_DEPTH`` codes, its outputs in ``OUT_DEPTH``.
Channel blocks are multiples of P (the PE array makes one pass per P channels) and never
straddle a group. numpy only: the counts, the performance model and every back-end that
takes jobs use this.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kcnn.config import BUILD_DEFAULTS
from kcnn.errors import KcnnError
from kcnn.kfile import QLayer


@dataclass(frozen=True)
class Job:
    """One job of a layer. Rows are output rows ``[row0, row0+rows)``; channels are
    ``[ch0, ch0+channels)``; the input tile is input rows ``[in_row0, in_row0+in_rows)`` (in
    padded coordinates) of channels ``[in_ch0, in_ch0+in_channels)``."""

    layer: str
    ch0: int
    channels: int
    row0: int
    rows: int
    in_ch0: int
    in_channels: int
    in_row0: int
    in_rows: int
    in_width: int
    window: int  # weight taps per output channel
    outputs: int

    @property
    def in_codes(self) -> int:
        return self.in_channels * self.in_rows * self.in_width

    @property
    def weight_codes(self) -> int:
        return self.channels * self.window


def _geometry(layer: QLayer):
    """(groups, in_channels_per_group, in_h_padded, in_w_padded, out_h, out_w, kernel_h,
    stride_h, dilation_h, window taps)."""
    if layer.op == "fc":
        taps = int(np.prod(layer.in_shape))
        return 1, taps, 1, 1, 1, 1, 1, 1, 1, taps
    a = layer.attrs
    c_in, h, w = layer.in_shape
    top, left, bottom, right = a["pads"]
    _, oh, ow = layer.out_shape
    c_in_g = c_in // a["groups"]
    kh, kw = a["kernel"]
    return (
        a["groups"],
        c_in_g,
        h + top + bottom,
        w + left + right,
        oh,
        ow,
        kh,
        a["strides"][0],
        a["dilations"][0],
        c_in_g * kh * kw,
    )


def row_blocks(
    name: str,
    ch0: int,
    channels: int,
    in_ch0: int,
    in_channels: int,
    *,
    rows: int,
    oh: int,
    ow: int,
    sh: int,
    span: int,
    wp: int,
    window: int,
) -> list[Job]:
    """One channel block's jobs: blocks of at most ``rows`` output rows, each reading the
    ``(n - 1) * sh + span`` padded input rows its outputs need."""
    jobs = []
    for row in range(0, oh, rows):
        n = min(rows, oh - row)
        jobs.append(
            Job(
                name,
                ch0,
                channels,
                row,
                n,
                in_ch0,
                in_channels,
                row * sh,
                (n - 1) * sh + span,
                wp,
                window,
                channels * n * ow,
            )
        )
    return jobs


def plan_jobs(layer: QLayer, params: dict | None = None) -> list[Job]:
    """The jobs of a conv or fc layer, in stream order (channel blocks outer, rows inner)."""
    params = {**BUILD_DEFAULTS, **(params or {})}
    p, in_depth = params["P"], params["IN_DEPTH"]
    w_depth, out_depth = params["W_DEPTH"], params["OUT_DEPTH"]
    groups, c_in_g, hp, wp, oh, ow, kh, sh, dh, window = _geometry(layer)
    c_out = layer.out_shape[0]
    per_group = c_out // groups
    span = dh * (kh - 1) + 1

    def rows_needed(rows):
        return (rows - 1) * sh + span

    if c_in_g * rows_needed(1) * wp > in_depth:
        raise KcnnError(
            f"the input tile of one output row needs {c_in_g * rows_needed(1) * wp}"
            f" codes, more than the input cache IN_DEPTH={in_depth}",
            layer=layer.name,
            field="IN_DEPTH",
        )
    if window * min(p, per_group) > w_depth:
        raise KcnnError(
            f"{min(p, per_group)} output channels of {window} weights need "
            f"{window * min(p, per_group)} codes, more than the weight cache "
            f"W_DEPTH={w_depth}",
            layer=layer.name,
            field="W_DEPTH",
        )
    if min(p, per_group) * ow > out_depth:
        raise KcnnError(
            f"one output row of {min(p, per_group)} channels is "
            f"{min(p, per_group) * ow} outputs, more than OUT_DEPTH={out_depth}",
            layer=layer.name,
            field="OUT_DEPTH",
        )
    # Channel block: as many PE passes as the weight and output caches hold, in one group.
    out_w = layer.out_shape[-1] if layer.op == "conv" else 1
    passes = max(1, min(-(-per_group // p), w_depth // (window * p), out_depth // (p * out_w)))
    block = min(per_group, passes * p)
    # Row block: as many output rows as the input and output caches hold.
    rows = oh
    while rows > 1 and (
        c_in_g * rows_needed(rows) * wp > in_depth or block * rows * ow > out_depth
    ):
        rows -= 1
    jobs = []
    for g in range(groups):
        for ch in range(g * per_group, (g + 1) * per_group, block):
            channels = min(block, (g + 1) * per_group - ch)
            jobs += row_blocks(
                layer.name,
                ch,
                channels,
                g * c_in_g,
                c_in_g,
                rows=rows,
                oh=oh,
                ow=ow,
                sh=sh,
                span=span,
                wp=wp,
                window=window,
            )
    return jobs


def stream_words(layer: QLayer, job: Job, j_in: int, emits_codes: bool) -> dict:
    """64-bit words of each section of a job, exactly as the packer and the kernel count
    them (docs/job-format.md): descriptor, codebooks, thresholds, biases, weights (dense or
    sparse form), inputs and outputs. ``emits_codes`` must agree with the layer (thresholds
    present)."""
    from kcnn.jobs import layer_fields, section_words  # kcnn.jobs imports this module

    if emits_codes != (layer.thresholds is not None):
        raise ValueError(f"layer {layer.name}: emits_codes disagrees with its thresholds")
    return section_words(layer_fields(layer, job, j_in, signed_in=False))
