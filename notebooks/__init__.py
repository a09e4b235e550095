"""KCNN's Jupyter notebooks, shipped as package data so that they reach the board.

On the PYNQ-Z2, run ``pynq get-notebooks kcnn -p .`` in the Jupyter home folder
(``/home/xilinx/jupyter_notebooks``): pynq finds this package through the
``pynq.notebooks`` entry point and copies its folder (notebooks and data; this file and
``__pycache__`` excepted) into ``./kcnn``; ``--force`` replaces an earlier copy. Anywhere
else, copy the ``.ipynb`` and ``.json`` files of this folder by hand, or open them in place.

The notebooks need only what the board image has: numpy, matplotlib, tqdm and ``kcnn``.
``alexnet_streaming.json`` is made off the board by ``python -m
kcnn.notebooks.streaming_report`` (the ``quantize`` extra), since the board can neither
build nor quantize the AlexNet-sized model.
"""
