"""Write generated files, or check that a rerun gives the same bytes (the ``--check`` mode of
the scripts that make committed test data: tools/architectures.py, tools/zoo_graphs.py)."""

from __future__ import annotations

import argparse
from pathlib import Path


def write_or_check(folder: Path, outputs: dict[str, bytes], check: bool) -> list[str]:
    """The names in ``outputs`` whose bytes differ from ``folder``'s files; unless
    ``check``, the files are (re)written."""
    changed = []
    for name, blob in outputs.items():
        target = folder / name
        before = target.read_bytes() if target.exists() else None
        if before != blob:
            changed.append(name)
        if not check:
            folder.mkdir(parents=True, exist_ok=True)
            target.write_bytes(blob)
    return changed


def arguments(
    description: str, default_out: Path, argv=None, flags: dict[str, str] | None = None
) -> argparse.Namespace:
    """The scripts' command line: ``--out FOLDER``, ``--check`` and a script's own on/off
    ``flags`` (name: help)."""
    parser = argparse.ArgumentParser(description=description)
    for flag, text in (flags or {}).items():
        parser.add_argument(f"--{flag}", action="store_true", help=text)
    parser.add_argument("--out", type=Path, default=default_out, help="folder for the ONNX files")
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 unless every file and the manifest come out the same",
    )
    return parser.parse_args(argv)
