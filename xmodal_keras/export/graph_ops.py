"""List the ops of an exported SavedModel and find those stock TF Serving may not have."""

import os
import pathlib

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

# In `tf.raw_ops`, but they call back into Python, which TF Serving does not run.
PYTHON_CALLBACK_OPS = frozenset({"PyFunc", "PyFuncStateless", "EagerPyFunc"})


def saved_model_ops(saved_model_dir: str | os.PathLike) -> set[str]:
    """Every op type in the SavedModel's graphs, inside nested functions included.

    Calls to the graph's own functions (whose node type is the function's name) are not
    counted as ops.

    Example:

    >>> import tempfile
    >>> module = tf.Module()
    >>> module.f = tf.function(lambda x: x * 2, input_signature=[tf.TensorSpec([], tf.float32)])
    >>> path = tempfile.mkdtemp()
    >>> tf.saved_model.save(module, path)
    >>> "Mul" in saved_model_ops(path)
    True
    """
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((pathlib.Path(saved_model_dir) / "saved_model.pb").read_bytes())
    ops = set()
    for meta_graph in saved_model.meta_graphs:
        library = meta_graph.graph_def.library
        function_names = {function.signature.name for function in library.function}
        nodes = list(meta_graph.graph_def.node)
        for function in library.function:
            nodes.extend(function.node_def)
        ops.update(node.op for node in nodes if node.op not in function_names)
    return ops


def non_core_ops(ops: set[str]) -> list[str]:
    """The ops of `ops` that are not core TensorFlow kernels TF Serving ships.

    Core means: in `tf.raw_ops` (so not tensorflow-text or another add-on library), not a
    Python callback, and not an `Xla*` compiler op (those exist only where XLA is linked).

    Example:

    >>> non_core_ops({"MatMul", "EagerPyFunc", "XlaDynamicUpdateSlice", "CaseFoldUTF8"})
    ['CaseFoldUTF8', 'EagerPyFunc', 'XlaDynamicUpdateSlice']
    """
    return sorted(
        op
        for op in ops
        if not hasattr(tf.raw_ops, op) or op in PYTHON_CALLBACK_OPS or op.startswith("Xla")
    )
