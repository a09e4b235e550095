"""Golden jobs: three small hand-written integer layers (never a quantizer run), their job
words as committed in docs/job-format.md and the C++ testbench vectors in hls/vectors/.

Run ``python tests/golden_jobs.py`` to rewrite both after a deliberate format change; the
tests fail while either is stale.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np

from kcnn.jobs import (
    DESCRIPTOR_FIELDS,
    STATUS,
    job_transfers,
    pack_descriptor,
    pack_inputs,
    pack_layer,
    padded_input,
    probe_job,
    status_word,
)
from kcnn.kfile import Codebook, KcnnModel, QLayer
from kcnn.sim.engine import Simulator

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "job-format.md"
VECTORS = ROOT / "hls" / "vectors"


def _model(layer, aq, j_out_aq=None):
    maps = {"input": Codebook("input", np.array(aq), 0.5, False, boundaries=np.zeros(0))}
    if j_out_aq is not None:
        maps[layer.name] = Codebook(layer.name, np.array(j_out_aq), 0.25, False)
    return KcnnModel("golden", layer.in_shape, [layer], maps)


def golden_layers() -> dict:
    """``{name: (model, layer, input codes (1, ...))}``."""
    conv = QLayer(
        "conv",
        "conv",
        (2, 3, 3),
        (2, 2, 2),
        attrs={
            "kernel": [2, 2],
            "strides": [1, 1],
            "pads": [0, 0, 0, 0],
            "dilations": [1, 1],
            "groups": 1,
        },
        relu=True,
        in_map="input",
        out_map="conv",
        codes=np.array(
            [[[[1, 0], [2, 3]], [[0, 3], [1, 1]]], [[[2, 2], [0, 1]], [[3, 0], [0, 2]]]],
            np.uint8,
        ),
        wq=np.array([-5, 2, 7]),
        w_scale=0.1,
        bias=np.array([1, -2]),
        thresholds=np.array([4, 30]),
    )
    conv_in = np.array(
        [[[[1, 0, 2], [2, 1, 0], [0, 2, 2]], [[2, 2, 0], [0, 1, 1], [1, 0, 2]]]], np.uint8
    )
    fc_codes = np.zeros((3, 20), np.uint8)
    fc_codes[0, [0, 5, 19]] = [1, 2, 1]
    fc_codes[1, [17]] = [2]  # 17 zeros first: one filler entry, then gap 1
    fc_codes[2, :] = 0  # an empty row
    sparse_fc = QLayer(
        "fc_sparse",
        "fc",
        (20,),
        (3,),
        relu=True,
        in_map="input",
        out_map="fc_sparse",
        codes=fc_codes,
        wq=np.array([-9, 4]),
        w_scale=0.1,
        bias=np.array([0, 3, -1]),
        thresholds=np.array([6]),
        weight_form="sparse",
    )
    fc_in = np.array([[3, 1, 0, 0, 2, 1, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 3, 0, 1]], np.uint8)
    last = QLayer(
        "fc_last",
        "fc",
        (6,),
        (2,),
        in_map="input",
        out_map=None,
        codes=np.array([[1, 0, 1, 1, 0, 1], [0, 1, 1, 0, 1, 0]], np.uint8),
        wq=np.array([3]),
        w_scale=0.1,
        bias=np.array([5, -5]),
    )
    last_in = np.array([[1, 1, 0, 1, 1, 1]], np.uint8)
    return {
        "conv": (_model(conv, [3, 10], [2, 9]), conv, conv_in),
        "fc_sparse": (_model(sparse_fc, [1, 5, 12], [7]), sparse_fc, fc_in),
        "fc_last": (_model(last, [2]), last, last_in),
    }


def golden_jobs() -> dict:
    """``{name: (packed job, input words, expected output words)}`` (one job each)."""
    jobs = {}
    for name, (model, layer, codes) in golden_layers().items():
        packed = pack_layer(model, layer, 0)
        assert len(packed.jobs) == 1
        pj = packed.jobs[0]
        inputs = pack_inputs(padded_input(layer, codes[0]), pj.job)
        acc = Simulator(model).fabric_layer(layer, codes)[0]
        if layer.thresholds is None:
            from kcnn.jobs import pack_int32

            out = pack_int32(acc.astype(np.int64).reshape(-1))
        else:
            from kcnn.jobs import pack_codes

            out = pack_codes(np.searchsorted(layer.thresholds, acc, side="right").reshape(-1))
        jobs[name] = (pj, inputs, out)
    return jobs


def _hex(words) -> list[str]:
    return [f"{int(w):016x}" for w in words]


def doc_block(name: str) -> str:
    """The Markdown of one golden job (between its markers in docs/job-format.md)."""
    pj, inputs, out = golden_jobs()[name]
    lines = ["```text", "constant part (TLAST on the last word):"]
    lines += _hex(pj.constant)
    lines += ["inputs (TLAST on the last word):", *_hex(inputs)]
    lines += ["outputs (TLAST on the last word):", *_hex(out), "```", ""]
    lines += ["| field | value |", "|---|---|"]
    for field in DESCRIPTOR_FIELDS:
        lines.append(f"| {field} | {pj.fields.get(field, 0)} |")
    lines.append("")
    lines.append("| section | words |")
    lines.append("|---|---|")
    for section, words in pj.sections.items():
        lines.append(f"| {section} | {words} |")
    return "\n".join(lines)


def _marker(name):
    return f"<!-- golden:{name} -->", f"<!-- /golden:{name} -->"


def doc_text(text: str) -> str:
    """``text`` (the doc) with every golden block regenerated."""
    for name in golden_layers():
        start, end = _marker(name)
        pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
        text = pattern.sub(lambda _m, n=name, s=start, e=end: f"{s}\n{doc_block(n)}\n{e}", text)
    return text


def _job_lines(title, words, last, out_words, status=0):
    lines = [f"job {title}"]
    lines += [f"in {w} {int(b)}" for w, b in zip(_hex(words), last, strict=True)]
    n = len(out_words)
    lines += [f"out {w} {int(i == n - 1)}" for i, w in enumerate(_hex(out_words))]
    lines += [f"status {status}", "end"]
    return lines


def vector_lines(extra_jobs=()) -> list[str]:
    """Testbench vectors (default build parameters): the golden jobs, a probe, bad jobs."""
    from kcnn.config import ARITHMETIC_CONTRACT, BUILD_DEFAULTS
    from kcnn.jobs import MAGIC

    lines = ["# KCNN testbench vectors: generated by tests/golden_jobs.py, do not edit."]
    jobs = golden_jobs()
    for name, (pj, inputs, out) in jobs.items():
        words, last = job_transfers(pj, inputs)
        lines += _job_lines(name, words, last, out)
    b, c = BUILD_DEFAULTS, ARITHMETIC_CONTRACT
    info = [
        MAGIC,
        c["protocol"],
        b["P"]
        | c["K_MAX"] << 16
        | c["J_MAX"] << 24
        | c["ACC_BITS"] << 32
        | c["bw"] << 40
        | c["ba"] << 48,
        b["IN_DEPTH"] | b["W_DEPTH"] << 21 | b["OUT_DEPTH"] << 42,
    ]
    probe = probe_job()
    lines += _job_lines("probe", probe, np.eye(1, 8, 7, dtype=np.uint8)[0], info)
    pj, inputs, out = jobs["fc_sparse"]
    const_last = np.zeros(pj.constant.size, np.uint8)
    const_last[-1] = 1
    bad = pj.constant.copy()
    bad[:8] = pack_descriptor({**pj.fields, "magic": 0})
    lines += _job_lines("bad_magic", bad, const_last, [status_word(STATUS["BAD_MAGIC"])], 1)
    words, last = job_transfers(pj, inputs)
    last[pj.constant.size - 1] = 0
    lines += _job_lines(
        "missing_tlast",
        words,
        last,
        [status_word(STATUS["MISSING_TLAST"])],
        STATUS["MISSING_TLAST"],
    )
    lines += _job_lines("fc_sparse_again", *job_transfers(pj, inputs), out)
    for job in extra_jobs:
        lines += job
    return lines + [""]


def write_all() -> None:
    DOC.write_text(doc_text(DOC.read_text()))
    VECTORS.mkdir(parents=True, exist_ok=True)
    (VECTORS / "golden.txt").write_text("\n".join(vector_lines()))


if __name__ == "__main__":
    sys.exit(write_all())
