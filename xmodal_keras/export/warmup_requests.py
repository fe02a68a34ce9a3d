"""TF Serving's warm-up file: requests it replays when it loads a version, before traffic.

TF Serving reads `assets.extra/tf_serving_warmup_requests`, a TFRecord file of
`PredictionLog` protos, and runs each request once so the first real request does not
pay for graph initialisation.
"""

import os
import pathlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

WARMUP_FILE = pathlib.Path("assets.extra") / "tf_serving_warmup_requests"

_INPUT_NAMES = {"caption_pixels": "images"}


def warmup_request(
    model_name: str, signature: str, image_bytes: bytes
) -> prediction_log_pb2.PredictionLog:
    """One `PredictionLog` with a batch-of-one `PredictRequest` for `signature`.

    `caption_pixels` gets the image decoded to uint8 pixels; the others get the bytes.

    Example:

    >>> import io
    >>> from PIL import Image
    >>> buffer = io.BytesIO()
    >>> Image.new("RGB", (4, 4)).save(buffer, format="PNG")
    >>> log = warmup_request("captioner", "serving_default", buffer.getvalue())
    >>> log.predict_log.request.model_spec.signature_name
    'serving_default'
    """
    input_name = _INPUT_NAMES.get(signature, "image_bytes")
    if input_name == "images":
        pixels = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)[None]
        tensor = tf.make_tensor_proto(pixels.numpy())
    else:
        tensor = tf.make_tensor_proto([image_bytes], dtype=tf.string)
    return prediction_log(model_name, signature, {input_name: tensor})


def prediction_log(
    model_name: str, signature: str, inputs: Mapping[str, Any]
) -> prediction_log_pb2.PredictionLog:
    """One `PredictionLog` whose `PredictRequest` feeds `inputs` (input name -> array-like
    or `TensorProto`; lists of bytes become `tf.string`) to `signature`.

    Example:

    >>> log = prediction_log("fusion", "classify", {"text": [b"a red circle"]})
    >>> log.predict_log.request.inputs["text"].string_val
    [b'a red circle']
    """
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature
    for name, value in inputs.items():
        if not isinstance(value, tensor_pb2.TensorProto):
            value = tf.make_tensor_proto(value)
        request.inputs[name].CopyFrom(value)
    return prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request)
    )


def write_warmup_requests(
    saved_model_dir: str | os.PathLike,
    *,
    model_name: str,
    image_bytes: bytes,
    signatures: Sequence[str],
) -> pathlib.Path:
    """Write one warm-up request per signature into `saved_model_dir`; returns the file."""
    return write_prediction_logs(
        saved_model_dir,
        [warmup_request(model_name, signature, image_bytes) for signature in signatures],
    )


def write_prediction_logs(
    saved_model_dir: str | os.PathLike, logs: Iterable[prediction_log_pb2.PredictionLog]
) -> pathlib.Path:
    """Write `logs` as the warm-up file of `saved_model_dir`; returns the file."""
    path = pathlib.Path(saved_model_dir) / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for log in logs:
            writer.write(log.SerializeToString())
    return path


def read_warmup_requests(path: str | os.PathLike) -> list[prediction_log_pb2.PredictionLog]:
    """The `PredictionLog`s of a warm-up file (what TF Serving will replay)."""
    logs = []
    for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
        logs.append(prediction_log_pb2.PredictionLog.FromString(record))
    return logs
