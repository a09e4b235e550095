"""The one error type the project raises for bad input."""

from __future__ import annotations


class KcnnError(Exception):
    """Bad input or an unsupported model, located as precisely as known.

    The message names the file, the layer (or ONNX node) and the field, so a user
    can find the problem without a traceback.
    """

    def __init__(self, message: str, *, file=None, layer=None, field=None):
        self.message = message
        self.file = None if file is None else str(file)
        self.layer = layer
        self.field = field
        where = []
        if self.file is not None:
            where.append(f"file {self.file}")
        if layer is not None:
            where.append(f"layer {layer!r}")
        if field is not None:
            where.append(f"field {field!r}")
        prefix = (", ".join(where) + ": ") if where else ""
        super().__init__(prefix + message)


class MissingExtraError(KcnnError):
    """A command needs an optional dependency group that is not installed."""


def require(module: str, extra: str, purpose: str):
    """Import ``module`` or fail saying which extra of ``kcnn`` brings it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{purpose} needs the Python package {module.split('.')[0]!r}, which is missing; "
            f"install it with: pip install 'kcnn[{extra}]'"
        ) from exc
