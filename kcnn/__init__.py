"""KCNN: k-means-clustered CNNs on FPGA.

The runtime (this package, the `.kcnn` loader, the simulator and the board driver) needs
numpy only; the quantizer needs the ``quantize`` extra and is imported on first use.
"""

from kcnn.accelerator import Accelerator
from kcnn.errors import KcnnError

__version__ = "0.1.0"
__all__ = ["Accelerator", "KcnnError", "__version__", "quantize"]


def quantize(onnx_path, calib, **config):
    """Quantize an ONNX model into clustered tables; see :func:`kcnn.quantizer.quantize`."""
    from kcnn.quantizer import quantize as _quantize

    return _quantize(onnx_path, calib, **config)
