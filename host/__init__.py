"""``kcnn.host``: the host side of the board back-end.

:mod:`kcnn.host.hwh` reads Vivado hardware hand-off files (standard library only);
:mod:`kcnn.host.board` runs a model's steps through the overlay's two AXI DMAs
(``BoardEngine``). Neither imports pynq at module level; :mod:`kcnn.overlay` holds the pynq
classes.
"""
