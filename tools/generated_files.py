"""Write generated files, or check that a rerun gives the same bytes (the ``--check`` mode of
the scripts that make committed test data: tools/architectures.py, tools/zoo_graphs.py)."""

from __future__ import annotations

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
