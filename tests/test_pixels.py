"""Pixel input (docs/quantizer.md, "Pixel input"): a model that takes uint8 images and
declares its normalisation; the first conv receives the pixels (format U8, a quarter of
the bytes of float32) and encodes them on the fabric with per-channel cut points that
reproduce the host encoder on all 256 values."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from layer_cases import assert_runs_as_the_simulator, floats_for, one_layer_model

from kcnn.codes import encode_input
from kcnn.config import BuildParams
from kcnn.errors import KcnnError
from kcnn.inputs import check_batch
from kcnn.kfile import load, save
from kcnn.model import Pixels
from kcnn.plan import plan_model
from kcnn.protocol import pixel_encoder_words


def boundaries_for(rng, n):
    return np.sort(rng.normal(0, 1, n))


@pytest.mark.parametrize(
    "mean, std",
    [((0.0,), (255.0,)), ((123.675, 116.28, 103.53), (58.395, 57.12, 57.375)), ((117,), (1,))],
    ids=["mnist", "torchvision", "caffe"],
)
def test_the_cut_points_give_the_host_encoders_code_for_every_pixel(mean, std):
    rng = np.random.default_rng(len(mean))
    pixels = Pixels.make(mean, std, (len(mean), 8, 8))
    p = np.arange(256)
    values = pixels.to_float(np.broadcast_to(p, (1, len(mean), 256)))[0]
    # boundaries inside the values' range, some of them exactly on a pixel's value
    b = np.sort(np.concatenate([rng.uniform(values.min(), values.max(), 10), values[0, 100:104]]))
    cuts, zero = pixels.encoder(b)
    assert cuts.shape == (len(mean), 14)
    for c in range(len(mean)):
        want = encode_input(values[c], b)
        got = np.where(p == zero[c], 0, 1 + (p[:, None] >= cuts[c][None, :]).sum(axis=1))
        assert np.array_equal(got, want)
    # the pixel of value 0 exists exactly where the mean is a whole pixel value
    assert [z != 256 for z in zero] == [float(m).is_integer() for m in mean]


def test_the_encoder_section_packs_cut_points_zero_pixels_and_window():
    cuts = np.array([[1, 2, 256], [7, 8, 9]])
    words = pixel_encoder_words(cuts, [5, 256], (1, 30, 2, 26))
    assert words.size == 18
    assert int(words[0]) == 1 | 2 << 16 | 256 << 32 | 0xFFFF << 48
    assert int(words[4]) == 7 | 8 << 16 | 9 << 32 | 0xFFFF << 48
    assert all(int(w) == (1 << 64) - 1 for w in words[[1, 2, 3, 5, 8, 15]])
    assert int(words[16]) == 5 | 256 << 16 | 0xFFFF << 32 | 0xFFFF << 48
    assert int(words[17]) == 1 | 30 << 16 | 2 << 32 | 26 << 48


@pytest.mark.parametrize(
    "mean, std, shape, message",
    [
        (0, 1, (5, 8, 8), "1 to 4 channels"),
        (0, 1, (64,), "needs images"),
        ((1, 2), 1, (3, 8, 8), "not 1 or 3"),
        (0, 0, (1, 8, 8), "above 0"),
        (0, -2, (1, 8, 8), "above 0"),
        (float("nan"), 1, (1, 8, 8), "finite"),
    ],
)
def test_bad_pixel_declarations_are_refused(mean, std, shape, message):
    with pytest.raises(KcnnError, match=message):
        Pixels.make(mean, std, shape)


def test_a_pixel_model_takes_uint8_only_and_a_float_model_no_uint8():
    shape = (1, 4, 4)
    x8 = np.zeros((2, *shape), np.uint8)
    assert check_batch(x8, shape, pixels=True) is x8
    with pytest.raises(KcnnError, match="not uint8"):
        check_batch(x8.astype(np.float32), shape, pixels=True)
    with pytest.raises(KcnnError, match="not a float type"):
        check_batch(x8, shape)


def pixel_model(rng, case: dict, mean=None):
    """A one-layer conv model with pixel input whose normalisation spans its input
    codebook's decoded values, so every code occurs; ``mean`` given: a whole pixel value
    per channel (a pixel of value 0 exists)."""
    model, layer = one_layer_model(rng, **case)
    c = layer.in_shape[0]
    codes = np.zeros((1, *layer.in_shape), np.uint8)
    floats_for(model, codes)  # sets the boundaries
    book = model.maps["input"]
    values = np.concatenate([[0.0], book.aq * book.scale])
    lo, hi = values.min(), values.max()
    std = (hi - lo) * 1.3 / 255
    if mean is None:
        mean = rng.uniform(-lo / std + 5, -lo / std + 15, c)
    model.pixels = Pixels.make(mean, std, layer.in_shape)
    return model, layer


#: First convs whose pixels the kernel encodes: space-to-depth 4 and 2 with padding the
#: host adds (the data window), stride 1 with the kernel's own padding, 1 to 4 channels.
CASES = {
    "s2d4_pads": {
        "c_in": 3,
        "c_out": 6,
        "hw": (23, 21),
        "kernel": (5, 5),
        "strides": (4, 4),
        "pads": (2, 1, 2, 1),
    },
    "s2d2_one_channel": {"c_in": 1, "c_out": 5, "hw": (9, 8), "strides": (2, 2)},
    "stride1_four_channels": {"c_in": 4, "c_out": 5, "hw": (7, 18)},
    "s2d4_signed_wide_rows": {
        "c_in": 2,
        "c_out": 4,
        "hw": (8, 37),
        "kernel": (4, 4),
        "strides": (4, 4),
        "pads": (0, 0, 0, 0),
        "signed_in": True,
    },
}


@pytest.fixture(scope="module")
def csim():
    from csim_builds import require_csim

    require_csim()
    from kcnn.sim import csim

    return csim


@pytest.mark.parametrize("whole_mean", [False, True], ids=["mean_between", "mean_whole"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_pixel_input_on_the_csim_equals_the_simulator(name, whole_mean, csim):
    rng = np.random.default_rng(sum(map(ord, name)))
    c_in = CASES[name]["c_in"]
    mean = [100 + 17 * c for c in range(c_in)] if whole_mean else None
    model, layer = pixel_model(rng, CASES[name], mean)
    x = rng.integers(0, 256, (2, *layer.in_shape), dtype=np.uint8)
    # some pixels exactly at the mean (value 0, code 0 through the zero pixel)
    at_mean = np.asarray(model.pixels.mean, np.float32).round().astype(np.uint8)
    x[:, :, ::3, ::2] = at_mean[:, None, None]
    engine = csim.CsimEngine(model, BuildParams())
    first = engine.plan.steps[0]
    assert first.in_format == "U8" and first.map_words_b == 0
    assert_runs_as_the_simulator(engine, x)
    for step, log in zip(engine.plan.steps, engine.loop_logs, strict=True):
        assert log == step.loop_log(), f"step {step.index} ({step.op})"


def test_a_pixel_map_larger_than_the_tile_runs_as_bands_with_their_windows(csim):
    """Bands of a space-to-depth first conv: each band's window names its own rows of the
    image, the first band's top padding and the last band's bottom padding."""
    rng = np.random.default_rng(7)
    case = {
        "c_in": 3,
        "c_out": 4,
        "hw": (150, 60),
        "kernel": (5, 5),
        "strides": (4, 4),
        "pads": (2, 2, 2, 2),
    }
    model, layer = pixel_model(rng, case)
    params = BuildParams(
        P=32, IN_DEPTH=16384, W_DEPTH=1024, OUT_DEPTH=4096, STREAMS=2, LRN_LANES=4, CH_MAX=256
    )
    steps = plan_model(model, params).steps
    assert len(steps) >= 2 and all(s.band is not None for s in steps)
    windows = [
        tuple(int(w) >> (16 * k) & 0xFFFF for k in range(4))
        for w in (s.constants[-1] for s in steps)
    ]
    assert windows[0][0] == 2 and windows[-1][1] < 4 * (steps[-1].band[1] - steps[-1].band[0])
    x = rng.integers(0, 256, (1, *layer.in_shape), dtype=np.uint8)
    engine = csim.CsimEngine(model, params)
    assert_runs_as_the_simulator(engine, x)


def test_a_quantized_pixel_model_runs_as_its_float_twin(tmp_path):
    """lenet5 quantized on uint8 digits with --pixels 0/255 holds the same tables as on the
    float digits x / 255 (its training preprocessing), and gives the same logits."""
    from kcnn.models import model_path
    from kcnn.quantizer import quantize
    from kcnn.sim.engine import simulator

    data = np.load(model_path("lenet5").with_name("mnist.npz"))
    calib = data["x"][data["train_idx"][:64]][:, None]
    test = data["x"][data["test_idx"][:50]][:, None]
    pixel = quantize(model_path("lenet5"), calib, log=None, pixels="0/255")
    twin = quantize(model_path("lenet5"), calib.astype(np.float32) / 255, log=None)
    assert np.array_equal(pixel.maps["input"].boundaries, twin.maps["input"].boundaries)
    got = simulator(pixel).run(test)[1]
    assert np.array_equal(got, simulator(twin).run(test.astype(np.float32) / 255)[1])
    saved = load(save(pixel, tmp_path / "p.kcnn"))
    assert saved.pixels == pixel.pixels
    assert np.array_equal(simulator(saved).run(test)[1], got)
    estimate_ratio = _input_bytes(pixel) / _input_bytes(twin)
    assert estimate_ratio == pytest.approx(0.25, abs=0.01)


def _input_bytes(model):
    from kcnn.estimate import estimate

    return estimate(model)["host"]["input_bytes"]


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"dtype": "int8"}, "not float32 or uint8"),
        ({"mean": [1, 2]}, "not 1 or 1"),
        ({"std": [0]}, "above 0"),
        ({"mean": ["a"]}, "must be numbers"),
    ],
)
def test_a_bad_pixel_entry_in_a_file_is_named(tmp_path, entry, message):
    model, _ = pixel_model(np.random.default_rng(1), CASES["s2d2_one_channel"])
    path = save(model, tmp_path / "m.kcnn")
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    manifest_name = next(n for n in members if n.endswith(".json"))
    manifest = json.loads(members[manifest_name])
    manifest["input"].update(entry)
    members[manifest_name] = json.dumps(manifest).encode()
    bad = tmp_path / "bad.kcnn"
    with zipfile.ZipFile(bad, "w") as z:
        for n, data in members.items():
            z.writestr(n, data)
    with pytest.raises(KcnnError, match=message) as info:
        load(bad)
    assert str(bad) in str(info.value) and "input" in str(info.value)
