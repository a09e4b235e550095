"""The registry of layer ops (:mod:`kcnn.ops.base`): one module per op holds all of it.

Adding an op is adding a module here (and its kernel step in ``hls/`` when it runs on the
fabric); nothing else names ops.
"""

from kcnn.ops import (  # noqa: F401, E402 - importing registers them
    activations,
    add,
    avgpool,
    codemap,
    concat,
    conv,
    fc,
    flatten,
    folded,
    lrn,
    maxpool,
    shuffle,
    softmax,
)
from kcnn.ops.base import Op, all_ops, op_named, op_names

__all__ = ["Op", "all_ops", "op_named", "op_names"]
