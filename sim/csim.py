"""The ``csim`` back-end: the HLS top compiled with g++ and called through ctypes.

The kernel gets exactly the words the DMA would carry (each step's stream A and stream B
transfers, from the same planner as the board) and their TLAST flags. The library is built
into the user cache folder under a name keyed by the sources, build parameters and flags,
so a changed source never reuses a stale library. Its memories are static (they are the
on-chip RAMs), so every :class:`CsimKernel` loads its own copy of the library
(``-fno-gnu-unique`` keeps the copies apart) and serialises its calls with a lock: two
engines in two threads never share state. The open-source ``hls_stream`` returns a zero
word when read empty and never blocks, so the wrapper checks every step's word counts and
TLAST positions itself.
"""

from __future__ import annotations

import _ctypes
import ctypes
import hashlib
import importlib.util
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import numpy as np

from kcnn.config import BUILD_PARAMETERS, BuildParams
from kcnn.errors import KcnnError
from kcnn.model import Model
from kcnn.protocol import LOOPS, StepFault, check_answer
from kcnn.runner import GraphRunner, StepFabric
from kcnn.tiling import Step

CXXFLAGS = (
    "-O2",
    "-std=c++14",
    "-fPIC",
    "-shared",
    # Each engine loads its own copy of the library; unique symbols would tie them together.
    "-fno-gnu-unique",
    "-Wall",
    "-Wextra",
    # HLS pragmas and loop labels are for Vitis; ap_private.h's constructors trip the
    # uninitialised-value analysis after inlining (false positives inside the headers).
    "-Wno-unknown-pragmas",
    "-Wno-unused-label",
    "-Wno-uninitialized",
    "-Wno-maybe-uninitialized",
)
# -O0 after -O2: unoptimised code keeps every access for the sanitizers to see, and the
# testbench compiles in 13 s instead of 70 (and runs in 11 s instead of 1).
SANITIZE = (
    "-O0",
    "-fsanitize=address,undefined",
    "-fno-sanitize=shift",
    "-g",
    "-fno-omit-frame-pointer",
)
RESULT_FIELDS = (
    "consumed_a",
    "consumed_b",
    "reads_a",
    "reads_b",
    "out_words",
    "first_last",
    "lasts",
    "status",
    "keep_strb_ones",
    "info0",
    "info1",
    "info2",
    "info3",
    "log_len",
)
CONFIG_FIELDS = (
    "P",
    "K_MAX",
    "J_MAX",
    "ACC_BITS",
    "IN_DEPTH",
    "W_DEPTH",
    "OUT_DEPTH",
    "STREAMS",
    "LRN_LANES",
    "CH_MAX",
    "loops",
    "max_step_words",
)


def hls_dir() -> Path:
    """The folder of the HLS sources (package data ``kcnn.hls``)."""
    spec = importlib.util.find_spec("kcnn.hls")
    if spec is None or not spec.submodule_search_locations:
        raise KcnnError("the HLS sources (package kcnn.hls) are not installed", field="hls")
    return Path(next(iter(spec.submodule_search_locations)))


def ap_types_dir() -> Path:
    """Where ``ap_int.h`` comes from: ``$KCNN_AP_TYPES``, else the installed hls4ml package,
    else ``$XILINX_HLS/include``."""
    candidates = []
    if os.environ.get("KCNN_AP_TYPES"):
        candidates.append(Path(os.environ["KCNN_AP_TYPES"]))
    else:
        spec = importlib.util.find_spec("hls4ml")  # located, never imported
        if spec is not None and spec.submodule_search_locations:
            root = Path(next(iter(spec.submodule_search_locations)))
            candidates.append(root / "templates" / "vivado" / "ap_types")
        if os.environ.get("XILINX_HLS"):
            candidates.append(Path(os.environ["XILINX_HLS"]) / "include")
    for folder in candidates:
        if (folder / "ap_int.h").is_file():
            return folder
    raise KcnnError(
        "the csim back-end needs the ap_types headers (ap_int.h): install them with "
        "pip install 'kcnn[csim]' (hls4ml ships them), or set KCNN_AP_TYPES to their folder"
        + (f"; not found in {', '.join(map(str, candidates))}" if candidates else ""),
        field="ap_types",
    )


def compiler() -> str:
    """The C++ compiler (``$CXX`` or g++), or a clear error naming it."""
    name = os.environ.get("CXX", "g++")
    path = shutil.which(name)
    if path is None:
        raise KcnnError(
            f"the csim back-end needs a C++ compiler, and {name!r} was not found on PATH: "
            "install g++ (e.g. apt-get install g++) or set CXX",
            field="compiler",
        )
    return path


def cache_dir() -> Path:
    root = os.environ.get("KCNN_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "kcnn",
    )
    folder = Path(root) / "csim"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def source_files(folder: Path | None = None) -> list[Path]:
    folder = folder or hls_dir()
    files = sorted(folder.glob("*.h")) + sorted(folder.glob("*.cpp"))
    return files + sorted((folder / "csim_include").glob("*.h"))


def build_defines(params: BuildParams) -> dict:
    """The ``-D`` values of a build (the clock is not a kernel parameter)."""
    return {k: int(getattr(params, k)) for k in BUILD_PARAMETERS}


def compile_command(
    out: Path, params: BuildParams, sources: list[str], sanitize: bool = False, shared: bool = True
) -> list[str]:
    folder = hls_dir()
    flags = [f for f in CXXFLAGS if shared or f not in ("-fPIC", "-shared")]
    cmd = [compiler(), *flags, *(SANITIZE if sanitize else ())]
    cmd += [f"-DKCNN_{k}={v}" for k, v in build_defines(params).items()]
    cmd += ["-isystem", str(ap_types_dir()), "-isystem", str(folder / "csim_include")]
    cmd += ["-I", str(folder), *sources, "-o", str(out)]
    return cmd


def _compile_cached(what: str, stem: str, suffix: str, sources, params, **flags) -> Path:
    """Compile ``sources`` into the cache under a name keyed by the command and the contents
    of the hls/ sources and ap_types headers, unless it is there already; the file appears
    atomically. The key leaves out where those folders are, so environments that install
    the same sources and headers (the main and the board test environments) share it."""
    folder = hls_dir()
    headers = ap_types_dir()
    probe = compile_command(Path("OUT"), params, sources, **flags)
    probe = [arg.replace(str(folder), "<hls>").replace(str(headers), "<ap_types>") for arg in probe]
    digest = hashlib.sha256("\0".join(probe).encode())
    for path in source_files(folder) + sorted(headers.rglob("*.h")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    target = cache_dir() / f"{stem}_{digest.hexdigest()[:20]}{suffix}"
    if target.is_file():
        return target
    fd, tmp = tempfile.mkstemp(prefix=".build-", suffix=suffix, dir=target.parent)
    os.close(fd)
    cmd = compile_command(Path(tmp), params, sources, **flags)
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise KcnnError(
                f"g++ failed to build the {what} ({' '.join(cmd)}):\n{done.stderr[-4000:]}",
                field="compiler",
            )
        os.replace(tmp, target)  # atomic: a parallel build never sees half a file
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


def build(params: BuildParams | None = None) -> Path:
    """The C-sim shared library for ``params``, compiled unless the cache holds it."""
    return _compile_cached(
        "C-sim", "kcnn_csim", ".so", [str(hls_dir() / "kcnn_top.cpp")], params or BuildParams()
    )


def build_testbench(params: BuildParams | None = None, sanitize: bool = False) -> Path:
    """The standalone C++ testbench (``hls/tb_kcnn.cpp``) as an executable in the cache,
    optionally under AddressSanitizer and UBSan."""
    folder = hls_dir()
    sources = [str(folder / "tb_kcnn.cpp"), str(folder / "kcnn_top.cpp")]
    return _compile_cached(
        "testbench",
        "tb_kcnn",
        "",
        sources,
        params or BuildParams(),
        sanitize=sanitize,
        shared=False,
    )


def _array(dtype):
    return np.ctypeslib.ndpointer(dtype, ndim=1, flags="C_CONTIGUOUS")


class CsimKernel:
    """One private instance of the C-sim library for one build-parameter set."""

    def __init__(self, params: BuildParams | None = None):
        self.params = params or BuildParams()
        self.path = build(self.params)
        # dlopen returns the already-loaded handle for a path it has seen: a private copy
        # gives this kernel its own static memories.
        fd, copy = tempfile.mkstemp(prefix="kcnn_csim_", suffix=".so", dir=cache_dir())
        os.close(fd)
        shutil.copyfile(self.path, copy)
        try:
            self._lib = ctypes.CDLL(copy)
        finally:
            os.unlink(copy)  # the mapping stays valid; nothing is left behind
        self._lock = threading.Lock()
        lib = self._lib
        u64, u8, i64 = _array(np.uint64), _array(np.uint8), _array(np.int64)
        lib.kcnn_csim_step.argtypes = [
            u64,
            u8,
            ctypes.c_int64,
            u64,
            u8,
            ctypes.c_int64,
            u64,
            ctypes.c_int64,
            i64,
            i64,
            ctypes.c_int64,
        ]
        lib.kcnn_csim_step.restype = ctypes.c_int
        lib.kcnn_csim_config.argtypes = [i64]
        lib.kcnn_csim_config.restype = ctypes.c_int
        lib.kcnn_csim_reset.argtypes = []
        lib.kcnn_csim_reset.restype = None
        values = np.zeros(len(CONFIG_FIELDS), np.int64)
        lib.kcnn_csim_config(values)
        self.config = dict(zip(CONFIG_FIELDS, (int(v) for v in values), strict=True))
        if self.config["loops"] != len(LOOPS):
            raise KcnnError("the C-sim library's loop ids do not match kcnn.protocol.LOOPS")

    def run_words(self, a, a_last, b=None, b_last=None, out_cap: int = 16):
        """One invocation on raw words -> ``(output words, result, loop log)``."""
        if self._lib is None:
            raise KcnnError("the C-sim library is closed", field="backend")
        a = np.ascontiguousarray(a, np.uint64)
        a_last = np.ascontiguousarray(a_last, np.uint8)
        b = np.ascontiguousarray(np.zeros(0, np.uint64) if b is None else b, np.uint64)
        b_last = np.ascontiguousarray(np.zeros(0, np.uint8) if b_last is None else b_last, np.uint8)
        cap = max(16, out_cap)
        out = np.zeros(cap, np.uint64)
        result = np.zeros(len(RESULT_FIELDS), np.int64)
        log_cap = 1 << 16
        log = np.zeros(2 * log_cap, np.int64)
        with self._lock:
            self._lib.kcnn_csim_step(
                a, a_last, a.size, b, b_last, b.size, out, cap, result, log, log_cap
            )
        res = dict(zip(RESULT_FIELDS, (int(v) for v in result), strict=True))
        res["info"] = [int(np.int64(res.pop(f"info{i}")).view(np.uint64)) for i in range(4)]
        entries = min(res["log_len"], log_cap)
        loop_log = [(LOOPS[int(log[2 * k])], int(log[2 * k + 1])) for k in range(entries)]
        return out[: min(res["out_words"], cap)].copy(), res, loop_log

    def reset(self) -> None:
        """Clear every static memory (a fresh kernel)."""
        with self._lock:
            self._lib.kcnn_csim_reset()

    def run_step(self, step: Step, map_words: np.ndarray, shortcut: np.ndarray | None = None):
        """One step, checked like the board driver checks its transfers: every word sent
        is read, nothing past a TLAST, one TLAST on the trailer. Returns the output words
        and the loop log."""
        a = step.stream_a(map_words, shortcut)
        b = step.stream_b(map_words)
        a_last = np.zeros(a.size, np.uint8)
        a_last[-1] = 1
        b_last = np.zeros(b.size, np.uint8)
        if b.size:
            b_last[-1] = 1
        out, res, log = self.run_words(a, a_last, b, b_last, step.out_words + 1)
        where = f"step {step.index} (layer {step.layer.name!r})"
        for stream, sent in (("a", a.size), ("b", b.size)):
            if res[f"reads_{stream}"] != sent or res[f"consumed_{stream}"] != sent:
                raise StepFault(
                    f"{where}: the kernel read {res[f'reads_{stream}']} words of stream "
                    f"{stream.upper()} ({res[f'consumed_{stream}']} present), the step sends "
                    f"{sent}",
                    layer=step.layer.name,
                    field="stream",
                )
        words = check_answer(step, out, res["out_words"])
        if res["first_last"] != res["out_words"] - 1 or res["lasts"] != 1:
            raise StepFault(
                f"{where}: TLAST at word {res['first_last']} ({res['lasts']} TLASTs) of "
                f"{res['out_words']}",
                layer=step.layer.name,
                field="answer",
            )
        if not res["keep_strb_ones"]:
            raise StepFault(
                f"{where}: output words without keep/strb all ones",
                layer=step.layer.name,
                field="answer",
            )
        return words, log

    def close(self) -> None:
        if self._lib is not None:
            _ctypes.dlclose(self._lib._handle)
            self._lib = None

    def __del__(self):
        # Each kernel maps its own copy of the library: unmap it with the last reference.
        self.close()


class CsimEngine:
    """A model on a private C-sim instance: the device of a :class:`kcnn.runner.StepFabric`,
    which one :class:`kcnn.runner.GraphRunner` drives. Same ``run`` as the simulator."""

    def __init__(
        self, model: Model, params: BuildParams | None = None, kernel: CsimKernel | None = None
    ):
        # A kernel may serve several engines (its lock serialises them); by default each
        # engine has its own, so engines in different threads never wait for each other.
        self.kernel = kernel if kernel is not None else CsimKernel(params)
        self._own_kernel = kernel is None
        self.model = model
        self.params = self.kernel.params
        self.fabric = StepFabric(model, self.params, self)
        self.plan = self.fabric.plan
        self.runner = GraphRunner(model, self.fabric)
        self.loop_logs: list[list] = []  # per step of the last frame: the kernel's loop log
        self._previous = np.zeros(0, np.uint64)  # the last answer: the next step's map

    def run(self, x: np.ndarray, trace: bool = False):
        return self.runner.run(x, trace)

    # ---- the device --------------------------------------------------------------------
    def begin_frame(self) -> None:
        self.loop_logs = []

    def map_slot(self, step: Step) -> None:
        return None

    def shortcut_slot(self, step: Step) -> None:
        return None

    def execute(self, step: Step, map_words, shortcut, need: bool) -> np.ndarray:
        words = self._previous if map_words is None else map_words
        answer, log = self.kernel.run_step(step, words, shortcut)
        self._previous = answer
        self.loop_logs.append(log)
        return answer

    def close(self) -> None:
        if self._own_kernel:
            self.kernel.close()
