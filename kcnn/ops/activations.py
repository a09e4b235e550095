"""Monotone activations (DESIGN section 1, "Other activations and signed maps").

Each imports as a folded op that the lowering puts into the threshold bank of the layer
before it (``layer.activation = {"op": name, ...attrs}``): the fabric only compares
integers. For an output threshold ``t`` of the map, :meth:`Activation.inverse` gives the
least pre-activation value ``y`` with ``f(y) >= t`` (``-inf``: always reached, ``+inf``:
never), which BuildTables turns into an integer threshold in accumulator units.
"""

from __future__ import annotations

import numpy as np

from kcnn.ops.base import op_named, register
from kcnn.ops.folded import FoldedOp


def activation_of(layer) -> Activation | None:
    """The activation op folded into ``layer`` (None: linear)."""
    return None if layer.activation is None else op_named(layer.activation["op"])


class Activation(FoldedOp):
    """A monotone non-decreasing activation, folded into a threshold bank."""

    folds_past_commuting = True
    needs_weights = False

    def attrs_of(self, imp, node) -> dict:
        """The activation's parameters from its ONNX node."""
        return {}

    def import_node(self, imp, node) -> None:
        act = imp.activation(node)
        imp.push(node, self.name, act.shape, attrs=self.attrs_of(imp, node))

    def fold(self, target, layer) -> None:
        target.activation = {"op": self.name, **layer.attrs}

    def refusal(self, layer) -> str:
        return (
            f"{self.onnx_types[0]} is supported only after a Conv, Gemm or a residual Add "
            "(optionally after its MaxPool), whose threshold bank it folds into"
        )

    def non_negative(self, attrs: dict) -> bool:
        """Every output is >= 0 (the map is unsigned)."""
        return False

    def zero_at_non_positive(self, attrs: dict) -> bool:
        """``f(y) = 0`` for every ``y <= 0``: acc <= 0 is code 0, so ``T[1] >= 1``."""
        return False

    def inverse(self, t: np.ndarray, attrs: dict) -> np.ndarray:
        raise NotImplementedError(self.name)

    def onnx_activation(self, attrs: dict, helper, numpy_helper, x: str, y: str, inits: list):
        """The ONNX node computing ``y = f(x)`` (constants appended to ``inits``)."""
        return helper.make_node(self.onnx_types[0], [x], [y], name=f"{y}.act")


@register
class Relu(Activation):
    name = "relu"
    onnx_types = ("Relu",)
    vanishes_on_non_negative = True

    def non_negative(self, attrs):
        return True

    def zero_at_non_positive(self, attrs):
        return True

    def inverse(self, t, attrs):
        return np.where(t > 0, t, -np.inf)

    def refusal(self, layer):
        return (
            "Relu is supported only after a Conv or Gemm (optionally after its MaxPool), a "
            "residual Add, or on a map that is already non-negative"
        )


@register
class Clip(Activation):
    """Clip(min, max), ReLU6 among others."""

    name = "clip"
    onnx_types = ("Clip",)

    def attrs_of(self, imp, node):
        if imp.opset < 11:
            low, high = imp.attr(node, "min", -np.inf, float), imp.attr(node, "max", np.inf, float)
        else:
            bounds = []
            for index, default in ((1, -np.inf), (2, np.inf)):
                value = imp.optional_const(node, index, "bound")
                if value is not None and value.size != 1:
                    raise imp.error(node, f"Clip bound {index} must be a scalar")
                bounds.append(default if value is None else float(value.reshape(-1)[0]))
            low, high = bounds
        if not low < high or np.isnan(low) or np.isnan(high):
            raise imp.error(node, f"Clip min={low} must be below max={high}")
        return {"min": float(low), "max": float(high)}

    def non_negative(self, attrs):
        return attrs["min"] >= 0

    def zero_at_non_positive(self, attrs):
        return attrs["min"] == 0

    def inverse(self, t, attrs):
        t = np.asarray(t, np.float64)
        return np.where(t <= attrs["min"], -np.inf, np.where(t > attrs["max"], np.inf, t))

    def onnx_activation(self, attrs, helper, numpy_helper, x, y, inits):
        low, high = f"{y}.min", f"{y}.max"
        inits.append(numpy_helper.from_array(np.array(attrs["min"], np.float32), low))
        inits.append(numpy_helper.from_array(np.array(attrs["max"], np.float32), high))
        return helper.make_node("Clip", [x, low, high], [y], name=f"{y}.act")


@register
class LeakyRelu(Activation):
    name = "leakyrelu"
    onnx_types = ("LeakyRelu",)

    def attrs_of(self, imp, node):
        alpha = imp.attr(node, "alpha", 0.01, float)
        if not (np.isfinite(alpha) and alpha > 0):
            raise imp.error(
                node, f"LeakyRelu alpha={alpha} must be > 0 (monotone) to fold into thresholds"
            )
        return {"alpha": alpha}

    def inverse(self, t, attrs):
        t = np.asarray(t, np.float64)
        return np.where(t >= 0, t, t / attrs["alpha"])

    def onnx_activation(self, attrs, helper, numpy_helper, x, y, inits):
        return helper.make_node("LeakyRelu", [x], [y], name=f"{y}.act", alpha=attrs["alpha"])


@register
class HardSigmoid(Activation):
    name = "hardsigmoid"
    onnx_types = ("HardSigmoid",)

    def attrs_of(self, imp, node):
        alpha, beta = imp.attr(node, "alpha", 0.2, float), imp.attr(node, "beta", 0.5, float)
        if not (np.isfinite(alpha) and alpha > 0 and np.isfinite(beta)):
            raise imp.error(node, f"HardSigmoid alpha={alpha} must be > 0 and beta finite")
        return {"alpha": alpha, "beta": beta}

    def non_negative(self, attrs):
        return True

    def inverse(self, t, attrs):
        t = np.asarray(t, np.float64)
        y = (t - attrs["beta"]) / attrs["alpha"]
        return np.where(t <= 0, -np.inf, np.where(t > 1, np.inf, y))

    def onnx_activation(self, attrs, helper, numpy_helper, x, y, inits):
        return helper.make_node(
            "HardSigmoid", [x], [y], name=f"{y}.act", alpha=attrs["alpha"], beta=attrs["beta"]
        )


@register
class Sigmoid(Activation):
    name = "sigmoid"
    onnx_types = ("Sigmoid",)

    def non_negative(self, attrs):
        return True

    def inverse(self, t, attrs):
        t = np.asarray(t, np.float64)
        inside = np.clip(t, 1e-300, 1 - 1e-16)
        y = np.log(inside) - np.log1p(-inside)
        return np.where(t <= 0, -np.inf, np.where(t >= 1, np.inf, y))


@register
class Tanh(Activation):
    name = "tanh"
    onnx_types = ("Tanh",)

    def inverse(self, t, attrs):
        t = np.asarray(t, np.float64)
        y = np.arctanh(np.clip(t, -1 + 1e-16, 1 - 1e-16))
        return np.where(t <= -1, -np.inf, np.where(t >= 1, np.inf, y))
