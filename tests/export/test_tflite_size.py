"""The size breakdown of a `.tflite` file and the writer that stores identical vectors once."""

import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from xmodal_keras.export.tflite_flatbuffer import read_model_t, write_model_t
from xmodal_keras.export.tflite_size import format_size_breakdown, size_breakdown


def _two_signature_model() -> bytes:
    """Two signatures reading one 64x64 float32 weight."""
    module = tf.Module()
    module.w = tf.Variable(np.arange(64 * 64, dtype=np.float32).reshape(64, 64) / 4096.0)
    spec = [tf.TensorSpec([1, 64], tf.float32)]

    def first(x):
        return tf.matmul(x, module.w)

    def second(x):
        return tf.nn.relu(tf.matmul(x, module.w))

    module.first = tf.function(first, input_signature=spec)
    module.second = tf.function(second, input_signature=spec)
    functions = [module.first.get_concrete_function(), module.second.get_concrete_function()]
    return tf.lite.TFLiteConverter.from_concrete_functions(functions, module).convert()


def test_the_breakdown_sums_to_the_file_and_counts_a_shared_weight_once():
    flatbuffer = _two_signature_model()
    sizes = size_breakdown(flatbuffer)
    assert len(Interpreter(model_content=flatbuffer).get_signature_list()) == 2
    assert sizes["weights"] + sizes["scales"] + sizes["structure"] == len(flatbuffer)
    assert sizes["weights_by_dtype"]["float32"] == 64 * 64 * 4
    assert sizes["scales"] == 0
    assert "MB = weights 0.016 (float32 0.016) + scales 0.000" in format_size_breakdown(sizes)


def test_the_writer_stores_identical_vectors_once():
    model = read_model_t(_two_signature_model())
    assert sum(len(subgraph.tensors) for subgraph in model.subgraphs) > 4
    # Give every tensor of both subgraphs the same 64 per-channel scales: stored once.
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            tensor.quantization.scale = np.full(64, 0.5, np.float32)
            tensor.quantization.zeroPoint = np.zeros(64, np.int64)
    shared = write_model_t(model)
    sizes = size_breakdown(shared)
    assert sizes["scales"] == 64 * 4 + 64 * 8
    assert sizes["weights"] + sizes["scales"] + sizes["structure"] == len(shared)
    again = read_model_t(shared)
    np.testing.assert_array_equal(again.subgraphs[-1].tensors[-1].quantization.scale, 0.5)
