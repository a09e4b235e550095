"""Output files: checked before the work starts, then written all or none.

A command names its outputs and inputs first (:func:`check_outputs`), so a bad ``-o`` fails
before an hour of quantizing and never destroys an input. :func:`write_outputs` then writes
every regular-file output to a temporary file in its folder, and only when all of them are
complete renames them into place; a failed rename puts back what the earlier renames
replaced. A character device or a FIFO (``/dev/null``, ``/dev/stdout`` on a pipe) and ``-``
(standard output) are *streamed to*, after the renames, never replaced: renaming a
temporary file over ``/dev/null`` as root would turn the device into a regular file.
Block devices, sockets and folders are refused.
"""

from __future__ import annotations

import io
import os
import stat
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kcnn.errors import KcnnError

#: The path that means standard output.
STDOUT = "-"


@dataclass(frozen=True)
class Output:
    """Where one output goes: a regular file to (re)place, or a stream to write to."""

    path: str  # as the user wrote it
    field: str  # the option that named it, for error messages
    target: Path | None  # the regular file the rename replaces; None for a stream

    @property
    def stream(self) -> bool:
        return self.target is None


def _fail(output_path, field, message) -> KcnnError:
    return KcnnError(message, file=output_path, field=field)


def plan_output(path, field: str = "output") -> Output:
    """Check that ``path`` can take an output, without writing anything."""
    text = str(path)
    if text == STDOUT:
        return Output(text, field, None)
    try:
        mode = os.stat(text).st_mode  # follows links: what a write would reach
    except FileNotFoundError:
        mode = None
    except NotADirectoryError:
        raise _fail(text, field, "a parent of this path is a file, not a folder") from None
    except OSError as exc:
        raise _fail(text, field, f"cannot use this path: {exc.strerror}") from None
    if mode is not None:
        if stat.S_ISDIR(mode):
            raise _fail(text, field, "is a folder; name a file to write")
        if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode):
            return Output(text, field, None)
        if not stat.S_ISREG(mode):
            raise _fail(text, field, "is neither a regular file, a character device nor a FIFO")
    # A link to a file is kept: the file it points to is replaced.
    target = Path(os.path.realpath(text))
    folder = target.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise _fail(text, field, f"{folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise _fail(text, field, f"the folder {folder} is not writable")
    return Output(text, field, target)


def _same(a: str, b: str) -> bool:
    if a == b:
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def check_outputs(outputs: dict, inputs: dict | None = None) -> dict[str, Output]:
    """Plan the outputs ``{field: path or None}``; none may be an input ``{field: path}``
    or another output."""
    planned = {f: plan_output(p, f) for f, p in outputs.items() if p is not None}
    for field, out in planned.items():
        for in_field, in_path in (inputs or {}).items():
            if in_path is not None and str(in_path) != STDOUT and _same(out.path, str(in_path)):
                raise _fail(
                    out.path,
                    field,
                    f"is the same file as the input ({in_field}); writing it would destroy it",
                )
    names = list(planned)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            if _same(planned[first].path, planned[second].path):
                raise _fail(
                    planned[second].path, second, f"is the same file as the output ({first})"
                )
    return planned


def _usual_mode() -> int:
    # mkstemp makes the file private (0600); outputs get the usual umask-based mode.
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _stream(output: Output, data: bytes) -> None:
    if output.path == STDOUT:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    with open(output.path, "wb") as handle:
        handle.write(data)


def _backup(target: Path, name: str) -> str | None:
    """A second name for the file a rename will replace, so that a rollback can put it
    back; None when there is none (or the file system has no hard links: the rollback
    then removes the new file)."""
    if not target.exists():
        return None
    try:
        os.link(target, name)
    except OSError:
        return None
    return name


def write_outputs(items) -> None:
    """Write ``[(Output, write)]``, where ``write(handle)`` writes one output's bytes: all of
    them or none. Errors are a :class:`KcnnError` naming the output."""
    temporaries, streams, renamed = [], [], []
    current = None
    try:
        for output, write in items:
            current = output
            if output.stream:
                buffer = io.BytesIO()  # rendered first, so a failing writer sends nothing
                write(buffer)
                streams.append((output, buffer.getvalue()))
                continue
            output.target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(
                prefix=f".{output.target.name}.", suffix=".tmp", dir=output.target.parent
            )
            temporaries.append(tmp)
            with os.fdopen(fd, "wb") as handle:
                write(handle)
            os.chmod(tmp, _usual_mode())
        for output, tmp in zip((o for o, _ in items if not o.stream), temporaries, strict=True):
            current = output
            backup = _backup(output.target, f"{tmp}.old")
            try:
                os.replace(tmp, output.target)
            except OSError:
                if backup is not None:
                    Path(backup).unlink(missing_ok=True)
                raise
            renamed.append((output.target, backup))
        for output, data in streams:
            current = output
            _stream(output, data)
    except BaseException as exc:
        for target, backup in reversed(renamed):
            if backup is not None:
                os.replace(backup, target)
            else:
                target.unlink(missing_ok=True)
        for tmp in temporaries:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and current is not None:
            raise _fail(current.path, current.field, f"cannot write: {exc}") from exc
        raise
    for _, backup in renamed:
        if backup is not None:
            Path(backup).unlink(missing_ok=True)


def atomic_write(path, write, field: str = "output") -> Path:
    """Write one output (see :func:`write_outputs`); returns its path."""
    output = plan_output(path, field)
    write_outputs([(output, write)])
    return Path(output.path)
