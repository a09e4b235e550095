"""``kcnn.host``: the host side of the board back-end.

:mod:`kcnn.host.hwh` reads Vivado hardware hand-off files (standard library only);
:mod:`kcnn.host.board` streams jobs through the overlay's AXI DMA (``BoardEngine``).
Neither imports pynq; :mod:`kcnn.overlay` holds the pynq classes.
"""
