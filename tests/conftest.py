import os

import pytest


@pytest.fixture(scope="session")
def slow_full() -> bool:
    """Whether the slow tier runs at full size (``KCNN_SLOW=full``) or reduced."""
    return os.environ.get("KCNN_SLOW", "reduced") == "full"
