"""Protocol 3's kernel features for graphs with branches (DESIGN section 1, "Other
activations and signed maps" and "Residual Add"), on the C-sim, bit for bit against numpy
references written here:

- ``OUT_TABLE``: a conv / fc step maps the threshold bank's interval index through a code
  table (a signed output map);
- ``RESIDUAL``: a conv / fc step adds ``R[code]`` of a shortcut map to each ``acc`` before
  the threshold bank;
- the ``ADD`` step: ``acc = R1[a] + R2[b]`` of two maps, then the threshold bank.

The steps are built by hand with :mod:`kcnn.protocol`'s packers; a conv or fc step's jobs
(weights dealt to the partitions) come from the op's tiler, the flags, constants and the
shortcut section are added here. The kernel's loop log is held to
:meth:`kcnn.tiling.Step.loop_log` and, for the new loops, to trip counts written out here.
"""

from __future__ import annotations

import zlib
from dataclasses import replace

import numpy as np
import pytest
from csim_builds import PARAMS, require_csim
from layer_cases import one_layer_model, random_codes

from kcnn.config import ARITHMETIC_CONTRACT, BuildParams
from kcnn.estimate import LOOP_TABLE, step_cycles, step_words
from kcnn.protocol import (
    FLAGS,
    FORMATS,
    MAGIC,
    OPCODES,
    STATUS,
    ceil_div,
    decode_trailer,
    format_words,
    pack_code_table,
    pack_int32,
    pack_map,
    pack_residual_table,
    unpack_map,
)
from kcnn.sim import csim
from kcnn.tiling import Step

require_csim()


@pytest.fixture(scope="module", params=sorted(PARAMS))
def kernel(request):
    k = csim.CsimKernel(PARAMS[request.param])
    yield k
    k.close()


def seed(*names) -> int:
    return zlib.crc32("/".join(map(str, names)).encode())


# ---- running words ---------------------------------------------------------------------------


def lasts(words: np.ndarray, at: int | None = None) -> np.ndarray:
    flags = np.zeros(words.size, np.uint8)
    if words.size:
        flags[-1 if at is None else at] = 1
    return flags


def run(kernel, a, b=None, out_cap=1 << 16, a_last=None):
    """One invocation; checks that every word sent was read and nothing past a TLAST, and
    that the answer ends in one trailer with TLAST. Returns (outputs, status, job, log)."""
    a = np.asarray(a, np.uint64)
    b = np.zeros(0, np.uint64) if b is None else np.asarray(b, np.uint64)
    out, res, log = kernel.run_words(
        a, lasts(a) if a_last is None else a_last, b, lasts(b), out_cap
    )
    assert res["reads_a"] == res["consumed_a"] == a.size
    assert res["reads_b"] == res["consumed_b"] == b.size
    assert res["first_last"] == res["out_words"] - 1 and res["lasts"] == 1
    assert res["out_words"] <= out_cap
    status, job = decode_trailer(out[-1])
    assert STATUS[status] == res["status"]
    return out[:-1], status, job, log


# ---- references --------------------------------------------------------------------------------


def decoded(book, codes) -> np.ndarray:
    """Values of codes: code 0 is exactly zero, code k the book's entry k - 1."""
    return np.concatenate([[0], np.asarray(book, np.int64)])[np.asarray(codes, np.int64)]


def conv_acc(layer, aq, x) -> np.ndarray:
    """``B[c] + sum over the window of Wq[w] * Aq[a]`` of a conv, in int64, from the ONNX
    attributes (pads, strides, dilations, groups)."""
    a = layer.attrs
    (kh, kw), (sh, sw), (dh, dw) = a["kernel"], a["strides"], a["dilations"]
    pt, pl, pb, pr = a["pads"]
    groups = a["groups"]
    w = decoded(layer.wq, layer.codes)  # (co, cg, kh, kw)
    v = decoded(aq, x)  # (ci, h, w)
    ci, h, wd = v.shape
    padded = np.zeros((ci, h + pt + pb, wd + pl + pr), np.int64)
    padded[:, pt : pt + h, pl : pl + wd] = v
    co, oh, ow = layer.out_shape
    cg, og = ci // groups, co // groups
    acc = np.repeat(np.asarray(layer.bias, np.int64)[:, None, None], oh * ow, 1).reshape(co, oh, ow)
    for i in range(kh):
        for j in range(kw):
            tap = padded[
                :,
                i * dh : i * dh + (oh - 1) * sh + 1 : sh,
                j * dw : j * dw + (ow - 1) * sw + 1 : sw,
            ]
            for g in range(groups):
                acc[g * og : (g + 1) * og] += np.tensordot(
                    w[g * og : (g + 1) * og, :, i, j], tap[g * cg : (g + 1) * cg], axes=1
                )
    return acc


def fc_acc(layer, aq, x) -> np.ndarray:
    return np.asarray(layer.bias, np.int64) + decoded(layer.wq, layer.codes) @ decoded(aq, x)


def interval(acc, thresholds) -> np.ndarray:
    """The threshold bank: #{m : acc >= T[m]}."""
    return (np.asarray(acc)[..., None] >= np.asarray(thresholds)[None, :]).sum(axis=-1)


def signed_table(m: int, negatives: int) -> np.ndarray:
    """The code of each interval index of a signed map whose ascending codebook has
    ``negatives`` negative and ``m - negatives`` positive centroids (codes 1..m) and code 0
    for exactly zero: [1, .., negatives, 0, negatives + 1, .., m]."""
    return np.array([*range(1, negatives + 1), 0, *range(negatives + 1, m + 1)], np.int64)


def spread(values, count: int) -> np.ndarray:
    """``count`` non-decreasing integer thresholds spread over ``values``' range, so that
    every interval index occurs."""
    q = np.quantile(np.asarray(values, np.float64).ravel(), np.linspace(0.04, 0.96, count))
    return np.floor(q).astype(np.int64)


# ---- conv and fc steps with the new flags --------------------------------------------------------


def with_flags(step: Step, table=None, residual=None) -> Step:
    """``step`` with ``OUT_TABLE`` (the code table word after the thresholds) and / or
    ``RESIDUAL`` (R's 8 words after it) added to its descriptor and constants."""
    f = dict(step.fields)
    head = ceil_div(f["k1"] + f["j1"], 8) + ceil_div(f["jo1"], 2)
    extra = []
    if table is not None:
        f["flags"] |= FLAGS["OUT_TABLE"]
        extra.append(pack_code_table(table))
    if residual is not None:
        f["flags"] |= FLAGS["RESIDUAL"]
        extra.append(pack_residual_table(residual))
    constants = np.concatenate([step.constants[:head], *extra, step.constants[head:]])
    f["const_words"] = constants.size
    return replace(step, fields=f, constants=constants.astype(np.uint64))


#: conv and fc layers (one_layer_model's arguments) and their output format.
LAYERS = {
    "conv_blocked": ("BLOCKED", {"c_in": 5, "c_out": 7, "hw": (7, 6)}),
    "conv_flat": ("FLAT", {"c_in": 5, "c_out": 7, "hw": (7, 6)}),
    # stride 2: computed at stride 1 and subsampled (sub = 2), through the out memory
    "conv_sub2_blocked": ("BLOCKED", {"c_out": 5, "strides": (2, 2), "hw": (11, 9)}),
    "conv_sub2_flat": ("FLAT", {"c_out": 6, "strides": (2, 2), "hw": (9, 10)}),
    "conv_dilated_groups": (
        "BLOCKED",
        {
            "c_in": 4,
            "c_out": 8,
            "groups": 2,
            "dilations": (2, 2),
            "pads": (2, 1, 2, 1),
            "hw": (9, 7),
        },
    ),
    # more than 256 output channels: several jobs, each starting its shortcut codes where
    # the previous job's end
    "conv_jobs_flat": ("FLAT", {"c_in": 6, "c_out": 270, "hw": (3, 3), "form": "sparse"}),
    "conv_jobs_blocked": (
        "BLOCKED",
        {"c_in": 16, "c_out": 200, "hw": (2, 3), "weight_density": 0.9},
    ),
    "fc": ("FLAT", {"op": "fc", "taps": 70, "c_out": 21}),
    "fc_jobs_sparse": ("FLAT", {"op": "fc", "taps": 45, "c_out": 300, "form": "sparse"}),
}


def shape3(shape) -> tuple:
    """A map's (C, H, W); an fc's vector is (C, 1, 1)."""
    return tuple(shape) if len(shape) == 3 else (shape[0], 1, 1)


def tile(model, layer, out_format, params) -> Step:
    """The layer's one step, reading a BLOCKED (conv) or FLAT (fc) map of codes."""
    made = layer.kind.tile(
        model, layer, 0, "FLAT" if layer.op == "fc" else "BLOCKED", out_format, params
    )
    made = made if isinstance(made, list) else [made]
    assert len(made) == 1, "the case must fit the tile in one step"
    return made[0]


def layer_step(name: str, params: BuildParams, rng):
    """A model's layer ``L``, its input codes and its accumulators (the numpy reference),
    and the output format of ``LAYERS[name]``."""
    out_format, spec = LAYERS[name]
    model, layer = one_layer_model(rng, **spec)
    x = random_codes(rng, layer, 1, model.maps["input"].J)[0]
    aq = model.maps["input"].aq
    acc = fc_acc(layer, aq, x) if layer.op == "fc" else conv_acc(layer, aq, x)
    return model, layer, x, acc, out_format


@pytest.mark.parametrize("feature", ["table", "residual", "both"])
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_conv_and_fc_with_a_code_table_and_a_residual(name, feature, kernel):
    """OUT_TABLE maps the interval index to a signed codebook's codes; RESIDUAL adds R of a
    random shortcut map (codes at the same output place) before the threshold bank."""
    params = kernel.params
    rng = np.random.default_rng(seed(name, feature))
    model, layer, x, acc, out_format = layer_step(name, params, rng)
    m = 13
    table = signed_table(m, 6) if feature in ("table", "both") else None
    r = None
    shortcut = rng.integers(0, 16, layer.out_shape)
    if feature in ("residual", "both"):
        # R in the acc's units, larger than the acc's spread so a wrong place shows
        width = int(np.abs(acc).max()) + 1
        r = np.concatenate([[0], rng.integers(-2 * width, 2 * width + 1, 15)])
        acc = acc + r[shortcut]
    layer.thresholds = spread(acc, m)
    step = with_flags(tile(model, layer, out_format, params), table, r)
    if "jobs" in name:
        assert len(step.jobs) >= 2
    if name.startswith("conv_sub2"):
        assert step.fields["sub"] == 2
    want = interval(acc, layer.thresholds)
    if table is not None:
        want = table[want]
    # (almost) every interval index occurs: a wrong table entry or a wrong R shows
    assert np.unique(want).size >= min(m - 1, want.size // 3)

    map_words = pack_map(x, "FLAT" if layer.op == "fc" else "BLOCKED")
    sc_words = pack_map(shortcut, out_format) if r is not None else None
    a = step.stream_a(map_words, sc_words)
    # the performance model counts the words the step sends, shortcut section included
    assert step_words(step)["a"] == a.size
    out, status, job, log = run(kernel, a, step.jobs_b, step.out_words + 1)
    assert (status, job) == ("OK", 0)
    got = unpack_map(out, out_format, layer.out_shape)
    assert np.array_equal(got, want)
    assert log == step.loop_log()
    names = [loop for loop, _ in log]
    if r is not None:
        # the shortcut section's loop: after MAP, before the first job's LOAD, a word a trip
        assert names[names.index("MAP") + 1] == "SHORTCUT"
        assert dict(log)["SHORTCUT"] == format_words(out_format, *shape3(step.out_shape))
    else:
        assert "SHORTCUT" not in names


def test_the_code_table_leaves_a_step_without_it_as_in_protocol_2(kernel):
    """Without OUT_TABLE the code is the interval index; with the identity table too."""
    rng = np.random.default_rng(3)
    model, layer, x, acc, _ = layer_step("conv_blocked", kernel.params, rng)
    layer.thresholds = spread(acc, 15)
    plain = tile(model, layer, "BLOCKED", kernel.params)
    identity = with_flags(plain, table=np.arange(16))
    map_words = pack_map(x, "BLOCKED")
    want = pack_map(interval(acc, layer.thresholds), "BLOCKED")
    for step in (plain, identity):
        out, status, _, _ = run(kernel, step.stream_a(map_words), step.jobs_b)
        assert status == "OK" and np.array_equal(out, want)


# ---- the ADD step ------------------------------------------------------------------------------


def add_step(params, shape, in_format, out_format, r1, r2, thresholds, table=None, **change):
    """An ADD step built by hand: descriptor, constants R1, R2, thresholds [, table]."""
    c, h, w = shape
    parts = [pack_residual_table(r1), pack_residual_table(r2), pack_int32(thresholds)]
    if table is not None:
        parts.append(pack_code_table(table))
    constants = np.concatenate(parts).astype(np.uint64)
    fields = {
        "magic": MAGIC,
        "version": ARITHMETIC_CONTRACT["protocol"],
        "opcode": OPCODES["ADD"],
        "flags": FLAGS["OUT_TABLE"] if table is not None else 0,
        "jo1": len(thresholds),
        "in_c": c,
        "in_h": h,
        "in_w": w,
        "out_c": c,
        "out_h": h,
        "out_w": w,
        **{k: 1 for k in ("kh", "kw", "sh", "sw", "dh", "dw", "s2d", "sub", "groups")},
        "in_format": FORMATS[in_format],
        "out_format": FORMATS[out_format],
        "const_words": constants.size,
        "map_words": format_words(in_format, c, h, w),
        "out_words": format_words(out_format, c, h, w),
        **change,
    }
    return Step(
        0,
        "ADD",
        None,
        fields,
        constants,
        in_format=in_format,
        out_format=out_format,
        in_shape=shape,
        out_shape=shape,
        params=params,
    )


def add_case(rng, shape, signed: bool):
    """Two maps' codes, their tables R1, R2 (R[0] = 0) and thresholds over the sums."""
    a = rng.integers(0, 16, shape)
    b = rng.integers(0, 16, shape)
    r1 = np.concatenate([[0], np.sort(rng.integers(-900 if signed else 1, 1000, 15))])
    r2 = np.concatenate([[0], np.sort(rng.integers(-900 if signed else 1, 1000, 15))])
    thresholds = spread(r1[a] + r2[b], 11)
    return a, b, r1, r2, thresholds


ADD_SHAPES = [(3, 5, 7), (2, 4, 4), (5, 9, 3), (1, 1, 1), (17, 2, 6), (4, 13, 17)]
ADD_FORMATS = [("BLOCKED", "BLOCKED"), ("FLAT", "FLAT"), ("BLOCKED", "FLAT")]


@pytest.mark.parametrize("formats", ADD_FORMATS, ids=lambda f: f"{f[0]}_to_{f[1]}")
@pytest.mark.parametrize("shape", ADD_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_add_steps(shape, formats, kernel):
    in_format, out_format = formats
    rng = np.random.default_rng(seed(shape, formats))
    for signed in (False, True):
        a, b, r1, r2, thresholds = add_case(rng, shape, signed)
        table = signed_table(11, 5) if signed else None
        step = add_step(kernel.params, shape, in_format, out_format, r1, r2, thresholds, table)
        want = interval(r1[a] + r2[b], thresholds)
        if table is not None:
            want = table[want]
        words = step.stream_a(pack_map(a, in_format), pack_map(b, in_format))
        # descriptor, constants, map A, the reserved word, map B: nothing else on A, no B
        c, h, w = shape
        assert words.size == 8 + 16 + ceil_div(11, 2) + signed + 2 * step.map_words + 1
        out, status, job, log = run(kernel, words, None, step.out_words + 1)
        assert (status, job) == ("OK", 0)
        assert np.array_equal(unpack_map(out, out_format, shape), want), signed
        assert np.array_equal(out, pack_map(want, out_format))  # padding nibbles are 0
        assert log == step.loop_log()
        assert step_words(step)["a"] == words.size
        cycles, _ = step_cycles(step)
        assert cycles == sum(LOOP_TABLE[n].ii * t + LOOP_TABLE[n].depth for n, t in log)
        # the documented trips: map B a word a trip, 4 trips a block into a FLAT answer
        reorder = in_format == "BLOCKED" and out_format == "FLAT"
        trips = dict(log)
        assert trips["MAP"] == step.map_words + 1
        assert trips["ADD"] == step.map_words * (4 if reorder else 1)
        assert trips.get("EMIT", 0) == (ceil_div(c * h * w, 16) if reorder else 0)


# ---- refusals ----------------------------------------------------------------------------------


def refused(kernel, a, b=None, a_last=None):
    out, status, job, _ = run(kernel, a, b, a_last=a_last)
    return status, job, out.size


def test_refusals_name_their_status_and_the_next_step_runs(kernel):
    params = kernel.params
    rng = np.random.default_rng(17)
    model, layer, x, acc, _ = layer_step("conv_blocked", params, rng)
    layer.thresholds = spread(acc, 7)
    r = np.concatenate([[0], rng.integers(-50, 51, 15)])
    shortcut = rng.integers(0, 16, layer.out_shape)
    base = tile(model, layer, "BLOCKED", params)
    good = with_flags(base, signed_table(7, 3), r)
    map_words, sc_words = pack_map(x, "BLOCKED"), pack_map(shortcut, "BLOCKED")
    good_a = good.stream_a(map_words, sc_words)
    want, status, _, _ = run(kernel, good_a, good.jobs_b)
    assert status == "OK"

    def check(expected, a, b=None, a_last=None):
        assert refused(kernel, a, b, a_last) == expected
        again, status, _, _ = run(kernel, good_a, good.jobs_b)
        assert status == "OK" and np.array_equal(again, want)

    step_level = 0xFFFF
    # R[0] != 0: code 0 is exactly zero
    bad_r = with_flags(base, signed_table(7, 3), np.concatenate([[1], r[1:]]))
    b = good.jobs_b
    check(("BAD_CONSTANTS", step_level, 0), bad_r.stream_a(map_words, sc_words), b)
    # the constants without R's words (the descriptor still claims RESIDUAL)
    short = replace(good, fields={**good.fields, "const_words": good.fields["const_words"] - 8})
    check(("BAD_GEOMETRY", step_level, 0), short.stream_a(map_words, sc_words), b)
    # TLAST inside the shortcut section
    cut_at = good.head.size + good.map_words + 1 + 3
    check(("EARLY_TLAST", step_level, 0), good_a[: cut_at + 1], b)
    # the shortcut section missing: the stream ends before the descriptor's last word
    # (every job word is read as shortcut or job, and the TLAST comes early)
    no_sc = np.concatenate([good.head, map_words, np.zeros(1, np.uint64), good.jobs_a])
    assert refused(kernel, no_sc, b)[0] in ("EARLY_TLAST", "BAD_JOB")
    # R and the code table with an ACC answer (a last layer): refused
    model_l, last = one_layer_model(np.random.default_rng(5), last=True)
    x_l = random_codes(np.random.default_rng(6), last, 1, model_l.maps["input"].J)[0]
    acc_step = tile(model_l, last, "ACC", params)
    acc_r = with_flags(acc_step, residual=r)
    acc_sc = np.zeros(format_words("ACC", *acc_step.out_shape), np.uint64)
    acc_b = acc_step.jobs_b
    check(("BAD_GEOMETRY", step_level, 0), acc_r.stream_a(pack_map(x_l, "BLOCKED"), acc_sc), acc_b)
    acc_t = with_flags(acc_step, table=np.arange(16))
    check(("BAD_GEOMETRY", step_level, 0), acc_t.stream_a(pack_map(x_l, "BLOCKED")), acc_b)
    # a shortcut above the shortcut memory (OUT_DEPTH codes)
    big_model, big = one_layer_model(
        np.random.default_rng(7), c_in=2, c_out=params.OUT_DEPTH // 256 + 1, hw=(16, 16)
    )
    x_big = random_codes(np.random.default_rng(8), big, 1, big_model.maps["input"].J)[0]
    big_step = with_flags(tile(big_model, big, "BLOCKED", params), None, r)
    assert 16 * big_step.shortcut_words > params.OUT_DEPTH
    big_a = big_step.stream_a(
        pack_map(x_big, "BLOCKED"), np.zeros(big_step.shortcut_words, np.uint64)
    )
    check(("COUNT_ABOVE_MAX", step_level, 0), big_a, big_step.jobs_b)

    # ADD steps
    shape = (3, 6, 5)
    a, b, r1, r2, thresholds = add_case(rng, shape, True)
    for fmt in ("BLOCKED", "FLAT"):
        ok = add_step(params, shape, fmt, fmt, r1, r2, thresholds)
        maps = (pack_map(a, fmt), pack_map(b, fmt))
        words = ok.stream_a(*maps)
        assert refused(kernel, words)[:2] == ("OK", 0)
        for which in (0, 1):  # R1[0] != 0, R2[0] != 0
            tables = [r1, r2]
            tables[which] = np.concatenate([[-3], tables[which][1:]])
            bad = add_step(params, shape, fmt, fmt, *tables, thresholds)
            check(("BAD_CONSTANTS", step_level, 0), bad.stream_a(*maps))
        # a map section of the wrong length
        wrong = replace(ok, fields={**ok.fields, "map_words": ok.map_words + 1})
        check(("BAD_GEOMETRY", step_level, 0), np.concatenate([wrong.head, words[ok.head.size :]]))
        # map B one word short: the answer holds the words before the one with the early
        # TLAST; one word long: before the last, which lacks the TLAST
        check(("EARLY_TLAST", step_level, ok.map_words - 2), words[:-1])
        check(("MISSING_TLAST", step_level, ok.map_words - 1), np.append(words, np.uint64(0)))
        # an ADD step with a job, with RESIDUAL, with a signed input codebook, with ACC
        for change in (
            {"n_jobs": 1},
            {"flags": FLAGS["RESIDUAL"]},
            {"flags": FLAGS["ACT_SIGNED"]},
            {"out_format": FORMATS["ACC"], "out_words": format_words("ACC", *shape)},
            {"k1": 2},
        ):
            bad = replace(ok, fields={**ok.fields, **change})
            check(
                ("BAD_GEOMETRY", step_level, 0), np.concatenate([bad.head, words[ok.head.size :]])
            )
    # FLAT maps answered BLOCKED: refused (a BLOCKED answer reads BLOCKED maps)
    flat_to_blocked = add_step(params, shape, "FLAT", "BLOCKED", r1, r2, thresholds)
    words = flat_to_blocked.stream_a(pack_map(a, "FLAT"), pack_map(b, "FLAT"))
    check(("BAD_GEOMETRY", step_level, 0), words)
    # map A above the tile (IN_DEPTH codes) and a FLAT answer above the out memory
    tall = (1, 4 * (params.IN_DEPTH // 256 + 1), 64)
    over = add_step(params, tall, "BLOCKED", "BLOCKED", r1, r2, thresholds)
    assert 16 * over.map_words > params.IN_DEPTH
    zeros = np.zeros(over.map_words, np.uint64)
    check(("COUNT_ABOVE_MAX", step_level, 0), over.stream_a(zeros, zeros))
    wide = (1, 4, params.OUT_DEPTH // 4 + 4)
    over = add_step(params, wide, "BLOCKED", "FLAT", r1, r2, thresholds)
    assert 16 * over.map_words <= params.IN_DEPTH
    zeros = np.zeros(over.map_words, np.uint64)
    check(("COUNT_ABOVE_MAX", step_level, 0), over.stream_a(zeros, zeros))
