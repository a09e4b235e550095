"""The shared configuration: arithmetic contract (fixed per release) and build defaults.

The arithmetic contract is what a `.kcnn` file, the kernel's info words and an overlay's
``kcnn.json`` must all agree on. Build parameters belong to an overlay; a `.kcnn` never
depends on them.
"""

from __future__ import annotations

PROTOCOL_VERSION = 1
FORMAT_VERSION = 1

#: Fixed per release. Changing any value changes the protocol.
ARITHMETIC_CONTRACT = {
    "K_MAX": 16,  # weight codes per layer (4-bit), code 0 = pruned
    "J_MAX": 16,  # activation codes per map (4-bit), code 0 = exactly zero
    "ACC_BITS": 32,  # signed accumulator width
    "bw": 8,  # weight codebook entry width (signed)
    "ba": 8,  # activation codebook entry width (unsigned for maps >= 0, else signed)
    "protocol": PROTOCOL_VERSION,
}

#: Defaults of the overlay's build parameters (overridden by ``overlay/kcnn.json``).
BUILD_DEFAULTS = {
    "P": 16,  # cluster PEs, one output channel each per pass
    "IN_DEPTH": 65536,  # input-tile cache, in codes (32 KiB of 4-bit codes)
    "W_DEPTH": 262144,  # weight cache for a job's channel block, in codes (128 KiB)
    "OUT_DEPTH": 8192,  # outputs a job may emit
    "CLOCK_MHZ": 100,  # FCLK_CLK0
}

#: The build parameters an overlay fixes (kcnn.json "build", the kernel's info words).
BUILD_PARAMETERS = ("P", "IN_DEPTH", "W_DEPTH", "OUT_DEPTH")

#: 64-bit stream words of a job's fixed header (the descriptor); see docs/job-format.md.
DESCRIPTOR_WORDS = 8


def weight_code_range(bw: int) -> tuple[int, int]:
    """Range of a signed ``bw``-bit weight codebook entry (symmetric)."""
    top = (1 << (bw - 1)) - 1
    return -top, top


def act_code_range(ba: int, signed: bool) -> tuple[int, int]:
    """Range of an activation codebook entry: unsigned for non-negative maps."""
    if signed:
        top = (1 << (ba - 1)) - 1
        return -top, top
    return 1, (1 << ba) - 1
