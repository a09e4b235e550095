"""Stored forms of weight codes (DESIGN section 2): dense nibbles and sparse entries.

The file, the planner and the report share these; numpy only.
"""

from __future__ import annotations

import numpy as np

SPARSE_MAX_GAP = 15
#: Bits a sparse row's entry count takes in storage and in the job format.
ROW_COUNT_BITS = 32


def pack_dense(codes: np.ndarray) -> np.ndarray:
    """Two 4-bit codes per byte, first code in the low nibble."""
    flat = codes.reshape(-1).astype(np.uint8)
    if flat.size % 2:
        flat = np.concatenate([flat, np.zeros(1, np.uint8)])
    return (flat[0::2] | (flat[1::2] << 4)).astype(np.uint8)


def unpack_dense(packed: np.ndarray, count: int) -> np.ndarray:
    out = np.empty(packed.size * 2, np.uint8)
    out[0::2] = packed & 0x0F
    out[1::2] = packed >> 4
    return out[:count]


def encode_sparse(codes: np.ndarray, long_fillers: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Sparse form of a weight array, one row per output channel.

    Each entry is one byte: code in the low nibble, the number of zeros skipped before it
    (0..15) in the high nibble. A gap ``g`` above 15 inserts filler entries (code 0) before
    the entry, which then skips ``g % 16``. The stored form (``.kcnn``) has fillers of gap
    15, each covering 16 positions: ``g // 16`` of them. The job form (``long_fillers``,
    docs/job-format.md "Weight steps") has fillers of skip ``s`` in 1..15 covering ``16 s``
    positions: ``ceil((g // 16) / 15)`` of them, skips 15, 15, .., the remainder.
    Returns ``(entries, entries_per_row)``.
    """
    span = SPARSE_MAX_GAP + 1
    rows = codes.reshape(codes.shape[0], -1)
    row_idx, col_idx = np.nonzero(rows)
    previous = np.empty_like(col_idx)
    if col_idx.size:
        previous[0] = -1
        previous[1:] = np.where(row_idx[1:] == row_idx[:-1], col_idx[:-1], -1)
    gap = col_idx - previous - 1
    sixteens = gap // span
    residual = gap % span
    fillers = -(-sixteens // SPARSE_MAX_GAP) if long_fillers else sixteens
    per_nonzero = fillers + 1
    total = int(per_nonzero.sum())
    entries = np.full(total, SPARSE_MAX_GAP << 4, np.uint8)  # fillers by default
    last_slot = np.cumsum(per_nonzero) - 1
    if long_fillers:
        # The last filler before an entry covers what the full ones (skip 15) leave.
        remainder = sixteens % SPARSE_MAX_GAP
        short = remainder != 0
        entries[last_slot[short] - 1] = (remainder[short] << 4).astype(np.uint8)
    entries[last_slot] = (rows[row_idx, col_idx].astype(np.uint8) | (residual << 4)).astype(
        np.uint8
    )
    per_row = np.bincount(row_idx, weights=per_nonzero, minlength=rows.shape[0])
    return entries, per_row.astype(np.uint32)


def decode_sparse(entries: np.ndarray, per_row: np.ndarray, shape) -> np.ndarray:
    """Inverse of :func:`encode_sparse`; raises ValueError when an entry leaves its row."""
    n_rows = int(shape[0])
    row_len = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    if per_row.size != n_rows or int(per_row.sum()) != entries.size:
        raise ValueError("entry counts per row do not add up to the number of entries")
    if entries.size == 0:
        return np.zeros(shape, np.uint8)
    step = (entries >> 4).astype(np.int64) + 1
    row_of = np.repeat(np.arange(n_rows), per_row.astype(np.int64))
    cum = np.cumsum(step)
    row_start = np.concatenate([[0], np.cumsum(per_row.astype(np.int64))])[:-1]
    before_row = np.where(row_start > 0, cum[np.maximum(row_start - 1, 0)], 0)
    position = cum - 1 - np.repeat(before_row, per_row.astype(np.int64))
    if position.size and (position.max() >= row_len):
        raise ValueError("a sparse entry points past the end of its row")
    out = np.zeros((n_rows, row_len), np.uint8)
    out[row_of, position] = entries & 0x0F
    return out.reshape(shape)


def sparse_bits(entries: int, rows: int) -> int:
    return 8 * entries + ROW_COUNT_BITS * rows
