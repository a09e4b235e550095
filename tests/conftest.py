"""Test environments and skips (see tests/environments.py), and fixtures shared by modules."""

from __future__ import annotations

import environments
import pytest

#: Every skip of the session: node id -> reason (read by tests/test_skips.py).
SKIPS = pytest.StashKey[dict]()
#: Node ids of every collected module, skipped ones included.
MODULES = pytest.StashKey[set]()


def pytest_configure(config):
    if environments.HERE not in environments.MARKERS:
        raise pytest.UsageError(
            f"KCNN_TEST_ENV={environments.HERE!r}: use one of {sorted(environments.MARKERS)}"
        )
    config.stash[SKIPS] = {}
    config.stash[MODULES] = set()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    # Before -m selects: a test without an environment marker runs in the default one.
    for item in items:
        if not any(item.get_closest_marker(m) for m in environments.MARKERS.values()):
            item.add_marker(environments.MARKERS[environments.DEFAULT])
    # The check of the session's skips needs every other test to have run.
    items.sort(key=lambda item: "session_skips" in item.fixturenames)


def _skipped(config, report, runs_here: bool) -> None:
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    config.stash[SKIPS][report.nodeid] = reason
    if environments.STRICT and runs_here:
        report.outcome = "failed"
        report.longrepr = (
            f"skipped in CI, where the {environments.HERE} environment must run this: {reason}"
        )


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    if isinstance(collector, pytest.Module):
        collector.config.stash[MODULES].add(report.nodeid)
        if report.skipped:
            _skipped(collector.config, report, str(collector.path) not in environments.ELSEWHERE)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail"):
        here = environments.HERE in environments.runs_in(item.iter_markers())
        _skipped(item.config, report, here)


@pytest.fixture
def session_skips(request) -> tuple[dict, set]:
    """The skips so far (node id -> reason) and the node ids the session collected."""
    config = request.config
    collected = config.stash[MODULES] | {item.nodeid for item in request.session.items}
    return dict(config.stash[SKIPS]), collected


# ---- the AlexNet-sized model, built and quantized once per session (about a minute) ------


@pytest.fixture(scope="session")
def bvlc_onnx(tmp_path_factory):
    """The BVLC AlexNet graph (244 MB) with the streaming report's seed."""
    from kcnn.models.bvlc import build_bvlc_alexnet
    from kcnn.notebooks.streaming_report import SEED

    path = build_bvlc_alexnet(tmp_path_factory.mktemp("bvlc") / "bvlc_alexnet.onnx", seed=SEED)
    yield path
    path.unlink()  # pytest keeps the folders of the last sessions


@pytest.fixture(scope="session")
def bvlc_model(bvlc_onnx):
    """The graph quantized as ``python -m kcnn.notebooks.streaming_report`` does."""
    from kcnn.notebooks.streaming_report import IMAGES, quantize_bvlc

    return quantize_bvlc(bvlc_onnx, IMAGES, log=None)


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
