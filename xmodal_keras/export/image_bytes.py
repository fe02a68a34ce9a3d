"""In-graph decoding of untrusted image bytes for serving graphs: format and size checked
from the file header *before* anything is decoded.

Core TensorFlow ops only (`tf.strings`, `tf.io.decode_raw`, `tf.image.extract_jpeg_shape`,
`tf.io.decode_image`), so stock TF Serving runs it. Each image is first checked
(`checked_image`: format, pixel limit from the headers, a GIF's first frame, which alone
is decoded, and a whole file, not one cut short), then decoded with the training
pipeline's own `decode_image` (EXIF orientation, RGB, resize). A bad image fails its
request with an `InvalidArgument` error naming the image's position in the batch (0-based:
"image 1 of the request" is the second) and what was wrong, and the server goes on.

Example:

>>> import io
>>> import numpy as np
>>> from PIL import Image
>>> buffer = io.BytesIO()
>>> Image.fromarray(np.zeros((8, 6, 3), np.uint8)).save(buffer, format="PNG")
>>> images = decode_image_batch(tf.constant([buffer.getvalue()]), image_size=(4, 4))
>>> images.shape, images.dtype.name
(TensorShape([1, 4, 4, 3]), 'uint8')
"""

import tensorflow as tf

from xmodal_keras.argument_checks import check_positive_int
from xmodal_keras.data.image_header import (
    DEFAULT_MAX_PIXELS,
    SUPPORTED_FORMATS,
    checked_image,
)
from xmodal_keras.data.image_preprocessing import decode_image

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "SUPPORTED_FORMATS",
    "checked_image_size",
    "decode_image_batch",
    "nonempty_batch",
    "nonempty_inputs",
]


def checked_image_size(image_bytes: tf.Tensor, max_pixels: int, *, position=None) -> tf.Tensor:
    """Asserts that scalar `image_bytes` is a JPEG/PNG/GIF/BMP of at most `max_pixels`.

    Only headers are read (see `checked_image`). Returns int64 `[width, height]`.
    `position` (int scalar tensor) names the image in errors.
    """
    return checked_image(image_bytes, max_pixels, position=position)["size"]


def decode_image_batch(
    image_bytes: tf.Tensor,
    image_size: tuple[int, int],
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> tf.Tensor:
    """Encoded images `tf.string [batch]` -> uint8 RGB `[batch, height, width, 3]`.

    Each image is checked (`checked_image`: headers, pixel limit, a whole file) before it
    is decoded with the training pipeline's own `decode_image`. GIFs give their first
    frame, the only one decoded; the pixel limit applies to the GIF's logical screen and
    to that frame. An empty batch gives `[0, height, width, 3]`.

    Args:
        image_bytes: 1-D `tf.string` tensor of encoded files.
        image_size: `(height, width)` the model takes.
        max_pixels: largest width x height accepted. Defaults to 40 megapixels.
    """
    check_positive_int("max_pixels", max_pixels)
    height, width = image_size

    def decode_one(args):
        data, position = args
        checked = checked_image(data, max_pixels, position=position)
        return decode_image(checked["bytes"], (height, width))

    image_bytes = tf.convert_to_tensor(image_bytes, tf.string)
    positions = tf.range(tf.shape(image_bytes, out_type=tf.int64)[0])
    return tf.map_fn(
        decode_one,
        (image_bytes, positions),
        fn_output_signature=tf.TensorSpec([height, width, 3], tf.uint8),
    )


def nonempty_batch(images: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """`(images, batch_size)` with an empty batch replaced by one black image: run the model
    on it and keep `[:batch_size]` of each output, so an empty request gets an empty answer
    (convolutions on CPU refuse an empty batch)."""
    inputs, batch_size = nonempty_inputs({"images": images})
    return inputs["images"], batch_size


def nonempty_inputs(inputs: dict) -> tuple[dict, tf.Tensor]:
    """`(inputs, batch_size)` where, for an empty batch, every tensor of the (nested) dict
    `inputs` gets one row of zeros (empty strings for `tf.string`): run the model on them
    and keep `[:batch_size]` of each output. The batch size is the first tensor's.

    >>> empty = {"images": tf.zeros([0, 2, 2, 3]), "text": tf.constant([], tf.string)}
    >>> padded, size = nonempty_inputs(empty)
    >>> padded["images"].shape, padded["text"].numpy().tolist(), int(size)
    (TensorShape([1, 2, 2, 3]), [b''], 0)
    """
    batch_size = tf.shape(tf.nest.flatten(inputs)[0])[0]

    def one_row(tensor):
        return tf.zeros(tf.concat([[1], tf.shape(tensor)[1:]], 0), tensor.dtype)

    def padded(tensor):
        return tf.cond(batch_size > 0, lambda: tensor, lambda: one_row(tensor))

    return tf.nest.map_structure(padded, inputs), batch_size
