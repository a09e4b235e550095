"""Census of issue 12: which well-known CNN architectures kcnn imports and quantizes.

    python bench/architectures.py                       # import + lower every graph
    python bench/architectures.py --quantize            # and quantize those that lower
    python bench/architectures.py --quantize --markdown docs/architectures.md
    python bench/architectures.py --quantize --csim --folder /tmp/tvfull   # full size

Runs in the main environment (extras quantize, csim, test; no torch). The graphs are the
model zoo's "light" graphs that the onnx package ships (full-size layers whose weights are
ConstantOfShape fills) and, in tests/data/architectures/, the reduced torchvision exports
(made by tools/architectures.py) and reduced light graphs (made by tools/zoo_graphs.py).
Each is imported with ``kcnn.quantizer.onnx_import.import_onnx`` and lowered with
``kcnn.quantizer.lowering.lower``; with ``--quantize``, a graph that lowers is quantized with
fixed densities on a few seeded calibration inputs. Prints one Markdown row per graph;
``--markdown FILE`` also writes the table into FILE between its census markers.
``--folder DIR`` censuses the full-size torchvision exports that
``tools/architectures.py --full --out DIR`` wrote there instead (too large for the repository).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "data" / "architectures"
SEED = 0
#: Calibration inputs per graph for --quantize: enough for every codebook, cheap at 224x224.
IMAGES = 4
#: Fixed kept-weight fraction: the default "auto" runs a sensitivity search per layer.
DENSITY = 0.5
#: The light graphs of the onnx package, with the name each architecture is known by.
ZOO = {
    "bvlc_alexnet": "BVLC AlexNet",
    "zfnet512": "ZFNet-512",
    "vgg19": "VGG-19",
    "resnet50": "ResNet-50",
    "squeezenet": "SqueezeNet 1.1",
    "inception_v1": "Inception v1 (GoogLeNet)",
    "inception_v2": "Inception v2",
    "densenet121": "DenseNet-121",
    "shufflenet": "ShuffleNet",
}
#: The torchvision architectures of tools/architectures.py, by their names in its manifest.
TORCHVISION = {
    "resnet18": "ResNet-18",
    "mobilenet_v2": "MobileNet v2",
    "squeezenet1_1": "SqueezeNet 1.1",
    "googlenet": "GoogLeNet",
    "vgg11": "VGG-11",
    "efficientnet_b0": "EfficientNet-B0",
}
EXPORTERS = {"torchscript": "TorchScript exporter", "dynamo": "dynamo exporter"}
#: tools/architectures.py's file names: <architecture>_<exporter><opset>.onnx.
EXPORT_NAME = re.compile(r"(?P<name>\w+?)_(?P<exporter>torchscript|dynamo)(?P<opset>\d+)\.onnx")
BEGIN, END = "<!-- census: begin -->", "<!-- census: end -->"


@dataclass
class Case:
    architecture: str
    source: str
    path: Path


@dataclass
class Row:
    architecture: str
    source: str
    file: str
    result: str  # quantizes, imports, refused or crashes
    seconds: float
    error: str = ""
    csim: str = ""  # with --csim: whether the C-sim answers as the simulator


def zoo_folder() -> Path:
    """The folder of the light model-zoo graphs inside the installed onnx package."""
    import onnx

    return Path(onnx.__file__).resolve().parent / "backend" / "test" / "data" / "light"


def cases(corpus: Path = CORPUS) -> list[Case]:
    """Every graph of the census: the zoo's light graphs, the torchvision exports, then the
    reduced light graphs."""
    found = []
    folder = zoo_folder()
    for key, name in ZOO.items():
        found.append(Case(name, "zoo (light, opset 9)", folder / f"light_{key}.onnx"))
    manifest = json.loads((corpus / "manifest.json").read_text())
    for entry in manifest["files"]:
        exporter = EXPORTERS[entry["exporter"]]
        found.append(
            Case(
                TORCHVISION[entry["architecture"]],
                f"torchvision, {exporter}, opset {entry['opset']}",
                corpus / entry["file"],
            )
        )
    for entry in manifest["zoo"]["files"]:
        found.append(
            Case(
                ZOO[entry["architecture"]], "zoo (light, opset 9), reduced", corpus / entry["file"]
            )
        )
    return found


def folder_cases(folder: Path) -> list[Case]:
    """The full-size torchvision exports in ``folder``, known by their file names, in the
    order of the reduced ones: by architecture, then TorchScript 13 and 17, then dynamo."""
    found = []
    for path in folder.glob("*.onnx"):
        match = EXPORT_NAME.fullmatch(path.name)
        if match is None or match["name"] not in TORCHVISION:
            continue
        exporter = EXPORTERS[match["exporter"]]
        source = f"torchvision full size, {exporter}, opset {match['opset']}"
        key = (list(TORCHVISION).index(match["name"]), list(EXPORTERS).index(match["exporter"]))
        found.append((key, int(match["opset"]), Case(TORCHVISION[match["name"]], source, path)))
    return [case for *_, case in sorted(found, key=lambda item: item[:2])]


def error_text(exc: BaseException) -> str:
    """The error as a user sees it, less the file (a machine path; the table names the file)
    and the list of supported ops."""
    text = str(exc)
    file = getattr(exc, "file", None)
    if file:
        text = text.replace(f"file {file}, ", "", 1).replace(f"file {file}: ", "", 1)
        text = text.replace(file, Path(file).name)
    return re.sub(r"; supported ops: [^()]*?(?= \(node|$)", "; supported ops: ...", text)


def seeded_zoo_graph(path: Path):
    """The zoo graph at ``path`` with every ConstantOfShape fill replaced by a seeded
    initializer (``kcnn.models.bvlc.seeded_parameter``, drawn for the node that reads the
    fill, through the Unsqueeze or Reshape the converter may have put on it)."""
    import onnx
    from onnx import numpy_helper

    from kcnn.models.bvlc import seeded_parameter

    model = onnx.load(str(path))
    graph = model.graph
    rng = np.random.default_rng(SEED)
    shapes = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    fills = {n.output[0]: n for n in graph.node if n.op_type == "ConstantOfShape"}
    readers = {}
    for node in graph.node:
        for slot, name in enumerate(node.input):
            readers.setdefault(name, (node, slot))

    def reader(name: str):
        node, slot = readers[name]
        if node.op_type in ("Unsqueeze", "Reshape") and slot == 0:
            return reader(node.output[0])
        return node, slot

    made = {}
    for node in graph.node:  # graph order fixes the draws
        for name in node.input:
            if name not in fills or name in made:
                continue
            shape = tuple(int(d) for d in shapes[fills[name].input[0]].reshape(-1))
            user, slot = reader(name)
            trans_b = any(a.name == "transB" and a.i for a in user.attribute)
            w = seeded_parameter(rng, user.op_type, slot, shape, trans_b)
            made[name] = numpy_helper.from_array(w, name)
    kept = [n for n in graph.node if n.op_type != "ConstantOfShape"]
    del graph.node[:]
    graph.node.extend(kept)
    graph.initializer.extend(made.values())
    # These graphs are IR version 3, where an initializer is only a graph input's default.
    graph.input.extend(
        onnx.helper.make_tensor_value_info(name, t.data_type, list(t.dims))
        for name, t in made.items()
    )
    return model


def calibration(shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(SEED).standard_normal((IMAGES, *shape)).astype(np.float32)


def compare_csim(model) -> str:
    """One seeded input through the simulator and the HLS kernel's C-sim: ``sim == csim``
    when every map and the logits agree bit for bit, else what differs or what refused."""
    from kcnn.errors import KcnnError
    from kcnn.sim.csim import CsimEngine
    from kcnn.sim.engine import simulator

    x = np.random.default_rng(SEED + 1).standard_normal((1, *model.input_shape))
    x = x.astype(np.float32)
    try:
        engine = CsimEngine(model)
        _, logits, maps = engine.run(x, trace=True)
    except KcnnError as exc:
        return f"csim refuses: {error_text(exc)}"
    _, want_logits, want = simulator(model).run(x, trace=True)
    differ = [name for name in want if not np.array_equal(want[name], maps.get(name))]
    if differ or not np.array_equal(logits, want_logits):
        return f"differ: {', '.join(differ) or 'logits'}"
    return f"sim == csim ({len(engine.plan.steps)} steps)"


def census(case: Case, quantize: bool, csim: bool = False) -> Row:
    """Import and lower ``case`` (and quantize it, and compare the C-sim with the
    simulator, when asked); never raises."""
    from kcnn.errors import KcnnError
    from kcnn.quantizer import quantize as run_quantizer
    from kcnn.quantizer.lowering import lower
    from kcnn.quantizer.onnx_import import import_onnx

    start = time.perf_counter()
    row = Row(case.architecture, case.source, case.path.name, "refused", 0.0)
    try:
        graph = lower(import_onnx(case.path))
        row.result = "imports"
        if quantize:
            source = case.path
            if case.path.parent == zoo_folder():  # the reduced files have their weights
                source = seeded_zoo_graph(case.path)
            model = run_quantizer(
                source, calibration(graph.input_shape), log=None, density=DENSITY, seed=SEED
            )
            row.result = "quantizes"
            if csim:
                row.csim = compare_csim(model)
    except KcnnError as exc:
        prefix = "quantize: " if row.result == "imports" else ""
        row.error = prefix + error_text(exc)
    except Exception as exc:  # a bug: the census reports it and goes on
        row.result = "crashes"
        where = traceback.extract_tb(exc.__traceback__)[-1]
        row.error = f"{type(exc).__name__}: {error_text(exc)} ({Path(where.filename).name}:"
        row.error += f"{where.lineno})"
    row.seconds = time.perf_counter() - start
    return row


def markdown(rows: list[Row]) -> str:
    lines = [
        "| architecture | source | file | result | seconds | sim vs csim | first error |",
        "|---|---|---|---|---:|---|---|",
    ]
    for row in rows:
        error = row.error.replace("|", "\\|").replace("\n", " ")
        csim = row.csim.replace("|", "\\|")
        lines.append(
            f"| {row.architecture} | {row.source} | `{row.file}` | {row.result} "
            f"| {row.seconds:.1f} | {csim} | {error} |"
        )
    return "\n".join(lines) + "\n"


def write_between_markers(path: Path, table: str, command: str) -> None:
    """Replace what lies between the census markers of ``path`` with ``table``."""
    text = path.read_text()
    if text.count(BEGIN) != 1 or text.count(END) != 1:
        raise SystemExit(f"{path}: needs one {BEGIN!r} line and one {END!r} line")
    head, rest = text.split(BEGIN)
    _, tail = rest.split(END)
    path.write_text(f"{head}{BEGIN}\n\n`{command}`:\n\n{table}\n{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quantize",
        action="store_true",
        help=f"quantize every graph that lowers ({IMAGES} seeded inputs, density {DENSITY})",
    )
    parser.add_argument(
        "--csim",
        action="store_true",
        help="with --quantize: one input through the C-sim and the simulator, compared",
    )
    parser.add_argument("--only", help="comma-separated file names (light_vgg19.onnx, ...)")
    parser.add_argument(
        "--folder", type=Path, help="census the exports of tools/architectures.py --full here"
    )
    parser.add_argument("--markdown", type=Path, help="also write the table into this file")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    if args.folder and args.markdown:
        parser.error("--markdown writes the census of the corpus; with --folder use --json")

    wanted = set(args.only.split(",")) if args.only else None
    rows = []
    for case in folder_cases(args.folder) if args.folder else cases():
        if wanted and case.path.name not in wanted:
            continue
        row = census(case, args.quantize, args.csim)
        rows.append(row)
        print(f"{row.file:<40} {row.result:<9} {row.seconds:6.1f}s", file=sys.stderr, flush=True)
    table = markdown(rows)
    print(table, end="")
    counts = {r: sum(row.result == r for row in rows) for r in ("quantizes", "imports")}
    print(
        f"{counts['quantizes']} quantize, {counts['imports']} import only, "
        f"{len(rows) - sum(counts.values())} refused or crashed, of {len(rows)}",
        file=sys.stderr,
    )
    if args.markdown:
        command = "python bench/architectures.py" + (" --quantize" if args.quantize else "")
        write_between_markers(args.markdown, table, command)
    if args.json:
        args.json.write_text(json.dumps([asdict(row) for row in rows], indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
