"""Output paths (issue 13, point 1): devices and FIFOs are streamed to, never replaced;
an output is never an input or another output; a command writes all its outputs or none.

Every special file is made under ``tmp_path`` (CI runs as root: the real /dev is never
touched)."""

import io
import json
import os
import shutil
import stat
import subprocess
import sys
import threading

import numpy as np
import pytest

from kcnn import KcnnError, models
from kcnn.files import check_outputs, plan_output, write_outputs


def kcnn(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "kcnn.cli", *map(str, args)], cwd=cwd, capture_output=True
    )


@pytest.fixture
def files(tmp_path):
    shutil.copy(models.table_path("lenet5"), tmp_path / "m.kcnn")
    np.save(tmp_path / "x.npy", models.digits("test")[0][:3])
    return tmp_path


def one_line_error(out, *fragments):
    """Exit 1 and one error line, the last (progress and tables may come before it)."""
    err = out.stderr.decode()
    assert out.returncode == 1, err
    lines = err.strip().splitlines()
    assert "Traceback" not in err and sum("error:" in line for line in lines) == 1, err
    assert lines[-1].startswith("kcnn ") and "error:" in lines[-1], err
    for fragment in fragments:
        assert fragment in lines[-1], err


def device(path, minor):
    """A character device like /dev/null (1, 3) or /dev/full (1, 7), or skip."""
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, minor))
    except PermissionError:
        pytest.skip("mknod is not permitted here")
    return path


def read_fifo(path, sink):
    def reader():
        with open(path, "rb") as handle:
            sink.append(handle.read())

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    return thread


def test_fifo_and_a_link_to_it_are_streamed_to(files):
    fifo = files / "fifo"
    os.mkfifo(fifo)
    (files / "stdout").symlink_to(fifo)  # like /dev/stdout -> a pipe
    for name in ("fifo", "stdout"):
        sink = []
        thread = read_fifo(fifo, sink)
        out = kcnn("run", "m.kcnn", "x.npy", "-o", name, cwd=files)
        thread.join(30)
        assert out.returncode == 0, out.stderr
        assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
        assert np.load(io.BytesIO(sink[0])).shape == (3, 10)
    assert (files / "stdout").is_symlink()


def test_device_is_streamed_to_not_replaced(files):
    null = device(files / "null", 3)
    out = kcnn("run", "m.kcnn", "x.npy", "-o", "null", cwd=files)
    assert out.returncode == 0, out.stderr
    assert stat.S_ISCHR(os.lstat(null).st_mode)


def test_dash_is_standard_output(files):
    out = kcnn("run", "m.kcnn", "x.npy", "-o", "-", cwd=files)
    assert out.returncode == 0, out.stderr
    assert np.load(io.BytesIO(out.stdout)).shape == (3, 10)
    one_line_error(kcnn("report", "m.kcnn", "--json", "--json-out", "-", cwd=files), "--json")


def test_a_link_to_a_file_is_kept_and_its_file_replaced(files):
    (files / "real.npy").write_bytes(b"old")
    (files / "link.npy").symlink_to("real.npy")
    out = kcnn("run", "m.kcnn", "x.npy", "-o", "link.npy", cwd=files)
    assert out.returncode == 0, out.stderr
    assert (files / "link.npy").is_symlink()
    assert np.load(files / "real.npy").shape == (3, 10)


@pytest.mark.parametrize(
    "args",
    [
        ["run", "m.kcnn", "x.npy", "-o", "x.npy"],
        ["run", "m.kcnn", "x.npy", "-o", "m.kcnn"],
        ["run", "m.kcnn", "x.npy", "-o", "hard.npy"],  # a hard link to x.npy
        ["run", "m.kcnn", "x.npy", "-o", "./sub/../x.npy"],
        ["quantize", "m.kcnn", "--calib", "x.npy", "-o", "m.kcnn"],
        ["quantize", "m.kcnn", "--calib", "x.npy", "-o", "x.npy"],
        ["quantize", "m.kcnn", "--calib", "x.npy", "-o", "new.kcnn", "--json-out", "new.kcnn"],
        ["report", "m.kcnn", "--json-out", "m.kcnn"],
        ["report", "m.kcnn", "--input", "x.npy", "--json-out", "x.npy"],
    ],
)
def test_an_output_that_is_an_input_or_another_output_is_refused(files, args):
    (files / "sub").mkdir()
    os.link(files / "x.npy", files / "hard.npy")
    before = {p.name: p.read_bytes() for p in files.iterdir() if p.is_file()}
    one_line_error(kcnn(*args, cwd=files), "same file as the")
    after = {p.name: p.read_bytes() for p in files.iterdir() if p.is_file()}
    assert after == before


@pytest.mark.parametrize(
    "target,fragment",
    [("sub", "is a folder"), ("x.npy/out.npy", "not a folder"), ("m.kcnn/a/b.npy", "not a folder")],
)
def test_an_impossible_output_is_one_line_before_any_work(files, target, fragment):
    (files / "sub").mkdir()
    one_line_error(kcnn("run", "m.kcnn", "x.npy", "-o", target, cwd=files), fragment)


def test_a_failing_write_is_one_line_and_leaves_no_output(files):
    device(files / "full", 7)  # every write fails with ENOSPC
    out = kcnn("report", "m.kcnn", "--json-out", "full", cwd=files)
    one_line_error(out, "cannot write", "full")


def test_json_out_failing_leaves_no_kcnn(files, tmp_path):
    pytest.importorskip("onnxruntime")
    import onnx
    import onnx_cases

    model, x = onnx_cases.SUPPORTED["everything_op13"]()
    onnx.save(model, files / "model.onnx")
    np.save(files / "calib.npy", np.random.default_rng(0).standard_normal((8, *x.shape[1:])))
    device(files / "full", 7)
    args = ["quantize", "model.onnx", "--calib", "calib.npy", "-o", "q.kcnn", "--density", "1"]
    one_line_error(kcnn(*args, "--json-out", "full", cwd=files), "cannot write")
    assert not (files / "q.kcnn").exists()
    assert sorted(p.name for p in files.iterdir() if p.name.startswith(".")) == []


def test_a_failed_rename_puts_back_what_was_replaced(tmp_path):
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text("old")
    planned = check_outputs({"a": first, "b": second})
    second.mkdir()  # appears after the check: the second rename fails
    with pytest.raises(KcnnError, match="cannot write"):
        write_outputs(
            [
                (planned["a"], lambda h: h.write(b"new")),
                (planned["b"], lambda h: h.write(b"new")),
            ]
        )
    assert first.read_text() == "old" and second.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.json"]


def test_a_failing_writer_writes_nothing(tmp_path):
    planned = check_outputs({"a": tmp_path / "a", "b": tmp_path / "b"})

    def broken(handle):
        raise ValueError("boom")

    with pytest.raises(ValueError):
        write_outputs([(planned["a"], lambda h: h.write(b"x")), (planned["b"], broken)])
    assert list(tmp_path.iterdir()) == []


def test_block_devices_and_sockets_are_refused(tmp_path):
    import socket

    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / "sock"))
        with pytest.raises(KcnnError, match="neither a regular file"):
            plan_output(tmp_path / "sock")


def test_json_written_through_a_link_is_valid(files):
    (files / "r.json").symlink_to("real.json")  # dangling: the link's target is created
    out = kcnn("report", "m.kcnn", "--json-out", "r.json", cwd=files)
    assert out.returncode == 0, out.stderr
    assert json.loads((files / "real.json").read_text())["model"] == "lenet5"
