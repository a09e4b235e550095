import os

import pytest


@pytest.fixture(scope="session")
def slow_full() -> bool:
    """Whether the slow tier runs at full size (``KCNN_SLOW=full``) or reduced."""
    return os.environ.get("KCNN_SLOW", "reduced") == "full"


@pytest.fixture(scope="session")
def csim():
    """The C-sim back-end module, or a skip saying what the machine lacks to build it."""
    from kcnn.errors import KcnnError

    module = pytest.importorskip("kcnn.sim.csim")
    try:
        module.compiler()
        module.ap_types_dir()
    except KcnnError as exc:  # pragma: no cover - depends on the machine
        pytest.skip(str(exc))
    return module
