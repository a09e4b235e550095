"""The ``csim`` back-end: the HLS top compiled with g++ and called through ctypes.

The kernel gets exactly the words the DMA would carry (the constant part and the inputs of
each job, from the same packer as the board) and their TLAST flags. The library is built
into the user cache folder under a name keyed by the sources, build parameters and flags,
so a changed source never reuses a stale library. The open-source ``hls_stream`` returns a
zero word when read empty and never blocks, so the wrapper checks every job's word counts
and TLAST position itself.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from kcnn.config import BUILD_DEFAULTS, BUILD_PARAMETERS
from kcnn.errors import KcnnError
from kcnn.jobs import STATUS, TRIP_COUNTERS, PackedJob, decode_status, job_transfers
from kcnn.kfile import KcnnModel
from kcnn.sim.streaming import StreamingEngine

CXXFLAGS = (
    "-O2",
    "-std=c++14",
    "-fPIC",
    "-shared",
    "-Wall",
    "-Wextra",
    # HLS pragmas and loop labels are for Vitis; ap_private.h's constructors trip the
    # uninitialised-value analysis after inlining (false positives inside the headers).
    "-Wno-unknown-pragmas",
    "-Wno-unused-label",
    "-Wno-uninitialized",
    "-Wno-maybe-uninitialized",
)
SANITIZE = ("-fsanitize=address,undefined", "-fno-sanitize=shift", "-g", "-fno-omit-frame-pointer")
RESULT_FIELDS = (
    "consumed",
    "reads",
    "out_words",
    "first_last",
    "lasts",
    "status",
    "keep_strb_ones",
    "info0",
    "info1",
    "info2",
    "info3",
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


def build_params(params: dict | None) -> dict:
    merged = {**BUILD_DEFAULTS, **(params or {})}
    return {k: int(merged[k]) for k in BUILD_PARAMETERS}


def compile_command(
    out: Path, params: dict, sources: list[str], sanitize: bool = False, shared: bool = True
) -> list[str]:
    folder = hls_dir()
    flags = [f for f in CXXFLAGS if shared or f not in ("-fPIC", "-shared")]
    cmd = [compiler(), *flags, *(SANITIZE if sanitize else ())]
    cmd += [f"-DKCNN_{k}={v}" for k, v in build_params(params).items()]
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


def build(params: dict | None = None) -> Path:
    """The C-sim shared library for ``params``, compiled unless the cache holds it."""
    return _compile_cached("C-sim", "kcnn_csim", ".so", [str(hls_dir() / "kcnn_top.cpp")], params)


def build_testbench(params: dict | None = None, sanitize: bool = False) -> Path:
    """The standalone C++ testbench (``hls/tb_kcnn.cpp``) as an executable in the cache,
    optionally under AddressSanitizer and UBSan."""
    folder = hls_dir()
    sources = [str(folder / "tb_kcnn.cpp"), str(folder / "kcnn_top.cpp")]
    return _compile_cached(
        "testbench", "tb_kcnn", "", sources, params, sanitize=sanitize, shared=False
    )


def _u64(ndim=1):
    return np.ctypeslib.ndpointer(np.uint64, ndim=ndim, flags="C_CONTIGUOUS")


class CsimKernel:
    """One loaded C-sim library (one build-parameter set)."""

    def __init__(self, params: dict | None = None):
        self.params = build_params(params)
        self.path = build(self.params)
        self._lib = ctypes.CDLL(str(self.path))
        lib = self._lib
        i64 = np.ctypeslib.ndpointer(np.int64, ndim=1, flags="C_CONTIGUOUS")
        u8 = np.ctypeslib.ndpointer(np.uint8, ndim=1, flags="C_CONTIGUOUS")
        lib.kcnn_csim_job.argtypes = [
            _u64(),
            u8,
            ctypes.c_int64,
            _u64(),
            ctypes.c_int64,
            i64,
            _u64(),
        ]
        lib.kcnn_csim_job.restype = ctypes.c_int
        lib.kcnn_csim_descriptor.argtypes = [_u64(), i64]
        lib.kcnn_csim_descriptor.restype = ctypes.c_int
        lib.kcnn_csim_config.argtypes = [i64]
        lib.kcnn_csim_config.restype = ctypes.c_int
        values = np.zeros(9, np.int64)
        lib.kcnn_csim_config(values)
        self.config = dict(
            zip(
                ("P", "K_MAX", "J_MAX", "ACC_BITS", "IN_DEPTH", "W_DEPTH", "OUT_DEPTH"),
                (int(v) for v in values[:7]),
                strict=True,
            )
        )
        self.max_job_words = int(values[7])
        if int(values[8]) != len(TRIP_COUNTERS):
            raise KcnnError("the C-sim library's trip counters do not match kcnn.jobs")

    def run_words(self, words, last, out_cap: int | None = None):
        """One job as raw words and TLAST flags -> ``(output words, result, trips)``."""
        if self._lib is None:
            raise KcnnError("the C-sim library is closed", field="backend")
        words = np.ascontiguousarray(words, np.uint64)
        last = np.ascontiguousarray(last, np.uint8)
        cap = max(16, out_cap or 0)
        out = np.zeros(cap, np.uint64)
        result = np.zeros(len(RESULT_FIELDS), np.int64)
        trips = np.zeros(len(TRIP_COUNTERS), np.uint64)
        self._lib.kcnn_csim_job(words, last, words.size, out, cap, result, trips)
        res = dict(zip(RESULT_FIELDS, (int(v) for v in result), strict=True))
        res["info"] = [int(np.int64(res.pop(f"info{i}")).view(np.uint64)) for i in range(4)]
        n = min(res["out_words"], cap)
        return out[:n].copy(), res, dict(zip(TRIP_COUNTERS, (int(v) for v in trips), strict=True))

    def decode_descriptor(self, words) -> list[int]:
        fields = np.zeros(32, np.int64)
        count = self._lib.kcnn_csim_descriptor(np.ascontiguousarray(words[:8], np.uint64), fields)
        return [int(v) for v in fields[:count]]

    def run_job(self, pj, inputs: np.ndarray, where: str = ""):
        """One packed job, checked like the board driver checks a DMA transfer."""
        words, last = job_transfers(pj, inputs)
        out, res, trips = self.run_words(words, last, pj.output_words + 1)
        job = f"{where}job {pj.fields['job_index']}"
        if res["reads"] != words.size or res["consumed"] != words.size:
            raise KcnnError(
                f"{job}: the kernel read {res['reads']} words ({res['consumed']} present), "
                f"the job holds {words.size}",
                field="job",
            )
        if res["status"] != STATUS["OK"]:
            name = decode_status(out[0]) if out.size else None
            raise KcnnError(f"{job}: the kernel answered status {name or res['status']}")
        expected = pj.output_words
        if res["out_words"] != expected or res["first_last"] != expected - 1 or res["lasts"] != 1:
            raise KcnnError(
                f"{job}: expected {expected} output words with TLAST on the last, got "
                f"{res['out_words']} with TLAST at {res['first_last']} ({res['lasts']} TLASTs)",
                field="job",
            )
        if not res["keep_strb_ones"]:
            raise KcnnError(f"{job}: output words without keep/strb all ones", field="job")
        return out, trips

    def close(self) -> None:
        if self._lib is not None:
            import _ctypes

            _ctypes.dlclose(self._lib._handle)
            self._lib = None


_KERNELS: dict[tuple, CsimKernel] = {}


def kernel(params: dict | None = None) -> CsimKernel:
    """The loaded C-sim for ``params`` (built or loaded once per process; a rebuilt library
    replaces the previous handle, which is closed)."""
    key = tuple(build_params(params).items())
    current = _KERNELS.get(key)
    if current is not None and current._lib is not None and current.path == build(params):
        return current
    if current is not None:
        current.close()
    _KERNELS[key] = CsimKernel(params)
    return _KERNELS[key]


class CsimEngine(StreamingEngine):
    """Runs a model with every fabric layer (and every max-pool after a conv) on the C-sim,
    everything else with the simulator's own host code. Same interface as ``Simulator``."""

    def __init__(self, model: KcnnModel, params: dict | None = None):
        self.kernel = kernel(params)
        super().__init__(model, self.kernel.params)
        self.trips = dict.fromkeys(TRIP_COUNTERS, 0)
        self.job_trips: dict[str, list[dict]] = {}

    def execute(self, pj: PackedJob, inputs: np.ndarray, layer: str, image: int) -> np.ndarray:
        words, trips = self.kernel.run_job(pj, inputs, where=f"layer {layer!r} ")
        for key, value in trips.items():
            self.trips[key] += value
        if image == 0:
            self.job_trips.setdefault(layer, []).append(trips)
        return words

    def run(self, x: np.ndarray, trace: bool = False):
        """Same contract as :meth:`kcnn.sim.engine.Simulator.run`."""
        self.job_trips = {}
        return super().run(x, trace=trace)
