"""Size limits checked before anything is allocated (numpy-free constants).

A file declares sizes (a layer's weight shape, a member's length, an ONNX constant's
dimensions) long before the data behind them is read; each is checked against these limits
first, so a small file cannot make the loader or the importer allocate gigabytes. They
admit every real CNN we know of with room to spare: VGG-19 has 143.7 M weights, 102.8 M
of them in fc6, and its largest map (conv1 at 224 x 224) holds 3.2 M values per image.
"""

#: Weights of one layer (VGG-19's fc6: 102.8 M).
MAX_LAYER_WEIGHTS = 1 << 28
#: Weights of a whole model, and the elements of all an ONNX graph's constants together.
MAX_MODEL_WEIGHTS = 1 << 29
#: Elements of one tensor in an ONNX graph (an initializer or a folded ConstantOfShape).
MAX_TENSOR_VALUES = MAX_LAYER_WEIGHTS
#: Values of one feature map of one image.
MAX_MAP_VALUES = 1 << 26
#: Layers of a model.
MAX_LAYERS = 4096
#: Bytes of a `.kcnn`'s manifest.json (the bundled AlexNet-style model's is 20 KB).
MAX_MANIFEST_BYTES = 16 << 20
#: Nesting depth of manifest.json (the format needs 4).
MAX_JSON_DEPTH = 32
