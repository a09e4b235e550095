"""The one JSON-serialisable configuration of a quantizer run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from kcnn.config import ARITHMETIC_CONTRACT
from kcnn.errors import KcnnError

KMEANS_METHODS = ("dp", "sklearn")
#: "activation": |w| times the RMS of the input it multiplies; "magnitude": |w| alone.
PRUNE_SCORES = ("activation", "magnitude")


def parse_per_layer(spec, option: str, cast, default) -> dict:
    """``VALUE`` or ``VALUE,name=VALUE,...`` (or a dict / number) -> ``{"*": v, name: v}``.

    The key ``"*"`` holds the value for every layer not named.
    """
    if isinstance(spec, dict):
        items = dict(spec)
    elif isinstance(spec, (int, float)) and not isinstance(spec, bool):
        items = {"*": spec}
    elif isinstance(spec, str):
        items = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            name, sep, value = part.rpartition("=")
            items[name if sep else "*"] = value
    else:
        raise KcnnError(f"cannot read {spec!r}", field=option)
    out = {"*": default}
    for name, value in items.items():
        try:
            out[name] = cast(value)
        except (TypeError, ValueError):
            raise KcnnError(
                f"{value!r} is not a valid value for layer {name!r}", field=option
            ) from None
    return out


def parse_pixels(spec) -> dict:
    """``MEAN[,MEAN...]/STD[,STD...]`` (or a dict with ``mean`` and ``std``) -> the dict."""
    if isinstance(spec, dict) and set(spec) == {"mean", "std"}:
        mean, std = spec["mean"], spec["std"]
    elif isinstance(spec, str) and spec.count("/") == 1:
        mean, std = (part.split(",") for part in spec.split("/"))
    else:
        raise KcnnError(f"{spec!r} is not MEAN[,MEAN...]/STD[,STD...]", field="pixels")
    try:
        values = [[float(v) for v in np.atleast_1d(part)] for part in (mean, std)]
    except (TypeError, ValueError):
        raise KcnnError(f"{spec!r} holds a value that is not a number", field="pixels") from None
    return {"mean": values[0], "std": values[1]}


@dataclass
class QuantizeConfig:
    """Settings of one quantizer run (the CLI options map one to one).

    ``weight_clusters`` / ``act_clusters``: K and J per layer (key = layer name; for J the
    layer whose *input* map it sets, ``"*"`` = every other layer). ``density``: ``"auto"``
    or kept-weight fractions per layer. ``auto_tolerance``: the relative logit error the
    sensitivity search lets one layer's pruning cause on the calibration inputs;
    ``auto_joint_tolerance`` bounds all layers pruned together.
    """

    weight_clusters: dict = field(default_factory=lambda: {"*": ARITHMETIC_CONTRACT["K_MAX"]})
    act_clusters: dict = field(default_factory=lambda: {"*": ARITHMETIC_CONTRACT["J_MAX"]})
    density: str | dict = "auto"
    kmeans: str = "dp"
    prune_scores: str = "activation"
    seed: int = 0
    auto_tolerance: float = 0.02
    auto_joint_tolerance: float = 0.04
    batch: int = 64
    #: Pixel input: ``{"mean": [...], "std": [...]}`` (one value, or one per channel) or
    #: None for float32 input (docs/quantizer.md, "Pixel input").
    pixels: dict | None = None

    @classmethod
    def from_options(cls, **options) -> QuantizeConfig:
        unknown = set(options) - set(cls.__dataclass_fields__)
        if unknown:
            raise KcnnError(
                f"unknown quantizer option(s) {sorted(unknown)}; known: "
                f"{sorted(cls.__dataclass_fields__)}",
                field="config",
            )
        config = cls()
        k_max, j_max = ARITHMETIC_CONTRACT["K_MAX"], ARITHMETIC_CONTRACT["J_MAX"]
        if "weight_clusters" in options:
            config.weight_clusters = parse_per_layer(
                options["weight_clusters"], "weight_clusters", int, k_max
            )
        if "act_clusters" in options:
            config.act_clusters = parse_per_layer(
                options["act_clusters"], "act_clusters", int, j_max
            )
        if "density" in options:
            spec = options["density"]
            config.density = (
                "auto" if spec == "auto" else parse_per_layer(spec, "density", float, 1.0)
            )
        if options.get("pixels") is not None:
            config.pixels = parse_pixels(options["pixels"])
        for key in (
            "kmeans",
            "prune_scores",
            "seed",
            "auto_tolerance",
            "auto_joint_tolerance",
            "batch",
        ):
            if key in options:
                setattr(config, key, options[key])
        config.validate()
        return config

    def validate(self):
        for option, top in (
            ("weight_clusters", ARITHMETIC_CONTRACT["K_MAX"]),
            ("act_clusters", ARITHMETIC_CONTRACT["J_MAX"]),
        ):
            for name, value in getattr(self, option).items():
                if not 2 <= value <= top:
                    raise KcnnError(f"{value} for layer {name!r} is outside 2..{top}", field=option)
        if self.density != "auto":
            for name, value in self.density.items():
                if not 0.0 < value <= 1.0:
                    raise KcnnError(
                        f"density {value} for layer {name!r} is outside (0, 1]", field="density"
                    )
        if self.prune_scores not in PRUNE_SCORES:
            raise KcnnError(
                f"unknown pruning score {self.prune_scores!r}; choose from "
                f"{', '.join(PRUNE_SCORES)}",
                field="prune_scores",
            )
        if self.kmeans not in KMEANS_METHODS:
            raise KcnnError(
                f"unknown k-means method {self.kmeans!r}; choose from {', '.join(KMEANS_METHODS)}",
                field="kmeans",
            )
        if (
            not isinstance(self.seed, int)
            or isinstance(self.seed, bool)
            or not (0 <= self.seed < 2**32)
        ):
            raise KcnnError(f"seed {self.seed!r} must be an integer in [0, 2^32)", field="seed")
        for key in ("auto_tolerance", "auto_joint_tolerance"):
            value = getattr(self, key)
            if not isinstance(value, (int, float)) or not 0 < value < float("inf"):
                raise KcnnError(f"{value!r} must be a positive number", field=key)
        if not isinstance(self.batch, int) or self.batch < 1:
            raise KcnnError("batch must be a positive integer", field="batch")

    def for_layer(self, option: str, name: str):
        table = getattr(self, option)
        return table.get(name, table["*"])

    def check_names(self, names) -> None:
        """Refuse per-layer settings for layers the model does not have."""
        known = set(names)
        for option in ("weight_clusters", "act_clusters", "density"):
            table = getattr(self, option)
            if isinstance(table, dict):
                unknown = sorted(set(table) - known - {"*"})
                if unknown:
                    raise KcnnError(
                        f"no layer(s) named {unknown}; layers: {sorted(known)}", field=option
                    )

    def to_json(self) -> dict:
        return asdict(self)
