"""The one API and the run / eval / report commands built on it."""

import json
import subprocess
import sys

import environments
import numpy as np
import pytest

ort = environments.importorskip("onnxruntime")

import onnx  # noqa: E402
import onnx_cases  # noqa: E402

from kcnn import Accelerator, KcnnError  # noqa: E402
from kcnn.kfile import load  # noqa: E402
from kcnn.quantizer import quantize  # noqa: E402
from kcnn.sim.engine import run  # noqa: E402


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("acc")
    model, x = onnx_cases.SUPPORTED["everything_op13"]()
    onnx.save(model, folder / "model.onnx")
    rng = np.random.default_rng(0)
    calib = rng.standard_normal((32, *x.shape[1:])).astype(np.float32)
    quantize(model, calib, log=None).save(folder / "m.kcnn")
    test = rng.standard_normal((10, *x.shape[1:])).astype(np.float32)
    np.save(folder / "x.npy", test)
    np.savez(folder / "data.npz", x=test, y=rng.integers(0, 5, 10))
    return folder


def kcnn(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "kcnn.cli", *map(str, args)], cwd=cwd, capture_output=True, text=True
    )


def test_api_runs_the_simulator(files):
    x = np.load(files / "x.npy")
    with Accelerator(files / "m.kcnn", backend="auto") as acc:
        assert acc.backend == "sim" and "no PYNQ board" in acc.reason
        out, logits = acc.run(x), acc.run(x, logits=True)
        expected_out, expected_logits, _ = run(acc.model, x)
        assert np.array_equal(out, expected_out) and np.array_equal(logits, expected_logits)
        assert np.allclose(out.sum(axis=1), 1.0)  # the trailing Softmax is applied
        assert np.array_equal(acc.predict(x), logits.argmax(axis=1))
        trace = acc.trace(x)
        assert list(trace)[0] == "input" and trace[list(trace)[-2]].dtype == np.uint8
        est = acc.estimate()
        assert est["fps"] > 0 and est["kind"].startswith("estimate")
        assert "default" in est["params_from"]  # the simulator has no build parameters
    with pytest.raises(KcnnError, match="closed"):
        acc.run(x)


@pytest.mark.parametrize("backend", ["board", "fpga"])
def test_unavailable_backends_are_clear_errors(files, backend):
    with pytest.raises(KcnnError) as info:
        Accelerator(files / "m.kcnn", backend=backend)
    assert info.value.field == "backend"


def test_missing_batch_dimension_is_an_error(files):
    x = np.load(files / "x.npy")
    with (
        Accelerator(files / "m.kcnn", backend="sim") as acc,
        pytest.raises(KcnnError, match="batch"),
    ):
        acc.run(x[0])


def test_cli_run_prints_and_writes(files):
    out = kcnn("run", "m.kcnn", "x.npy", cwd=files)
    assert out.returncode == 0, out.stderr
    assert "backend sim" in out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 10 and lines[3].split("\t")[0] == "3"
    out = kcnn("run", "m.kcnn", "x.npy", "-o", "y.npy", "--logits", "--backend", "sim", cwd=files)
    assert out.returncode == 0, out.stderr
    y = np.load(files / "y.npy")
    assert y.dtype == np.float64 and y.shape == (10, 5)
    with Accelerator(files / "m.kcnn") as acc:
        assert np.array_equal(y, acc.run(np.load(files / "x.npy"), logits=True))


def test_cli_eval_json(files):
    out = kcnn(
        "eval",
        "m.kcnn",
        "--onnx",
        "model.onnx",
        "--data",
        "data.npz",
        "--json",
        "--counts",
        cwd=files,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["n"] == 10 and result["backend"] == "sim"
    assert "compute_reduction" in result["totals"]
    # The same figures counted here, with onnxruntime called directly.
    with np.load(files / "data.npz") as data:
        x, y = data["x"], data["y"]
    session = ort.InferenceSession(str(files / "model.onnx"), providers=["CPUExecutionProvider"])
    float_labels = session.run(None, {session.get_inputs()[0].name: x})[0].argmax(axis=1)
    kcnn_labels = run(load(files / "m.kcnn"), x)[1].argmax(axis=1)
    assert result["float_accuracy"] == np.mean(float_labels == y)
    assert result["kcnn_accuracy"] == np.mean(kcnn_labels == y)
    assert result["agreement"] == np.mean(kcnn_labels == float_labels)
    # Better than a model that always answers the float model's most frequent class.
    assert result["agreement"] > np.bincount(float_labels).max() / len(x)


def test_cli_report_with_inputs_counts_on_the_simulator(files):
    out = kcnn("report", "m.kcnn", "--input", "x.npy", "--estimate", "--json", cwd=files)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["counts_from"] == "sim" and report["images"] == 10
    est = report["estimate"]
    assert {"fps", "fabric_s", "host_s", "resources", "baselines", "steps"} <= set(est)
    assert set(est["resources"]["utilization"]) == {"lut", "ff", "bram36", "dsp48"}
    assert {"dense_8bit", "limit"} == set(est["baselines"])
    assert {"name", "jobs", "cycles", "stream_bits", "bound"} <= set(est["steps"][0])
    assert "ESTIMATED" in out.stderr
