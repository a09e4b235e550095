"""Edits of `.kcnn` files for tests: members in and out, arrays and manifest replaced."""

import hashlib
import io
import json
import zipfile

import numpy as np


def read_members(path) -> dict:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def write_members(path, members: dict, compress=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(path, "w", compression=compress) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def npy_bytes(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def rewrite(src, dst, *, arrays=None, manifest=None, keep_checksums=False):
    """Copy a .kcnn, replacing arrays (checksums updated unless told) or manifest fields
    (``manifest(meta)`` edits the parsed manifest in place)."""
    members = read_members(src)
    meta = json.loads(members.pop("manifest.json"))
    for name, array in (arrays or {}).items():
        data = npy_bytes(array)
        members[f"{name}.npy"] = data
        if not keep_checksums:
            meta["sha256"][f"{name}.npy"] = hashlib.sha256(data).hexdigest()
    if manifest:
        manifest(meta)
    members["manifest.json"] = json.dumps(meta).encode()
    return write_members(dst, members)
