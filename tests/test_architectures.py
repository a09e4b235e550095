"""Issue 12's acceptance corpus: every well-known architecture either imports and lowers, or
is refused with a KcnnError that names the node and its op.

The corpus is the model zoo's light graphs that the onnx package ships and, committed in
tests/data/architectures/, reduced versions of them (made by tools/zoo_graphs.py) and reduced
torchvision exports (made by tools/architectures.py, which needs torch; this module does
not). Every graph is imported and lowered here; the committed reduced graphs are also
quantized and run through the C-sim. The full-size graphs' quantizer results are
bench/architectures.py's table (docs/architectures.md).
"""

import hashlib
import json
import re
from pathlib import Path

import environments
import pytest

onnx = environments.importorskip("onnx")

from kcnn.errors import KcnnError  # noqa: E402
from kcnn.quantizer.lowering import lower  # noqa: E402
from kcnn.quantizer.onnx_import import import_onnx  # noqa: E402

CORPUS = Path(__file__).resolve().parent / "data" / "architectures"
ZOO = Path(onnx.__file__).resolve().parent / "backend" / "test" / "data" / "light"
ZOO_GRAPHS = [
    "bvlc_alexnet",
    "zfnet512",
    "vgg19",
    "resnet50",
    "squeezenet",
    "inception_v1",
    "inception_v2",
    "densenet121",
    "shufflenet",
]
#: File name -> why its refusal does not name the node and op yet. Strict: once the
#: importer names them, the test passes and these entries must go.
UNNAMED_REFUSALS: dict[str, str] = {}


def _graphs() -> list:
    paths = [ZOO / f"light_{name}.onnx" for name in ZOO_GRAPHS]
    paths += sorted(CORPUS.glob("*.onnx"))
    return [
        pytest.param(
            path,
            id=path.name,
            marks=[pytest.mark.xfail(strict=True, reason=UNNAMED_REFUSALS[path.name])]
            if path.name in UNNAMED_REFUSALS
            else [],
        )
        for path in paths
    ]


def named_node(text: str, model) -> tuple[str, str]:
    """The node and op an error names, checked against the graph: the node must exist (by
    name, or by its output for an unnamed node) and have that op."""
    nodes = re.findall(r"node '([^']*)'", text)
    ops = re.findall(r"\bop\s+'?([A-Za-z]\w*)", text)
    assert nodes and ops, f"the error names no node and op: {text}"
    op_of = {}
    for candidate in model.graph.node:
        for key in (candidate.name, *candidate.output):
            if key:
                op_of.setdefault(key, candidate.op_type)
    known = [name for name in nodes if name in op_of]
    assert known, f"the error names node(s) {nodes}, which the graph lacks: {text}"
    for name in known:
        if op_of[name] in ops:
            return name, op_of[name]
    raise AssertionError(f"node {known[0]!r} is a {op_of[known[0]]}, not {ops}: {text}")


@pytest.mark.parametrize("path", _graphs())
def test_imports_or_names_the_node_it_refuses(path):
    assert path.is_file(), f"{path} is missing"
    try:
        graph = lower(import_onnx(path))
    except KcnnError as exc:
        named_node(str(exc), onnx.load(str(path), load_external_data=False))
    else:
        assert graph.layers and graph.input_shape


def test_the_check_fails_a_refusal_that_does_not_name_the_node():
    model = onnx.load(str(ZOO / "light_resnet50.onnx"))
    node = next(n for n in model.graph.node if n.op_type == "Sum")
    assert named_node(f"x (node '{node.name}', op Sum)", model) == (node.name, "Sum")
    for text in (
        f"x (node '{node.name}')",
        "x (op Sum)",
        f"x (node '{node.name}', op Conv)",
        "x (node 'no such node', op Sum)",
    ):
        with pytest.raises(AssertionError):
            named_node(text, model)


def test_manifest_matches_the_committed_files():
    manifest = json.loads((CORPUS / "manifest.json").read_text())
    torchvision = {entry["file"]: entry for entry in manifest["files"]}
    zoo = {entry["file"]: entry for entry in manifest["zoo"]["files"]}
    entries = torchvision | zoo
    assert len(entries) == len(torchvision) + len(zoo)
    assert sorted(entries) == sorted(p.name for p in CORPUS.glob("*.onnx"))
    assert {(e["exporter"], e["opset"]) for e in torchvision.values()} == {
        ("torchscript", 13),
        ("torchscript", 17),
        ("dynamo", 18),
    }
    assert len({e["architecture"] for e in torchvision.values()}) == 6
    assert [e["architecture"] for e in zoo.values()] == ZOO_GRAPHS
    for entry in zoo.values():
        assert entry["opset"] == 9, entry["file"]
        assert entry["source"] == f"onnx/backend/test/data/light/light_{entry['architecture']}.onnx"
    for name, entry in entries.items():
        blob = (CORPUS / name).read_bytes()
        assert len(blob) == entry["bytes"], name
        assert hashlib.sha256(blob).hexdigest() == entry["sha256"], name
        model = onnx.load_from_string(blob)
        opsets = {o.domain: o.version for o in model.opset_import}
        assert opsets[""] == entry["opset"], name
        dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
        assert dims == entry["input_shape"], name


def test_reduced_zoo_graphs_keep_the_light_graphs_nodes():
    """tools/zoo_graphs.py narrows the light graphs; it keeps every node but the weight fills
    (now initializers), in order, with its name, op and tensors, and the opset and IR
    version that the Caffe2 converter wrote."""
    for key in ZOO_GRAPHS:
        light = onnx.load(str(ZOO / f"light_{key}.onnx"))
        reduced = onnx.load(str(CORPUS / f"zoo_{key}_reduced.onnx"))
        want = [
            (n.name, n.op_type, list(n.input), list(n.output))
            for n in light.graph.node
            if n.op_type != "ConstantOfShape"
        ]
        got = [(n.name, n.op_type, list(n.input), list(n.output)) for n in reduced.graph.node]
        assert got == want, key
        assert reduced.opset_import == light.opset_import, key
        assert reduced.ir_version == light.ir_version, key
        inputs = {i.name for i in reduced.graph.input}
        assert {t.name for t in reduced.graph.initializer} < inputs, key


#: The corpus graphs that quantize and run on the kernel as they are (EfficientNet-B0 is
#: refused by design: SiLU and squeeze-excitation multiply maps).
REFUSED_BY_DESIGN = ("efficientnet_b0",)


@pytest.mark.parametrize(
    "path",
    [p for p in sorted(CORPUS.glob("*.onnx")) if not p.name.startswith(REFUSED_BY_DESIGN)],
    ids=lambda p: p.name,
)
def test_reduced_graphs_quantize_and_the_csim_answers_as_the_simulator(path, tmp_path):
    """Each reduced graph (the zoo's and torchvision's, both exporters) quantizes into a
    `.kcnn` that loads back (DenseNet's and ShuffleNet's Concats once wrote files the loader
    refused), and one input through the HLS kernel's C-sim gives every map and the logits
    of the simulator, bit for bit."""
    environments.importorskip("onnxruntime")
    import numpy as np

    from kcnn.kfile import load
    from kcnn.quantizer import quantize
    from kcnn.sim.csim import CsimEngine
    from kcnn.sim.engine import simulator

    shape = lower(import_onnx(path)).input_shape
    rng = np.random.default_rng(0)
    calib = rng.standard_normal((4, *shape)).astype(np.float32)
    model = load(quantize(path, calib, log=None, density=0.5).save(tmp_path / "model.kcnn"))
    x = rng.standard_normal((1, *shape)).astype(np.float32)
    engine = CsimEngine(model)
    try:
        _, logits, maps = engine.run(x, trace=True)
    finally:
        engine.close()
    _, want_logits, want = simulator(model).run(x, trace=True)
    assert sorted(maps) == sorted(want)
    for name, codes in want.items():
        assert np.array_equal(maps[name], codes), name
    assert np.array_equal(logits, want_logits)
