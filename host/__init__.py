"""``kcnn.host``: the host side of the board back-end.

:mod:`kcnn.host.hwh` reads Vivado hardware hand-off files (standard library only);
:mod:`kcnn.host.board` lays a model's steps out in DMA buffers, checks their answers and
recovers from faults (``BoardEngine``), and drives one DMA channel through its registers
(``Channel``). Neither imports pynq at module level; :mod:`kcnn.overlay` holds the pynq
classes, among them ``KcnnIP``, which makes the transfers.
"""
