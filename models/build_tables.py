"""Write the bundled `.kcnn` tables of the reference models at default settings.

    python -m kcnn.models.build_tables [--out DIR]

The board cannot quantize (no onnx or onnxruntime on armv7l), so the wheel ships these:
each is the bundled ONNX model quantized on ``calibration_digits()`` with the CLI's
defaults. Needs the ``quantize`` extra.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kcnn import models


def build(out: Path) -> list[Path]:
    from kcnn.quantizer import quantize

    written = []
    for name in models.MODELS + models.GRAPH_MODELS:
        model = quantize(models.model_path(name), models.calibration_digits(), log=None, name=name)
        written.append(model.save(out / f"{name}.kcnn"))
    return written


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(models.__file__).parent)
    args = parser.parse_args(argv)
    for path in build(args.out):
        print(f"wrote {path} ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
