"""Protocol 5, pinned by numbers worked out by hand (docs/job-format.md).

Nothing here is computed by the packer under test: the word counts and the worked step
are derived in the comments from the format's rules. A change of the format re-derives
them by hand.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kcnn.config import BuildParams
from kcnn.model import Codebook, Layer, Model
from kcnn.plan import plan_model
from kcnn.protocol import (
    DESCRIPTOR_FIELDS,
    FORMATS,
    OPCODES,
    config_header,
    decode_descriptor,
    decode_info,
    decode_trailer,
    info_words,
    map_words_b,
    pack_descriptor,
    pack_f32,
)

ROOT = Path(__file__).resolve().parents[1]


def test_config_header_is_current():
    assert (ROOT / "hls" / "kcnn_config.h").read_text() == config_header(), (
        "hls/kcnn_config.h is stale: run python -m kcnn.protocol > hls/kcnn_config.h"
    )


def test_descriptor_round_trip_and_limits():
    from kcnn.errors import KcnnError

    fields = {name: (1 << width) - 1 for name, (_, _, width) in DESCRIPTOR_FIELDS.items()}
    assert decode_descriptor(pack_descriptor(fields)) == fields
    with pytest.raises(KcnnError) as info:
        pack_descriptor({"out_c": 1 << 16})
    assert info.value.field == "out_c"


def test_info_words_and_trailer():
    from kcnn.config import ARITHMETIC_CONTRACT

    params = BuildParams(P=8, STREAMS=1, LRN_LANES=2, W_DEPTH=1024)
    info = decode_info(info_words(ARITHMETIC_CONTRACT, params))
    assert info["P"] == 8 and info["STREAMS"] == 1 and info["LRN_LANES"] == 2
    assert info["W_DEPTH"] == 1024 and info["IN_DEPTH"] == params.IN_DEPTH
    # "KEND" in the low half, status 8 (BAD_SPARSE), job 3
    assert decode_trailer(0x0003_0008_444E454B) == ("BAD_SPARSE", 3)
    assert decode_trailer(0x0003_0008_444E4540) is None


def _layer(
    name,
    op,
    in_shape,
    out_shape,
    codes,
    wq,
    bias,
    thresholds=None,
    attrs=None,
    in_map="input",
    form="dense",
):
    return Layer(
        name,
        op,
        in_shape,
        out_shape,
        attrs=attrs or {},
        in_map=in_map,
        out_map=None if thresholds is None else name,
        codes=np.asarray(codes, np.uint8),
        wq=np.asarray(wq, np.int64),
        w_scale=0.5,
        bias=np.asarray(bias, np.int64),
        thresholds=None if thresholds is None else np.asarray(thresholds, np.int64),
        weight_form=form,
    )


def worked_fc_model() -> Model:
    """The worked example of docs/job-format.md: one fc layer, 4 inputs, 2 outputs."""
    layer = _layer("fc", "fc", (4,), (2,), [[1, 2, 0, 2], [2, 0, 1, 1]], [-2, 3], [1, -1])
    book = Codebook("input", np.array([1, 2]), 0.25, False, boundaries=np.array([1.5]))
    return Model("worked", (4,), [layer], {"input": book})


#: The words of the worked step, derived by hand in docs/job-format.md ("A step worked by hand").
WORKED_A = [
    0x0002_0005_4E4E_434B,  # magic, version 5, opcode FC, flags 0
    0x0000_0202_0001_0000,  # step 0, 1 job, k1 = 2, j1 = 2, jo1 = 0
    0x0002_0001_0001_0004,  # in_c 4, in_h 1, in_w 1, out_c 2
    0x0101_0101_0001_0001,  # out 1 x 1, kernel 1 x 1, strides 1 x 1
    0x0101_2100_0000_0101,  # dilations 1, pads 0, khb = kwb = 0, FLAT in, ACC out, s2d 1, sub 1
    0x0000_0001_0000_0001,  # 1 constant word, 1 map word
    0x0000_0001_0000_0004,  # jobs: 4 words on A, 1 on B
    0x0000_0001_0000_0001,  # 1 output word, 1 group
    0x0000_0000_0201_03FE,  # codebooks: Wq -2, 3 then Aq 1, 2 (bytes FE 03 01 02)
    0x0000_0000_0000_1201,  # map: input codes 1, 0, 2, 1
    0x0000_0000_0000_0000,  # reserved (the previous step's trailer)
    0x0002_0000_0000_4A42,  # job 0: tag "BJ", index 0, ch0 0, 2 channels
    0x0001_0000_0000_0200,  # dense, 2 steps, slot0 0, span 1
    0xFFFF_FFFF_0000_0001,  # biases 1, -1
    0x0000_0000_0000_2021,  # weight step 0 (row 0) on A: partitions 0..3 hold codes 1, 2, 0, 2
]
WORKED_B = [0x0000_0000_0000_1102]  # weight step 1 (row 1) on B: codes 2, 0, 1, 1
#: acc0 = 1 + (-2)(1) + 3(0) + 0 + 3(1) = 2; acc1 = -1 + 3(1) + 0 + (-2)(2) + (-2)(1) = -4.
WORKED_ANSWER = [0xFFFF_FFFC_0000_0002, 0x0000_0000_444E_454B]


def test_the_worked_step_is_what_the_planner_sends():
    step = plan_model(worked_fc_model(), BuildParams(STREAMS=2)).first
    map_words = np.array([0x1201], np.uint64)
    assert [int(w) for w in step.stream_a(map_words)] == WORKED_A
    assert [int(w) for w in step.jobs_b] == WORKED_B


def test_the_worked_step_is_in_the_docs():
    text = (ROOT / "docs" / "job-format.md").read_text()
    block = text.split("<!-- worked -->")[1].split("<!-- /worked -->")[0]
    hexes = [int(w.replace("_", ""), 16) for w in block.split() if len(w) == 19 and "_" in w]
    assert hexes == [*WORKED_A, *WORKED_B, *WORKED_ANSWER]


def test_word_counts_of_a_small_conv():
    """2 -> 3 channels, 5x5 input, 3x3 kernel of ones, pad 1, K = 4, J = 3, J' = 3, P = 16
    (the second step of a model, so its input is a BLOCKED map)."""
    one = {"strides": [1, 1], "pads": [0, 0, 0, 0], "dilations": [1, 1], "groups": 1}
    three = {"strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1], "groups": 1}
    first = _layer(
        "c0",
        "conv",
        (2, 5, 5),
        (2, 5, 5),
        np.ones((2, 2, 1, 1)),
        [1],
        [0, 0],
        [1],
        attrs={"kernel": [1, 1], **one},
    )
    conv = _layer(
        "c1",
        "conv",
        (2, 5, 5),
        (3, 5, 5),
        np.ones((3, 2, 3, 3)),
        [-3, 1, 2],
        [0, 1, 2],
        [5, 9],
        attrs={"kernel": [3, 3], **three},
        in_map="c0",
    )
    books = {
        "input": Codebook("input", np.array([1, 2]), 1.0, False, np.array([1.5])),
        "c0": Codebook("c0", np.array([1, 2]), 1.0, False),
        "c1": Codebook("c1", np.array([3, 7]), 1.0, False),
    }
    model = Model("c", (2, 5, 5), [first, conv], books)
    step = plan_model(model, BuildParams(P=16, STREAMS=2)).steps[1]
    f = step.fields
    job = step.jobs[0]
    # 2 input channels < 16 partitions: channel c is copied into partitions c, c + 2, ...,
    # c + 14 (8 copies, slot 0). 3x3 pads to 4x4 (khb = kwb = 2): taps (i, j) sit at
    # positions 4i + j = 0, 1, 2, 4, 5, 6, 8, 9, 10. Each output channel deals its 9 taps of
    # a channel round-robin to the 8 copies: copy 0 gets taps 0 and 8 (positions 0 and 10),
    # copies 1..7 one tap each.
    assert (f["khb"], f["kwb"]) == (2, 2) and job.span == 16
    # Dense: 3 channels x 16 positions = 48 steps of one word (48 cycles). Sparse: copy 0
    # per channel 0x01 (skip 0, code 1), 0x91 (skip 9), end = 3 bytes; copy r: 1 entry and
    # end = 2 bytes; so partitions 0 and 1 hold 9 bytes, the others 6: 9 steps of 16 bytes
    # (one word on A and one on B, one cycle each). The planner takes the sparse form.
    assert job.sparse and job.steps == 9
    rows = np.concatenate([step.jobs_a[4:], step.jobs_b]).view(np.uint8)
    part0 = step.jobs_a[4:].view(np.uint8).reshape(9, 8)[:, 0]
    assert list(part0) == [0x01, 0x91, 0x00] * 3
    assert rows.size == 18 * 8
    # constants: codebooks ceil((3 + 2) / 8) = 1, thresholds ceil(2 / 2) = 1, placement 2
    assert f["const_words"] == 4
    # map: 2 channels x ceil(5/4) x ceil(5/4) blocks = 8; answer: 3 x 2 x 2 = 12
    assert f["map_words"] == 8 and f["out_words"] == 12
    # jobs on A: header 2 + biases ceil(3/2) = 2 + 9 weight words; on B: 9
    assert f["job_words_a"] == 13 and f["job_words_b"] == 9
    # the whole A transfer: 8 + 4 + 8 + 1 reserved + 13
    assert step.stream_a(np.zeros(8, np.uint64)).size == 34


def test_word_counts_of_a_sparse_fc():
    """20 inputs -> 3 outputs, K = 3, J = 4, J' = 2, sparse, P = 16."""
    codes = np.zeros((3, 20), np.uint8)
    codes[0, 0], codes[0, 17], codes[2, 5] = 1, 2, 1
    layer = _layer("fc", "fc", (20,), (3,), codes, [-5, 4], [0, 1, 2], [3], form="sparse")
    books = {
        "input": Codebook("input", np.array([1, 2, 3]), 1.0, False, np.array([1.5, 2.5])),
        "fc": Codebook("fc", np.array([6]), 1.0, False),
    }
    step = plan_model(Model("s", (20,), [layer], books), BuildParams(P=16)).first
    f = step.fields
    # input t is in partition t mod 16 at position t div 16. Sequences (entry = skip << 4 |
    # code, 0x00 ends a channel): partition 0: row 0 (t = 0, position 0): 0x01, end; rows
    # 1, 2: end, end -> 4 bytes. Partition 1: row 0 (t = 17, position 1, one skipped):
    # 0x12, end; end; end -> 4. Partition 5: end; end; row 2 (t = 5): 0x01, end -> 4.
    # Every other partition: 3 ends. So 4 steps of 16 bytes = 2 words each: 8 words,
    # 4 on A and 4 on B.
    assert step.jobs[0].steps == 4 and step.jobs[0].sparse
    raw = np.concatenate([step.jobs_a[4:], step.jobs_b])  # after header and biases
    assert f["job_words_a"] == 2 + 2 + 4 and f["job_words_b"] == 4
    steps = np.zeros((4, 16), np.uint8)
    steps[:, :8] = raw[:4].view(np.uint8).reshape(4, 8)
    steps[:, 8:] = raw[4:].view(np.uint8).reshape(4, 8)
    assert list(steps[:, 0]) == [0x01, 0, 0, 0]
    assert list(steps[:, 1]) == [0x12, 0, 0, 0]
    assert list(steps[:, 5]) == [0, 0, 0x01, 0]
    assert list(steps[:, 9]) == [0, 0, 0, 0]
    # constants: codebooks ceil((2 + 3) / 8) = 1, thresholds ceil(1 / 2) = 1
    assert f["const_words"] == 2
    # map: ceil(20 / 16) = 2 words; answer: ceil(3 / 16) = 1 word (FLAT: the model ends in
    # a coded fc map)
    assert f["map_words"] == 2 and f["out_words"] == 1


def test_long_zero_runs_of_a_sparse_fc_are_sent_as_long_fillers():
    """16 * 1002 inputs -> 2 outputs, sparse, P = 16: zero runs of 16, 241 and 1000."""
    n = 16 * 1002
    codes = np.zeros((2, n), np.uint8)
    codes[0, 0], codes[0, 16 * 1001], codes[0, 16 * 16 + 3], codes[1, 16 * 241] = 1, 2, 1, 2
    layer = _layer("fc", "fc", (n,), (2,), codes, [-5, 4], [0, 1], [3], form="sparse")
    books = {
        "input": Codebook("input", np.array([1, 2, 3]), 1.0, False, np.array([1.5, 2.5])),
        "fc": Codebook("fc", np.array([6]), 1.0, False),
    }
    job = plan_model(Model("s", (n,), [layer], books), BuildParams(P=16)).first.jobs[0]
    # A filler (code 0, skip s in 1..15) covers 16 s positions; a run of g zeros before an
    # entry is ceil((g div 16) / 15) fillers (15, 15, .., the rest) and the entry skips
    # g mod 16. Partition 0 (input t = 16 x position): row 0: position 0 (0x01); a run of
    # 1000 = 16 x 62 + 8: fillers 15, 15, 15, 15, 2 (0xf0 x 4, 0x20), then position 1001
    # (0x82); end. Row 1: a run of 241 = 16 x 15 + 1: 0xf0, then 0x12; end -> 11 bytes.
    # Partition 3: row 0: a run of 16 (0x10), then 0x01; end; row 1: end -> 4 bytes.
    # Every other partition: 2 ends. 11 steps (protocol 3's fillers of 16: 82).
    assert job.sparse and job.steps == 11
    raw = np.zeros((11, 16), np.uint8)
    raw[:, :8] = job.words_a[3:].view(np.uint8).reshape(11, 8)  # after header and bias
    raw[:, 8:] = job.words_b.view(np.uint8).reshape(11, 8)
    assert list(raw[:, 0]) == [0x01, 0xF0, 0xF0, 0xF0, 0xF0, 0x20, 0x82, 0, 0xF0, 0x12, 0]
    assert list(raw[:, 3]) == [0x10, 0x01, 0, 0] + [0] * 7
    assert not raw[:, [1, 2, *range(4, 16)]].any()


def test_word_counts_and_trips_of_a_pool():
    """3 channels 6x6 after a conv, max-pool 2x2 stride 2."""
    codes = np.ones((3, 1, 1, 1), np.uint8)
    attrs = {
        "kernel": [1, 1],
        "strides": [1, 1],
        "pads": [0, 0, 0, 0],
        "dilations": [1, 1],
        "groups": 1,
    }
    conv = _layer("c", "conv", (1, 6, 6), (3, 6, 6), codes, [1], [0, 0, 0], [1], attrs=attrs)
    pool = Layer(
        "p",
        "maxpool",
        (3, 6, 6),
        (3, 3, 3),
        attrs={"kernel": [2, 2], "strides": [2, 2], "pads": [0, 0, 0, 0]},
    )
    books = {
        "input": Codebook("input", np.array([1]), 1.0, False, np.zeros(0)),
        "c": Codebook("c", np.array([1]), 1.0, False),
    }
    step = plan_model(Model("p", (1, 6, 6), [conv, pool], books)).steps[1]
    # map: 3 channels x 2 x 2 blocks = 12 words; answer: 3 x 1 x 1 = 3; no constants
    assert step.map_words == 12 and step.out_words == 3 and step.fields["const_words"] == 0
    assert step.stream_a(np.zeros(12, np.uint64)).size == 8 + 12 + 1
    # per output block: region rows 3*2 + 2 = 8, at most ceil(8/4) = 2 per bank; columns
    # 8 -> ceil((8 + 3) / 4) = 3 words; ceil(2 * 3 / 2) = 3 cycles. A channel costs
    # max(1 block x 3, the next plane's 4 words) = 4; the last one 3. The checks' quotients
    # take one trip per bit of their 16-bit operands.
    assert step.loop_log() == [
        ("DESCRIPTOR", 8),
        ("QUOTIENTS", 16),
        ("PLANE", 4),
        ("POOL", 4),
        ("POOL", 4),
        ("POOL", 3),
    ]


def test_the_kernel_answers_the_worked_step_as_worked_out_by_hand():
    from kcnn.sim.csim import CsimKernel

    step = plan_model(worked_fc_model(), BuildParams(STREAMS=2)).first
    a = np.array(WORKED_A, np.uint64)
    b = np.array(WORKED_B, np.uint64)
    a_last = np.zeros(a.size, np.uint8)
    a_last[-1] = 1
    b_last = np.ones(1, np.uint8)
    out, res, log = CsimKernel(BuildParams(STREAMS=2)).run_words(a, a_last, b, b_last, 4)
    assert [int(w) for w in out] == WORKED_ANSWER
    assert res["status"] == 0 and res["first_last"] == 1
    assert log == step.loop_log()


@pytest.mark.parametrize("width", [16, 13, 7, 34])
def test_an_f32_map_splits_into_its_even_and_odd_words_in_one_pass(width):
    """``pack_f32`` into a pair of slots (an F32 map split over streams A and B) writes the
    even and the odd words of the section exactly as the contiguous packing has them, the
    row padding included (rows whose width is not a multiple of 4 or 16)."""
    rng = np.random.default_rng(width)
    x = rng.standard_normal((3, 5, width)).astype(np.float32)
    whole = pack_f32(x)
    # slots full of garbage: every word must be written, the padding too
    even = np.full(whole.size // 2, 0xDEADBEEF, np.uint64)
    odd = np.full(whole.size // 2, 0xDEADBEEF, np.uint64)
    written = pack_f32(x, (even, odd))
    assert written[0] is even and written[1] is odd
    assert np.array_equal(even, whole[0::2]) and np.array_equal(odd, whole[1::2])


def test_the_map_share_on_b_is_an_f32_conv_with_two_streams():
    """Word w of an F32 map on stream w mod 2: B takes floor(map_words / 2) (A the extra word
    of an odd count); every other map, and any map with one stream, stays on A."""
    f32 = {"opcode": OPCODES["CONV"], "in_format": FORMATS["F32"], "map_words": 9}
    assert map_words_b(f32, 2) == 4 and map_words_b(f32, 1) == 0
    assert map_words_b({**f32, "in_format": FORMATS["BLOCKED"]}, 2) == 0
    assert map_words_b({**f32, "opcode": OPCODES["FC"]}, 2) == 0
