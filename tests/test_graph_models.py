"""The branching reference models (kcnn.models.GRAPH_MODELS) are what models/README.md says.

Their float top-1 on the 1,000 held-out test digits, computed here with onnxruntime, is
the figure of the README's accuracy table, and each graph holds the ops that the README's
table of the graph models lists, with the structure each model is the reference for.
"""

import collections
import re
from pathlib import Path

import environments
import numpy as np
import pytest

pytestmark = pytest.mark.main_env

ort = environments.importorskip("onnxruntime")
onnx = environments.importorskip("onnx")

from onnx import numpy_helper  # noqa: E402

from kcnn import models  # noqa: E402

README = Path(models.__file__).with_name("README.md")
#: What the DAG importer is promised (models/README.md, "Graph models").
OPS = {
    "Conv", "BatchNormalization", "Relu", "Clip", "Add", "Concat", "MaxPool",
    "GlobalAveragePool", "AveragePool", "Flatten", "Reshape", "Gemm", "MatMul", "Softmax",
}  # fmt: skip
#: The ops whose presence makes each model the reference it is.
STRUCTURAL = {
    "resnet_mnist": {"Add"},
    "mobilenet_mnist": {"Add", "Clip"},
    "squeezenet_mnist": {"Concat", "MaxPool"},
}


def readme_rows(cells_per_row: int) -> dict[str, list[str]]:
    """Table rows of models/README.md with this many cells, by the model named first."""
    rows = {}
    for line in README.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        name = re.fullmatch(r"`(\w+)`", cells[0])
        if line.startswith("|") and len(cells) == cells_per_row and name:
            rows[name.group(1)] = cells
    return rows


def readme_test_top1(name: str) -> float:
    """Float test top-1 from the README's accuracy table (model, val, test, dense)."""
    row = readme_rows(4).get(name)
    assert row, f"no float accuracy row for {name} in {README}"
    return float(re.fullmatch(r"([\d.]+) %", row[2]).group(1)) / 100


def readme_ops(name: str) -> dict[str, int]:
    """Op counts from the README's graph-model table (model, layers, params, bytes, ops)."""
    row = readme_rows(5).get(name)
    assert row, f"no graph-model row for {name} in {README}"
    return {op: int(n) for op, n in re.findall(r"(\w+) (\d+)", row[4])}


def load(name: str):
    return onnx.load(models.model_path(name))


def initializers(graph) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in graph.initializer}


@pytest.mark.parametrize("name", models.GRAPH_MODELS)
def test_float_test_accuracy_is_the_readme_figure(name):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(
        str(models.model_path(name)), options, providers=["CPUExecutionProvider"]
    )
    x, y = models.digits("test")
    logits = session.run(None, {"input": x})[0]
    assert logits.shape == (len(y), 10)
    top1 = float(np.mean(logits.argmax(axis=1) == y))
    # One digit is 0.1 %: the README's figure is exact, so any other model fails here.
    assert top1 == pytest.approx(readme_test_top1(name), abs=5e-4)


@pytest.mark.parametrize("name", models.GRAPH_MODELS)
def test_graph_holds_the_ops_the_readme_lists(name):
    model = load(name)
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == 17
    counts = collections.Counter(node.op_type for node in model.graph.node)
    assert set(counts) <= OPS, sorted(set(counts) - OPS)
    assert counts == readme_ops(name)
    assert STRUCTURAL[name] <= set(counts)
    assert [i.name for i in model.graph.input] == ["input"]
    assert [o.name for o in model.graph.output] == ["output"]


@pytest.mark.parametrize("name", models.GRAPH_MODELS)
def test_every_add_joins_two_maps(name):
    graph = load(name).graph
    constants = initializers(graph)
    adds = [node for node in graph.node if node.op_type == "Add"]
    for node in adds:
        assert not set(node.input) & set(constants), node.name


def consumers(graph) -> dict[str, list]:
    found = collections.defaultdict(list)
    for node in graph.node:
        for name in node.input:
            found[name].append(node)
    return found


def test_resnet_applies_relu_after_each_residual_add():
    graph = load("resnet_mnist").graph
    readers = consumers(graph)
    adds = [node for node in graph.node if node.op_type == "Add"]
    assert len(adds) == 3
    for node in adds:
        assert [r.op_type for r in readers[node.output[0]]] == ["Relu"], node.name


def test_mobilenet_has_depthwise_convs_relu6_and_linear_bottlenecks():
    graph = load("mobilenet_mnist").graph
    constants = initializers(graph)
    depthwise = []
    for node in graph.node:
        if node.op_type == "Conv":
            group = next((a.i for a in node.attribute if a.name == "group"), 1)
            weight = constants[node.input[1]]
            if group > 1 and group == weight.shape[0] and weight.shape[1] == 1:
                depthwise.append(node)
    assert len(depthwise) == 5
    for node in graph.node:
        if node.op_type == "Clip":
            bounds = [float(constants[name]) for name in node.input[1:]]
            assert bounds == [0.0, 6.0], node.name
    # The projection before each residual Add has no activation: Conv feeds the Add.
    producers = {out: node for node in graph.node for out in node.output}
    for node in graph.node:
        if node.op_type == "Add":
            kinds = sorted(producers[name].op_type for name in node.input)
            assert "Conv" in kinds, (node.name, kinds)


def test_squeezenet_fire_modules_concatenate_on_channels():
    graph = load("squeezenet_mnist").graph
    producers = {out: node for node in graph.node for out in node.output}
    concats = [node for node in graph.node if node.op_type == "Concat"]
    assert len(concats) == 4
    for node in concats:
        assert [a.i for a in node.attribute if a.name == "axis"] == [1]
        # Each branch is an expand conv and its ReLU.
        assert [producers[name].op_type for name in node.input] == ["Relu", "Relu"]


@pytest.mark.parametrize("name", models.GRAPH_MODELS)
def test_weights_are_pruned_and_shared(name):
    graph = load(name).graph
    constants = initializers(graph)
    for node in graph.node:
        if node.op_type in ("Conv", "Gemm"):
            weight = constants[node.input[1]]
            # Deep Compression's weight sharing: at most 15 values besides the pruned zeros.
            assert len(np.unique(weight[weight != 0])) <= 15, node.name


@pytest.mark.parametrize("name", models.GRAPH_MODELS)
def test_bundled_graph_table_matches_its_onnx_and_the_readme(name):
    """As the chains' tables (tests/test_bundled_tables.py), in the main environment only:
    the board environment checks the graph tables' codes through the golden files."""
    from test_bundled_tables import check_table

    check_table(name)
