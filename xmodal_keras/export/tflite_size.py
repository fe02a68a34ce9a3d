"""Where the bytes of a `.tflite` file go: weights, quantization scales, structure.

- `weights`: constant buffers (each stored buffer counted once, however many subgraphs
  use it), also split by the dtype of the tensors that read them;
- `scales`: quantization vectors (scales, zero points, min/max), each stored vector once;
- `structure`: the rest (operators, tensors and their names, signatures, subgraphs).

The three sum to the file size. Read with the LiteRT schema, no interpreter.
"""

import collections
import os

from xmodal_keras.export.tflite_ops import TENSOR_TYPE_NAMES, read_model

# QuantizationParameters fields that are vectors: min, max, scale, zero_point (vtable slots).
_QUANTIZATION_VECTOR_SLOTS = (4, 6, 8, 10)
_BUFFER_DATA_SLOT = 4


def _vector_span(table, slot: int, item_size: int) -> tuple[int, int] | None:
    """(start, bytes) of a vector field of a flatbuffer table, None when absent."""
    field = table.Offset(slot)
    if not field:
        return None
    return table.Vector(field), table.VectorLen(field) * item_size


def size_breakdown(model: bytes | str | os.PathLike) -> dict:
    """Bytes of a `.tflite` model by kind: `file`, `weights`, `scales`, `structure`
    (weights + scales + structure == file) and `weights_by_dtype`.

    Example:

    >>> import tensorflow as tf
    >>> f = tf.function(lambda x: x @ tf.ones([64, 64]),
    ...                 input_signature=[tf.TensorSpec([1, 64], tf.float32)])
    >>> sizes = size_breakdown(
    ...     tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()]).convert())
    >>> sizes["weights_by_dtype"]
    {'float32': 16384}
    >>> sizes["weights"] + sizes["scales"] + sizes["structure"] == sizes["file"]
    True
    """
    if not isinstance(model, bytes | bytearray):
        with open(model, "rb") as file:
            model = file.read()
    root = read_model(model)
    buffer_dtypes: dict[int, set[str]] = collections.defaultdict(set)
    scale_spans: set[tuple[int, int]] = set()
    for s in range(root.SubgraphsLength()):
        subgraph = root.Subgraphs(s)
        for t in range(subgraph.TensorsLength()):
            tensor = subgraph.Tensors(t)
            buffer_dtypes[tensor.Buffer()].add(TENSOR_TYPE_NAMES.get(tensor.Type(), "unknown"))
            quantization = tensor.Quantization()
            if quantization is None:
                continue
            for slot in _QUANTIZATION_VECTOR_SLOTS:
                item_size = 8 if slot == 10 else 4  # zero points are int64
                span = _vector_span(quantization._tab, slot, item_size)
                if span and span[1]:
                    scale_spans.add(span)
    weights_by_dtype: collections.Counter[str] = collections.Counter()
    weight_spans: set[tuple[int, int]] = set()
    for b in range(root.BuffersLength()):
        buffer = root.Buffers(b)
        if buffer.Offset() > 1:  # stored after the flatbuffer (large models)
            span = (int(buffer.Offset()), int(buffer.Size()))
        else:
            span = _vector_span(buffer._tab, _BUFFER_DATA_SLOT, 1)
        if not span or not span[1] or span in weight_spans:
            continue
        weight_spans.add(span)
        weights_by_dtype["/".join(sorted(buffer_dtypes.get(b, {"unused"})))] += span[1]
    weights = sum(size for _, size in weight_spans)
    scales = sum(size for _, size in scale_spans)
    return {
        "file": len(model),
        "weights": weights,
        "scales": scales,
        "structure": len(model) - weights - scales,
        "weights_by_dtype": dict(weights_by_dtype.most_common()),
    }


def format_size_breakdown(sizes: dict, baseline: dict | None = None) -> str:
    """One line: `1.234 MB = weights 1.100 (int8 1.090, float32 0.010) + scales 0.050 +
    structure 0.084`, and `(27.1% of float32)` with a `baseline` breakdown.

    Example:

    >>> format_size_breakdown({"file": 2_000_000, "weights": 1_500_000, "scales": 0,
    ...     "structure": 500_000, "weights_by_dtype": {"int8": 1_500_000}})
    '2.000 MB = weights 1.500 (int8 1.500) + scales 0.000 + structure 0.500'
    """
    mb = 1e6
    # Dtypes under 1 kB (int32 shapes, a bool) would print as 0.000.
    dtypes = ", ".join(
        f"{k} {v / mb:.3f}" for k, v in sizes["weights_by_dtype"].items() if v >= 1000
    )
    text = (
        f"{sizes['file'] / mb:.3f} MB = weights {sizes['weights'] / mb:.3f} ({dtypes}) "
        f"+ scales {sizes['scales'] / mb:.3f} + structure {sizes['structure'] / mb:.3f}"
    )
    if baseline:
        text += f" ({100 * sizes['file'] / baseline['file']:.1f}% of float32)"
    return text
