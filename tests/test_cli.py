"""The command line end to end, in a subprocess as a user runs it."""

import json
import subprocess
import sys

import environments
import numpy as np
import pytest

environments.importorskip("onnxruntime")

import onnx  # noqa: E402
import onnx_cases  # noqa: E402


def kcnn(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "kcnn.cli", *map(str, args)], cwd=cwd, capture_output=True, text=True
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    model, x = onnx_cases.SUPPORTED["everything_op9"]()
    onnx.save(model, folder / "model.onnx")
    calib = np.random.default_rng(0).standard_normal((24, *x.shape[1:])).astype(np.float32)
    np.save(folder / "calib.npy", calib)
    return folder


def test_quantize_json_and_report_agree(files):
    out = kcnn(
        "quantize",
        "model.onnx",
        "--calib",
        "calib.npy",
        "-o",
        "m.kcnn",
        "--json",
        "--json-out",
        "q.json",
        "--weight-clusters",
        "8",
        cwd=files,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)  # exactly one JSON object, nothing else
    assert json.loads((files / "q.json").read_text()) == report
    assert report["counts_from"] == "float-cut"
    assert set(report["totals"]) >= {
        "compute_reduction",
        "storage_reduction_fp32",
        "storage_reduction_16bit",
        "dense_macs",
    }
    assert all(layer["K"] <= 8 for layer in report["layers"])
    assert "compute reduction" in out.stderr  # the table goes to stderr
    again = kcnn("report", "m.kcnn", "--json", cwd=files)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == report
    names = [h["op"] for h in report["host_ops"]]
    assert names == ["softmax"]  # the LRN runs on the fabric (exact cut points)


@pytest.mark.parametrize(
    "args,fragments",
    [
        (
            ["quantize", "missing.onnx", "--calib", "calib.npy", "-o", "x.kcnn"],
            ["missing.onnx", "no such"],
        ),
        (["quantize", "model.onnx", "--calib", "nothere.npy", "-o", "x.kcnn"], ["nothere.npy"]),
        (
            [
                "quantize",
                "model.onnx",
                "--calib",
                "calib.npy",
                "-o",
                "x.kcnn",
                "--density",
                "nosuch=0.5",
            ],
            ["nosuch", "density"],
        ),
        (["report", "calib.npy"], ["calib.npy", "not a zip"]),
    ],
)
def test_user_errors_are_one_line_without_traceback(files, args, fragments):
    out = kcnn(*args, cwd=files)
    assert out.returncode == 1
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    assert not (files / "x.kcnn").exists()  # nothing half-written


def test_debug_shows_the_traceback(files):
    out = kcnn("--debug", "report", "calib.npy", cwd=files)
    assert out.returncode != 0 and "Traceback" in out.stderr


def test_bad_calibration_shape_names_file_and_field(files):
    np.save(files / "wrong.npy", np.zeros((2, 5), np.float32))
    out = kcnn("quantize", "model.onnx", "--calib", "wrong.npy", "-o", "y.kcnn", cwd=files)
    assert out.returncode == 1
    assert "wrong.npy" in out.stderr and "'calibration'" in out.stderr


def test_missing_extra_is_named(files):
    # Hide onnx as if the `quantize` extra were not installed.
    code = (
        "import sys; sys.modules['onnx'] = None\n"
        "from kcnn.cli import main\n"
        "sys.exit(main(['quantize', 'model.onnx', '--calib', 'calib.npy', '-o', 'z.kcnn']))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=files, capture_output=True, text=True)
    assert out.returncode == 1
    assert "pip install 'kcnn[quantize]'" in out.stderr and "Traceback" not in out.stderr
    assert not (files / "z.kcnn").exists()
