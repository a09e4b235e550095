"""The C-sim builds the kernel tests run on, and the check that the C-sim can be built."""

import environments

from kcnn.config import BuildParams
from kcnn.errors import KcnnError
from kcnn.sim import csim

#: A small build: fewer partitions, one stream, tiny memories, so jobs split and limits bite.
SMALL = BuildParams(
    P=8, IN_DEPTH=16384, W_DEPTH=256, OUT_DEPTH=4096, STREAMS=1, LRN_LANES=2, CH_MAX=256
)
#: The default build and the small one (their libraries are shared through the cache).
PARAMS = {"default": BuildParams(), "small": SMALL}


def require_csim() -> None:
    """Skip the calling test module where no C-sim can be built (a failure in CI)."""
    try:
        csim.compiler()
        csim.ap_types_dir()
    except KcnnError as exc:  # depends on the machine; a failure in CI (tests/conftest.py)
        environments.skip_module(str(exc))
