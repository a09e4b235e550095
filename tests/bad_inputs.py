"""The catalogue of bad inputs and faults of issue 13, one entry per class.

Each class builds its files in a folder, runs one command (``kcnn`` in-process, or a call
of the Python API, or the command in a subprocess under ``RLIMIT_AS`` for the memory
classes) and judges the outcome: *handled* when the project answered as
``docs/reliability.md`` says (one error line and exit 1, a :class:`KcnnError`, or a run
that succeeds and keeps what it must keep), else *failed* with the reason.
``tests/test_bad_inputs.py`` requires every class to be handled;
``tools/reliability_census.py`` counts them for any installed kcnn (before and after a
change).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import threading
import traceback
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from mutate import read_members, rewrite, write_members

HERE = Path(__file__).parent


@dataclass
class Outcome:
    """What one command did: exit code (or the exception that escaped), output, warnings."""

    code: int | None
    stdout: bytes = b""
    stderr: str = ""
    escaped: str | None = None  # "ExcType: message" of an exception that escaped
    warnings: list = field(default_factory=list)


@dataclass
class Case:
    name: str
    point: int
    what: str
    act: Callable[[Path], Outcome]
    expect: str = "error"  # "error": one error line, exit 1; "ok": exit 0
    fragments: tuple = ()  # expected in the error line (or a warning for "ok")
    check: Callable[[Path], str | None] | None = None  # extra condition after the run
    root: bool = False  # makes a device node (mknod needs root)


# ---- running ------------------------------------------------------------------------


def cli(folder: Path, *args) -> Outcome:
    """``kcnn ARGS`` in-process, in ``folder``, stdout and stderr captured."""
    from kcnn.cli import main

    out, err = io.BytesIO(), io.StringIO()
    stdout = io.TextIOWrapper(out, write_through=True)
    here = os.getcwd()
    os.chdir(folder)
    try:
        with (
            contextlib.redirect_stdout(stdout),
            contextlib.redirect_stderr(err),
            warnings.catch_warnings(record=True) as caught,
        ):
            warnings.simplefilter("always")
            try:
                code = main([str(a) for a in args])
                escaped = None
            except SystemExit as exc:
                code, escaped = exc.code, None
            except BaseException as exc:  # noqa: BLE001 - the census records what escapes
                code, escaped = None, f"{type(exc).__name__}: {str(exc)[:200]}"
                traceback.print_exc(file=err)
    finally:
        os.chdir(here)
    return Outcome(code, out.getvalue(), err.getvalue(), escaped, [str(w.message) for w in caught])


def api(call) -> Outcome:
    """A Python API call: a KcnnError is the project's answer (exit 1 in CLI terms)."""
    from kcnn import KcnnError

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            call()
    except KcnnError as exc:
        return Outcome(1, stderr=f"kcnn api: error: {exc}")
    except BaseException as exc:  # noqa: BLE001
        return Outcome(None, escaped=f"{type(exc).__name__}: {str(exc)[:200]}")
    return Outcome(0, warnings=[str(w.message) for w in caught])


def limited(folder: Path, memory_mb: int, *args) -> Outcome:
    """``kcnn ARGS`` in a subprocess whose address space is limited to ``memory_mb``."""
    code = (
        "import resource, sys\n"
        f"limit = {memory_mb} << 20\n"
        "resource.setrlimit(resource.RLIMIT_AS, (limit, limit))\n"
        "from kcnn.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        cwd=folder,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "")},
    )
    err = done.stderr.decode(errors="replace")
    escaped = None
    if "Traceback" in err:
        escaped = err.strip().splitlines()[-1][:200]
    elif done.returncode < 0:
        escaped = f"killed by signal {-done.returncode}"
    return Outcome(done.returncode if escaped is None else None, done.stdout, err, escaped)


def judge(case: Case, folder: Path, outcome: Outcome) -> str | None:
    """None when the case was handled, else why not."""
    if outcome.escaped is not None:
        return f"escaped: {outcome.escaped}"
    lines = outcome.stderr.strip().splitlines()
    if case.expect == "error":
        if outcome.code != 1:
            return f"exit {outcome.code}, expected an error (exit 1)"
        errors = [line for line in lines if "error:" in line]
        if len(errors) != 1 or "Traceback" in outcome.stderr or "bug" in errors[0]:
            return f"not one user-error line: {outcome.stderr[-300:]!r}"
        missing = [f for f in case.fragments if f not in errors[0]]
        if missing:
            return f"error line lacks {missing}: {errors[0][:200]!r}"
    else:
        if outcome.code != 0:
            return f"exit {outcome.code}: {outcome.stderr[-300:]!r}"
        said = " ".join(outcome.warnings) + outcome.stderr
        missing = [f for f in case.fragments if f not in said]
        if missing:
            return f"no warning with {missing}"
    if case.check is not None:
        return case.check(folder)
    return None


def said(outcome: Outcome) -> str:
    """What the user saw: the error line, else the warnings."""
    errors = [line for line in outcome.stderr.splitlines() if "error:" in line]
    if errors:
        return errors[-1]
    return "; ".join(f"warning: {w}" for w in outcome.warnings) or "(nothing)"


def run_case(case: Case, folder: Path) -> tuple[str | None, str]:
    """``(why it failed or None, what the user saw)``."""
    folder.mkdir(parents=True, exist_ok=True)
    prepare(folder)
    try:
        outcome = case.act(folder)
    except Exception as exc:  # noqa: BLE001 - a failing set-up is a failed case too
        return f"set-up failed: {type(exc).__name__}: {exc}", ""
    return judge(case, folder, outcome), said(outcome)


# ---- the shared files -----------------------------------------------------------------


def prepare(folder: Path) -> None:
    """A LeNet `.kcnn` and its ONNX, 3 test digits, a labelled set, and a small ONNX model
    with calibration inputs."""
    from kcnn import models

    shutil.copy(models.table_path("lenet5"), folder / "m.kcnn")
    shutil.copy(models.model_path("lenet5"), folder / "m.onnx")
    x, y = models.digits("test")
    np.save(folder / "x.npy", x[:3])
    np.savez(folder / "data.npz", x=x[:20], y=y[:20])
    small, sample = small_model()
    (folder / "small.onnx").write_bytes(small.SerializeToString())
    rng = np.random.default_rng(0)
    np.save(folder / "calib.npy", rng.standard_normal((16, *sample.shape[1:]), dtype=np.float32))


def small_model():
    sys.path.insert(0, str(HERE))
    import onnx_cases

    return onnx_cases.SUPPORTED["everything_op13"]()


QUANTIZE = ("--density", "0.5", "--weight-clusters", "6")


def quantize_small(folder, *extra):
    return cli(folder, "quantize", "small.onnx", "--calib", "calib.npy", "-o", "q.kcnn", *extra)


def command(*args):
    """``kcnn ARGS`` in the case's folder."""
    return lambda folder: cli(folder, *args)


def given(name, array, *args):
    """Save ``array`` (a dict of arrays: an .npz) as ``name``, then run ``kcnn ARGS``."""

    def act(folder):
        if isinstance(array, dict):
            np.savez(folder / name, **array)
        else:
            np.save(folder / name, array)
        return cli(folder, *args)

    return act


def no_file(name):
    def check(folder):
        return f"{name} was written" if (folder / name).exists() else None

    return check


def unchanged(name):
    def check(folder):
        from kcnn import models

        reference = {"m.kcnn": models.table_path("lenet5"), "m.onnx": models.model_path("lenet5")}
        if name in reference:
            same = (folder / name).read_bytes() == reference[name].read_bytes()
        else:
            same = np.array_equal(np.load(folder / name), models.digits("test")[0][:3])
        return None if same else f"{name} was changed"

    return check


# ---- edits ----------------------------------------------------------------------------


def edit_kcnn(folder, manifest=None, arrays=None, keep_checksums=False):
    return rewrite(
        folder / "m.kcnn",
        folder / "bad.kcnn",
        manifest=manifest,
        arrays=arrays,
        keep_checksums=keep_checksums,
    )


def layer(meta, name):
    return next(entry for entry in meta["layers"] if entry["name"] == name)


def kcnn_run(edit, *args):
    """Edit m.kcnn into bad.kcnn, then ``kcnn run bad.kcnn x.npy --backend sim``."""

    def act(folder):
        edit(folder)
        return cli(folder, "run", "bad.kcnn", "x.npy", "--backend", "sim", *args)

    return act


def manifest_edit(change):
    return kcnn_run(lambda folder: edit_kcnn(folder, manifest=change))


def save_onnx(folder, change):
    """small.onnx edited by ``change(model)``, as bad.onnx."""
    import onnx

    model = onnx.load(str(folder / "small.onnx"))
    change(model)
    onnx.save(model, str(folder / "bad.onnx"))


def onnx_edit(change):
    """Edit small.onnx with ``change(model)``, then quantize it."""

    def act(folder):
        save_onnx(folder, change)
        return cli(
            folder, "quantize", "bad.onnx", "--calib", "calib.npy", "-o", "q.kcnn", *QUANTIZE
        )

    return act


def node(model, name):
    return next(n for n in model.graph.node if n.name == name)


def set_attr(name, key, value):
    def change(model):
        from onnx import helper

        target = node(model, name)
        kept = [a for a in target.attribute if a.name != key]
        del target.attribute[:]
        target.attribute.extend(kept)
        if value is not None:
            target.attribute.append(helper.make_attribute(key, value))

    return change


def set_init(name, make):
    def change(model):
        from onnx import numpy_helper

        for index, init in enumerate(model.graph.initializer):
            if init.name == name:
                value = make(numpy_helper.to_array(init))
                model.graph.initializer[index].CopyFrom(numpy_helper.from_array(value, name))

    return change


def bad_dims(model):
    init = next(i for i in model.graph.initializer if i.name == "fc_a.w")
    init.dims[0] += 1  # declared shape no longer matches the data


def _central_entry(data: bytes, member: str) -> int:
    """Offset of ``member``'s entry in the zip's central directory."""
    start = data.find(b"PK\x01\x02")
    while start != -1:
        name_len = int.from_bytes(data[start + 28 : start + 30], "little")
        if data[start + 46 : start + 46 + name_len] == member.encode():
            return start
        start = data.find(b"PK\x01\x02", start + 4)
    raise KeyError(member)


def zip_member_flags(folder, member, flag_bits=0, method=None):
    """Copy m.kcnn to bad.kcnn with ``member``'s flag bits or method changed in both
    headers (local and central)."""
    data = bytearray((folder / "m.kcnn").read_bytes())
    with zipfile.ZipFile(folder / "m.kcnn") as archive:
        local = archive.getinfo(member).header_offset
    for offset, flag_at, method_at in ((local, 6, 8), (_central_entry(data, member), 8, 10)):
        flags = int.from_bytes(data[offset + flag_at : offset + flag_at + 2], "little")
        data[offset + flag_at : offset + flag_at + 2] = (flags | flag_bits).to_bytes(2, "little")
        if method is not None:
            data[offset + method_at : offset + method_at + 2] = method.to_bytes(2, "little")
    (folder / "bad.kcnn").write_bytes(bytes(data))


def corrupt_deflate(folder):
    """bad.kcnn with a deflate stream whose bytes are garbage but whose sizes are kept."""
    shutil.copy(folder / "m.kcnn", folder / "bad.kcnn")
    data = bytearray((folder / "bad.kcnn").read_bytes())
    with zipfile.ZipFile(folder / "bad.kcnn") as archive:
        info = archive.getinfo("conv1.bias.npy")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    data[start : start + info.compress_size] = b"\xff" * info.compress_size
    (folder / "bad.kcnn").write_bytes(bytes(data))


def _stream_member(archive, name, parts):
    """Write a (zip64) member from an iterable of byte strings, never all in memory."""
    with archive.open(zipfile.ZipInfo(name), "w", force_zip64=True) as handle:
        for part in parts:
            handle.write(part)


def zip_bomb(folder):
    """bad.kcnn whose fc1 weight codes are 2 GiB of zeros (2 MB compressed)."""
    members = read_members(folder / "m.kcnn")
    codes = next(n for n in members if n in ("fc1.wcodes.npy", "fc1.wsparse.npy"))
    del members[codes]
    chunk = bytes(64 << 20)
    with zipfile.ZipFile(folder / "bad.kcnn", "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        _stream_member(archive, codes, (chunk for _ in range(32)))


def huge_layer(folder):
    """A 25 KB-sized file declaring fc1 as 120 x 5e6 with an (almost) empty sparse form."""

    def change(meta):
        entry = layer(meta, "fc1")
        entry["weight_form"] = "sparse"
        entry["weight_shape"] = [120, 5_000_000]
        entry["in_shape"] = [5_000_000]
        for later in meta["layers"]:
            if later["name"] == "Flatten":
                later["out_shape"] = [5_000_000]

    rows = np.zeros(120, np.uint32)
    edit_kcnn(
        folder,
        manifest=change,
        arrays={"fc1.wsparse": np.zeros(0, np.uint8), "fc1.wrows": rows},
    )


def padded_manifest(folder):
    """A manifest with 1 GiB of padding (1 MB compressed)."""
    members = read_members(folder / "m.kcnn")
    text = members.pop("manifest.json")
    chunk = b" " * (64 << 20)
    with zipfile.ZipFile(folder / "bad.kcnn", "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        parts = [text[:-2], *(chunk for _ in range(16)), text[-2:]]
        _stream_member(archive, "manifest.json", parts)


def deep_manifest(folder):
    members = read_members(folder / "m.kcnn")
    meta = json.loads(members["manifest.json"])
    text = json.dumps(meta)[:-1] + ', "deep": ' + "[" * 200_000 + "]" * 200_000 + "}"
    members["manifest.json"] = text.encode()
    write_members(folder / "bad.kcnn", members)


def big_constant(model):
    """A ConstantOfShape of 4e9 float32 values feeding nothing important (11 KB of ONNX)."""
    from onnx import helper, numpy_helper

    shape = numpy_helper.from_array(np.array([64000, 64000], np.int64), "huge.shape")
    model.graph.initializer.append(shape)
    model.graph.node.insert(0, helper.make_node("ConstantOfShape", ["huge.shape"], ["huge"]))
    conv = node(model, "conv_a")
    conv.input[1] = "huge"


def with_pixel(value, dtype=np.float32):
    def act(folder):
        from kcnn import models

        x = models.digits("test")[0][:3].astype(dtype)
        x[1, 0, 5, 5] = value
        np.save(folder / "x.npy", x)
        return cli(folder, "run", "m.kcnn", "x.npy", "--backend", "sim")

    return act


def fifo_output(folder):
    os.mkfifo(folder / "fifo")
    (folder / "stdout").symlink_to("fifo")
    sink = []

    def read():
        with open(folder / "fifo", "rb") as handle:
            sink.append(handle.read())

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    outcome = cli(folder, "run", "m.kcnn", "x.npy", "-o", "stdout")
    thread.join(30)
    return outcome


def device_output(folder, minor, *args):
    os.mknod(folder / "dev", stat.S_IFCHR | 0o666, os.makedev(1, minor))
    return cli(folder, *args)


def is_kind(name, test, what):
    def check(folder):
        return None if test(os.lstat(folder / name).st_mode) else f"{name} is no longer {what}"

    return check


def outlier_calibration(folder):
    """LeNet calibrated with one pixel of 1e30 among 256 digits, and without it."""
    from kcnn import models

    calib = models.calibration_digits()[:256]
    np.save(folder / "clean.npy", calib)
    calib = calib.copy()
    calib[0, 0, 3, 3] = 1e30
    np.save(folder / "outlier.npy", calib)
    options = ("--density", "0.5")
    clean = cli(folder, "quantize", "m.onnx", "--calib", "clean.npy", "-o", "c.kcnn", *options)
    assert clean.code == 0, clean.stderr
    return cli(folder, "quantize", "m.onnx", "--calib", "outlier.npy", "-o", "o.kcnn", *options)


def outlier_accuracy(folder):
    """The outlier costs at most 0.5 % of top-1 against the clean calibration."""
    from kcnn import Accelerator, models

    x, y = models.digits("test")
    top1 = {}
    for name in ("c.kcnn", "o.kcnn"):
        with Accelerator(folder / name, backend="sim") as acc:
            top1[name] = float(np.mean(acc.predict(x) == y))
    if top1["o.kcnn"] < top1["c.kcnn"] - 0.005:
        return f"top-1 {top1['o.kcnn']:.3f} with the outlier, {top1['c.kcnn']:.3f} without"
    return None


def other_onnx(folder):
    from kcnn import models

    shutil.copy(models.model_path("alexnet_mnist"), folder / "other.onnx")
    return cli(folder, "eval", "m.kcnn", "--onnx", "other.onnx", "--data", "data.npz")


def accelerator(call):
    def act(folder):
        from kcnn import Accelerator

        def run():
            with Accelerator(folder / "m.kcnn", backend="sim") as acc:
                call(acc)

        return api(run)

    return act


def within(memory_mb, build, *args):
    """``build(folder)``, then ``kcnn ARGS`` in a subprocess under ``RLIMIT_AS``."""

    def act(folder):
        build(folder)
        return limited(folder, memory_mb, *args)

    return act


def many_digits(folder):
    """5,000 digits under 512 MiB of address space (the unbatched run needed 1 GiB)."""
    from kcnn import models

    np.save(folder / "many.npy", np.tile(models.digits("test")[0], (5, 1, 1, 1)))
    return limited(folder, 512, "run", "m.kcnn", "many.npy", "-o", "out.npy", "--backend", "sim")


# ---- the catalogue --------------------------------------------------------------------

CASES = [
    # 1. output paths
    Case(
        "out-device",
        1,
        "-o names a character device (like /dev/null)",
        lambda f: device_output(f, 3, "run", "m.kcnn", "x.npy", "-o", "dev"),
        "ok",
        check=is_kind("dev", stat.S_ISCHR, "a device"),
        root=True,
    ),
    Case(
        "out-fifo-link",
        1,
        "-o names a link to a FIFO (like /dev/stdout on a pipe)",
        fifo_output,
        "ok",
        check=lambda f: (
            is_kind("fifo", stat.S_ISFIFO, "a FIFO")(f)
            or is_kind("stdout", stat.S_ISLNK, "a link")(f)
        ),
    ),
    Case(
        "out-dash",
        1,
        "-o - (standard output)",
        command("run", "m.kcnn", "x.npy", "-o", "-"),
        "ok",
        check=no_file("-"),
    ),
    *(
        Case(
            name,
            1,
            what,
            command(*args),
            fragments=("same file as the input",),
            check=unchanged(kept),
        )
        for name, what, args, kept in (
            (
                "out-is-input-npy",
                "run -o equal to the input array",
                ("run", "m.kcnn", "x.npy", "-o", "x.npy"),
                "x.npy",
            ),
            (
                "out-is-input-kcnn",
                "run -o equal to the .kcnn",
                ("run", "m.kcnn", "x.npy", "-o", "m.kcnn"),
                "m.kcnn",
            ),
            (
                "out-is-input-onnx",
                "quantize -o equal to the ONNX model",
                ("quantize", "m.onnx", "--calib", "x.npy", "-o", "m.onnx"),
                "m.onnx",
            ),
        )
    ),
    Case(
        "out-hard-link-input",
        1,
        "-o a hard link of the input",
        lambda f: (
            os.link(f / "x.npy", f / "h.npy"),
            cli(f, "run", "m.kcnn", "x.npy", "-o", "h.npy"),
        )[1],
        fragments=("same file as the input",),
        check=unchanged("x.npy"),
    ),
    Case(
        "out-json-is-output",
        1,
        "--json-out equal to -o",
        lambda f: quantize_small(f, "--json-out", "q.kcnn", *QUANTIZE),
        fragments=("same file as the output",),
        check=no_file("q.kcnn"),
    ),
    Case(
        "out-folder",
        1,
        "-o names a folder",
        lambda f: (os.mkdir(f / "d"), cli(f, "run", "m.kcnn", "x.npy", "-o", "d"))[1],
        fragments=("is a folder",),
    ),
    Case(
        "out-below-file",
        1,
        "-o below a file",
        command("run", "m.kcnn", "x.npy", "-o", "x.npy/y.npy"),
        fragments=("not a folder",),
    ),
    Case(
        "out-write-fails",
        1,
        "the output's write fails (no space left, like /dev/full)",
        lambda f: device_output(f, 7, "report", "m.kcnn", "--json-out", "dev"),
        fragments=("cannot write",),
        root=True,
    ),
    Case(
        "out-json-fails-after-kcnn",
        1,
        "--json-out fails after the .kcnn could be written",
        lambda f: device_output(
            f,
            7,
            "quantize",
            "small.onnx",
            "--calib",
            "calib.npy",
            "-o",
            "q.kcnn",
            "--json-out",
            "dev",
            *QUANTIZE,
        ),
        fragments=("cannot write",),
        check=no_file("q.kcnn"),
        root=True,
    ),
    # 2. unusable models are not written or loaded
    Case(
        "calib-all-zero",
        2,
        "an all-zero calibration set",
        given(
            "zero.npy",
            np.zeros((8, 3, 16, 16), np.float32),
            "quantize",
            "small.onnx",
            "--calib",
            "zero.npy",
            "-o",
            "q.kcnn",
            *QUANTIZE,
        ),
        fragments=("zero everywhere",),
        check=no_file("q.kcnn"),
    ),
    Case(
        "kcnn-boundaries-too-many",
        2,
        "input boundaries longer than J-2",
        kcnn_run(lambda f: edit_kcnn(f, arrays={"map.input.boundaries": np.arange(40.0)})),
        fragments=("boundaries",),
    ),
    Case(
        "kcnn-boundaries-too-few",
        2,
        "input boundaries shorter than J-2",
        kcnn_run(lambda f: edit_kcnn(f, arrays={"map.input.boundaries": np.arange(3.0)})),
        fragments=("boundaries",),
    ),
    Case(
        "kcnn-in-shape",
        2,
        "a layer's in_shape edited",
        manifest_edit(lambda m: layer(m, "conv2").update(in_shape=[6, 14, 15])),
        fragments=("conv2", "in_shape"),
    ),
    Case(
        "kcnn-out-shape",
        2,
        "a layer's out_shape edited",
        manifest_edit(lambda m: layer(m, "conv1").update(out_shape=[6, 27, 28])),
        fragments=("conv1", "out_shape"),
    ),
    Case(
        "kcnn-kernel",
        2,
        "a conv kernel edited",
        manifest_edit(lambda m: layer(m, "conv1")["attrs"].update(kernel=[3, 3])),
        fragments=("conv1",),
    ),
    Case(
        "kcnn-stride-zero",
        2,
        "a manifest stride of 0",
        manifest_edit(lambda m: layer(m, "MaxPool")["attrs"].update(strides=[0, 2])),
        fragments=("MaxPool", "attrs"),
    ),
    Case(
        "kcnn-pads-negative",
        2,
        "negative manifest pads",
        manifest_edit(lambda m: layer(m, "conv1")["attrs"].update(pads=[-1, 0, 0, 0])),
        fragments=("conv1", "attrs"),
    ),
    Case(
        "kcnn-groups",
        2,
        "conv groups edited",
        manifest_edit(lambda m: layer(m, "conv2")["attrs"].update(groups=4)),
        fragments=("conv2",),
    ),
    Case(
        "kcnn-bool-as-int",
        2,
        "a JSON true where an integer belongs",
        manifest_edit(lambda m: layer(m, "conv1")["attrs"].update(strides=[True, True])),
        fragments=("conv1", "attrs"),
    ),
    Case(
        "kcnn-in-map",
        2,
        "a layer reading another layer's map",
        manifest_edit(lambda m: layer(m, "fc2").update(in_map="conv1")),
        fragments=("fc2", "in_map"),
    ),
    Case(
        "kcnn-layer-order",
        2,
        "two layers swapped",
        manifest_edit(lambda m: m["layers"].insert(6, m["layers"].pop(5))),
        fragments=("in_shape",),
    ),
    Case(
        "kcnn-layer-J",
        2,
        "a layer's J edited",
        manifest_edit(lambda m: layer(m, "fc1").update(J=7)),
        fragments=("fc1", "'J'"),
    ),
    Case(
        "kcnn-duplicate-name",
        2,
        "two layers with one name",
        manifest_edit(lambda m: layer(m, "MaxPool_1").update(name="MaxPool")),
        fragments=("MaxPool",),
    ),
    Case(
        "kcnn-signed-hidden-map",
        2,
        "a hidden map marked signed",
        manifest_edit(lambda m: m["maps"]["fc1"].update(signed=True)),
        fragments=("fc1",),
    ),
    Case(
        "kcnn-last-layer-emits-codes",
        2,
        "the last fabric layer given an out_map",
        manifest_edit(lambda m: layer(m, "fc3").update(out_map="fc2")),
        fragments=("fc3",),
    ),
    Case(
        "kcnn-softmax-before-fc",
        2,
        "a host op moved before the last fabric layer",
        manifest_edit(
            lambda m: m["layers"].insert(
                5, {**layer(m, "fc3"), "name": "Softmax", "op": "softmax", "in_map": None}
            )
        ),
        fragments=("Softmax",),
    ),
    Case(
        "kcnn-scale-absurd",
        2,
        "a map scale of 1e300 (logits overflow)",
        manifest_edit(lambda m: m["maps"]["fc2"].update(scale=1e300)),
        fragments=("scale",),
    ),
    # 3. one error boundary
    Case(
        "onnx-nan-weight",
        3,
        "a NaN weight",
        onnx_edit(set_init("conv_a.w", lambda w: np.where(w > 0.5, np.nan, w).astype(np.float32))),
        fragments=("NaN",),
    ),
    Case(
        "onnx-inf-weight",
        3,
        "an infinite bias",
        onnx_edit(set_init("fc_a.b", lambda b: np.full_like(b, np.inf))),
        fragments=("infinite",),
    ),
    Case(
        "onnx-bn-negative-variance",
        3,
        "BatchNorm with a negative variance",
        onnx_edit(set_init("bn_a.var", lambda v: -v)),
        fragments=("variance",),
    ),
    *(
        Case(name, 3, what, onnx_edit(set_attr(node, key, value)), fragments=(fragment,))
        for name, what, node, key, value, fragment in (
            ("onnx-stride-zero", "Conv strides 0", "conv_a", "strides", [0, 1], "strides"),
            ("onnx-pads-negative", "negative Conv pads", "conv_a", "pads", [-1, 1, 1, 1], "pads"),
            ("onnx-dilation-zero", "Conv dilations 0", "conv_a", "dilations", [0, 0], "dilations"),
            (
                "onnx-strides-length",
                "Conv strides of the wrong length",
                "conv_a",
                "strides",
                [1],
                "strides",
            ),
            ("onnx-group-zero", "Conv group 0", "conv_b", "group", 0, "group"),
            (
                "onnx-kernel-shape-mismatch",
                "Conv kernel_shape unlike its weight",
                "conv_a",
                "kernel_shape",
                [5, 5],
                "kernel_shape",
            ),
            (
                "onnx-maxpool-no-kernel",
                "MaxPool without kernel_shape",
                "pool_a",
                "kernel_shape",
                None,
                "kernel_shape",
            ),
            ("onnx-lrn-size-zero", "LRN size 0", "lrn_a", "size", 0, "size"),
            (
                "onnx-kernel-larger-than-input",
                "a pooling kernel larger than its input",
                "pool_b",
                "kernel_shape",
                [40, 40],
                "pool_b",
            ),
        )
    ),
    Case(
        "onnx-gemm-bias-length",
        3,
        "a Gemm bias of the wrong length",
        onnx_edit(set_init("fc_a.b", lambda b: np.zeros(3, np.float32))),
        fragments=("bias",),
    ),
    Case(
        "onnx-weight-dims",
        3,
        "an initializer whose declared shape does not match its data",
        onnx_edit(bad_dims),
        fragments=("fc_a.w",),
    ),
    Case(
        "onnx-unsupported-op",
        3,
        "an unsupported op",
        onnx_edit(lambda m: setattr(node(m, "relu_a"), "op_type", "Selu")),
        fragments=("Selu",),
    ),
    Case(
        "kcnn-corrupt-deflate",
        3,
        "a .kcnn member with a corrupt deflate stream",
        kcnn_run(corrupt_deflate),
        fragments=("conv1",),
    ),
    Case(
        "kcnn-encrypted-member",
        3,
        "an encrypted .kcnn member",
        kcnn_run(lambda f: zip_member_flags(f, "conv1.bias.npy", flag_bits=1)),
        fragments=("encrypted",),
    ),
    Case(
        "kcnn-unknown-compression",
        3,
        "a .kcnn member with an unknown compression method",
        kcnn_run(lambda f: zip_member_flags(f, "conv1.bias.npy", method=99)),
        fragments=("compression",),
    ),
    Case(
        "kcnn-deep-manifest",
        3,
        "a manifest nested past the recursion limit",
        kcnn_run(deep_manifest),
        fragments=("manifest.json",),
    ),
    Case(
        "kcnn-manifest-list",
        3,
        "a manifest that is a JSON list",
        kcnn_run(
            lambda f: write_members(
                f / "bad.kcnn", {**read_members(f / "m.kcnn"), "manifest.json": b"[1, 2]"}
            )
        ),
        fragments=("manifest.json",),
    ),
    Case(
        "kcnn-sha-not-object",
        3,
        "a manifest whose sha256 is not an object",
        manifest_edit(lambda m: m.update(sha256=["x"])),
        fragments=("sha256",),
    ),
    Case(
        "kcnn-npy-fortran",
        3,
        "an array stored in Fortran order with a matching checksum",
        kcnn_run(
            lambda f: edit_kcnn(
                f, arrays={"fc3.wcodes": np.asfortranarray(np.zeros((2, 210), np.uint8))}
            )
        ),
        fragments=("fc3",),
    ),
    Case(
        "kcnn-calibration-meta",
        3,
        "report on calibration counts of the wrong type",
        lambda f: (
            edit_kcnn(f, manifest=lambda m: m["calibration"]["layers"].update(fc1="x")),
            cli(f, "report", "bad.kcnn"),
        )[1],
        fragments=("fc1",),
    ),
    Case(
        "kcnn-truncated",
        3,
        "a truncated .kcnn",
        kcnn_run(lambda f: (f / "bad.kcnn").write_bytes((f / "m.kcnn").read_bytes()[:5000])),
        fragments=("bad.kcnn",),
    ),
    Case(
        "kcnn-not-zip",
        3,
        "a .kcnn that is not a zip",
        kcnn_run(lambda f: (f / "bad.kcnn").write_bytes(b"hello")),
        fragments=("not a zip",),
    ),
    Case(
        "run-empty-batch",
        3,
        "an empty input batch",
        given("e.npy", np.zeros((0, 1, 28, 28), np.float32), "run", "m.kcnn", "e.npy"),
        fragments=("empty",),
    ),
    Case(
        "run-wrong-shape",
        3,
        "inputs of the wrong shape",
        given("w.npy", np.zeros((2, 28, 28), np.float32), "run", "m.kcnn", "w.npy"),
        fragments=("w.npy",),
    ),
    Case(
        "run-int-inputs",
        3,
        "integer inputs",
        given("i.npy", np.zeros((2, 1, 28, 28), np.int32), "run", "m.kcnn", "i.npy"),
        fragments=("dtype",),
    ),
    Case(
        "run-not-npy",
        3,
        "an input that is not a .npy",
        command("run", "m.kcnn", "m.onnx"),
        fragments=("m.onnx",),
    ),
    Case(
        "eval-onnx-not-onnx",
        3,
        "eval --onnx with a file that is not ONNX",
        command("eval", "m.kcnn", "--onnx", "x.npy", "--data", "data.npz"),
        fragments=("x.npy",),
    ),
    Case(
        "eval-onnx-input-size",
        3,
        "eval --onnx whose input size differs",
        command("eval", "m.kcnn", "--onnx", "small.onnx", "--data", "data.npz"),
        fragments=("small.onnx", "input"),
    ),
    Case(
        "eval-data-npy",
        3,
        "eval --data given a .npy",
        command("eval", "m.kcnn", "--onnx", "m.onnx", "--data", "x.npy"),
        fragments=("x.npy", ".npz"),
    ),
    Case(
        "quantize-negative-seed",
        3,
        "a negative --seed",
        lambda f: quantize_small(f, "--seed", "-1", "--kmeans", "sklearn", *QUANTIZE),
        fragments=("seed",),
    ),
    Case(
        "quantize-huge-seed",
        3,
        "a huge --seed",
        lambda f: quantize_small(f, "--seed", str(2**70), "--kmeans", "sklearn", *QUANTIZE),
        fragments=("seed",),
    ),
    Case(
        "quantize-calib-shape",
        3,
        "calibration inputs of the wrong shape",
        command("quantize", "small.onnx", "--calib", "x.npy", "-o", "q.kcnn"),
        fragments=("x.npy",),
    ),
    Case(
        "api-ragged-list",
        3,
        "a ragged list given to Accelerator.run",
        accelerator(lambda acc: acc.run([np.zeros((1, 28, 28)), np.zeros((1, 27, 28))])),
        fragments=("rectangular",),
    ),
    Case(
        "api-empty-batch",
        3,
        "an empty batch given to Accelerator.predict",
        accelerator(lambda acc: acc.predict(np.zeros((0, 1, 28, 28), np.float32))),
        fragments=("empty",),
    ),
    Case(
        "api-bad-batch-size",
        3,
        "a batch size of 0",
        lambda f: api(lambda: __import__("kcnn").Accelerator(f / "m.kcnn", batch_size=0)),
        fragments=("batch",),
    ),
    # 4. memory bounded by the work
    *(
        Case(name, 4, what, within(megabytes, build, *args), fragments=(fragment,))
        for name, what, megabytes, build, args, fragment in (
            (
                "mem-member-2gib",
                "a .kcnn member of 2 GiB of zeros (2 MB zipped)",
                1024,
                zip_bomb,
                ("run", "bad.kcnn", "x.npy"),
                "fc1",
            ),
            (
                "mem-layer-120x5e6",
                "a .kcnn declaring a 120 x 5e6 layer",
                1024,
                huge_layer,
                ("report", "bad.kcnn"),
                "fc1",
            ),
            (
                "mem-manifest-1gib",
                "1 GiB of manifest padding",
                1024,
                padded_manifest,
                ("report", "bad.kcnn"),
                "manifest.json",
            ),
            (
                "mem-constant-of-shape",
                "an ONNX ConstantOfShape of 4e9 values",
                2048,
                lambda f: save_onnx(f, big_constant),
                ("quantize", "bad.onnx", "--calib", "calib.npy", "-o", "q.kcnn"),
                "bad.onnx",
            ),
        )
    ),
    Case(
        "mem-run-5000",
        4,
        "kcnn run on 5,000 digits within 512 MiB of address space",
        many_digits,
        "ok",
    ),
    # 5. non-finite and absurd values
    Case("run-nan", 5, "a NaN pixel (run)", with_pixel(np.nan), fragments=("NaN", "input 1")),
    Case("run-inf", 5, "an infinite pixel (run)", with_pixel(-np.inf), fragments=("input 1",)),
    Case(
        "run-float64-overflow",
        5,
        "a float64 pixel of 1e300 (infinite as float32)",
        with_pixel(1e300, np.float64),
        fragments=("input 1",),
    ),
    Case(
        "report-input-nan",
        5,
        "a NaN pixel (report --input)",
        given(
            "n.npy",
            np.full((2, 1, 28, 28), np.nan, np.float32),
            "report",
            "m.kcnn",
            "--input",
            "n.npy",
        ),
        fragments=("NaN",),
    ),
    Case(
        "eval-nan",
        5,
        "a NaN pixel (eval)",
        given(
            "n.npz",
            {"x": np.full((2, 1, 28, 28), np.nan, np.float32), "y": np.zeros(2, int)},
            *("eval", "m.kcnn", "--onnx", "m.onnx", "--data", "n.npz"),
        ),
        fragments=("NaN",),
    ),
    Case(
        "api-nan",
        5,
        "a NaN pixel (Accelerator.predict)",
        accelerator(lambda acc: acc.predict(np.full((1, 1, 28, 28), np.nan, np.float32))),
        fragments=("NaN",),
    ),
    Case(
        "calib-nan",
        5,
        "a NaN calibration pixel",
        given(
            "n.npy",
            np.full((4, 3, 16, 16), np.nan, np.float32),
            "quantize",
            "small.onnx",
            "--calib",
            "n.npy",
            "-o",
            "q.kcnn",
            *QUANTIZE,
        ),
        fragments=("NaN",),
        check=no_file("q.kcnn"),
    ),
    Case(
        "calib-outlier",
        5,
        "one calibration pixel of 1e30",
        outlier_calibration,
        "ok",
        fragments=("outliers",),
        check=outlier_accuracy,
    ),
    Case(
        "eval-other-onnx",
        5,
        "eval --onnx with another model's ONNX (same input and classes)",
        other_onnx,
        "ok",
        fragments=("SHA-256",),
    ),
]


def by_name() -> dict:
    return {case.name: case for case in CASES}
