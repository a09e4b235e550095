"""The KCNN overlay for the PYNQ-Z2: where its files are and what it was built with.

``build.tcl`` writes ``kcnn.bit``, ``kcnn.hwh`` and ``kcnn.json`` into this folder (they are
build outputs, never committed). They are looked up in this order: an explicit path (a
``.bit`` file or a folder holding ``kcnn.bit``), ``$KCNN_OVERLAY`` (the same), the installed
package folder. The first of these that is given is used; a missing file is an error that
names all three places. A build that missed timing is written as ``kcnn_timing_failed.*``
and its ``kcnn.json`` says so: :func:`check_timing` refuses it unless asked.
``KCNNOverlay`` and ``KcnnIP`` (which need pynq) are imported on first use:
``from kcnn.overlay import KCNNOverlay``.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from kcnn.config import ARITHMETIC_CONTRACT, BUILD_PARAMETERS, BuildParams
from kcnn.errors import KcnnError

OVERLAY_ENV = "KCNN_OVERLAY"
IP_VLNV = "xilinx.com:hls:kcnn_top:1.0"
DMA_VLNV_PREFIX = "xilinx.com:ip:axi_dma:"
BIT_NAME = "kcnn.bit"
#: The stem build.tcl gives the files of a build whose timing failed.
TIMING_FAILED_STEM = "kcnn_timing_failed"
#: The post-route figures build.tcl records in kcnn.json ("utilization").
MEASURED_RESOURCES = ("lut", "ff", "bram36", "dsp48")


@dataclass(frozen=True)
class OverlayFiles:
    bit: Path
    hwh: Path
    json: Path
    source: str  # which lookup place supplied them


def package_folder() -> Path:
    return Path(__file__).resolve().parent


def _bit_in(path) -> Path:
    path = Path(path)
    return path / BIT_NAME if path.is_dir() or not path.suffix else path


def _missing(bit: Path) -> list[str]:
    files = [bit, bit.with_suffix(".hwh"), bit.with_suffix(".json")]
    return [f.name for f in files if not f.is_file()]


def find_overlay(path=None) -> OverlayFiles:
    """The overlay's ``.bit``, ``.hwh`` and ``.json`` (same stem), or a clear error."""
    env = os.environ.get(OVERLAY_ENV) or None
    places = [
        ("explicit path", path),
        (f"${OVERLAY_ENV}", env),
        ("package folder", package_folder()),
    ]
    report = []
    for label, where in places:
        if where is None:
            report.append(f"{label}: not given")
            continue
        bit = _bit_in(where)
        missing = _missing(bit)
        if not missing:
            return OverlayFiles(bit, bit.with_suffix(".hwh"), bit.with_suffix(".json"), label)
        failed = bit.with_name(TIMING_FAILED_STEM + ".bit")
        hint = ""
        if bit.name == BIT_NAME and failed.is_file():
            hint = (
                f" ({failed.name} is there: that build missed timing; load it by its path with"
                " allow_timing_failure=True only to debug)"
            )
        report.append(f"{label} {bit.parent}: missing {', '.join(missing)}{hint}")
        break  # the first place given decides: no silent fallback to another overlay
    raise KcnnError(
        "no complete KCNN overlay (kcnn.bit, kcnn.hwh, kcnn.json; build it with build.tcl, "
        f"see overlay/README.md). Looked in: {'; '.join(report + _not_reached(places, report))}",
        field="overlay",
    )


def _not_reached(places, report) -> list[str]:
    return [f"{label}: not consulted" for label, _ in places[len(report) :]]


def read_overlay_config(path) -> dict:
    """``kcnn.json``: the contract and build parameters the overlay was built with."""
    path = Path(path)
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise KcnnError(f"cannot read the overlay configuration: {err}", file=path) from err
    for section, keys in (
        ("contract", tuple(ARITHMETIC_CONTRACT)),
        ("build", BUILD_PARAMETERS),
    ):
        values = config.get(section)
        if not isinstance(values, dict):
            raise KcnnError(f"section {section!r} missing", file=path, field=section)
        for key in keys:
            if not isinstance(values.get(key), int):
                raise KcnnError(f"{section}.{key} missing or not an integer", file=path, field=key)
    for section in ("timing", "utilization"):
        if section in config and not isinstance(config[section], dict):
            raise KcnnError(f"section {section!r} is not an object", file=path, field=section)
    config["params"] = build_params(config, source=path)
    return config


def check_timing(config: dict, source=None, allow: bool = False) -> None:
    """Refuse an overlay whose build did not meet timing (``kcnn.json`` "timing"), unless
    ``allow``: such a bitstream may compute wrong results at its clock. A build made with
    ``allow_negative_slack=1`` loads with a warning. A ``kcnn.json`` without the section
    (written by hand) is taken as it is."""
    timing = config.get("timing")
    if not isinstance(timing, dict) or timing.get("met") is not False:
        return
    wns = timing.get("wns_ns")
    clock = config["build"].get("CLOCK_MHZ", "?")
    slack = "not reported" if wns is None else f"{wns} ns"
    what = (
        f"the overlay was built with timing not met (WNS {slack} at {clock} MHz), so it may "
        "compute wrong results"
    )
    if allow or timing.get("negative_slack_allowed"):
        warnings.warn(f"kcnn overlay {source}: {what}", RuntimeWarning, stacklevel=3)
        return
    raise KcnnError(
        f"{what} (refused). Rebuild it (a lower clock_mhz= or a smaller P=), or pass "
        "allow_timing_failure=True to load it anyway for debugging",
        file=source,
        field="timing",
    )


def format_measured(config: dict, estimated: dict | None = None) -> str:
    """The overlay's post-route figures from ``kcnn.json``, each beside the estimate's
    (``estimate()["resources"]``) when given."""
    from kcnn.estimate import DEVICE

    used = config.get("utilization") or {}
    timing = config.get("timing") or {}
    parts = []
    for key in MEASURED_RESOURCES:
        value = used.get(key)
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        text = f"{value:g} ({100 * value / DEVICE[key]:.0f}%)" if number else "?"
        if estimated is not None:
            text += f" vs estimated {estimated['total'][key]:g}"
        parts.append(f"{key.upper()} {text}")
    wns = timing.get("wns_ns")
    wns = f"{wns:g} ns" if isinstance(wns, (int, float)) and not isinstance(wns, bool) else "?"
    met = {True: "met", False: "NOT met"}.get(timing.get("met"), "unknown")
    return f"overlay (measured after place and route): {', '.join(parts)}; WNS {wns} (timing {met})"


def build_params(config: dict, source=None) -> BuildParams:
    """The overlay's :class:`~kcnn.config.BuildParams` from its ``kcnn.json`` (the PL clock
    is ``build.CLOCK_MHZ``; a file without it was built at the 100 MHz default)."""
    build = config["build"]
    values = {key: build[key] for key in BUILD_PARAMETERS}
    if "CLOCK_MHZ" in build:
        values["CLOCK_MHZ"] = build["CLOCK_MHZ"]
    return BuildParams.from_mapping(values, source=source)


def __getattr__(name):
    if name in ("KCNNOverlay", "KcnnIP"):
        from kcnn.overlay import driver

        return getattr(driver, name)
    raise AttributeError(f"module 'kcnn.overlay' has no attribute {name!r}")
