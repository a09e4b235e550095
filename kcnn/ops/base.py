"""The op registry: what each layer op is, in one place (numpy only).

An op is a subclass of :class:`Op` registered with :func:`register`. Its class holds every
facet of the op: how ONNX nodes import into it, the shape its attributes give and the
checks the loader makes, its dense MACs and effective pairs, its whole-layer numpy model
(the simulator), its ONNX export (for onnxruntime's float reference) and its tiling into
kernel steps. Code elsewhere asks the op (``layer.kind``), never compares op names.
"""

from __future__ import annotations

import numpy as np

_REGISTRY: dict[str, Op] = {}


class Op:
    """One layer op. Subclasses set the class attributes and override the facets they have.

    Class attributes
    ----------------
    name
        The op's name in the model and in `.kcnn` files.
    weighted
        It has clustered weights: a Conv or FC layer of the cluster PEs.
    thresholded
        It ends in a threshold bank that emits codes (a weighted layer, the add layer).
    acts_on_codes
        It maps codes to codes without a codebook of its own (max-pool, flatten).
    host
        A host op of DESIGN section 1 (decodes, applies the float op, re-encodes).
    fabric_step
        The kernel runs it as a step of its own (conv, fc, max-pool, LRN on cut points).
    rank
        The rank of the map it reads (3: C, H, W; 1: a vector; None: any).
    reads_vector
        The kernel reads its input map in the ``FLAT`` format (fc).
    onnx_types
        The ONNX op types :meth:`import_node` takes.
    """

    name = ""
    weighted = False
    thresholded = False
    acts_on_codes = False
    host = False
    fabric_step = False
    rank: int | None = None
    reads_vector = False
    onnx_types: tuple[str, ...] = ()
    #: The op keeps the sign of its input (an unsigned map stays unsigned).
    keeps_sign = False
    #: It compares codes as values, so its input map's codes must be ordered like them.
    needs_ordered_codes = False
    #: It commutes with monotone activations (max-pool), so an activation after it folds
    #: into the weighted layer before it.
    commutes_with_activation = False
    #: A trailing host op on the logits (after the last weighted layer, never re-encoded).
    on_logits = False
    #: It only reshapes what it reads, so it may also follow the logits layer.
    shape_only = False
    #: It emits codes with a codebook of its own (besides threshold banks and host ops).
    emits_codes = False
    #: It exists only between import and lowering: a lowering pass folds it into a
    #: neighbour, and no model file holds it.
    folded = False
    #: Its inputs' maps are parts of one map (a Concat): their producers share one
    #: codebook, and an activation of the joined map is the activation of every part.
    joins_maps = False
    #: A per-channel code-to-code table: a BatchNorm, Scale or bias Add on the map it
    #: reads folds into the table (no weighted layer needed).
    is_code_table = False
    #: An Add of two maps: the weighted layer in front of one operand may take it into
    #: its accumulator (DESIGN section 1, residual Add).
    adds_maps = False

    @property
    def reads_codebook(self) -> bool:
        """It decodes its input map (a weighted layer, or a host op between two maps), so
        the layer names that map's codebook as ``in_map``."""
        return self.weighted or (self.host and not self.on_logits)

    @property
    def folds_activation(self) -> bool:
        """A monotone activation after it folds into its threshold bank."""
        return self.thresholded

    @property
    def runs_on_host(self) -> bool:
        """A host op that no kernel step reproduces: the host CPU runs it in float64."""
        return self.host and not self.fabric_step

    def emits_map(self, last_weighted: bool) -> bool:
        """It emits a coded map of its own (``out_map``): a layer with a threshold bank
        unless it is the last weighted layer (which emits ``acc``), or a host op between two
        maps."""
        if self.thresholded:
            return not (self.weighted and last_weighted)
        return self.emits_codes or (self.host and not self.on_logits)

    # ---- the file's arrays of its own ----------------------------------------------------
    def table_arrays(self, layer) -> dict:
        """The arrays only this op's layers have, by member name, as the file stores them
        (:meth:`read_tables` reads them back)."""
        return {}

    def read_tables(self, reader, layer, j_max: int) -> None:
        """Read the arrays only this op's layers have (``kcnn.kfile``'s ``reader``, which
        checks every array's name, dtype and size and fails naming the layer); ``j_max``
        bounds a table indexed by codes."""

    # ---- import -------------------------------------------------------------------
    def import_node(self, imp, node) -> None:
        """Lower one ONNX node through the importer ``imp`` (quantizer only)."""
        raise NotImplementedError(self.name)

    # ---- shapes and checks ----------------------------------------------------------
    def output_shape(self, layer, shapes, fail) -> tuple:
        """The output shape the op and its attributes give for its inputs' ``shapes``
        (``layer.in_shape`` is the first); checks the attributes (and a weighted layer's
        weight shape) on the way. ``fail(message, layer, field)`` returns the exception."""
        return tuple(layer.in_shape)

    def input_counts(self) -> tuple[int, ...]:
        """How many tensors a layer of this op may read."""
        return (1,)

    # ---- counts -------------------------------------------------------------------
    def dense_macs(self, layer) -> int:
        """MACs of the dense float layer per image, padding taps included."""
        return 0

    def effective_pairs(self, attrs: dict, weight_nz: np.ndarray, act_nz: np.ndarray) -> float:
        """Average per image of the window pairs with a non-zero weight and activation."""
        raise NotImplementedError(self.name)

    # ---- the bit-accurate numpy model -------------------------------------------------
    def simulate(self, sim, layer, inputs: list[np.ndarray]) -> np.ndarray:
        """The layer on a batch: the codes of its inputs (or the logits, for a trailing
        host op) in, codes (or ``acc``) out. ``sim`` is the
        :class:`kcnn.sim.engine.NumpyFabric` (ops without tables take any object with a
        ``model``)."""
        raise NotImplementedError(self.name)

    # ---- ONNX export ----------------------------------------------------------------
    def onnx_node(self, layer) -> tuple[str, dict]:
        """The ONNX op type and attributes of the float layer (inputs are wired by
        :func:`kcnn.quantizer.export_onnx.to_onnx`)."""
        raise NotImplementedError(self.name)

    def onnx_nodes(self, layer, helper, numpy_helper, inputs: list, y: str, inits: list) -> list:
        """The ONNX nodes computing the float layer's output ``y`` from ``inputs`` (its
        tensors, then a weighted layer's weight and bias), constants appended to
        ``inits``: by default one node of :meth:`onnx_node`."""
        op_type, attrs = self.onnx_node(layer)
        return [helper.make_node(op_type, inputs, [y], name=layer.name, **attrs)]

    # ---- tiling -------------------------------------------------------------------
    def tile(self, model, layer, index: int, in_format: str, out_format: str, params):
        """The layer's kernel steps (a :class:`kcnn.tiling.Step` or a list of them); raises
        :class:`kcnn.tiling.WindowTooLarge` when its window does not fit one pass."""
        raise NotImplementedError(self.name)

    def input_units(self, layer) -> tuple[np.ndarray, bool]:
        """For a split along the input: the weight codes as ``(rows, inputs, taps)`` and
        whether blocks align to ``P`` inputs. Only weighted ops split."""
        raise NotImplementedError(self.name)

    def block(self, layer, weights: np.ndarray, t0: int, t1: int) -> tuple[np.ndarray, tuple]:
        """Weight codes and input shape of ``layer`` restricted to inputs ``t0..t1``."""
        raise NotImplementedError(self.name)

    def __repr__(self) -> str:
        return f"<op {self.name}>"


def register(cls: type[Op]) -> type[Op]:
    """Class decorator: add one instance of ``cls`` to the registry under ``cls.name``."""
    if cls.name in _REGISTRY:
        raise ValueError(f"op {cls.name!r} is registered twice")
    _REGISTRY[cls.name] = cls()
    return cls


def op_named(name: str) -> Op:
    """The registered op ``name``; KeyError when there is none."""
    return _REGISTRY[name]


def op_names() -> tuple[str, ...]:
    """The ops a model file may hold."""
    return tuple(name for name, op in _REGISTRY.items() if not op.folded)


def all_ops() -> tuple[Op, ...]:
    return tuple(_REGISTRY.values())


# ---- helpers the window ops share ------------------------------------------------------


def conv_output_hw(in_hw, kernel, strides, pads, dilations):
    """Output height and width of a convolution or pooling window (floor mode)."""
    out = []
    for axis in range(2):
        span = dilations[axis] * (kernel[axis] - 1) + 1
        padded = in_hw[axis] + pads[axis] + pads[axis + 2]
        out.append((padded - span) // strides[axis] + 1)
    return tuple(out)


def sliding_windows(x: np.ndarray, kernel, strides, pads, dilations, fill=0) -> np.ndarray:
    """Sliding windows of ``(N, C, H, W)`` as ``(N, C, kh, kw, OH, OW)`` (a view when
    possible)."""
    top, left, bottom, right = pads
    if any(pads):
        x = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=fill)
    kh, kw = kernel
    dh, dw = dilations
    span = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    view = np.lib.stride_tricks.sliding_window_view(x, span, axis=(2, 3))
    view = view[:, :, :: strides[0], :: strides[1], ::dh, ::dw]
    return view.transpose(0, 1, 4, 5, 2, 3)


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def window_ints(layer, key: str, count: int, low: int, fail) -> list:
    """Attribute ``key`` of a loaded layer: ``count`` integers >= ``low``."""
    value = layer.attrs.get(key)
    if not (isinstance(value, list) and len(value) == count and all(is_int(v) for v in value)) or (
        any(v < low for v in value)
    ):
        raise fail(
            f"attrs.{key} = {value!r} must be {count} integers >= {low}", layer.name, "attrs"
        )
    return value


def pool_output_shape(op: Op, layer, fail) -> tuple:
    """A pooling window's output shape (``kernel``, ``strides``, ``pads``; no dilation)."""
    check_rank(op, layer, fail)
    kernel = window_ints(layer, "kernel", 2, 1, fail)
    strides = window_ints(layer, "strides", 2, 1, fail)
    pads = window_ints(layer, "pads", 4, 0, fail)
    oh, ow = conv_output_hw(layer.in_shape[1:], kernel, strides, pads, [1, 1])
    if oh < 1 or ow < 1:
        raise fail("the window is larger than the padded input", layer.name, "attrs")
    return (layer.in_shape[0], oh, ow)


def check_rank(op: Op, layer, fail) -> None:
    if op.rank is not None and len(layer.in_shape) != op.rank:
        raise fail(
            f"{op.name} takes a {op.rank}-D map, got in_shape {list(layer.in_shape)}",
            layer.name,
            "in_shape",
        )


def window_attrs(imp, node, in_hw, kernel) -> dict:
    """Kernel, strides, pads and dilations of an ONNX Conv or pooling node, with
    ``auto_pad`` and ``ceil_mode`` turned into explicit pads."""
    if len(kernel) != 2 or not all(isinstance(k, int) and k >= 1 for k in kernel):
        raise imp.error(node, f"kernel {kernel} must be two sizes >= 1 (2-D windows only)")
    strides = imp.ints(node, "strides", [1, 1], 2, 1)
    dilations = imp.ints(node, "dilations", [1, 1], 2, 1)
    pads = imp.ints(node, "pads", [0, 0, 0, 0], 4, 0)
    auto_pad = imp.attr(node, "auto_pad", b"NOTSET", (bytes, str))
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pads = [0, 0, 0, 0]
        for axis in range(2):
            out = -(-in_hw[axis] // strides[axis])
            span = dilations[axis] * (kernel[axis] - 1) + 1
            total = max(0, (out - 1) * strides[axis] + span - in_hw[axis])
            small, large = total // 2, total - total // 2
            begin, end = (small, large) if auto_pad == "SAME_UPPER" else (large, small)
            pads[axis], pads[axis + 2] = begin, end
    elif auto_pad == "VALID":
        pads = [0, 0, 0, 0]
    elif auto_pad != "NOTSET":
        raise imp.error(node, f"auto_pad {auto_pad!r} is not supported")
    if imp.attr(node, "ceil_mode", 0, int):
        # Ceil mode equals floor mode with enough extra padding at the end; the extra
        # taps read padding, which never wins a max over a non-negative map.
        for axis in range(2):
            span = dilations[axis] * (kernel[axis] - 1) + 1
            padded = in_hw[axis] + pads[axis] + pads[axis + 2]
            out_ceil = -(-(padded - span) // strides[axis]) + 1
            if (out_ceil - 1) * strides[axis] >= in_hw[axis] + pads[axis]:
                out_ceil -= 1
            pads[axis + 2] += max(0, (out_ceil - 1) * strides[axis] + span - padded)
    return {
        "kernel": [int(k) for k in kernel],
        "strides": [int(s) for s in strides],
        "pads": [int(p) for p in pads],
        "dilations": [int(d) for d in dilations],
    }
