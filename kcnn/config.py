"""The shared configuration: arithmetic contract (fixed per release) and build parameters.

The arithmetic contract is what a `.kcnn` file, the kernel's info words and an overlay's
``kcnn.json`` must all agree on. Build parameters belong to an overlay (one
:class:`BuildParams`, validated once); a `.kcnn` never depends on them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from kcnn.errors import KcnnError

PROTOCOL_VERSION = 5
FORMAT_VERSION = 2

#: Fixed per release. Changing any value changes the protocol.
ARITHMETIC_CONTRACT = {
    "K_MAX": 16,  # weight codes per layer (4-bit), code 0 = pruned
    "J_MAX": 16,  # activation codes per map (4-bit), code 0 = exactly zero
    "ACC_BITS": 32,  # signed accumulator width
    "bw": 8,  # weight codebook entry width (signed)
    "ba": 8,  # activation codebook entry width (unsigned for maps >= 0, else signed)
    "protocol": PROTOCOL_VERSION,
}

#: 64-bit stream words of a step descriptor; see docs/job-format.md.
DESCRIPTOR_WORDS = 8
#: Trips of the kernel's QUOTIENTS loop: one per bit of the 16-bit descriptor fields that
#: the step checks divide (``step_quotients`` in hls/kcnn_descriptor.h).
QUOTIENT_BITS = 16


def _power_of_two(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


@dataclass(frozen=True)
class BuildParams:
    """The parameters one overlay is built with (``kcnn.json`` "build", the probe answer).

    Every field is checked on construction: parallelism and memory sizes are powers of
    two within the ranges the kernel's bit fields and the xc7z020 allow.
    """

    P: int = 16  # partitions, 16 pixel lanes (one 4x4 output block) each
    IN_DEPTH: int = 262144  # tile codes, all partitions together
    W_DEPTH: int = 1024  # weight entries per partition per buffer (two buffers)
    OUT_DEPTH: int = 16384  # codes of the buffered-output memory
    STREAMS: int = 2  # input streams carrying weights (2: a second DMA on HP1)
    LRN_LANES: int = 8  # LRN outputs per cycle
    CH_MAX: int = 1024  # channels a step's placement and channel tables hold
    CLOCK_MHZ: float = 100.0  # PL clock (FCLK_CLK0)

    #: Allowed values: (low, high) for powers of two; a tuple of choices otherwise.
    RANGES = {
        "P": (8, 32),
        "IN_DEPTH": (1 << 14, 1 << 20),
        "W_DEPTH": (256, 1 << 12),
        "OUT_DEPTH": (1 << 12, 1 << 20),
        "STREAMS": (1, 2),
        "LRN_LANES": (1, 16),
        "CH_MAX": (256, 4096),
    }

    def __post_init__(self):
        for name, (low, high) in self.RANGES.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise KcnnError(f"{value!r} is not an integer", field=name)
            if not (_power_of_two(value) and low <= value <= high):
                raise KcnnError(f"{value} is not a power of two in [{low}, {high}]", field=name)
        if self.IN_DEPTH % (16 * self.P):
            raise KcnnError(
                "IN_DEPTH must hold whole 4-code words in 4 banks per partition", field="IN_DEPTH"
            )
        if not 10.0 <= float(self.CLOCK_MHZ) <= 250.0:
            raise KcnnError(f"{self.CLOCK_MHZ} MHz is outside 10..250 MHz", field="CLOCK_MHZ")

    @classmethod
    def from_mapping(cls, values: dict | None, *, source=None) -> BuildParams:
        """Build parameters from a mapping (``kcnn.json`` "build", a CLI override); unknown
        keys are an error, missing keys take the defaults."""
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise KcnnError(
                f"unknown build parameter(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}",
                file=source,
                field="build",
            )
        try:
            converted = {k: (float(v) if k == "CLOCK_MHZ" else int(v)) for k, v in values.items()}
        except (TypeError, ValueError) as exc:
            raise KcnnError(
                f"a build parameter is not a number: {exc}", file=source, field="build"
            ) from None
        return cls(**converted)

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def lanes(self) -> int:
        """Pixel lanes of the partition array (16 per partition)."""
        return 16 * self.P


#: The build parameters an overlay fixes in hardware (kcnn.json "build", the info words);
#: the clock is a property of the block design, also in kcnn.json.
BUILD_PARAMETERS = ("P", "IN_DEPTH", "W_DEPTH", "OUT_DEPTH", "STREAMS", "LRN_LANES", "CH_MAX")


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
