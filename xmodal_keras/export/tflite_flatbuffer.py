"""Read a `.tflite` flatbuffer into LiteRT's object API (`schema.ModelT`) and write it back,
storing identical vectors once.

`ai-edge-quantizer` writes large weights after the flatbuffer (`Buffer.offset` / `size`)
and stores each tensor's quantization vectors separately, so a weight that two subgraphs
share (the `decode_step` signature and the `caption` loop's body) carries its per-channel
scales and zero points twice. The object API's `Pack` copies vectors as they are; the
builder here hands out one offset per distinct vector content (flatbuffers allow any
number of references to one vector, as with shared strings), and aligns weight buffers to
16 bytes as the TFLite converter does.
"""

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

FILE_IDENTIFIER = b"TFL3"
_BUFFER_ALIGNMENT = 16


def read_model_t(flatbuffer: bytes) -> "schema.ModelT":
    """The model as mutable objects, with buffers stored after the flatbuffer read in.

    Example:

    >>> import tensorflow as tf
    >>> f = tf.function(lambda x: x * 2.0, input_signature=[tf.TensorSpec([2], tf.float32)])
    >>> model = read_model_t(
    ...     tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()]).convert()
    ... )
    >>> len(model.subgraphs)
    1
    """
    model = schema.ModelT.InitFromPackedBuf(flatbuffer, 0)
    for buffer in model.buffers or []:
        if buffer.offset > 1:
            start = int(buffer.offset)
            buffer.data = np.frombuffer(flatbuffer[start : start + int(buffer.size)], np.uint8)
            buffer.offset = buffer.size = 0
    return model


class _SharingBuilder(flatbuffers.Builder):
    """A builder that writes each distinct numpy vector once (the object API writes every
    vector through `CreateNumpyVector`)."""

    def __init__(self, size: int):
        super().__init__(size)
        self._vectors: dict[tuple, int] = {}

    def CreateNumpyVector(self, x):  # noqa: N802 (flatbuffers' name)
        array = np.ascontiguousarray(x)
        key = (array.dtype.str, array.tobytes())
        if key not in self._vectors:
            if array.dtype == np.uint8 and array.size >= _BUFFER_ALIGNMENT:
                self._vectors[key] = self._aligned_bytes(array)
            else:
                self._vectors[key] = super().CreateNumpyVector(array)
        return self._vectors[key]

    def _aligned_bytes(self, array: np.ndarray) -> int:
        self.StartVector(1, array.size, _BUFFER_ALIGNMENT)
        self.head = self.head - array.size
        self.Bytes[self.head : self.head + array.size] = array.tobytes()
        self.vectorNumElems = array.size
        return self.EndVector()


def write_model_t(model: "schema.ModelT") -> bytes:
    """The flatbuffer of `model`, identical vectors stored once.

    Example (round trip):

    >>> import tensorflow as tf
    >>> f = tf.function(lambda x: x * 2.0, input_signature=[tf.TensorSpec([2], tf.float32)])
    >>> flatbuffer = tf.lite.TFLiteConverter.from_concrete_functions(
    ...     [f.get_concrete_function()]).convert()
    >>> schema.Model.ModelBufferHasIdentifier(write_model_t(read_model_t(flatbuffer)), 0)
    True
    """
    builder = _SharingBuilder(1024)
    builder.Finish(model.Pack(builder), file_identifier=FILE_IDENTIFIER)
    return bytes(builder.Output())
