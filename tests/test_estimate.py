"""The performance model: tied to the planner's loop log, its constants named, its JSON
complete, its baselines computed as DESIGN section 6 defines them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from kcnn.config import BuildParams
from kcnn.estimate import (
    BUDGET,
    DDR_BYTES_PER_S,
    DEVICE,
    LANE_LUT,
    LOOP_TABLE,
    REGISTER_ACCESS_S,
    STEP_ACCESSES,
    STREAM_B_ACCESSES,
    estimate,
    resources,
    step_cycles,
)
from kcnn.kfile import load
from kcnn.models import table_path
from kcnn.plan import plan_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def alexnet():
    return load(table_path("alexnet_mnist"))


def test_step_cycles_are_the_loop_log_through_the_loop_table(alexnet):
    plan = plan_model(alexnet)
    for step in plan.steps:
        cycles, by_loop = step_cycles(step)
        log = step.loop_log()
        assert cycles == sum(LOOP_TABLE[n].ii * t + LOOP_TABLE[n].depth for n, t in log)
        assert set(by_loop) == {n for n, _ in log}


def test_json_carries_what_the_issue_asks(alexnet):
    est = json.loads(json.dumps(estimate(alexnet)))
    assert est["kind"].startswith("estimate")
    assert est["fps"] == pytest.approx(1 / (est["fabric_s"] + est["host_s"]))
    assert set(est["resources"]["utilization"]) == {"lut", "ff", "bram36", "dsp48"}
    assert est["resources"]["modules"]["partition array"]["lut"] > 0
    for base in ("dense_8bit", "limit"):
        b = est["baselines"][base]
        assert b["fps"] == pytest.approx(1 / (b["fabric_s"] + b["host_s"]))
        assert b["host_s"] == est["host_s"]  # the baselines pay the same host work
    assert est["params"] == BuildParams().as_dict()
    assert "default" in est["params_from"]


def test_host_accesses_grow_with_steps_not_jobs(alexnet):
    plan = plan_model(alexnet)
    est = estimate(alexnet)
    jobs = sum(len(s.jobs) for s in plan.steps)
    with_b = sum(1 for s in plan.steps if s.jobs_b.size)
    assert est["host"]["accesses"] == STEP_ACCESSES * len(plan.steps) + STREAM_B_ACCESSES * with_b
    assert jobs > len(plan.steps)  # several jobs per step, still one set of accesses
    assert est["host"]["parts"]["register_accesses"] == pytest.approx(
        est["host"]["accesses"] * REGISTER_ACCESS_S
    )


def test_dense_baseline_by_hand_on_one_fc_layer():
    """fc 400 -> 120 on 100 MHz: weights 48,000 B + 480 B biases over 1.6 GB/s = 30.3 us;
    48,000 MACs over 176 DSP48 x 2 x 100 MHz = 1.36 us: the DDR bound holds."""
    model = load(table_path("lenet5"))
    est = estimate(model)
    plan = plan_model(model)
    fc1 = next(s for s in plan.steps if s.layer.name == "fc1")
    assert fc1.layer.codes.size == 48_000
    dense_fc1 = (48_000 + 4 * 120) / DDR_BYTES_PER_S
    assert dense_fc1 == pytest.approx(30.3e-6, rel=1e-3)
    macs = int(DEVICE["dsp48"] * BUDGET["dsp48"]) * 2 * 100e6
    assert 48_000 / macs < dense_fc1
    # the whole dense fabric is at least this layer
    assert est["baselines"]["dense_8bit"]["fabric_s"] > dense_fc1


def test_the_limit_uses_the_lanes_the_lut_budget_holds(alexnet):
    est = estimate(alexnet)
    lim = est["baselines"]["limit"]
    assert lim["lanes_in_lut_budget"] == int(DEVICE["lut"] * BUDGET["lut"] // LANE_LUT)
    assert lim["fabric_s"] == pytest.approx(
        max(
            lim["stored_bytes"] / DDR_BYTES_PER_S,
            lim["effective_pairs"] / (lim["lanes_in_lut_budget"] * 100e6),
        )
    )
    assert est["fps"] <= lim["fps"]


def test_default_build_within_the_planning_budget():
    assert resources(BuildParams())["within_budget"], resources(BuildParams())["utilization"]


def test_over_budget_builds_are_reported():
    # more partitions than the LUT budget allows are reported, not hidden
    assert not resources(BuildParams(P=32))["within_budget"]
    assert resources(BuildParams(P=8))["within_budget"]
    lut = {p: resources(BuildParams(P=p))["utilization"]["lut"] for p in (8, 16, 32)}
    assert lut[8] < lut[16] < lut[32]


def test_clock_and_parameters_come_from_the_caller(alexnet):
    fast = estimate(alexnet, BuildParams(CLOCK_MHZ=142.857), source="a test")
    base = estimate(alexnet)
    assert fast["params"]["CLOCK_MHZ"] == 142.857 and fast["params_from"] == "a test"
    assert fast["fabric_s"] < base["fabric_s"]


def test_hls_readme_prints_the_loop_table():
    text = (ROOT / "hls" / "README.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \| (\d+) \| (\d+) \|", text, re.M)
    table = {name: (int(ii), int(depth)) for name, ii, depth in rows}
    assert table == {k: (v.ii, v.depth) for k, v in LOOP_TABLE.items()}


def test_hls_readme_prints_the_resource_model():
    text = (ROOT / "hls" / "README.md").read_text()
    block = text.split("<!-- resources -->")[1].split("<!-- /resources -->")[0]
    rows = re.findall(r"^\| ([^|*]+?) \| (\d+) \| (\d+) \| ([\d.]+) \| (\d+) \|$", block, re.M)
    printed = {
        name: (int(lut), int(ff), float(bram), int(dsp)) for name, lut, ff, bram, dsp in rows
    }
    modules = resources(BuildParams())["modules"]
    assert printed == {
        name: (m["lut"], m["ff"], float(m["bram36"]), m["dsp48"]) for name, m in modules.items()
    }


def test_build_params_are_validated():
    from kcnn.errors import KcnnError

    for bad in ({"P": 12}, {"W_DEPTH": 3000}, {"STREAMS": 3}, {"CLOCK_MHZ": 1000}, {"Q": 1}):
        with pytest.raises(KcnnError):
            BuildParams.from_mapping(bad)
    assert BuildParams.from_mapping({"P": "8"}).P == 8
    assert np.isclose(BuildParams().lanes, 256)


def test_graph_host_work_counts_shortcuts_and_layers_between_steps():
    """A residual graph: the host packs every shortcut section and places the maps the
    steps do not chain; the estimate prices both (and runs the ADD/RESIDUAL steps)."""
    from kcnn import models
    from kcnn.estimate import HOST_MAP_S_PER_CODE

    model = load(models.table_path("resnet_mnist"))
    plan = plan_model(model)
    shortcut_codes = sum(int(np.prod(s.out_shape)) for s in plan.steps if s.shortcut_words)
    assert shortcut_codes > 0
    host = estimate(model)["host"]
    assert host["parts"]["host_maps"] >= shortcut_codes * HOST_MAP_S_PER_CODE


def test_group_blocks_price_every_code_the_host_cuts_and_joins():
    """A depthwise conv cut into two blocks of whole groups after a conv: the host unpacks
    the conv's answer, packs each block's channels, unpacks each block's answer (the last
    one too, which no step reads) and joins them: every code of the map three times."""
    from layer_cases import chain_model

    from kcnn.estimate import HOST_MAP_S_PER_CODE

    rng = np.random.default_rng(3)
    conv, depthwise = {"c_in": 3, "c_out": 40, "hw": (8, 8)}, {"c_out": 40, "groups": 40}
    model, _ = chain_model(rng, conv, {**depthwise, "last": True})
    counts = {"effective_pairs": 0.0, "act_density": 1.0}
    model.meta["calibration"] = {"layers": {layer.name: counts for layer in model.layers}}
    small = BuildParams(P=8, IN_DEPTH=16384)
    blocks = [s.group_block for s in plan_model(model, small).steps if s.layer.name == "L1"]
    assert len(blocks) == 2
    host = estimate(model, small)["host"]
    assert host["parts"]["host_maps"] == pytest.approx(3 * 40 * 8 * 8 * HOST_MAP_S_PER_CODE)


def _estimate_row(est: dict) -> tuple:
    """A model's row of the estimate tables, as the READMEs print it."""
    dense = est["baselines"]["dense_8bit"]["fps"]
    return (
        f"{est['fps']:.1f}",
        f"{est['fabric_s'] * 1e3:.2f} + {est['host_s'] * 1e3:.2f} ms",
        f"{dense:.1f}",
        f"{est['fps'] / dense:.2f}",
        f"{est['baselines']['limit']['fps']:.1f}",
        f"{round(100 * est['share_of_limit'])} %",
    )


@pytest.mark.parametrize("readme", ["README.md", "hls/README.md"])
def test_readmes_print_the_estimates_the_model_makes(readme):
    """The estimate tables of both READMEs: the BVLC AlexNet row is the committed streaming
    report's estimate (its graph is too large to rebuild here), the bundled models' rows
    are estimated now; README.md's resource line is the resource model's."""
    text = (ROOT / readme).read_text()
    rows = {
        cells[0]: tuple(cells[1:])
        for cells in (
            [c.strip() for c in line.strip("|").split("|")]
            for line in text.splitlines()
            if line.startswith("| ") and line.count("|") == 8
        )
    }
    streaming = json.loads((ROOT / "notebooks" / "alexnet_streaming.json").read_text())
    want = {"BVLC AlexNet": _estimate_row(streaming["estimate"])}
    for name in ("alexnet_mnist", "lenet5"):
        want[name] = _estimate_row(estimate(load(table_path(name))))
    for name, row in want.items():
        (printed,) = [
            cells for label, cells in rows.items() if label.startswith(name) or f"`{name}`" in label
        ]
        assert printed == row, (readme, name)
    if readme == "README.md":
        use = resources(BuildParams())["utilization"]
        line = ", ".join(
            f"{label} {round(100 * use[key])} %"
            for label, key in (
                ("LUT", "lut"),
                ("FF", "ff"),
                ("BRAM36", "bram36"),
                ("DSP48", "dsp48"),
            )
        )
        assert f"Resources of the default build (the same for every model): {line}" in " ".join(
            text.split()
        )
