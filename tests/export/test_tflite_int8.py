"""Range sharing between subgraphs of a `.tflite` model (`tflite_int8`), on a model built
with the LiteRT schema's object API: the ops of one computation scheduled in two orders."""

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from xmodal_keras.export import tflite_int8

OPS = schema.BuiltinOperator


def _model(order: list[str]) -> schema.ModelT:
    """Two subgraphs of x -> key = x @ Wk, value = x @ Wv, reshape(key), x + x,
    reshape(value); subgraph 1 runs the two reshapes in the other order."""
    model = schema.ModelT()
    model.operatorCodes = []
    for code in (OPS.FULLY_CONNECTED, OPS.RESHAPE, OPS.ADD):
        operator_code = schema.OperatorCodeT()
        operator_code.builtinCode = operator_code.deprecatedBuiltinCode = code
        model.operatorCodes.append(operator_code)
    model.buffers = []
    for data in (None, np.ones(16, np.uint8), np.zeros(16, np.uint8), np.ones(8, np.uint8)):
        buffer = schema.BufferT()
        buffer.data = data
        model.buffers.append(buffer)
    model.subgraphs = []
    for prefix, subgraph_order in (("", ["key", "value"]), ("loop/", order)):
        subgraph = schema.SubGraphT()
        names = ["x", "w_key", "w_value", "shape", "key", "value", "x2", "key_r", "value_r"]
        buffers = [0, 1, 2, 3, 0, 0, 0, 0, 0]
        subgraph.tensors = []
        for name, buffer_index in zip(names, buffers, strict=True):
            tensor = schema.TensorT()
            tensor.name, tensor.buffer = (prefix + name).encode(), buffer_index
            tensor.type, tensor.shape = schema.TensorType.FLOAT32, [1, 2]
            subgraph.tensors.append(tensor)

        def op(code, inputs, output):
            operator = schema.OperatorT()
            operator.opcodeIndex, operator.inputs, operator.outputs = code, inputs, [output]
            return operator

        reshapes = {"key": op(1, [4, 3], 7), "value": op(1, [5, 3], 8)}
        subgraph.operators = [
            op(0, [0, 1], 4),
            op(0, [0, 2], 5),
            reshapes[subgraph_order[0]],
            op(2, [0, 0], 6),
            reshapes[subgraph_order[1]],
        ]
        model.subgraphs.append(subgraph)
    return model


def test_an_op_scheduled_elsewhere_takes_the_ranges_of_the_same_op():
    """By opcode and input shapes alone the two reshapes look the same, and in order
    the key's reshape took the value's ranges (int8 captions of the demo fell 66 % to
    56 % when the converter swapped them)."""
    model = _model(["value", "key"])
    pairs = sorted(tflite_int8._matching_ops(model, 0, 1))
    assert pairs == [(0, 0), (1, 1), (2, 4), (3, 3), (4, 2)]
    names = ["x", "key", "value", "x2", "key_r", "value_r"]
    ranges = {name: {"min": float(i), "max": i + 1.0} for i, name in enumerate(names)}
    assert tflite_int8._share_ranges(model, ranges, 0, 1) > 0
    for name in names:
        assert ranges["loop/" + name] == ranges[name], name


def test_ops_in_the_same_order_pair_in_order():
    pairs = sorted(tflite_int8._matching_ops(_model(["key", "value"]), 0, 1))
    assert pairs == [(i, i) for i in range(5)]
