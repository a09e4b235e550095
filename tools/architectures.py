"""Export reduced-width torchvision architectures to ONNX for the architecture census.

Needs the ``train`` extra (torch, torchvision, onnxscript, onnx, onnxruntime). Run from the
repository root::

    python tools/architectures.py            # write tests/data/architectures/
    python tools/architectures.py --check    # exit 1 unless a rerun gives the same bytes
    python tools/architectures.py --full --out /tmp/tvfull   # full size, for bench/

Six architectures (ResNet-18, MobileNet v2, SqueezeNet 1.1, GoogLeNet, VGG-11,
EfficientNet-B0) are built from torchvision's own classes and blocks with narrower channels
and fewer blocks, so that each file stays small while the graph keeps what the full model has
(residual adds, concats, depthwise convs, ReLU6, SiLU, squeeze-excitation, global pooling).
Each is exported three ways: the TorchScript exporter at opsets 13 and 17 and the dynamo
exporter at opset 18. Weights are random but seeded, BatchNorm statistics included, and the
models are in eval mode: the files test what the quantizer accepts, not accuracy.
``manifest.json`` beside them records how each file was made and its SHA-256, which
``tests/test_architectures.py`` checks; its ``zoo`` section is tools/zoo_graphs.py's and is
kept as it is.

``--full`` exports the same architectures at full size instead, from torchvision's own
constructors (default widths, 1000 classes, 3x224x224 images), seeded and exported the same
way, into ``--out`` with a manifest of their own. They are tens to hundreds of MB, so
``--out`` must lie outside the repository; ``bench/architectures.py --folder`` censuses them.
An export that fails there is recorded in that manifest's ``failed`` list and the run goes on.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from importlib.metadata import version
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from generated_files import arguments, write_or_check
from torch import nn

#: Kept alive: dropping the library object would remove the operators it defines.
_STAND_INS = []


def _import_torchvision() -> None:
    """Import torchvision where its compiled operators do not load.

    PyPI's torchvision wheels link against the CUDA build of torch; beside a CPU-only torch
    their ``_C`` library fails to load, and then the import itself fails registering a fake
    ``torchvision::nms`` (pytorch/vision#9085). The models here use no torchvision operator,
    so stand-in definitions of the two operators it registers unguarded are enough.
    """
    try:
        import torchvision  # noqa: F401
    except RuntimeError as exc:
        if "torchvision::" not in str(exc):
            raise
        for module in [m for m in sys.modules if m.split(".")[0] == "torchvision"]:
            del sys.modules[module]
        stand_in = torch.library.Library("torchvision", "DEF")
        for op in ("nms", "qnms"):
            stand_in.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _STAND_INS.append(stand_in)
        import torchvision  # noqa: F401


_import_torchvision()

from torchvision import models  # noqa: E402
from torchvision.models.efficientnet import EfficientNet, MBConvConfig  # noqa: E402
from torchvision.models.googlenet import (  # noqa: E402
    BasicConv2d,
    GoogLeNet,
    Inception,
    InceptionAux,
)
from torchvision.models.mobilenetv2 import MobileNetV2  # noqa: E402
from torchvision.models.resnet import BasicBlock, ResNet  # noqa: E402
from torchvision.models.squeezenet import Fire, SqueezeNet  # noqa: E402
from torchvision.models.vgg import VGG, cfgs, make_layers  # noqa: E402
from torchvision.ops.misc import Conv2dNormActivation  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "architectures"
SEED = 0
# A fixed thread count keeps the order of floating-point reductions identical between runs.
THREADS = 2
#: Batch 1 and 32x32 images, except where the real model's layers need more (VGG, below).
INPUT_SHAPE = (1, 3, 32, 32)
CLASSES = 10
VGG_INPUT_SHAPE = (1, 3, 64, 64)
#: (exporter, opset): what users get from torch.onnx.export with dynamo=False at the two
#: opsets most often asked for, and from the default dynamo exporter.
EXPORTS = (("torchscript", 13), ("torchscript", 17), ("dynamo", 18))
MAX_FILE_BYTES = 300 * 1024
MAX_TOTAL_BYTES = 5 * 1024 * 1024


# --------------------------------------------------------------------------- architectures


class NarrowResNet(ResNet):
    """torchvision's ResNet with stage widths of our choosing.

    ``ResNet.__init__`` fixes the widths at 64..512; this sets the same attributes with
    narrower ones and keeps torchvision's ``_make_layer`` and ``forward``.
    """

    def __init__(self, widths: list[int], layers: list[int], num_classes: int) -> None:
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.inplanes = widths[0]
        self.dilation = 1
        self.groups = 1
        self.base_width = 64  # BasicBlock accepts only the default
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(BasicBlock, widths[0], layers[0])
        self.layer2 = self._make_layer(BasicBlock, widths[1], layers[1], stride=2)
        self.layer3 = self._make_layer(BasicBlock, widths[2], layers[2], stride=2)
        self.layer4 = self._make_layer(BasicBlock, widths[3], layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[3] * BasicBlock.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


def resnet18() -> nn.Module:
    return NarrowResNet([4, 8, 16, 32], [2, 2, 2, 2], CLASSES)


def mobilenet_v2() -> nn.Module:
    # Every stage of the real table, with repeats cut to at most 2 so the stride-1 repeats,
    # the blocks with a residual add, remain.
    setting = [
        [1, 16, 1, 1],
        [6, 24, 2, 2],
        [6, 32, 2, 2],
        [6, 64, 2, 2],
        [6, 96, 2, 1],
        [6, 160, 2, 2],
        [6, 320, 1, 1],
    ]
    model = MobileNetV2(num_classes=CLASSES, width_mult=0.15, inverted_residual_setting=setting)
    # The constructor fixes the last 1x1 conv at 1280 channels whatever the width: narrow it.
    last = 64
    model.features[-1] = Conv2dNormActivation(
        model.features[-1][0].in_channels, last, kernel_size=1, activation_layer=nn.ReLU6
    )
    model.classifier[1] = nn.Linear(last, CLASSES)
    return model


def squeezenet1_1() -> nn.Module:
    model = SqueezeNet(version="1_1", num_classes=CLASSES)
    # SqueezeNet 1.1's layer list at a quarter of its widths (the constructor has no width).
    model.features = nn.Sequential(
        nn.Conv2d(3, 16, kernel_size=3, stride=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
        Fire(16, 4, 16, 16),
        Fire(32, 4, 16, 16),
        nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
        Fire(32, 8, 32, 32),
        Fire(64, 8, 32, 32),
        nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
        Fire(64, 12, 48, 48),
        Fire(96, 12, 48, 48),
        Fire(96, 16, 64, 64),
        Fire(128, 16, 64, 64),
    )
    model.classifier[1] = nn.Conv2d(128, CLASSES, kernel_size=1)
    return model


def _narrow(block, divisor: int):
    """``block`` with every channel count but the image's divided by ``divisor`` (rounded
    up)."""
    image = INPUT_SHAPE[1]

    def make(*channels, **kwargs):
        return block(*(c if c == image else math.ceil(c / divisor) for c in channels), **kwargs)

    return make


def googlenet() -> nn.Module:
    # GoogLeNet takes its conv and inception blocks as arguments: passing narrowed ones
    # scales every layer. The branch widths it concatenates are multiples of 16, so the
    # narrowed concats still add up to the next block's input.
    divisor = 16
    model = GoogLeNet(
        num_classes=CLASSES,
        aux_logits=False,
        init_weights=False,
        blocks=[_narrow(BasicConv2d, divisor), _narrow(Inception, divisor), InceptionAux],
    )
    model.fc = nn.Linear(1024 // divisor, CLASSES)
    return model


def vgg11() -> nn.Module:
    widths = [c if c == "M" else c // 16 for c in cfgs["A"]]
    model = VGG(make_layers(widths, batch_norm=False), num_classes=CLASSES, init_weights=True)
    # At 224x224 the real model's adaptive pool to 7x7 meets a 7x7 map and exports as an
    # AveragePool of 1x1 windows. At VGG_INPUT_SHAPE's 64x64 the five pools leave 2x2:
    # pooling to 2x2 keeps that op (at 32x32 it would become a global pool).
    side, hidden = VGG_INPUT_SHAPE[-1] // 32, 64
    model.avgpool = nn.AdaptiveAvgPool2d((side, side))
    model.classifier = nn.Sequential(
        nn.Linear(widths[-2] * side * side, hidden),
        nn.ReLU(True),
        nn.Dropout(),
        nn.Linear(hidden, hidden),
        nn.ReLU(True),
        nn.Dropout(),
        nn.Linear(hidden, CLASSES),
    )
    return model


def efficientnet_b0() -> nn.Module:
    # EfficientNet-B0's table (torchvision's _efficientnet_conf) at an eighth of the width,
    # half the depth: MBConv with depthwise convs, SiLU and squeeze-excitation in every
    # block, stages 4 to 6 still two blocks deep (with the residual add).
    conf = partial(MBConvConfig, width_mult=0.125, depth_mult=0.5)
    setting = [
        conf(1, 3, 1, 32, 16, 1),
        conf(6, 3, 2, 16, 24, 2),
        conf(6, 5, 2, 24, 40, 2),
        conf(6, 3, 2, 40, 80, 3),
        conf(6, 5, 1, 80, 112, 3),
        conf(6, 5, 2, 112, 192, 4),
        conf(6, 3, 1, 192, 320, 1),
    ]
    # B0's head is 4x the last stage's width (160 here): 64 keeps the file small.
    return EfficientNet(setting, dropout=0.2, num_classes=CLASSES, last_channel=64)


@dataclass(frozen=True)
class Architecture:
    build: Callable[[], nn.Module]
    made: str  # how, for the manifest
    input_shape: tuple[int, ...] = INPUT_SHAPE


ARCHITECTURES = {
    "resnet18": Architecture(
        resnet18,
        "torchvision ResNet's _make_layer and forward with BasicBlock, blocks [2, 2, 2, 2] as "
        "ResNet-18, stage widths 4, 8, 16, 32 instead of 64, 128, 256, 512",
    ),
    "mobilenet_v2": Architecture(
        mobilenet_v2,
        "torchvision MobileNetV2(width_mult=0.15), the 7 stages with at most 2 blocks each, "
        "last 1x1 conv 64 channels instead of 1280",
    ),
    "squeezenet1_1": Architecture(
        squeezenet1_1,
        "torchvision SqueezeNet(version='1_1') with its layer list rebuilt from torchvision's "
        "Fire at a quarter of the widths",
    ),
    "googlenet": Architecture(
        googlenet,
        "torchvision GoogLeNet(aux_logits=False, init_weights=False) with BasicConv2d and "
        "Inception blocks at 1/16 of the channels (rounded up), fc 64 -> 10",
    ),
    "vgg11": Architecture(
        vgg11,
        "torchvision VGG(make_layers(cfgs['A'])) at 1/16 of the widths on 64x64 images, "
        "adaptive pool to the 2x2 map, classifier 128 -> 64 -> 64 -> 10",
        VGG_INPUT_SHAPE,
    ),
    "efficientnet_b0": Architecture(
        efficientnet_b0,
        "torchvision EfficientNet with B0's MBConvConfig table at width_mult=0.125, "
        "depth_mult=0.5, last_channel 64",
    ),
}


#: ``--full``: torchvision's constructors as users call them without pretrained weights.
#: GoogLeNet as the reduced one: no auxiliary heads (eval mode never runs them) and torch's
#: default initialisation.
FULL = {
    "resnet18": partial(models.resnet18, weights=None),
    "mobilenet_v2": partial(models.mobilenet_v2, weights=None),
    "squeezenet1_1": partial(models.squeezenet1_1, weights=None),
    "googlenet": partial(models.googlenet, weights=None, aux_logits=False, init_weights=False),
    "vgg11": partial(models.vgg11, weights=None),
    "efficientnet_b0": partial(models.efficientnet_b0, weights=None),
}
FULL_INPUT_SHAPE = (1, 3, 224, 224)


def full_made(name: str) -> str:
    """How the full-size model ``name`` is made, for its manifest."""
    make = FULL[name]
    keywords = ", ".join(f"{key}={value!r}" for key, value in make.keywords.items())
    return f"torchvision.models.{make.func.__name__}({keywords}), seeded as the reduced files"


def seed_statistics(model: nn.Module, gen: torch.Generator) -> None:
    """Give every BatchNorm statistics and an affine part far from the identity, and every
    bias small random values.

    A folding error cannot then hide behind mean 0, variance 1, gain 1 and shift 0; and no
    two constants are equal, as the zero biases of torchvision's initialisers are: the
    TorchScript exporter shares equal constants through Identity nodes, which a trained
    model would not have.
    """
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            channels = module.num_features
            with torch.no_grad():
                module.running_mean.copy_(torch.randn(channels, generator=gen) * 0.2)
                module.running_var.copy_(torch.rand(channels, generator=gen) + 0.5)
                module.weight.copy_(torch.rand(channels, generator=gen) + 0.5)
                module.bias.copy_(torch.randn(channels, generator=gen) * 0.1)
        elif isinstance(module, (nn.Conv2d, nn.Linear)) and module.bias is not None:
            with torch.no_grad():
                module.bias.copy_(torch.randn(module.bias.shape, generator=gen) * 0.05)


def build(name: str, full: bool = False) -> nn.Module:
    """The seeded model ``name`` (at full size if ``full``) in eval mode, the same whether
    built alone or not."""
    index = list(ARCHITECTURES).index(name)
    torch.manual_seed(SEED + index)
    model = (FULL[name] if full else ARCHITECTURES[name].build)()
    seed_statistics(model, torch.Generator().manual_seed(SEED + index))
    return model.eval()


# --------------------------------------------------------------------------- export


def _strip(proto: onnx.ModelProto) -> None:
    """Drop what names the machine: the dynamo exporter records each node's source file and
    stack trace in metadata properties and doc strings."""
    proto.ClearField("metadata_props")
    proto.doc_string = ""
    proto.graph.doc_string = ""
    for node in proto.graph.node:
        node.ClearField("metadata_props")
        node.doc_string = ""
    for info in (*proto.graph.input, *proto.graph.output, *proto.graph.value_info):
        info.ClearField("metadata_props")
        info.doc_string = ""
    for init in proto.graph.initializer:
        init.ClearField("metadata_props")
        init.doc_string = ""


def export(model: nn.Module, shape: tuple[int, ...], exporter: str, opset: int) -> bytes:
    """``model`` as ONNX bytes for inputs of ``shape`` (batch included), exported with
    ``exporter``."""
    example = (torch.zeros(shape),)
    names = dict(input_names=["input"], output_names=["output"])
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated; it is still what many users run.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        if exporter == "torchscript":
            buffer = io.BytesIO()
            torch.onnx.export(
                model,
                example,
                buffer,
                dynamo=False,
                opset_version=opset,
                do_constant_folding=True,
                **names,
            )
            proto = onnx.load_from_string(buffer.getvalue())
        else:
            # It prints its progress whatever ``verbose`` says.
            with contextlib.redirect_stdout(io.StringIO()):
                program = torch.onnx.export(
                    model, example, dynamo=True, opset_version=opset, verbose=False, **names
                )
            proto = program.model_proto
    _strip(proto)
    onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString()


def check_runtime(model: nn.Module, shape: tuple[int, ...], blob: bytes) -> float:
    """Largest |onnxruntime - torch| on a few seeded inputs; fails past float tolerance."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    session = ort.InferenceSession(blob, options, providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(SEED)
    gap = 0.0
    for _ in range(3):
        x = torch.randn(shape, generator=gen)
        got = session.run(None, {"input": x.numpy()})[0]
        with torch.no_grad():
            want = model(x).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
        gap = max(gap, float(np.abs(got - want).max()))
    return gap


def file_name(name: str, exporter: str, opset: int) -> str:
    return f"{name}_{exporter}{opset}.onnx"


def main(argv: list[str] | None = None) -> int:
    args = arguments(
        __doc__.splitlines()[0],
        OUT,
        argv,
        flags={"full": "full-size models (224x224 inputs) into --out, outside the repository"},
    )
    if args.full and args.out.resolve().is_relative_to(ROOT):
        raise SystemExit("--full: the files are tens to hundreds of MB; --out outside the repo")

    torch.set_num_threads(THREADS)
    torch.set_num_interop_threads(1)
    torch.use_deterministic_algorithms(True)

    entries, failed, changed, total = [], [], [], 0
    for name, arch in ARCHITECTURES.items():
        model = build(name, args.full)
        shape = FULL_INPUT_SHAPE if args.full else arch.input_shape
        params = sum(p.numel() for p in model.parameters())
        ops: set[str] = set()
        # Written one architecture at a time: the full-size VGG-11 exports are 0.5 GB each.
        outputs = {}
        for exporter, opset in EXPORTS:
            path = file_name(name, exporter, opset)
            try:
                blob = export(model, shape, exporter, opset)
                gap = check_runtime(model, shape, blob)
            except Exception as exc:
                if not args.full:
                    raise
                # At full size a library's failure is itself a census row.
                failed.append({"file": path, "error": f"{type(exc).__name__}: {exc}"})
                print(f"{path}: fails: {failed[-1]['error']}")
                continue
            if not args.full and len(blob) >= MAX_FILE_BYTES:
                raise RuntimeError(f"{name} {exporter} {opset}: {len(blob)} bytes, over budget")
            total += len(blob)
            outputs[path] = blob
            ops |= {node.op_type for node in onnx.load_from_string(blob).graph.node}
            entries.append(
                {
                    "file": path,
                    "architecture": name,
                    "exporter": exporter,
                    "opset": opset,
                    "input_shape": list(shape),
                    "bytes": len(blob),
                    "sha256": hashlib.sha256(blob).hexdigest(),
                    "made": full_made(name) if args.full else arch.made,
                }
            )
            print(f"{path}: {len(blob)} bytes, max |ort - torch| {gap:.1e}", flush=True)
        changed += write_or_check(args.out, outputs, args.check)
        print(f"  {name}: {params} parameters; ops {', '.join(sorted(ops))}", flush=True)
    if not args.full and total >= MAX_TOTAL_BYTES:
        raise RuntimeError(f"{total} bytes in all, over the {MAX_TOTAL_BYTES} budget")
    manifest = {
        "made_by": "python tools/architectures.py" + (" --full" if args.full else ""),
        "seed": SEED,
        "versions": {
            package: version(package)
            for package in ("torch", "torchvision", "onnxscript", "onnx", "onnxruntime")
        },
        "files": entries,
    }
    if failed:
        manifest["failed"] = failed
    # The reduced zoo graphs' section is tools/zoo_graphs.py's: kept as it is.
    previous = args.out / "manifest.json"
    if previous.exists() and "zoo" in (kept := json.loads(previous.read_text())):
        manifest["zoo"] = kept["zoo"]
    manifest_blob = (json.dumps(manifest, indent=1) + "\n").encode()
    changed += write_or_check(args.out, {"manifest.json": manifest_blob}, args.check)
    print(f"{len(entries)} files, {total} bytes in all; changed: {', '.join(changed) or 'none'}")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
