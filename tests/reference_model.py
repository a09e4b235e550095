"""An independent, slow reference of DESIGN section 1, for pinning the simulator.

Written straight from the contract: the product table ``P[k][j] = Wq[k] * Aq[j]`` in int64,
accumulators as a bias plus table look-ups, loops over output positions, the threshold
bank as a count of reached thresholds, max-pool on codes, host ops in the documented
operation order. It reads models only through the loader and imports nothing from
``kcnn.sim`` or ``kcnn.quantizer``.
"""

from __future__ import annotations

import math

import numpy as np


def product_table(wq, aq):
    w = np.concatenate([[0], np.asarray(wq, np.int64)])
    a = np.concatenate([[0], np.asarray(aq, np.int64)])
    return w[:, None] * a[None, :]


def encode_input(x, book):
    # nearest of the sorted decoded centroids; on a midpoint the lower code; 0 stays code 0
    mids = book.boundaries
    out = np.zeros(x.shape, np.int64)
    flat, res = x.reshape(-1), out.reshape(-1)
    for i, v in enumerate(flat.tolist()):
        res[i] = 0 if v == 0 else 1 + sum(1 for m in mids.tolist() if v > m)
    return out


def threshold_codes(values, thresholds):
    t = np.asarray(thresholds)
    return (np.asarray(values)[..., None] >= t).sum(axis=-1)


def conv(layer, codes, book):
    table = product_table(layer.wq, book.aq)
    n, c_in, h, w = codes.shape
    c_out, c_in_g, kh, kw = layer.codes.shape
    a = layer.attrs
    top, left, bottom, right = a["pads"]
    (sh, sw), (dh, dw) = a["strides"], a["dilations"]
    groups = a["groups"]
    padded = np.zeros((n, c_in, h + top + bottom, w + left + right), np.int64)
    padded[:, :, top : top + h, left : left + w] = codes
    oh = (h + top + bottom - dh * (kh - 1) - 1) // sh + 1
    ow = (w + left + right - dw * (kw - 1) - 1) // sw + 1
    acc = np.zeros((n, c_out, oh, ow), np.int64)
    pairs = 0
    per_group = c_out // groups
    group_of = np.arange(c_out) // per_group
    wcodes = layer.codes.astype(np.int64)
    for y in range(oh):
        for x in range(ow):
            window = padded[
                :,
                :,
                y * sh : y * sh + dh * (kh - 1) + 1 : dh,
                x * sw : x * sw + dw * (kw - 1) + 1 : dw,
            ]
            # the input codes each output channel sees: (N, C_out, C_in/g, kh, kw)
            seen = window.reshape(n, groups, c_in_g, kh, kw)[:, group_of]
            looked_up = table[wcodes[None], seen]
            acc[:, :, y, x] = layer.bias[None] + looked_up.reshape(n, c_out, -1).sum(axis=2)
            pairs += int(((wcodes[None] != 0) & (seen != 0)).sum())
    return acc, pairs


def fc(layer, codes, book):
    table = product_table(layer.wq, book.aq)
    flat = codes.reshape(codes.shape[0], -1)
    wcodes = layer.codes.astype(np.int64)
    acc = np.zeros((flat.shape[0], wcodes.shape[0]), np.int64)
    pairs = 0
    for b in range(flat.shape[0]):
        looked_up = table[wcodes, flat[b][None, :]]
        acc[b] = layer.bias + looked_up.sum(axis=1)
        pairs += int(((wcodes != 0) & (flat[b][None, :] != 0)).sum())
    return acc, pairs


def maxpool(layer, codes):
    a = layer.attrs
    top, left, bottom, right = a["pads"]
    (kh, kw), (sh, sw) = a["kernel"], a["strides"]
    n, c, h, w = codes.shape
    padded = np.zeros((n, c, h + top + bottom, w + left + right), np.int64)
    padded[:, :, top : top + h, left : left + w] = codes
    oh, ow = (h + top + bottom - kh) // sh + 1, (w + left + right - kw) // sw + 1
    out = np.zeros((n, c, oh, ow), np.int64)
    for y in range(oh):
        for x in range(ow):
            out[:, :, y, x] = padded[:, :, y * sh : y * sh + kh, x * sw : x * sw + kw].max(
                axis=(2, 3)
            )
    return out


def avgpool_excluding_pad(layer, values):
    a = layer.attrs
    top, left, bottom, right = a["pads"]
    (kh, kw), (sh, sw) = a["kernel"], a["strides"]
    n, c, h, w = values.shape
    oh, ow = (h + top + bottom - kh) // sh + 1, (w + left + right - kw) // sw + 1
    out = np.zeros((n, c, oh, ow))
    for y in range(oh):
        for x in range(ow):
            total, count = np.zeros((n, c)), 0
            for i in range(kh):
                for j in range(kw):
                    yy, xx = y * sh - top + i, x * sw - left + j
                    if 0 <= yy < h and 0 <= xx < w:
                        total = total + values[:, :, yy, xx]
                        count += 1
                    else:
                        total = total + 0.0  # the host's order: padding adds a zero
            out[:, :, y, x] = total / count
    return out


def lrn(layer, values):
    a = layer.attrs
    size, alpha, beta, bias = a["size"], a["alpha"], a["beta"], a["bias"]
    n, c, h, w = values.shape
    low, high = (size - 1) // 2, size - 1 - (size - 1) // 2
    out = np.empty_like(values)
    scale = alpha / size
    for b in range(n):
        for ch in range(c):
            for y in range(h):
                for x in range(w):
                    total = 0.0
                    for off in range(-low, high + 1):
                        if 0 <= ch + off < c:
                            v = values[b, ch + off, y, x]
                            total = total + v * v
                    d = bias + scale * total
                    if beta == 0.75:
                        inv = 1.0 / (math.sqrt(d) * math.sqrt(math.sqrt(d)))
                    elif beta == 0.5:
                        inv = 1.0 / math.sqrt(d)
                    else:
                        inv = 1.0 / d
                    out[b, ch, y, x] = values[b, ch, y, x] * inv
    return out


def run_reference(model, x):
    """Codes of every map and the last ``acc`` by layer name, and effective pairs per layer.

    Layers read their inputs by name (a graph); a residual adds its table entry of the
    other map's code to acc, the add layer sums two tables, a Concat joins the channels,
    and a threshold bank's interval becomes the code through ``out_table``."""
    book = model.maps["input"]
    maps = {"input": encode_input(np.asarray(x, np.float64), book)}
    pairs = {}
    for layer in model.layers:
        codes = [maps[t] for t in layer.inputs]
        acc = None
        if layer.op in ("conv", "fc"):
            in_book = model.maps[layer.in_map]
            acc, count = (conv if layer.op == "conv" else fc)(layer, codes[0], in_book)
            pairs[layer.name] = count / len(x)
            if len(codes) > 1:
                acc = acc + np.asarray(layer.residual_table, np.int64)[codes[1]]
        elif layer.op == "add":
            first, second = (np.asarray(t, np.int64) for t in layer.add_tables)
            acc = first[codes[0]] + second[codes[1]]
        elif layer.op == "codemap":
            out = np.zeros_like(codes[0])
            for c in range(codes[0].shape[1]):
                out[:, c] = np.asarray(layer.code_table)[c][codes[0][:, c]]
        elif layer.op == "concat":
            out = np.concatenate(codes, axis=1)
        elif layer.op == "maxpool":
            out = maxpool(layer, codes[0])
        elif layer.op == "flatten":
            out = codes[0].reshape(codes[0].shape[0], -1)
        elif layer.op in ("lrn", "avgpool"):
            in_book = model.maps[layer.in_map]
            values = np.where(
                codes[0] == 0, 0.0, np.concatenate([[0.0], in_book.aq * in_book.scale])[codes[0]]
            )
            host = lrn if layer.op == "lrn" else avgpool_excluding_pad
            out = threshold_codes(host(layer, values), model.maps[layer.out_map].boundaries)
        else:
            continue  # trailing ops on the logits
        if acc is not None:
            if layer.out_map is None:
                maps[layer.name] = acc
                break
            out = threshold_codes(acc, layer.thresholds)
            if layer.out_table is not None:
                out = np.asarray(layer.out_table)[out]
        maps[layer.name] = out
    return maps, pairs
