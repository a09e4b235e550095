"""Write the simulator's codes and ``acc`` for the first test digits of each bundled table.

    python tools/golden.py OUT_DIR [--count 16]

The board environment (Python 3.10, numpy 1.x) must reproduce these bit for bit:
``tests/test_golden.py`` compares against them when ``KCNN_GOLDEN_DIR`` names OUT_DIR.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from kcnn import Accelerator, models


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--count", type=int, default=16)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    x = models.digits("test")[0][: args.count]
    for name in models.MODELS + models.GRAPH_MODELS:
        with Accelerator(models.table_path(name), backend="sim") as acc:
            maps = acc.trace(x)
            maps["logits"] = acc.run(x, logits=True)
        np.savez(args.out / f"{name}.npz", x=x, **{f"map:{k}": v for k, v in maps.items()})
        print(f"wrote {args.out / name}.npz ({len(maps)} arrays)")


if __name__ == "__main__":
    main()
