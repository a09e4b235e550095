"""Quantizer passes: PruneWeights, ClusterWeights, CalibrateActivations, BuildTables.

Each pass is a function over the lowered :class:`kcnn.model.Model` and a shared
:class:`Run` state; analyses (sensitivity, counts) never change the graph.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass, field

import numpy as np

from kcnn.config import ARITHMETIC_CONTRACT, act_code_range, weight_code_range
from kcnn.errors import KcnnError
from kcnn.kfile import accumulator_bound, check_layer_tables
from kcnn.model import Codebook, Layer, Model
from kcnn.ops.activations import activation_of
from kcnn.quantizer.config import QuantizeConfig
from kcnn.quantizer.export_onnx import session, to_onnx
from kcnn.quantizer.kmeans1d import assign_nearest, cluster_1d
from kcnn.weight_forms import encode_sparse, sparse_bits

#: Candidate densities of the sensitivity search, tried from dense to sparse.
DENSITY_GRID = (0.75, 0.5, 0.35, 0.25, 0.18, 0.12, 0.09, 0.06, 0.04, 0.03, 0.02)
#: A map's calibration range is dominated by outliers when its largest magnitude exceeds
#: OUTLIER_FACTOR times the OUTLIER_PERCENTILE-th percentile of its non-zero magnitudes;
#: the bundled models' maps stay below 3 times.
OUTLIER_FACTOR = 8.0
OUTLIER_PERCENTILE = 99.99


def robust_range(values: np.ndarray, what: str) -> float | None:
    """The magnitude to clip ``values`` to when outliers dominate their range, else None
    (and then nothing changes). Warns when it clips."""
    magnitudes = np.abs(values[values != 0]).astype(np.float64)
    if magnitudes.size == 0:
        return None
    top = float(magnitudes.max())
    robust = float(np.percentile(magnitudes, OUTLIER_PERCENTILE))
    if top <= OUTLIER_FACTOR * robust:
        return None
    warnings.warn(
        f"{what}: the largest calibration magnitude {top:.3g} is more than "
        f"{OUTLIER_FACTOR:g} times the {OUTLIER_PERCENTILE}th percentile {robust:.3g}; "
        f"outliers would dominate its codebook, so values are clipped to +-{robust:.3g}",
        RuntimeWarning,
        stacklevel=2,
    )
    return robust


@dataclass
class WeightTable:
    codes: np.ndarray  # uint8, weight-shaped
    wq: np.ndarray  # int64 ascending, non-zero
    scale: float

    def decode(self) -> np.ndarray:
        return np.concatenate([[0.0], self.wq * self.scale])[self.codes]


@dataclass
class Run:
    """State shared by the passes of one quantizer run."""

    graph: Model
    calib: np.ndarray
    config: QuantizeConfig
    clipped: dict = field(default_factory=dict)  # map -> robust magnitude, where it fired
    densities: dict = field(default_factory=dict)
    sensitivity: dict = field(default_factory=dict)
    weights: dict[str, WeightTable] = field(default_factory=dict)
    maps: dict[str, Codebook] = field(default_factory=dict)
    float_thresholds: dict[str, np.ndarray] = field(default_factory=dict)
    interval_codes: dict[str, np.ndarray | None] = field(default_factory=dict)
    counts: dict = field(default_factory=dict)
    links: dict[str, tuple] = field(default_factory=dict)  # layer -> (in_map, out_map)
    log: object = sys.stderr

    def say(self, message: str):
        if self.log is not None:
            print(message, file=self.log)


def prunable(layer: Layer) -> bool:
    return layer.is_fabric and not layer.attrs.get("average_pool")


# ---- PruneWeights ----------------------------------------------------------------------


def channel_scores(weight: np.ndarray, input_rms: np.ndarray | None = None) -> np.ndarray:
    """|w| (times the RMS of the input it multiplies, when known) over its output channel's
    RMS, so low-gain channels keep their largest weights."""
    rows = np.abs(weight.reshape(weight.shape[0], -1))
    if input_rms is not None:
        # conv: one RMS per input channel of the group, repeated over its kh*kw taps
        taps = rows.shape[1] // input_rms.shape[-1]
        rows = rows * np.repeat(input_rms, taps, axis=-1)
    rms = np.sqrt(np.mean(rows * rows, axis=1, keepdims=True))
    return np.divide(rows, rms, out=np.zeros_like(rows), where=rms > 0).reshape(weight.shape)


def keep_mask(scores: np.ndarray, keep: int) -> np.ndarray:
    """Mask of the ``keep`` highest scores; ties go to the lower flat index."""
    flat = scores.reshape(-1)
    if keep >= flat.size:
        return np.ones(scores.shape, bool)
    if keep <= 0:
        return np.zeros(scores.shape, bool)
    cut = np.partition(flat, flat.size - keep)[flat.size - keep]
    mask = flat > cut
    ties = np.flatnonzero(flat == cut)[: keep - int(mask.sum())]
    mask[ties] = True
    return mask.reshape(scores.shape)


def prune(weight: np.ndarray, density: float, scores=None) -> np.ndarray:
    """Magnitude-prune to ``density`` of all weights; never brings back a zero."""
    existing = int(np.count_nonzero(weight))
    keep = min(existing, int(round(density * weight.size)))
    scores = channel_scores(weight) if scores is None else scores
    return np.where(keep_mask(scores, keep), weight, 0.0)


def _logits(sess, graph: Model, calib: np.ndarray, weights: dict, batch: int) -> np.ndarray:
    feeds = {f"{name}.weight": w.astype(np.float32) for name, w in weights.items()}
    outs = []
    for start in range(0, len(calib), batch):
        feeds["input"] = calib[start : start + batch]
        outs.append(sess.run(None, feeds)[0])
    return np.concatenate(outs).astype(np.float64)


def _relative_error(z: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(z - ref) / max(np.linalg.norm(ref), 1e-30))


def input_rms(graph: Model, calib: np.ndarray, batch: int) -> dict[str, np.ndarray]:
    """RMS of each prunable layer's inputs on the calibration data, one value per weight
    column's input: per input feature for fc, per input channel (of the row's group) for
    conv, shaped ``(rows, columns_or_channels)``."""
    sources = {layer.name: layer.inputs[0] for layer in graph.layers if prunable(layer)}
    names = sorted({s for s in sources.values() if s != "input"})
    sess = session(to_onnx(graph, outputs=names)) if names else None
    sums, counts = {}, {}
    for start in range(0, len(calib), batch):
        chunk = calib[start : start + batch]
        values = dict(zip(names, sess.run(names, {"input": chunk}), strict=True)) if sess else {}
        values["input"] = chunk
        for name in set(sources.values()):
            v = values[name].astype(np.float64)
            axes = (0, 2, 3) if v.ndim == 4 else (0,)
            sums[name] = sums.get(name, 0.0) + (v * v).sum(axis=axes)
            counts[name] = counts.get(name, 0) + v.size // v.shape[1]
    out = {}
    for layer_name, source in sources.items():
        layer = graph.layer(layer_name)
        rms = np.sqrt(sums[source] / counts[source]).reshape(1, -1)
        if "groups" in layer.attrs:
            groups, rows = layer.attrs["groups"], layer.weight.shape[0]
            rms = rms.reshape(groups, -1)[np.arange(rows) // (rows // groups)]
        out[layer_name] = rms
    return out


def prune_weights(run: Run) -> None:
    """PruneWeights: fixed densities, or the sensitivity search of ``density="auto"``."""
    graph, config = run.graph, run.config
    layers = [layer for layer in graph.layers if prunable(layer)]
    if config.density != "auto":
        for layer in layers:
            target = config.for_layer("density", layer.name)
            layer.weight = prune(layer.weight, target)
            run.densities[layer.name] = float(np.count_nonzero(layer.weight) / layer.weight.size)
        return
    last = graph.layers[graph.last_fabric_index()].name
    sess = session(to_onnx(graph, weights_as_inputs=True, outputs=[last]))
    weights = {layer.name: layer.weight for layer in graph.fabric_layers()}
    reference = _logits(sess, graph, run.calib, weights, config.batch)
    tolerance = config.auto_tolerance
    rms = input_rms(graph, run.calib, config.batch) if config.prune_scores == "activation" else {}
    steps = {}
    for layer in layers:
        scores = channel_scores(layer.weight, rms.get(layer.name))
        existing = np.count_nonzero(layer.weight) / layer.weight.size
        options = [existing] + [d for d in DENSITY_GRID if d < existing]
        chosen, errors = 0, [0.0]
        for i, density in enumerate(options[1:], start=1):
            trial = dict(weights)
            trial[layer.name] = prune(layer.weight, density, scores)
            error = _relative_error(_logits(sess, graph, run.calib, trial, config.batch), reference)
            if error > tolerance:
                break
            chosen = i
            errors.append(error)
        steps[layer.name] = (options, chosen, errors, scores)
        run.sensitivity[layer.name] = {"densities": options[: len(errors)], "errors": errors}
    # Per-layer errors add up: back off the layer that hurts most until the joint error fits.
    while True:
        trial = dict(weights)
        for name, (options, chosen, _, scores) in steps.items():
            trial[name] = prune(weights[name], options[chosen], scores)
        joint = _relative_error(_logits(sess, graph, run.calib, trial, config.batch), reference)
        movable = [n for n, s in steps.items() if s[1] > 0]
        if joint <= config.auto_joint_tolerance or not movable:
            break
        worst = max(movable, key=lambda n: steps[n][2][steps[n][1]])
        options, chosen, errors, scores = steps[worst]
        steps[worst] = (options, chosen - 1, errors, scores)
    for layer in layers:
        layer.weight = trial[layer.name]
        run.densities[layer.name] = float(np.count_nonzero(layer.weight) / layer.weight.size)
    run.sensitivity["joint_error"] = joint


# ---- ClusterWeights --------------------------------------------------------------------


def integer_codebook(centroids: np.ndarray, top: int, positive_only: bool):
    """Scale and round centroids to integers in [-top, top] (or [1, top]); merge equal ones.

    Returns ``(scale, integers, had_zero)``: the sorted unique non-zero integers and whether a
    centroid rounded to 0.
    """
    if centroids.size == 0:
        return 1.0, np.zeros(0, np.int64), False
    scale = float(np.abs(centroids).max()) / top
    if scale == 0.0:
        return 1.0, np.zeros(0, np.int64), True
    ints = np.round(centroids / scale).astype(np.int64)
    if positive_only:
        ints = np.maximum(ints, 1)
    uniq = np.unique(ints)
    return scale, uniq[uniq != 0], bool(np.any(uniq == 0))


def cluster_layer_weights(weight: np.ndarray, k: int, method: str, seed: int) -> WeightTable:
    nonzero = weight != 0
    values = weight[nonzero]
    centroids = cluster_1d(values, k - 1, method=method, seed=seed)
    _, top = weight_code_range(ARITHMETIC_CONTRACT["bw"])
    scale, wq, had_zero = integer_codebook(centroids, top, positive_only=False)
    codes = np.zeros(weight.shape, np.uint8)
    if values.size and wq.size:
        candidates = np.concatenate([[0], wq]) if had_zero else wq
        nearest = assign_nearest(values / scale, np.sort(candidates).astype(np.float64))
        # Map each candidate to its code: 0 stays "pruned", wq[i] is code i+1.
        code_of = np.searchsorted(wq, np.sort(candidates)) + 1
        if had_zero:
            code_of[np.sort(candidates) == 0] = 0
        codes[nonzero] = code_of[nearest].astype(np.uint8)
    return WeightTable(codes, wq, scale)


def cluster_weights(run: Run) -> None:
    """ClusterWeights: 1-D k-means of each layer's non-zero weights, then integer codes."""
    for layer in run.graph.fabric_layers():
        k = run.config.for_layer("weight_clusters", layer.name)
        run.weights[layer.name] = cluster_layer_weights(
            layer.weight, k, run.config.kmeans, run.config.seed
        )


# ---- CalibrateActivations ----------------------------------------------------------------


@dataclass
class MapPlan:
    """One encoded map: the tensors whose codes share its codebook (several when Concats
    join them) and the tensors its consumers read (after max-pools), where it is
    calibrated."""

    name: str  # "input" or the first producing layer's name
    producers: list[str] = field(default_factory=list)
    read_at: list[str] = field(default_factory=list)
    consumers: list[Layer] = field(default_factory=list)


def _emits_map(graph: Model, layer: Layer) -> bool:
    return layer.kind.emits_map(layer is graph.layers[graph.last_fabric_index()])


def map_plan(graph: Model) -> tuple[dict[str, MapPlan], dict[str, tuple]]:
    """Assign codebooks over the graph (DESIGN section 1): one per tensor a layer emits as
    codes, one for the input, and one shared by all maps joined through Concats.

    Returns the plans by map name and, per layer, the maps it reads and emits (``None``:
    none, or float logits / acc)."""
    group: dict[str, str] = {"input": "input"}  # emitting tensor -> its map

    def root(tensor: str) -> str:
        while group[tensor] != tensor:
            tensor = group[tensor]
        return tensor

    source: dict[str, str] = {"input": "input"}  # any tensor -> the emitting tensor
    for layer in graph.layers:
        if layer.kind.acts_on_codes:
            if layer.inputs[0] not in source:
                continue  # reshapes the logits
            source[layer.name] = source[layer.inputs[0]]
            if layer.kind.joins_maps:
                roots = sorted({root(source[t]) for t in layer.inputs}, key=_order(graph))
                for other in roots[1:]:
                    group[other] = roots[0]
        elif _emits_map(graph, layer):
            source[layer.name] = group[layer.name] = layer.name
    plans: dict[str, MapPlan] = {}
    for tensor, emitted in source.items():
        if emitted == tensor:
            plan = plans.setdefault(root(tensor), MapPlan(root(tensor)))
            plan.producers.append(tensor)
    links = {}
    for layer in graph.layers:
        if layer.inputs[0] not in source and layer.kind.acts_on_codes:
            continue
        reads = _value_reads(layer)
        for k in reads:
            tensor = layer.inputs[k]
            plan = plans[root(source[tensor])]
            if tensor not in plan.read_at:
                plan.read_at.append(tensor)
            plan.consumers.append(layer)
        in_map = root(source[layer.inputs[0]]) if layer.kind.reads_codebook else None
        out_map = root(layer.name) if _emits_map(graph, layer) else None
        links[layer.name] = (in_map, out_map)
    return {name: plan for name, plan in plans.items() if plan.read_at}, links


def _order(graph: Model):
    order = {"input": -1, **{layer.name: i for i, layer in enumerate(graph.layers)}}
    return order.__getitem__


def _value_reads(layer: Layer) -> list[int]:
    """The inputs whose decoded values a layer uses (not the ones it only moves)."""
    if layer.kind.acts_on_codes or layer.kind.on_logits:
        return []
    return list(range(len(layer.inputs)))


def make_codebook(name: str, values: np.ndarray, j: int, method: str, seed: int):
    """Cluster a map's non-zero values into at most J-1 integer centroids.

    Returns the codebook, its float thresholds and the code of each threshold interval
    (:func:`interval_codes`): the zero threshold and the midpoints between consecutive
    decoded centroids, with 0 among them (values nearer to 0 than to any centroid are code
    0). A map that is zero on every calibration input has no codebook: the model would
    compute constants from there on, so that is an error naming the map.
    """
    flat = values.reshape(-1)
    nonzero = flat[flat != 0].astype(np.float64)
    if nonzero.size == 0 and name == "input":
        raise KcnnError(
            "the calibration inputs are zero everywhere, so the input has no codebook and "
            "the model would give the same output for every input; calibrate on real inputs",
            layer=name,
            field="calibration",
        )
    if nonzero.size == 0:
        # A dead branch: its codes stay 0, as on every calibration input (one placeholder
        # centroid that no threshold reaches).
        warnings.warn(
            f"map {name!r} is zero on every calibration input: its codes are all 0 (a dead "
            "branch); calibrate on real inputs if that is not expected",
            RuntimeWarning,
            stacklevel=2,
        )
        book = Codebook(name, np.ones(1, np.int64), 1.0, False, calib_values=int(flat.size))
        return book, np.array([np.inf]), None
    if not np.all(np.isfinite(nonzero)):
        raise KcnnError(
            f"map {name!r} overflows to NaN or infinity on the calibration data (weights or "
            "inputs too large for float32)",
            layer=name,
            field="calibration",
        )
    signed = bool(np.any(nonzero < 0))
    centroids = cluster_1d(nonzero, j - 1, method=method, seed=seed)
    _, top = act_code_range(ARITHMETIC_CONTRACT["ba"], signed)
    scale, aq, _ = integer_codebook(centroids, top, positive_only=not signed)
    decoded = aq * scale
    book = Codebook(name, aq, scale, signed, calib_values=int(flat.size))
    if name == "input":
        book.boundaries = (decoded[1:] + decoded[:-1]) / 2
        return book, None, None
    negative = int(np.count_nonzero(aq < 0))
    with_zero = np.concatenate([decoded[:negative], [0.0], decoded[negative:]])
    thresholds = (with_zero[1:] + with_zero[:-1]) / 2
    return book, thresholds, interval_codes(len(aq), negative)


def interval_codes(entries: int, negative: int) -> np.ndarray | None:
    """The code of each interval of a threshold bank over a codebook of ``entries``
    ascending centroids, ``negative`` of them below 0: interval i is the i-th value of the
    centroids with 0 put in its place (code 0). None when that is the identity (an
    unsigned map)."""
    if negative == 0:
        return None
    codes = np.arange(entries + 1)
    codes[:negative] += 1
    codes[negative] = 0
    return codes.astype(np.uint8)


def float_codes(values: np.ndarray, thresholds: np.ndarray, table) -> np.ndarray:
    """Codes of float values through float thresholds and an interval table."""
    index = np.searchsorted(thresholds, values, side="right")
    return index if table is None else table[index]


def calibrate_activations(run: Run) -> None:
    """CalibrateActivations: capture every encoded map with onnxruntime and cluster it.

    The float graph runs with the clustered weights, so each map is calibrated on what the
    integer model will see upstream of it: all the tensors its consumers read, Concat
    branches together. Also counts the float-cut effective pairs.
    """
    graph, config = run.graph, run.config
    plans, run.links = map_plan(graph)
    decoded = {}
    for layer in graph.fabric_layers():
        decoded[layer.name] = layer.weight
        layer.weight = run.weights[layer.name].decode()
    try:
        read_points = sorted({t for p in plans.values() for t in p.read_at if t != "input"})
        sess = session(to_onnx(graph, outputs=read_points)) if read_points else None
        captured = {name: [] for name in read_points}
        for start in range(0, len(run.calib), config.batch):
            chunk = run.calib[start : start + config.batch]
            if sess is not None:
                for name, value in zip(
                    read_points, sess.run(read_points, {"input": chunk}), strict=True
                ):
                    captured[name].append(value)
        captured = {name: np.concatenate(parts) for name, parts in captured.items()}
        captured["input"] = run.calib
    finally:
        for layer in graph.fabric_layers():
            layer.weight = decoded[layer.name]
    nonzero = {}  # tensor -> where its codes are not 0
    for plan in plans.values():
        j = config.for_layer("act_clusters", plan.consumers[0].name)
        parts = [captured[t] for t in plan.read_at]
        values = np.concatenate([p.reshape(-1) for p in parts])
        if plan.name in run.clipped:
            values = np.clip(values, -run.clipped[plan.name], run.clipped[plan.name])
        elif np.all(np.isfinite(values)):
            robust = robust_range(values, f"map {plan.name!r}")
            if robust is not None:
                run.clipped[plan.name] = robust
                values = np.clip(values, -robust, robust)
        book, thresholds, table = make_codebook(plan.name, values, j, config.kmeans, config.seed)
        run.maps[plan.name] = book
        if thresholds is not None:
            run.float_thresholds[plan.name] = thresholds
            run.interval_codes[plan.name] = table
        for tensor, part in zip(plan.read_at, parts, strict=True):
            if plan.name in run.clipped:
                part = np.clip(part, -run.clipped[plan.name], run.clipped[plan.name])
            if thresholds is None:
                nonzero[tensor] = part != 0
            else:
                nonzero[tensor] = float_codes(part, thresholds, table) != 0
    for layer in graph.fabric_layers():
        act_nz = nonzero[layer.inputs[0]]
        weight_nz = run.weights[layer.name].codes != 0
        run.counts[layer.name] = {
            "effective_pairs": layer.kind.effective_pairs(layer.attrs, weight_nz, act_nz),
            "act_density": float(act_nz.mean()) if act_nz.size else 0.0,
        }


# ---- BuildTables -------------------------------------------------------------------------


def choose_weight_form(codes: np.ndarray) -> str:
    entries, per_row = encode_sparse(codes)
    return "sparse" if sparse_bits(entries.size, per_row.size) < 4 * codes.size else "dense"


def build_tables(run: Run) -> Model:
    """BuildTables: integer biases, thresholds through the folded activations, interval
    code tables, residual and add tables, stored forms, the accumulator proof."""
    graph = run.graph
    layers = []
    maps = dict(run.maps)
    acc_bits = ARITHMETIC_CONTRACT["ACC_BITS"]
    reach = float(1 << (acc_bits - 1)) - 1
    # The layers built so far, to follow codebooks through code-only ops (the list grows).
    built = Model(graph.name, graph.input_shape, layers, maps)
    for layer in graph.layers:
        in_map, out_map = run.links.get(layer.name, (None, None))
        q = Layer(
            name=layer.name,
            op=layer.op,
            in_shape=layer.in_shape,
            out_shape=layer.out_shape,
            attrs=dict(layer.attrs),
            activation=None if layer.activation is None else dict(layer.activation),
            nodes=list(layer.nodes),
            node_ops=list(layer.node_ops),
            inputs=list(layer.inputs),
            in_map=in_map,
            out_map=out_map,
        )
        layers.append(q)
        if layer.kind.host and q.out_map is not None:
            maps[q.out_map].boundaries = run.float_thresholds[q.out_map]
        if layer.kind.is_code_table:
            q.code_table = _code_table(layer, maps[q.in_map], run, q.out_map)
        if not layer.thresholded:
            continue
        books = [maps[built.codebook_of(t)] for t in q.inputs]
        if layer.is_fabric:
            table = run.weights[layer.name]
            acc_scale = table.scale * books[0].scale
            q.codes, q.wq, q.w_scale = table.codes, table.wq, table.scale
            bias = np.round(layer.float_bias / acc_scale)
            if not np.all(np.abs(bias) <= reach):  # NaN fails too
                raise KcnnError(
                    f"a bias is {float(np.max(np.abs(bias))):.3g} accumulator units, beyond "
                    f"ACC_BITS={acc_bits}: the bias is huge next to the weights and inputs",
                    layer=layer.name,
                    field="bias",
                )
            q.bias = bias.astype(np.int64)
            if q.residual is not None:
                q.residual_table = _value_table(books[1], acc_scale, layer.name)
            q.weight_form = choose_weight_form(q.codes)
        else:
            # The add layer: one integer unit finer than both maps' steps, so that each
            # table entry rounds once by at most a sixteenth of the coarser map's step.
            acc_scale = min(book.scale for book in books) / ADD_UNIT_STEPS
            q.attrs["unit"] = float(acc_scale)
            q.add_tables = [_value_table(book, acc_scale, layer.name) for book in books]
        if q.out_map is not None:
            bound = accumulator_bound(q, books)
            t = _integer_thresholds(q, run.float_thresholds[q.out_map], acc_scale, bound)
            q.thresholds = t
            q.out_table = run.interval_codes[q.out_map]
    model = built

    def fail(message, layer, field):
        return KcnnError(message, layer=layer, field=field)

    check_layer_tables(model, ARITHMETIC_CONTRACT, fail)
    return model


def _code_table(layer: Layer, book: Codebook, run: Run, out_map: str) -> np.ndarray:
    """Per channel, the output code of each input code: ``gain * x + shift`` of the
    decoded input, the folded activation, the output map's threshold bank and interval
    codes, all evaluated once here in float64."""
    values = np.concatenate([[0.0], book.aq * book.scale])
    y = layer.weight.reshape(-1, 1) * values[None, :] + layer.float_bias.reshape(-1, 1)
    t = run.float_thresholds[out_map]
    act = activation_of(layer)
    reach = t if act is None else act.inverse(t, layer.activation)
    index = (y[..., None] >= reach).sum(axis=-1)
    table = run.interval_codes[out_map]
    return (index if table is None else table[index]).astype(np.uint8)


#: The add layer's unit is the finer map's scale over this.
ADD_UNIT_STEPS = 16


def _value_table(book: Codebook, unit: float, where: str) -> np.ndarray:
    """A map's decoded values in ``unit``, rounded once: entry j for code j (0 for 0)."""
    table = np.round(np.concatenate([[0.0], book.aq * book.scale]) / unit)
    limit = float(1 << (ARITHMETIC_CONTRACT["ACC_BITS"] - 2))
    if not np.all(np.abs(table) <= limit):
        raise KcnnError(
            f"the values of map {book.name!r} are {float(np.max(np.abs(table))):.3g} "
            "accumulator units: the two sides of the Add differ too much in scale",
            layer=where,
            field="residual",
        )
    return table.astype(np.int64)


def _integer_thresholds(layer: Layer, t: np.ndarray, acc_scale: float, bound: int):
    """Integer thresholds in accumulator units for the float thresholds ``t`` of the
    layer's output map: through the inverse of its folded activation, ``-bound`` where
    every accumulator reaches it and ``bound + 1`` where none does (DESIGN section 1)."""
    act = activation_of(layer)
    y = t if act is None else act.inverse(t, layer.activation)
    with np.errstate(over="ignore", invalid="ignore"):
        ints = np.ceil(y / acc_scale)
    if act is not None and act.zero_at_non_positive(layer.activation) and ints.size:
        # f(acc) = 0 for acc <= 0: a threshold above zero needs acc >= 1 (the loader checks
        # that acc <= 0 is code 0). One at or below zero, which a codebook shared through a
        # Concat with a signed map has, is reached by every acc (-inf, clipped below).
        ints = np.where(np.asarray(t) > 0, np.maximum(ints, 1.0), ints)
    ints = np.clip(ints, -bound, bound + 1)  # inf included
    ints = np.maximum.accumulate(ints) if ints.size else ints
    return ints.astype(np.int64)
