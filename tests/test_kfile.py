"""The `.kcnn` file: round trip, determinism, and validation of every field."""

import io
import zipfile

import numpy as np
import pytest
from mutate import rewrite

from kcnn.config import FORMAT_VERSION
from kcnn.errors import KcnnError
from kcnn.kfile import decode_sparse, encode_sparse, load, pack_dense, unpack_dense


@pytest.fixture(scope="module")
def small_kcnn(tmp_path_factory):
    pytest.importorskip("onnxruntime")
    import onnx_cases

    from kcnn.quantizer import quantize

    model, x = onnx_cases.SUPPORTED["everything_op13"]()
    calib = np.random.default_rng(0).standard_normal((32, *x.shape[1:])).astype(np.float32)
    path = tmp_path_factory.mktemp("kfile") / "small.kcnn"
    quantize(model, calib, log=None, density=0.5, weight_clusters=8).save(path)
    return path


def fabric_names(path):
    return [layer.name for layer in load(path).layers if layer.is_fabric]


def test_round_trip_is_byte_identical(small_kcnn, tmp_path):
    model = load(small_kcnn)
    again = model.save(tmp_path / "again.kcnn")
    assert again.read_bytes() == small_kcnn.read_bytes()
    reloaded = load(again)
    for a, b in zip(model.layers, reloaded.layers, strict=True):
        if a.is_fabric:
            assert np.array_equal(a.codes, b.codes) and np.array_equal(a.bias, b.bias)
            assert a.weight_form == b.weight_form


def test_loader_needs_numpy_only_and_no_pickle(small_kcnn):
    with zipfile.ZipFile(small_kcnn) as archive:
        for name in archive.namelist():
            if name.endswith(".npy"):
                array = np.lib.format.read_array(io.BytesIO(archive.read(name)), allow_pickle=False)
                assert array.dtype != object


@pytest.mark.parametrize(
    "codes",
    [
        np.zeros((3, 40), np.uint8),
        np.eye(5, 70, 3, dtype=np.uint8) * 7,
        np.random.default_rng(1).integers(0, 16, (4, 2, 3, 3)).astype(np.uint8),
    ],
)
def test_sparse_and_dense_forms_round_trip(codes):
    sparse = codes * (np.random.default_rng(2).random(codes.shape) < 0.1)
    for array in (codes, sparse.astype(np.uint8)):
        entries, per_row = encode_sparse(array)
        assert np.array_equal(decode_sparse(entries, per_row, array.shape), array)
        assert np.array_equal(
            unpack_dense(pack_dense(array), array.size).reshape(array.shape), array
        )


def test_sparse_gap_uses_filler_entries():
    row = np.zeros((1, 40), np.uint8)
    row[0, 35] = 9
    entries, per_row = encode_sparse(row)
    # 35 zeros before the code: two fillers of 16 positions, then gap 3.
    assert list(entries) == [0xF0, 0xF0, 0x39] and list(per_row) == [3]


def test_dense_nibble_order():
    assert list(pack_dense(np.array([1, 2, 3], np.uint8))) == [0x21, 0x03]


def expect_error(path, *fragments):
    with pytest.raises(KcnnError) as info:
        load(path)
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)
    return info.value


def test_missing_and_not_a_zip(tmp_path):
    expect_error(tmp_path / "none.kcnn", "no such")
    (tmp_path / "junk.kcnn").write_bytes(b"not a zip at all")
    expect_error(tmp_path / "junk.kcnn", "junk.kcnn", "not a zip")


def test_truncated(small_kcnn, tmp_path):
    data = small_kcnn.read_bytes()
    for cut in (len(data) // 3, len(data) - 30):
        path = tmp_path / f"cut{cut}.kcnn"
        path.write_bytes(data[:cut])
        expect_error(path, str(path))


def test_corrupt_array_fails_checksum(small_kcnn, tmp_path):
    name = fabric_names(small_kcnn)[0]
    path = rewrite(
        small_kcnn,
        tmp_path / "bad.kcnn",
        arrays={f"{name}.bias": np.zeros(4, np.int64)},
        keep_checksums=True,
    )
    error = expect_error(path, "SHA-256", name)
    assert error.layer == name and error.field == f"{name}.bias"


def test_wrong_format_version(small_kcnn, tmp_path):
    path = rewrite(
        small_kcnn,
        tmp_path / "v.kcnn",
        manifest=lambda m: m.update(format_version=FORMAT_VERSION + 1),
    )
    expect_error(path, "format_version", "not supported")


def test_wrong_contract(small_kcnn, tmp_path):
    path = rewrite(
        small_kcnn, tmp_path / "c.kcnn", manifest=lambda m: m["contract"].update(ACC_BITS=24)
    )
    expect_error(path, "contract")


def test_missing_manifest(small_kcnn, tmp_path):
    expect_error(_without_manifest(small_kcnn, tmp_path), "manifest.json")


def _without_manifest(src, tmp_path):
    dst = tmp_path / "nomanifest.kcnn"
    with zipfile.ZipFile(src) as a, zipfile.ZipFile(dst, "w") as b:
        for name in a.namelist():
            if name != "manifest.json":
                b.writestr(name, a.read(name))
    return dst


def test_out_of_range_weight_code(small_kcnn, tmp_path):
    model = load(small_kcnn)
    layer = next(
        lay for lay in model.layers if lay.is_fabric and lay.weight_form == "dense" and lay.K < 16
    )
    codes = layer.codes.copy()
    codes.reshape(-1)[0] = layer.K  # one past the codebook
    path = rewrite(
        small_kcnn, tmp_path / "code.kcnn", arrays={f"{layer.name}.wcodes": pack_dense(codes)}
    )
    error = expect_error(path, "out of range", layer.name)
    assert error.field == "codes"


def test_weight_codebook_out_of_range(small_kcnn, tmp_path):
    name = fabric_names(small_kcnn)[0]
    wq = load(small_kcnn).layer(name).wq.astype(np.int16).copy()
    wq[-1] = 200
    path = rewrite(small_kcnn, tmp_path / "wq.kcnn", arrays={f"{name}.wq": wq})
    expect_error(path, name, "wq")


def test_thresholds_must_start_at_one(small_kcnn, tmp_path):
    name = fabric_names(small_kcnn)[0]
    t = load(small_kcnn).layer(name).thresholds.copy()
    t[0] = 0
    path = rewrite(small_kcnn, tmp_path / "t.kcnn", arrays={f"{name}.thresholds": t})
    expect_error(path, name, "T[1] >= 1")


def test_failed_accumulator_proof(small_kcnn, tmp_path):
    name = fabric_names(small_kcnn)[0]
    bias = load(small_kcnn).layer(name).bias.copy()
    bias[1] = 2**31 - 2
    path = rewrite(small_kcnn, tmp_path / "acc.kcnn", arrays={f"{name}.bias": bias})
    error = expect_error(path, "accumulator proof", name)
    assert error.field == "accumulator"


def test_wrong_dtype(small_kcnn, tmp_path):
    name = fabric_names(small_kcnn)[0]
    bias = load(small_kcnn).layer(name).bias.astype(np.float64)
    path = rewrite(small_kcnn, tmp_path / "dtype.kcnn", arrays={f"{name}.bias": bias})
    expect_error(path, "int64", name)


def test_bad_sparse_entries(tmp_path, small_kcnn):
    model = load(small_kcnn)
    layer = model.layers[[lay.is_fabric for lay in model.layers].index(True)]
    layer.weight_form = "sparse"
    path = model.save(tmp_path / "sparse.kcnn")
    assert np.array_equal(load(path).layer(layer.name).codes, layer.codes)
    rows = np.zeros(layer.codes.shape[0], np.uint32)
    rows[0] = 1
    bad = rewrite(path, tmp_path / "badsparse.kcnn", arrays={f"{layer.name}.wrows": rows})
    expect_error(bad, layer.name, "wsparse")


def test_atomic_write_gives_the_usual_file_mode(tmp_path):
    import os

    from kcnn.files import atomic_write

    umask = os.umask(0o022)
    try:
        path = atomic_write(tmp_path / "out.bin", lambda handle: handle.write(b"x"))
    finally:
        os.umask(umask)
    assert path.read_bytes() == b"x"
    assert path.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


DAG_CASES = [
    "residual_projection_op13",
    "add_of_activations_op13",
    "fire_concat_op13",
    "linear_bottleneck_op13",
    "preactivation_bn_op13",
]


@pytest.fixture(scope="module", params=DAG_CASES)
def dag_kcnn(request, tmp_path_factory):
    pytest.importorskip("onnxruntime")
    import onnx_cases

    from kcnn.quantizer import quantize

    model, x = onnx_cases.SUPPORTED[request.param]()
    calib = np.random.default_rng(1).standard_normal((32, *x.shape[1:])).astype(np.float32)
    path = tmp_path_factory.mktemp("dag") / f"{request.param}.kcnn"
    quantize(model, calib, log=None, density=0.7).save(path)
    return path


def test_graph_round_trip_is_byte_identical(dag_kcnn, tmp_path):
    """Format 2 stores the graph: inputs, activations, interval codes, Add tables."""
    model = load(dag_kcnn)
    assert any(len(layer.inputs) > 1 for layer in model.layers)
    again = model.save(tmp_path / "again.kcnn")
    assert again.read_bytes() == dag_kcnn.read_bytes()


def _first(path, test):
    return next(layer for layer in load(path).layers if test(layer))


def test_unknown_input_tensor_is_refused(dag_kcnn, tmp_path):
    name = _first(dag_kcnn, lambda layer: len(layer.inputs) > 1).name

    def edit(meta):
        entry = next(e for e in meta["layers"] if e["name"] == name)
        entry["inputs"][-1] = "nowhere"

    expect_error(rewrite(dag_kcnn, tmp_path / "i.kcnn", manifest=edit), "inputs", "nowhere")


def _quantized_case(case: str, path):
    pytest.importorskip("onnxruntime")
    import onnx_cases

    from kcnn.quantizer import quantize

    model, x = onnx_cases.SUPPORTED[case]()
    calib = np.random.default_rng(2).standard_normal((32, *x.shape[1:])).astype(np.float32)
    return quantize(model, calib, log=None).save(path)


@pytest.mark.parametrize(
    "case,member,value,message",
    [
        ("residual_projection_op13", "residual_table", 3, "entry 0 = 0"),
        ("linear_bottleneck_op13", "out_table", 40, "codes below"),
    ],
)
def test_add_and_interval_tables_are_checked(case, member, value, message, tmp_path):
    """A residual table's entry 0 must be 0 (code 0 is exactly zero); interval codes of a
    signed map must be codes of its codebook."""
    path = _quantized_case(case, tmp_path / "q.kcnn")
    layer = _first(path, lambda layer: getattr(layer, member) is not None)
    table = getattr(layer, member).copy()
    table[0] = value
    bad = rewrite(path, tmp_path / "bad.kcnn", arrays={f"{layer.name}.{member}": table})
    expect_error(bad, member, message)


def test_version_1_files_still_load():
    """The bundled tables were written in format 1 (a chain with ReLU flags)."""
    import json
    import zipfile

    from kcnn import models

    path = models.table_path("lenet5")
    with zipfile.ZipFile(path) as archive:
        assert json.loads(archive.read("manifest.json"))["format_version"] == 1
    model = load(path)
    previous = "input"
    for layer in model.layers:
        assert layer.inputs == [previous]
        previous = layer.name
    assert [layer.activation for layer in model.layers if layer.is_fabric][:-1] == [
        {"op": "relu"}
    ] * (len(model.fabric_layers()) - 1)


def test_a_file_written_under_another_protocol_loads(small_kcnn, tmp_path):
    """The contract's protocol number is the writer's; only the arithmetic must agree."""
    path = rewrite(
        small_kcnn, tmp_path / "p.kcnn", manifest=lambda m: m["contract"].update(protocol=2)
    )
    assert [layer.name for layer in load(path).layers] == [
        layer.name for layer in load(small_kcnn).layers
    ]
