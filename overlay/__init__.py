"""The KCNN overlay for the PYNQ-Z2: where its files are and what it was built with.

``build.tcl`` writes ``kcnn.bit``, ``kcnn.hwh`` and ``kcnn.json`` into this folder (they are
build outputs, never committed). They are looked up in this order: an explicit path (a
``.bit`` file or a folder holding ``kcnn.bit``), ``$KCNN_OVERLAY`` (the same), the installed
package folder. The first of these that is given is used; a missing file is an error that
names all three places. ``KCNNOverlay`` and ``KcnnIP`` (which need pynq) are imported on
first use: ``from kcnn.overlay import KCNNOverlay``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from kcnn.config import ARITHMETIC_CONTRACT, BUILD_PARAMETERS, BuildParams
from kcnn.errors import KcnnError

OVERLAY_ENV = "KCNN_OVERLAY"
IP_VLNV = "xilinx.com:hls:kcnn_top:1.0"
DMA_VLNV_PREFIX = "xilinx.com:ip:axi_dma:"
BIT_NAME = "kcnn.bit"


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
        report.append(f"{label} {bit.parent}: missing {', '.join(missing)}")
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
    config["params"] = build_params(config, source=path)
    return config


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
