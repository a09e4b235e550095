"""The job packer: goldens, the generated header, the stored-form bits, kernel hygiene."""

import re
from pathlib import Path

import golden_jobs
import numpy as np
import pytest
from layer_cases import one_layer_model

from kcnn.jobs import (
    DESCRIPTOR_FIELDS,
    config_header,
    decode_descriptor,
    pack_codes,
    pack_descriptor,
    pack_int32,
    pack_layer,
    section_words,
    unpack_codes,
    unpack_int32,
)
from kcnn.report import weight_code_bits
from kcnn.tiler import stream_words

ROOT = Path(__file__).resolve().parents[1]
HLS = ROOT / "hls"


def test_config_header_is_current():
    assert (HLS / "kcnn_config.h").read_text() == config_header(), (
        "hls/kcnn_config.h is stale: run python -m kcnn.jobs > hls/kcnn_config.h"
    )


def test_golden_jobs_in_the_docs_and_vectors_are_current():
    text = golden_jobs.DOC.read_text()
    assert golden_jobs.doc_text(text) == text, "run python tests/golden_jobs.py"
    vectors = (golden_jobs.VECTORS / "golden.txt").read_text()
    assert vectors == "\n".join(golden_jobs.vector_lines()), "run python tests/golden_jobs.py"


def test_golden_hex_is_what_the_packer_makes():
    """Parse the hex back out of the doc: it must be the packer's words, word for word."""
    text = golden_jobs.DOC.read_text()
    for name, (pj, inputs, out) in golden_jobs.golden_jobs().items():
        block = text.split(f"<!-- golden:{name} -->")[1].split(f"<!-- /golden:{name} -->")[0]
        words = [int(w, 16) for w in re.findall(r"^([0-9a-f]{16})$", block, re.M)]
        expected = [*map(int, pj.constant), *map(int, inputs), *map(int, out)]
        assert words == expected, name
        assert decode_descriptor(pj.constant) == {k: pj.fields.get(k, 0) for k in DESCRIPTOR_FIELDS}


def test_descriptor_round_trip_and_limits():
    fields = {name: (1 << width) - 1 for name, (_, _, width) in DESCRIPTOR_FIELDS.items()}
    assert decode_descriptor(pack_descriptor(fields)) == fields
    from kcnn.errors import KcnnError

    with pytest.raises(KcnnError, match="channels"):
        pack_descriptor({"channels": 1 << 16})


def test_code_and_int32_packing():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 16, 37).astype(np.uint8)
    words = pack_codes(codes)
    assert (
        words.size == 3
        and int(words[0]) & 0xF == codes[0]
        and (int(words[0]) >> 4) & 0xF == codes[1]
    )
    assert np.array_equal(unpack_codes(words, 37), codes)
    values = np.array([-(2**31), 2**31 - 1, -1, 5, 0])
    words = pack_int32(values)
    assert int(words[0]) & 0xFFFFFFFF == 0x80000000 and words.size == 3
    assert np.array_equal(unpack_int32(words, 5), values)


@pytest.mark.parametrize("form", ["dense", "sparse"])
@pytest.mark.parametrize("op", ["conv", "fc"])
def test_weight_sections_sum_to_the_stored_form_bits(form, op):
    rng = np.random.default_rng(2)
    kwargs = {"op": op, "form": form, "c_out": 22, "weight_density": 0.15}
    if op == "conv":
        kwargs.update(c_in=4, groups=2, hw=(12, 9))
    else:
        kwargs.update(taps=150)
    model, layer = one_layer_model(rng, **kwargs)
    params = {"P": 4, "IN_DEPTH": 256, "W_DEPTH": 1200, "OUT_DEPTH": 64}
    packed = pack_layer(model, layer, 0, params)
    blocks = {}
    for pj in packed.jobs:
        blocks[pj.job.ch0] = pj
        assert 0 <= 64 * pj.sections["weights"] - pj.weight_bits < 64  # only last-word padding
    assert len(blocks) > 1 and len(packed.jobs) >= len(blocks)
    assert sum(pj.weight_bits for pj in blocks.values()) == weight_code_bits(layer)


def test_stream_words_is_the_packers_section_count():
    rng = np.random.default_rng(4)
    model, layer = one_layer_model(rng, form="sparse", c_out=9)
    for pj in pack_layer(model, layer, 0).jobs:
        words = stream_words(layer, pj.job, model.maps["input"].J, True)
        assert words == pj.sections == section_words(pj.fields)
        assert pj.constant.size == sum(
            words[k] for k in ("descriptor", "codebooks", "thresholds", "biases", "weights")
        )


# ---- the kernel headers stay synthesizable ---------------------------------------------

KERNEL_FILES = sorted(HLS.glob("kcnn_*.h")) + [HLS / "kcnn_top.cpp"]
FORBIDDEN = {
    r"\bnew\b": "dynamic memory",
    r"\bdelete\b": "dynamic memory",
    r"\b(malloc|calloc|realloc|free)\s*\(": "dynamic memory",
    r"std::": "STL / standard library",
    r"#include\s*<(vector|map|list|deque|string|memory|set|unordered_map|iostream)>": "STL",
    r"\bthrow\b|\btry\b": "exceptions",
    r"\bvirtual\b": "virtual functions",
}


def _strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def _synthesis_blocks(text):
    """The text of every ``#ifndef __SYNTHESIS__`` block (up to its #else / #endif)."""
    return re.findall(r"#ifndef __SYNTHESIS__\n(.*?)#(?:else|endif)", text, re.S)


@pytest.mark.parametrize("path", KERNEL_FILES, ids=lambda p: p.name)
def test_kernel_files_use_only_synthesizable_constructs(path):
    text = _strip_comments(path.read_text())
    guarded = "".join(_synthesis_blocks(text))
    body = text
    for block in _synthesis_blocks(text):
        body = body.replace(block, "")
    for pattern, what in FORBIDDEN.items():
        assert not re.search(pattern, body), f"{path.name}: {what} ({pattern})"
    # no recursion: no function calls itself
    for name in set(re.findall(r"^\w[\w:<>,\s&*]*?\b(\w+)\s*\([^;{]*\)\s*\{", body, re.M)):
        bodies = re.findall(rf"\b{name}\s*\([^;{{]*\)\s*\{{(.*?)^\}}", body, re.S | re.M)
        for inner in bodies:
            assert not re.search(rf"\b{name}\s*(<[^>]*>)?\s*\(", inner), f"{name} recursion"
    # __SYNTHESIS__ guards only around loop-trip counters and the C-sim entry points
    if "__SYNTHESIS__" in text:
        assert path.name in ("kcnn_types.h", "kcnn_top.h", "kcnn_top.cpp"), path.name
        for block in _synthesis_blocks(text):
            assert "trip" in block or 'extern "C"' in block or "stdint.h" in block, block
    assert "ifdef __SYNTHESIS__" not in text and guarded.count("acc_t") == 0


def test_kernels_include_types_without_a_path():
    for path in KERNEL_FILES:
        for include in re.findall(r'#include\s*[<"]([^>"]+)[>"]', path.read_text()):
            assert "/" not in include, f"{path.name} includes {include} with a path"
