"""pynq classes of the KCNN overlay. NOT RUN ON HARDWARE (see README "On the board").

Importing this module registers :class:`KcnnIP` for the HLS IP's VLNV (pynq's ``RegisterIP``
metaclass does it at class definition), so ``KCNNOverlay`` binds it before the overlay is
built.
"""

from __future__ import annotations

from pynq import DefaultIP, Overlay

from kcnn.errors import KcnnError
from kcnn.host.hwh import find_ip, read_hwh
from kcnn.overlay import DMA_VLNV_PREFIX, IP_VLNV, find_overlay, read_overlay_config


class KcnnIP(DefaultIP):
    """The ``kcnn_top`` HLS IP (AXI-Lite control, ``bundle=CTRL``)."""

    bindto = [IP_VLNV]

    def __init__(self, description):
        super().__init__(description=description)
        self.description = description


class KCNNOverlay(Overlay):
    """The KCNN bitstream on the PYNQ-Z2.

    ``path``: a ``.bit`` file or a folder with ``kcnn.bit``; ``None`` uses ``$KCNN_OVERLAY``,
    then the package folder. The ``.hwh`` is read with :func:`kcnn.host.hwh.read_hwh` and
    cross-checked with pynq's ``ip_dict``.
    """

    def __init__(self, path=None, download: bool = True, **kwargs):
        self.files = find_overlay(path)
        self.config = read_overlay_config(self.files.json)
        self.hwh_ips = read_hwh(self.files.hwh)
        super().__init__(str(self.files.bit), download=download, **kwargs)
        self.dma_name, _ = find_ip(self.hwh_ips, DMA_VLNV_PREFIX, self.files.hwh)
        self.kcnn_name, _ = find_ip(self.hwh_ips, IP_VLNV, self.files.hwh)
        self.cross_check()

    def cross_check(self) -> None:
        """Our reader and pynq's must agree on addresses and register offsets."""
        for name in (self.dma_name, self.kcnn_name):
            ours, theirs = self.hwh_ips[name], self.ip_dict.get(name)
            if theirs is None:
                raise KcnnError(f"pynq's ip_dict has no {name!r}", file=self.files.hwh)
            for key in ("phys_addr", "addr_range"):
                if ours[key] != theirs[key]:
                    raise KcnnError(
                        f"{name}.{key}: .hwh reader 0x{ours[key]:X}, pynq 0x{theirs[key]:X}",
                        file=self.files.hwh,
                    )
            for reg, entry in ours["registers"].items():
                other = (theirs.get("registers") or {}).get(reg, {}).get("address_offset")
                if other != entry["address_offset"]:
                    raise KcnnError(
                        f"{name} register {reg}: .hwh reader offset {entry['address_offset']},"
                        f" pynq {other}",
                        file=self.files.hwh,
                    )

    def engine(self, model, timeout_s: float = 5.0):
        """A :class:`kcnn.host.board.BoardEngine` for ``model`` on this overlay."""
        from kcnn.host.board import BoardEngine

        return BoardEngine(
            model,
            getattr(self, self.dma_name),
            getattr(self, self.kcnn_name),
            self.config,
            self.hwh_ips,
            reload=self.download,
            timeout_s=timeout_s,
            source=self.files.hwh,
        )
