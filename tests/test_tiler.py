"""The job tiler: every output exactly once, windows inside their tiles, limits named."""

import numpy as np
import pytest

from kcnn.errors import KcnnError
from kcnn.kfile import QLayer
from kcnn.tiler import plan_jobs

pytestmark = [pytest.mark.main_env, pytest.mark.board_env]


def conv_layer(
    c_in=8,
    c_out=24,
    hw=(20, 17),
    kernel=(3, 3),
    strides=(2, 1),
    pads=(1, 0, 2, 1),
    dilations=(1, 2),
    groups=2,
):
    h, w = hw
    top, left, bottom, right = pads
    oh = (h + top + bottom - dilations[0] * (kernel[0] - 1) - 1) // strides[0] + 1
    ow = (w + left + right - dilations[1] * (kernel[1] - 1) - 1) // strides[1] + 1
    codes = np.ones((c_out, c_in // groups, *kernel), np.uint8)
    return QLayer(
        "c",
        "conv",
        (c_in, h, w),
        (c_out, oh, ow),
        attrs={
            "kernel": list(kernel),
            "strides": list(strides),
            "pads": list(pads),
            "dilations": list(dilations),
            "groups": groups,
        },
        codes=codes,
        wq=np.array([1]),
        bias=np.zeros(c_out, np.int64),
    )


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"P": 4, "IN_DEPTH": 400, "W_DEPTH": 300, "OUT_DEPTH": 100},
        {"P": 5, "IN_DEPTH": 250, "W_DEPTH": 200, "OUT_DEPTH": 80},
    ],
)
def test_jobs_cover_each_output_once_and_fit(params):
    layer = conv_layer()
    c_out, oh, ow = layer.out_shape
    seen = np.zeros((c_out, oh), int)
    limits = {"IN_DEPTH": 65536, "W_DEPTH": 262144, "OUT_DEPTH": 8192, **params}
    a = layer.attrs
    span = a["dilations"][0] * (a["kernel"][0] - 1) + 1
    for job in plan_jobs(layer, params):
        seen[job.ch0 : job.ch0 + job.channels, job.row0 : job.row0 + job.rows] += 1
        group = job.ch0 // (c_out // a["groups"])
        assert (job.ch0 + job.channels - 1) // (c_out // a["groups"]) == group
        assert job.in_ch0 == group * layer.codes.shape[1]
        # the tile holds every padded input row the block's windows read
        assert job.in_row0 == job.row0 * a["strides"][0]
        assert job.in_row0 + job.in_rows == (job.row0 + job.rows - 1) * a["strides"][0] + span
        assert job.in_codes <= limits["IN_DEPTH"]
        assert job.weight_codes <= limits["W_DEPTH"]
        assert job.outputs <= limits["OUT_DEPTH"]
    assert np.all(seen == 1)


def test_fc_is_one_row():
    layer = QLayer(
        "f",
        "fc",
        (300,),
        (40,),
        codes=np.ones((40, 300), np.uint8),
        wq=np.array([1]),
        bias=np.zeros(40, np.int64),
    )
    jobs = plan_jobs(layer, {"P": 8, "W_DEPTH": 300 * 16})
    assert [j.channels for j in jobs] == [16, 16, 8]
    assert all(j.in_codes == 300 and j.outputs == j.channels for j in jobs)


@pytest.mark.parametrize(
    "params,field",
    [
        ({"IN_DEPTH": 50}, "IN_DEPTH"),
        ({"W_DEPTH": 10}, "W_DEPTH"),
        ({"OUT_DEPTH": 10}, "OUT_DEPTH"),
    ],
)
def test_a_window_that_cannot_fit_names_layer_and_limit(params, field):
    with pytest.raises(KcnnError) as info:
        plan_jobs(conv_layer(), params)
    assert info.value.layer == "c" and info.value.field == field
    assert field in str(info.value)
