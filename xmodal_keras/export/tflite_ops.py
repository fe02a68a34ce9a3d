"""What a `.tflite` file contains: its operators (builtin, custom, Flex) and tensor types.

Reads the flatbuffer with the LiteRT schema (`ai_edge_litert.schema_py_generated`), without
an interpreter, so it also inspects models that the runtime would refuse (a Flex op the
standard LiteRT runtime lacks). Every subgraph is read: a `WHILE` op's condition and body
are subgraphs of their own.
"""

import collections
import os

from ai_edge_litert import schema_py_generated as schema

CUSTOM_PREFIX = "CUSTOM:"
FLEX_PREFIX = "Flex"  # custom code of a Select-TF op, e.g. "FlexBitwiseAnd"

_BUILTIN_NAMES = {
    value: name
    for name, value in vars(schema.BuiltinOperator).items()
    if not name.startswith("_") and isinstance(value, int)
}
TENSOR_TYPE_NAMES = {
    value: name.lower()
    for name, value in vars(schema.TensorType).items()
    if not name.startswith("_") and isinstance(value, int)
}


def read_model(model: bytes | str | os.PathLike) -> "schema.Model":
    """The root table of a `.tflite` flatbuffer (bytes or a path), its identifier checked."""
    if not isinstance(model, bytes | bytearray):
        with open(model, "rb") as file:
            model = file.read()
    if not schema.Model.ModelBufferHasIdentifier(model, 0):
        raise ValueError(
            "Not a TFLite flatbuffer (file identifier 'TFL3' missing). "
            f"Received: {len(model)} bytes starting {bytes(model[:8])!r}"
        )
    return schema.Model.GetRootAs(model, 0)


def _op_name(code: "schema.OperatorCode") -> str:
    # Codes above 127 live in `BuiltinCode`; older files only fill `DeprecatedBuiltinCode`.
    builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    if builtin == schema.BuiltinOperator.CUSTOM:
        return CUSTOM_PREFIX + code.CustomCode().decode("utf-8")
    return _BUILTIN_NAMES.get(builtin, f"BUILTIN_{builtin}")


def list_tflite_ops(model: bytes | str | os.PathLike) -> dict[str, int]:
    """Operator name -> number of uses, over every subgraph of a `.tflite` model.

    Builtin ops have their schema name (`"FULLY_CONNECTED"`, `"WHILE"`); custom ops read
    `"CUSTOM:<code>"`, so a Select-TF op reads `"CUSTOM:FlexBitwiseAnd"`.

    Args:
        model: the flatbuffer bytes or a path to a `.tflite` file.

    Example:

    >>> import tensorflow as tf
    >>> f = tf.function(lambda x: tf.nn.relu(x) + 1.0,
    ...                 input_signature=[tf.TensorSpec([2], tf.float32)])
    >>> conv = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()])
    >>> sorted(list_tflite_ops(conv.convert()))
    ['ADD', 'RELU']
    """
    root = read_model(model)
    names = [_op_name(root.OperatorCodes(i)) for i in range(root.OperatorCodesLength())]
    counts: collections.Counter[str] = collections.Counter()
    for s in range(root.SubgraphsLength()):
        subgraph = root.Subgraphs(s)
        for o in range(subgraph.OperatorsLength()):
            counts[names[subgraph.Operators(o).OpcodeIndex()]] += 1
    return dict(sorted(counts.items()))


def non_builtin_ops(model: bytes | str | os.PathLike) -> list[str]:
    """The custom and Flex (Select TF) ops of a model: empty when the standard LiteRT
    runtime runs it as it is."""
    return [name for name in list_tflite_ops(model) if name.startswith(CUSTOM_PREFIX)]


def count_tensor_types(model: bytes | str | os.PathLike) -> dict[str, int]:
    """Tensor type name (`"float32"`, `"int8"`, `"float16"` ...) -> number of tensors, over
    every subgraph (how much of a model a quantization reached)."""
    root = read_model(model)
    counts: collections.Counter[str] = collections.Counter()
    for s in range(root.SubgraphsLength()):
        subgraph = root.Subgraphs(s)
        for t in range(subgraph.TensorsLength()):
            counts[TENSOR_TYPE_NAMES.get(subgraph.Tensors(t).Type(), "unknown")] += 1
    return dict(sorted(counts.items()))
