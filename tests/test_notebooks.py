"""The notebooks in notebooks/ run headless and end in their own checks.

Each notebook's last cell asserts accuracy and bit-equality bounds (notebook 3 also the
words each step streams and, on the C-sim, the kernel's loop log against the estimate's),
so a wrong result fails here, not only an exception. Their ``parameters`` cell picks the
back-end: its default, ``auto``, runs the simulator when there is no board, and "equals sim
bit for bit" would then compare the simulator with itself. Here they run on the HLS
kernels' C simulation (``csim``) in the main environment and on the fake PYNQ-Z2 of
tests/fake_board.py (``board``) in the board environment, each against the simulator. The
committed copies carry no outputs, and the installed package delivers them to the board
through the ``pynq.notebooks`` entry point.
"""

import json
from importlib.metadata import entry_points
from pathlib import Path

import environments
import pytest

environments.importorskip("nbclient")

import nbformat  # noqa: E402 - nbclient brings it
from jupyter_client.kernelspec import KernelSpecManager  # noqa: E402
from jupyter_client.manager import KernelManager  # noqa: E402
from nbclient import NotebookClient  # noqa: E402

FOLDER = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(FOLDER.glob("*.ipynb"))
STREAMING_JSON = "alexnet_streaming.json"
#: Seconds any one cell may take: generous for a slow CI machine, short of a hang. The
#: longest cell, notebook 2's trace of 200 digits through alexnet_mnist on the C-sim (0.6 to
#: 1 s a digit as the kernel changed), took 2 to 4 minutes here.
CELL_TIMEOUT = 600
#: Digits per notebook in the test run, in place of the notebooks' 200 (the reduced tier:
#: every check still runs, on the first 100 held-out digits, at half the C-sim time; the
#: accuracy bound of 95 % holds there with room: 100 % on LeNet-5, 98 % on alexnet_mnist).
TEST_DIGITS = 100
#: What the board does not have; a notebook must run without any of them.
OFF_BOARD = ["kcnn.quantizer", "onnx", "onnxruntime", "sklearn", "scipy", "torch"]
#: Each environment runs the notebooks on a back-end other than the simulator.
BACKENDS = [
    pytest.param("csim", marks=pytest.mark.main_env, id="csim"),
    pytest.param("board", marks=pytest.mark.board_env, id="board"),
]
#: Run in the kernel before the notebook when the back-end is the board: only the physical
#: board is faked (the FPGA manager's file and the pynq device); the rest is the real stack.
FAKE_BOARD = """\
import os, sys
sys.path.insert(0, {tests!r})
import pynq
import kcnn.accelerator
from fake_board import FakeZynq
pynq.Device.active_device = FakeZynq()
kcnn.accelerator.board_present = lambda: True
os.environ["KCNN_OVERLAY"] = {overlay!r}
"""


def _ids(path: Path) -> str:
    return path.stem


@pytest.mark.main_env
@pytest.mark.board_env
def test_the_three_notebooks_are_there():
    names = [path.stem for path in NOTEBOOKS]
    assert len(names) >= 3, names
    assert (FOLDER / STREAMING_JSON).stat().st_size < 200_000


@pytest.mark.main_env
@pytest.mark.board_env
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_committed_without_outputs_with_a_backend_parameter(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    stale = [
        index
        for index, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert not stale, f"cells {stale} carry outputs or execution counts; clear them"
    assert nb.metadata.kernelspec.name == "python3"
    (parameters,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert 'BACKEND = "auto"' in parameters.source.splitlines()


def _python3_of_this_interpreter() -> KernelManager:
    # Only ipykernel's built-in spec, which starts sys.executable: a kernelspec named
    # python3 elsewhere on the machine could point at another Python without kcnn.
    specs = KernelSpecManager(kernel_dirs=[], ensure_native_kernel=True)
    return KernelManager(kernel_name="python3", kernel_spec_manager=specs)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_notebook_runs_and_checks_pass(path, backend, tmp_path):
    nb = nbformat.read(path, as_version=4)
    # As papermill does: the new values in a cell right after the tagged one.
    (at,) = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    new_values = f"BACKEND = {backend!r}\nN_DIGITS = min(N_DIGITS, {TEST_DIGITS})"
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell(new_values))
    if backend == "board":
        fake_board = pytest.importorskip("fake_board")  # it needs pynq

        overlay = fake_board.write_overlay(tmp_path / "overlay")
        setup = FAKE_BOARD.format(tests=str(Path(__file__).parent), overlay=str(overlay))
        nb.cells.insert(0, nbformat.v4.new_code_cell(setup))
    # One extra cell, after the notebook's own checks, says which back-end ran and lists
    # the off-board packages that ended up imported.
    probe = (
        "import json, sys; print(json.dumps({'backend': acc.backend, 'off_board': "
        f"[m for m in {OFF_BOARD!r} if m in sys.modules]}}))"
    )
    nb.cells.append(nbformat.v4.new_code_cell(probe))
    client = NotebookClient(
        nb,
        km=_python3_of_this_interpreter(),
        timeout=CELL_TIMEOUT,
        # The kernel starts in an empty folder, so the repository's folders cannot shadow
        # the installed package.
        resources={"metadata": {"path": str(tmp_path)}},
    )
    # cleanup_kc: nbclient leaves a kernel it did not start running unless told otherwise.
    client.execute(cleanup_kc=True)  # CellExecutionError on any failing cell, asserts included
    outputs = nb.cells[-1].outputs
    text = "".join(out.get("text", "") for out in outputs if out.output_type == "stream")
    ran = json.loads(text)
    assert ran["backend"] == backend
    assert ran["off_board"] == [], f"{path.name} imported packages the board lacks"


@pytest.mark.main_env
@pytest.mark.board_env
def test_pynq_entry_point_delivers_this_folder():
    # pynq get-notebooks imports the entry point's module and copies the folder it lives in.
    found = [ep for ep in entry_points(group="pynq.notebooks") if ep.name == "kcnn"]
    assert [ep.value for ep in found] == ["kcnn.notebooks"]
    module = found[0].load()
    shipped = {p.name for p in Path(module.__path__[0]).iterdir()}
    wanted = {p.name for p in NOTEBOOKS} | {STREAMING_JSON}
    assert wanted <= shipped, f"not installed: {sorted(wanted - shipped)}"
