"""Cost of one register access from Python: pynq's ``MMIO.read`` / ``MMIO.write`` against
indexing ``MMIO.array``, the path the board driver takes (``kcnn.host.board.Channel``).

    python bench/bench_registers.py [--n 200000] [--rounds 5]

Needs pynq (the ``board`` extra). The registers are a page of ordinary memory behind a
memory-mapped pynq device, as ``/dev/mem`` is on the board: what is measured is the Python
and numpy work around the access, which dominates on the board's Cortex-A9 (the AXI-Lite
transaction itself takes well under a microsecond). The performance model takes the
board's cited ``MMIO.write`` cost and divides it by the smaller of the two ratios printed
here (``kcnn.estimate.ARRAY_ACCESS_SPEEDUP``).
"""

from __future__ import annotations

import argparse
import platform
import sys
import timeit

import numpy as np


def registers():
    """A pynq MMIO over a memory-mapped fake device (one 64 KiB register range)."""
    import pynq

    class PageDevice(pynq.Device):
        def __init__(self):
            super().__init__("bench-page")
            self.capabilities = {"MEMORY_MAPPED": True}
            self.page = np.zeros(1 << 14, np.uint32)

        def mmap(self, base, length):
            return self.page[: length // 4]

    return pynq.MMIO(0x40400000, 0x10000, device=PageDevice())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000, help="accesses per timing")
    parser.add_argument("--rounds", type=int, default=5, help="timings per case (best kept)")
    args = parser.parse_args(argv)
    mmio = registers()
    array = mmio.array
    offset = 0x58  # the S2MM length register of an AXI DMA
    index = offset >> 2

    def array_write():
        array[index] = 1234

    def array_read():
        return int(array[index])

    cases = {
        "MMIO.write": lambda: mmio.write(offset, 1234),
        "MMIO.read": lambda: mmio.read(offset),
        "array write": array_write,
        "array read": array_read,
    }
    best = {
        name: min(timeit.repeat(fn, number=args.n, repeat=args.rounds)) / args.n
        for name, fn in cases.items()
    }
    import pynq

    print(
        f"python {platform.python_version()}, numpy {np.__version__}, pynq {pynq.__version__}, "
        f"{platform.machine()}; best of {args.rounds} x {args.n:,} accesses"
    )
    for name, seconds in best.items():
        print(f"  {name:<12} {seconds * 1e9:7.0f} ns")
    write_ratio = best["MMIO.write"] / best["array write"]
    read_ratio = best["MMIO.read"] / best["array read"]
    print(f"ratio MMIO / array: write {write_ratio:.2f}, read {read_ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
