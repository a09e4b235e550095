"""The C-simulation of the HLS kernel against the simulator, bit for bit.

Each build-parameter set is compiled once per session (and cached on disk by source hash).
"""

import zlib

import environments
import numpy as np
import pytest
from layer_cases import one_layer_model, random_codes

from kcnn.errors import KcnnError
from kcnn.jobs import (
    DESCRIPTOR_FIELDS,
    STATUS,
    decode_info,
    decode_status,
    fabric_pools,
    job_transfers,
    pack_descriptor,
    pack_inputs,
    pack_layer,
    padded_input,
    probe_job,
)
from kcnn.sim import csim
from kcnn.sim.engine import Simulator

try:
    csim.compiler()
    csim.ap_types_dir()
except KcnnError as exc:  # depends on the machine
    environments.skip_module(str(exc))

SMALL = {"P": 4, "IN_DEPTH": 512, "W_DEPTH": 2048, "OUT_DEPTH": 256}
PARAMS = [None, SMALL]


@pytest.fixture(scope="module", params=[0, 1], ids=["default", "small"])
def params(request):
    return PARAMS[request.param]


def expected(model, layer, codes):
    acc = Simulator(model).fabric_layer(layer, codes)
    if layer.thresholds is None:
        return acc.astype(np.int64)
    return np.searchsorted(layer.thresholds, acc, side="right").astype(np.uint8)


def check_layer(model, layer, codes, params):
    engine = csim.CsimEngine(model, params)
    got = engine.fabric(layer.name, codes)
    want = expected(model, layer, codes)
    assert got.dtype == want.dtype
    assert np.array_equal(got, want)
    return engine


CASES = {
    "conv3x3": {},
    "conv_sparse": {"form": "sparse", "weight_density": 0.2},
    "conv_last": {"last": True},
    "conv_stride_dilation": {
        "c_out": 8,
        "groups": 2,
        "strides": (2, 1),
        "pads": (0, 1, 2, 0),
        "dilations": (1, 2),
        "kernel": (3, 2),
        "hw": (9, 7),
    },
    "depthwise": {"c_in": 6, "c_out": 6, "groups": 6, "form": "sparse"},
    "depthwise_multiplier": {"c_in": 3, "c_out": 6, "groups": 3, "strides": (2, 2)},
    "conv1x1_signed_input": {"kernel": (1, 1), "pads": (0, 0, 0, 0), "signed_in": True},
    "conv_many_channels": {"c_in": 3, "c_out": 37, "hw": (5, 6), "form": "sparse"},
    "fc": {"op": "fc", "taps": 70, "c_out": 21},
    "fc_sparse_last": {"op": "fc", "taps": 300, "c_out": 9, "form": "sparse", "last": True},
    "fc_sparse_long_gaps": {
        "op": "fc",
        "taps": 200,
        "c_out": 5,
        "form": "sparse",
        "weight_density": 0.03,
    },
    "k_j_max": {"K": 16, "J": 16, "J_out": 16, "c_out": 9},
    "k_j_max_fc_sparse": {"op": "fc", "K": 16, "J": 16, "J_out": 16, "form": "sparse"},
    "k1_all_zero_weights": {"K": 1, "c_out": 5},
    "j_out_2": {"J_out": 2, "J": 2},
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_random_layers_equal_the_simulator(name, params):
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    model, layer = one_layer_model(rng, **CASES[name])
    codes = random_codes(rng, layer, 2, model.maps["input"].J)
    check_layer(model, layer, codes, params)


@pytest.mark.parametrize("zero_fraction", [0.0, 1.0])
@pytest.mark.parametrize("form", ["dense", "sparse"])
def test_all_zero_and_no_zero_inputs(zero_fraction, form, params):
    rng = np.random.default_rng(7)
    model, layer = one_layer_model(rng, form=form, c_out=7)
    codes = random_codes(rng, layer, 1, model.maps["input"].J, zero_fraction)
    check_layer(model, layer, codes, params)


def test_jobs_at_the_buffer_limits():
    rng = np.random.default_rng(3)
    # fc: 512 inputs fill IN_DEPTH; 4 channels x 512 weights fill W_DEPTH and a PE's bank
    model, layer = one_layer_model(rng, "fc", taps=512, c_out=10)
    engine = check_layer(model, layer, random_codes(rng, layer, 1, 5), SMALL)
    jobs = engine.packed["L"].jobs
    assert max(pj.job.in_codes for pj in jobs) == SMALL["IN_DEPTH"]
    assert max(pj.job.weight_codes for pj in jobs) == SMALL["W_DEPTH"]
    # conv: 8 channels x 4 rows x 8 columns fill OUT_DEPTH = 256
    model, layer = one_layer_model(rng, c_in=2, c_out=8, hw=(8, 8), form="sparse")
    engine = check_layer(model, layer, random_codes(rng, layer, 1, 5), SMALL)
    assert max(pj.job.outputs for pj in engine.packed["L"].jobs) == SMALL["OUT_DEPTH"]
    # a window that fits W_DEPTH but not one PE's bank is a packer error naming the limit
    model, layer = one_layer_model(rng, "fc", taps=513, c_out=1)
    with pytest.raises(KcnnError) as info:
        pack_layer(model, layer, 0, SMALL)
    assert info.value.field in ("W_DEPTH", "IN_DEPTH") and info.value.layer == "L"


@pytest.mark.parametrize("sign", [1, -1])
def test_layers_at_the_accumulator_bound(sign, params):
    rng = np.random.default_rng(11)
    model, layer = one_layer_model(rng, "fc", taps=200, c_out=3, K=2, J=2, last=True)
    layer.wq = np.array([127 * sign])
    model.maps["input"].aq = np.array([255])
    layer.codes[:] = 1
    top = 200 * 127 * 255
    layer.bias = np.array([sign * (2**31 - 1 - top), -sign * (2**31 - 1 - top), 0])
    codes = np.ones((1, 200), np.uint8)
    engine = check_layer(model, layer, codes, params)
    acc = engine.fabric("L", codes)
    assert acc[0, 0] == sign * (2**31 - 1)


def test_probe_decodes_to_the_shared_configuration(params):
    from kcnn.config import ARITHMETIC_CONTRACT, BUILD_DEFAULTS

    kern = csim.kernel(params)
    words = probe_job()
    out, res, _ = kern.run_words(words, np.eye(1, 8, 7, dtype=np.uint8)[0])
    assert res["status"] == 0 and res["out_words"] == 4 and res["first_last"] == 3
    info = decode_info(out)
    assert info == decode_info(res["info"])
    build = {**BUILD_DEFAULTS, **(params or {})}
    assert info["magic"] == 0x4E4E434B and info["protocol"] == ARITHMETIC_CONTRACT["protocol"]
    for key in ("K_MAX", "J_MAX", "ACC_BITS", "bw", "ba"):
        assert info[key] == ARITHMETIC_CONTRACT[key]
    for key in ("P", "IN_DEPTH", "W_DEPTH", "OUT_DEPTH"):
        assert info[key] == build[key]


def _good_job(params):
    rng = np.random.default_rng(5)
    model, layer = one_layer_model(rng, form="sparse", c_out=5)
    packed = pack_layer(model, layer, 0, params)
    codes = random_codes(rng, layer, 1, model.maps["input"].J)
    pj = packed.jobs[0]
    return pj, pack_inputs(padded_input(layer, codes[0]), pj.job)


def _with_field(pj, **changes):
    fields = {**pj.fields, **changes}
    words = pj.constant.copy()
    words[:8] = pack_descriptor(fields)
    return words


def _bad_cases(params):
    pj, inputs = _good_job(params)
    const_last = np.zeros(pj.constant.size, np.uint8)
    const_last[-1] = 1
    good_words, good_last = job_transfers(pj, inputs)
    cases = {}
    cases["BAD_MAGIC"] = (_with_field(pj, magic=0x12345678), const_last)
    cases["BAD_VERSION"] = (_with_field(pj, version=99), const_last)
    cases["BAD_OPCODE"] = (_with_field(pj, opcode=7), const_last)
    cases["COUNT_ABOVE_MAX"] = (_with_field(pj, k1=16), const_last)
    cases["COUNT_ABOVE_MAX/J"] = (_with_field(pj, j1=200), const_last)
    cases["COUNT_ABOVE_MAX/out"] = (_with_field(pj, out_rows=60000), const_last)
    cases["BAD_GEOMETRY"] = (_with_field(pj, const_words=pj.fields["const_words"] + 1), const_last)
    early = const_last.copy()
    early[3] = 1  # TLAST inside the descriptor
    cases["EARLY_TLAST"] = (pj.constant[:4], early[:4])
    early = const_last.copy()
    early[-2], early[-1] = 1, 0  # TLAST one word before the end of the constant part
    cases["EARLY_TLAST/const"] = (pj.constant[:-1], early[:-1])
    early_in = good_last.copy()
    early_in[pj.constant.size] = 1  # TLAST on the first input word
    cases["EARLY_TLAST/inputs"] = (
        good_words[: pj.constant.size + 1],
        early_in[: pj.constant.size + 1],
    )
    missing = good_last.copy()
    missing[pj.constant.size - 1] = 0  # the constant part's TLAST is missing
    cases["MISSING_TLAST"] = (good_words, missing)
    # the input transfer's TLAST is missing: the kernel reads on to the next TLAST
    extra = np.concatenate([good_words, np.zeros(3, np.uint64)])
    missing = np.concatenate([good_last, np.zeros(3, np.uint8)])
    missing[good_words.size - 1], missing[-1] = 0, 1
    cases["MISSING_TLAST/inputs"] = (extra, missing)
    words = pj.constant.copy()
    words[-1] = np.uint64(0xFFFFFFFFFFFFFFFF)  # entries that leave their rows
    cases["BAD_SPARSE"] = (words, const_last)
    return pj, inputs, cases


def test_bad_jobs_answer_one_status_word_and_the_next_job_runs(params):
    kern = csim.kernel(params)
    pj, inputs, cases = _bad_cases(params)
    good = kern.run_job(pj, inputs)[0]
    for label, (words, last) in cases.items():
        name = label.split("/")[0]
        out, res, _ = kern.run_words(words, last)
        assert res["reads"] == words.size == res["consumed"], label  # up to its first TLAST
        assert res["out_words"] == 1 and res["first_last"] == 0 and res["lasts"] == 1, label
        assert res["status"] == STATUS[name], label
        assert decode_status(out[0]) == name, label
        # the next job succeeds and gives the same outputs as before
        assert np.array_equal(kern.run_job(pj, inputs)[0], good), label


def test_the_wrapper_refuses_wrong_counts(monkeypatch):
    kern = csim.kernel()
    pj, inputs = _good_job(None)
    with pytest.raises(KcnnError, match="MISSING_TLAST"):
        kern.run_job(pj, np.concatenate([inputs, inputs[:1]]))  # one word too many
    real = kern.run_words

    def faulty(**change):
        def run(words, last, cap=None):
            out, res, trips = real(words, last, cap)
            return out, {**res, **change}, trips

        return run

    # what the open-source hls_stream hides: reads past the end, too few or too many
    # output words, TLAST elsewhere than on the last word
    for change, message in [
        ({"reads": pj.constant.size + inputs.size + 1}, "read"),
        ({"consumed": pj.constant.size}, "read"),
        ({"out_words": pj.output_words + 1}, "output words"),
        ({"first_last": 0}, "TLAST"),
        ({"lasts": 2}, "TLAST"),
        ({"keep_strb_ones": 0}, "keep"),
    ]:
        monkeypatch.setattr(kern, "run_words", faulty(**change))
        with pytest.raises(KcnnError, match=message):
            kern.run_job(pj, inputs)
    monkeypatch.setattr(kern, "run_words", real)


def test_cpp_descriptor_parser_equals_python(params):
    pj, _ = _good_job(params)
    fields = csim.kernel(params).decode_descriptor(pj.constant)
    assert fields == [pj.fields.get(name, 0) for name in DESCRIPTOR_FIELDS]


def test_missing_compiler_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("CXX", "no-such-g++")
    with pytest.raises(KcnnError, match="no-such-g\\+\\+"):
        csim.compiler()


@pytest.fixture(scope="module")
def quantized(tmp_path_factory):
    pytest.importorskip("onnxruntime")
    import onnx_cases

    from kcnn.quantizer import quantize

    folder = tmp_path_factory.mktemp("csim_models")
    files = {}
    for name in ("everything_op13", "conv_groups_op13", "conv_maxpool_relu_op13"):
        model, x = onnx_cases.SUPPORTED[name]()
        rng = np.random.default_rng(1)
        calib = rng.standard_normal((16, *x.shape[1:])).astype(np.float32)
        path = folder / f"{name}.kcnn"
        quantize(model, calib, log=None).save(path)
        files[name] = (path, rng.standard_normal((3, *x.shape[1:])).astype(np.float32))
    return files


@pytest.mark.parametrize("name", ["everything_op13", "conv_groups_op13", "conv_maxpool_relu_op13"])
def test_quantized_models_trace_equal(quantized, name, params):
    from kcnn import Accelerator

    path, x = quantized[name]
    with Accelerator(path, backend="sim") as sim, Accelerator(path, "csim", params) as hw:
        assert hw.backend == "csim" and hw.reason == "requested"
        want, got = sim.trace(x), hw.trace(x)
        assert list(got) == list(want)
        for key in want:
            assert got[key].dtype == want[key].dtype, key
            assert np.array_equal(got[key], want[key]), key
        assert np.array_equal(hw.run(x, logits=True), sim.run(x, logits=True))
        assert np.array_equal(hw.run(x), sim.run(x))
        if name != "conv_groups_op13":  # models with a max-pool after a conv run it on the fabric
            assert fabric_pools(hw.model)


def _check_trips(engine, model, layer, codes):
    """Per job: the cycle model's phases == the C-sim's loop trips, with the exact number
    of non-zero activation taps from the codes."""
    from kcnn.estimate import job_phases, nonzero_taps, pool_phases
    from kcnn.tiler import stream_words

    packed = engine.packed[layer.name]
    per_job = engine.job_trips[layer.name]
    padded = padded_input(layer, codes[0])
    assert len(per_job) == len(packed.jobs)
    for pj, trips in zip(packed.jobs, per_job, strict=True):
        if layer.op == "maxpool":
            phase = pool_phases(pj.job, pj.sections)
        else:
            words = stream_words(layer, pj.job, model.maps[layer.in_map].J, not packed.acc_out)
            assert words == pj.sections
            taps = nonzero_taps(layer, pj.job, padded)
            phase = job_phases(layer, pj.job, words, engine.params["P"], taps)
        assert phase.pop("stream_in") == trips.pop("words_in")
        assert phase.pop("stream_out") == trips.pop("words_out")
        assert phase == trips


@pytest.mark.parametrize(
    "name",
    [
        "conv3x3",
        "conv_sparse",
        "conv_stride_dilation",
        "depthwise",
        "conv_many_channels",
        "fc_sparse_last",
    ],
)
def test_cycle_model_equals_the_csim_loop_trips(name, params):
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    model, layer = one_layer_model(rng, **CASES[name])
    codes = random_codes(rng, layer, 1, model.maps["input"].J)
    engine = check_layer(model, layer, codes, params)
    _check_trips(engine, model, layer, codes)


def test_cycle_model_of_fabric_pools(quantized, params):
    from kcnn import Accelerator

    path, x = quantized["conv_maxpool_relu_op13"]
    with Accelerator(path, "csim", params) as hw:
        trace = hw.trace(x[:1])
        engine = hw._engine
        names = [layer.name for layer in hw.model.layers]
        for name in engine.packed:
            layer = hw.model.layer(name)
            before = names[names.index(name) - 1] if names.index(name) else "input"
            codes = trace[before]
            if layer.op == "fc":
                codes = codes.reshape(1, -1)
            _check_trips(engine, hw.model, layer, codes)


def test_golden_jobs_decode_and_answer_in_the_csim():
    import golden_jobs

    kern = csim.kernel()
    for name, (pj, inputs, out) in golden_jobs.golden_jobs().items():
        assert kern.decode_descriptor(pj.constant) == [
            pj.fields.get(field, 0) for field in DESCRIPTOR_FIELDS
        ], name
        got, _ = kern.run_job(pj, inputs)
        assert np.array_equal(got, out), name


def _dump_random_vectors(path):
    """Jobs of random layers (both output kinds, both weight forms) as testbench vectors,
    expected outputs from the simulator."""
    import golden_jobs

    from kcnn.jobs import pack_codes, pack_int32

    lines = ["# random layers"]
    rng = np.random.default_rng(21)
    for name in ("conv_sparse", "conv_stride_dilation", "fc_sparse_last", "k_j_max", "depthwise"):
        model, layer = one_layer_model(rng, **CASES[name])
        codes = random_codes(rng, layer, 1, model.maps["input"].J)
        want = expected(model, layer, codes)[0]
        want = want.reshape(want.shape[0], -1) if layer.op == "conv" else want.reshape(-1, 1)
        packed = pack_layer(model, layer, 0)
        padded = padded_input(layer, codes[0])
        for pj in packed.jobs:
            job = pj.job
            rows = want[job.ch0 : job.ch0 + job.channels]
            if layer.op == "conv":
                ow = layer.out_shape[2]
                rows = rows[:, job.row0 * ow : (job.row0 + job.rows) * ow]
            out = pack_int32(rows.reshape(-1)) if packed.acc_out else pack_codes(rows)
            words, last = job_transfers(pj, pack_inputs(padded, job))
            lines += golden_jobs._job_lines(f"{name}_{pj.fields['job_index']}", words, last, out)
    path.write_text("\n".join(lines + [""]))


@pytest.mark.parametrize("sanitize", [False, True], ids=["plain", "asan_ubsan"])
def test_standalone_testbench_on_job_vectors(sanitize, tmp_path):
    import subprocess

    extra = tmp_path / "random.txt"
    _dump_random_vectors(extra)
    tb = csim.build_testbench(None, sanitize=sanitize)
    env = {"ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0", "UBSAN_OPTIONS": "print_stacktrace=1"}
    import os

    done = subprocess.run(
        [str(tb), "vectors/golden.txt", str(extra)],
        cwd=csim.hls_dir(),
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert " 0 failed" in done.stdout and "runtime error" not in done.stderr
    assert "ERROR: AddressSanitizer" not in done.stderr


def test_clang_tidy_is_clean_on_the_kernels():
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    tidy = shutil.which("clang-tidy") or shutil.which(
        "clang-tidy", path=str(Path(sys.executable).parent)
    )
    if tidy is None:
        pytest.skip("clang-tidy is not installed (pip install clang-tidy)")
    folder = Path(__file__).resolve().parents[1] / "hls"
    done = subprocess.run(
        [
            tidy,
            "--quiet",
            f"--config-file={folder / '.clang-tidy'}",
            "kcnn_top.cpp",
            "tb_kcnn.cpp",
            "--",
            "-std=c++14",
            "-isystem",
            str(csim.ap_types_dir()),
            "-isystem",
            "csim_include",
            "-I.",
            "-Wno-unknown-pragmas",
        ],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0 and "warning:" not in done.stdout, done.stdout + done.stderr


@pytest.mark.parametrize("name", ["lenet5", "alexnet_mnist"])
def test_reference_models_csim_equals_sim(name, tmp_path):
    """`--backend csim` equals `--backend sim` bit for bit on a few test digits."""
    pytest.importorskip("onnxruntime")
    from kcnn import Accelerator, models
    from kcnn.quantizer import quantize

    model = quantize(models.model_path(name), models.calibration_digits(256), log=None)
    path = model.save(tmp_path / f"{name}.kcnn")
    x = models.digits("test")[0][:3]
    with Accelerator(path, backend="csim") as hw, Accelerator(path, backend="sim") as sw:
        got, want = hw.trace(x), sw.trace(x)
        assert list(got) == list(want)
        for layer_name in want:
            assert np.array_equal(got[layer_name], want[layer_name]), layer_name
        assert np.array_equal(hw.run(x), sw.run(x))
