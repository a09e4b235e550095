"""In CI, each test environment skips exactly what is listed here, for the reason listed.

tests/conftest.py already fails a CI skip of a test that runs in this environment; this
check also catches a test whose markers were changed to send it elsewhere, and a module
that stopped importing where it should. It runs after every other test of the session.
"""

import environments
import pytest

#: Node id -> a fragment of the skip's reason, per environment. Only what the session
#: collected is expected (a run of a few files skips less).
EXPECTED = {
    # The fake board subclasses pynq.Device: pynq lives in the board environment only.
    "main": {"tests/test_board.py": "cannot import pynq"},
    # Modules that import the quantizer's packages (onnx, onnxruntime) at module level.
    "board": {
        "tests/test_accelerator.py": "cannot import onnxruntime",
        "tests/test_acceptance.py": "cannot import onnxruntime",
        "tests/test_architectures.py": "cannot import onnx",
        "tests/test_bad_inputs.py": "cannot import onnxruntime",
        "tests/test_bvlc.py": "cannot import onnxruntime",
        "tests/test_cli.py": "cannot import onnxruntime",
        "tests/test_fuzz.py": "cannot import onnxruntime",
        "tests/test_graph_models.py": "cannot import onnxruntime",
        "tests/test_import.py": "cannot import onnxruntime",
        "tests/test_onnx_cases.py": "cannot import onnx",
        "tests/test_quantize.py": "cannot import onnxruntime",
    },
}


@pytest.mark.main_env
@pytest.mark.board_env
def test_ci_skips_are_the_expected_ones(session_skips):
    if not environments.STRICT:
        pytest.skip("checks the skips of a CI run (CI=true); elsewhere skips are allowed")
    skips, collected = session_skips
    expected = {k: v for k, v in EXPECTED[environments.HERE].items() if k in collected}
    assert sorted(skips) == sorted(expected), f"skipped in {environments.HERE}: {skips}"
    for node, fragment in expected.items():
        assert fragment in skips[node], (node, skips[node])
