"""``kcnn.Accelerator``: the one API that the CLI, notebooks and users share (DESIGN 5)."""

from __future__ import annotations

import os
import warnings

import numpy as np

from kcnn.errors import KcnnError, require
from kcnn.inputs import DEFAULT_BATCH, batches, check_batch, check_batch_size
from kcnn.kfile import load

BACKENDS = ("auto", "sim", "csim", "board")
#: Where the PYNQ image exposes the PL's FPGA manager (the board's own detection test).
FPGA_MANAGER = "/sys/class/fpga_manager/fpga0/firmware"


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise KcnnError(
            f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}", field="backend"
        )


def _build_params(params):
    from kcnn.config import BuildParams

    if params is None or isinstance(params, BuildParams):
        return params
    return BuildParams.from_mapping(params)


def board_present() -> bool:
    return os.path.exists(FPGA_MANAGER)


def _board_engine(model, overlay, timeout_s):
    """The overlay's engine (pynq and the overlay's files needed; not run on hardware)."""
    require("pynq", "board", "the board back-end")
    from kcnn.overlay.driver import KCNNOverlay

    return KCNNOverlay(overlay).engine(model, timeout_s=timeout_s)


class Accelerator:
    """Run a `.kcnn` model on a back-end.

    Parameters
    ----------
    path
        The `.kcnn` file.
    backend
        ``"auto"`` (the board when present with a matching overlay, else the simulator),
        ``"sim"``, ``"csim"`` or ``"board"``. ``.backend`` and ``.reason`` say which runs
        and why; a fall-back from a present board to the simulator also warns.
    params
        Build parameters for ``csim`` (a :class:`~kcnn.config.BuildParams` or a mapping of
        its fields; the defaults when None).
    overlay
        The overlay for ``board``: a ``.bit`` or a folder with ``kcnn.bit``; None looks in
        ``$KCNN_OVERLAY``, then the installed package (see :mod:`kcnn.overlay`).
    timeout_s
        The board's deadline for each wait.
    batch_size
        Images run at a time: outputs are gathered batch by batch, so the memory a run
        takes does not grow with N beyond the outputs themselves.
    """

    def __init__(
        self,
        path,
        backend: str = "auto",
        params=None,
        overlay=None,
        timeout_s: float = 5.0,
        batch_size: int = DEFAULT_BATCH,
    ):
        _check_backend(backend)
        self.batch_size = check_batch_size(batch_size)
        self.path = path
        self.model = load(path)
        self._closed = False
        self._engine = None
        if backend == "board" and not board_present():
            raise KcnnError(
                f"backend 'board' needs a PYNQ board, and none was found (no {FPGA_MANAGER}); "
                "use 'sim' (the bit-accurate simulator) or 'csim' (the HLS kernel's C-sim)",
                field="backend",
            )
        if backend in ("board", "auto") and board_present():
            try:
                self._engine = _board_engine(self.model, overlay, timeout_s)
                self.backend = "board"
                self.reason = (
                    "requested" if backend == "board" else "a PYNQ board and a matching overlay"
                )
            except Exception as err:
                if backend == "board":
                    raise
                self.reason = (
                    f"a PYNQ board is present but the board back-end failed ({err}); "
                    "falling back to the simulator"
                )
                warnings.warn(f"kcnn: {self.reason}", RuntimeWarning, stacklevel=2)
        elif backend == "auto":
            self.reason = "no PYNQ board found (no FPGA manager); falling back to the simulator"
        if self._engine is not None:
            return
        if backend == "csim":
            # The HLS top compiled with g++ (cached per source hash and build parameters).
            from kcnn.sim.csim import CsimEngine

            self.backend, self.reason = "csim", "requested"
            self._engine = CsimEngine(self.model, _build_params(params))
        else:
            from kcnn.sim.engine import simulator

            self.backend = "sim"
            if backend == "sim":
                self.reason = "requested"
            self._engine = simulator(self.model)

    # ---- inputs ---------------------------------------------------------------------
    def check_input(self, x, source=None) -> np.ndarray:
        """``x`` validated as ``(N, *input_shape)`` floats, or uint8 images for a model
        quantized with pixel input (see :func:`kcnn.inputs.check_batch`); ``source`` names
        where it came from in errors."""
        if self._closed:
            raise KcnnError("the accelerator is closed", file=self.path)
        pixels = self.model.pixels is not None
        return check_batch(x, self.model.input_shape, pixels=pixels, source=source, field="input")

    def _run(self, x, trace=False):
        x = self.check_input(x)
        outputs, logits, maps = [], [], {}
        for _, chunk in batches(x, self.batch_size):
            out, raw, traced = self._engine.run(chunk, trace=trace)
            outputs.append(out)
            logits.append(raw)
            for name, codes in traced.items():
                maps.setdefault(name, []).append(codes)
        maps = {name: np.concatenate(parts) for name, parts in maps.items()}
        return np.concatenate(outputs), np.concatenate(logits), maps

    # ---- the API --------------------------------------------------------------------
    def run(self, x, logits: bool = False) -> np.ndarray:
        """The model's output (trailing host ops applied), or the logits: float64 (N, classes)."""
        output, raw, _ = self._run(x)
        return raw if logits else output

    def predict(self, x) -> np.ndarray:
        """Class labels (int64, shape (N,))."""
        return np.argmax(self.run(x, logits=True), axis=1)

    def trace(self, x) -> dict:
        """Every map's codes (uint8) and the last layer's ``acc`` (int64), by layer name."""
        return self._run(x, trace=True)[2]

    @property
    def loop_logs(self) -> list | None:
        """On ``csim``: the kernel's loop log, ``[(loop, trips), ...]``, of every step of the
        last frame run (what ``kcnn.plan.Step.loop_log`` predicts and the estimate costs);
        ``None`` on the other back-ends, which have no loop counters."""
        logs = getattr(self._engine, "loop_logs", None)
        return None if logs is None else [list(log) for log in logs]

    def estimate(self) -> dict:
        """The analytic board-performance model's table (an estimate, not a measurement),
        for the build parameters of the running engine (the overlay's on a board)."""
        from kcnn.estimate import estimate

        params = getattr(self._engine, "params", None)
        if params is None:
            return estimate(self.model)
        return estimate(self.model, params, source=f"the {self.backend} back-end's build")

    def close(self) -> None:
        """Frees the board's buffers (other back-ends hold none); idempotent."""
        if not self._closed and hasattr(self._engine, "close"):
            self._engine.close()
        self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self):
        return f"Accelerator({str(self.path)!r}, backend={self.backend!r})"
