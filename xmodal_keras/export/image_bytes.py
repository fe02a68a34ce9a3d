"""In-graph decoding of untrusted image bytes for serving graphs: format and size checked
from the file header *before* anything is decoded.

Core TensorFlow ops only (`tf.strings.substr`, `tf.io.decode_raw`,
`tf.image.extract_jpeg_shape`, `tf.io.decode_image`), so stock TF Serving runs it. Every
check is a `tf.debugging.Assert`: a bad image fails its request with an `InvalidArgument`
error naming the image's position in the batch and what was wrong, and the server goes on.

Example:

>>> import io
>>> import numpy as np
>>> from PIL import Image
>>> buffer = io.BytesIO()
>>> Image.fromarray(np.zeros((8, 6, 3), np.uint8)).save(buffer, format="PNG")
>>> images = decode_image_batch(tf.constant([buffer.getvalue()]), image_shape=(4, 4))
>>> images.shape, images.dtype.name
(TensorShape([1, 4, 4, 3]), 'uint8')
"""

import tensorflow as tf

from xmodal_keras.argument_checks import check_positive_int
from xmodal_keras.data.image_preprocessing import decode_image

DEFAULT_MAX_PIXELS = 40_000_000
SUPPORTED_FORMATS = ("JPEG", "PNG", "GIF", "BMP")
# (format, magic bytes at offset 0, header bytes needed to read width and height)
_SIGNATURES = (
    ("JPEG", b"\xff\xd8\xff", 3),
    ("PNG", b"\x89PNG\r\n\x1a\n", 24),
    ("GIF", b"GIF8", 10),
    ("BMP", b"BM", 26),
)


def _bytes_at(data: tf.Tensor, start: int, length: int) -> tf.Tensor:
    """`length` bytes of `data` from `start` as int64 values (the caller checked the size)."""
    return tf.cast(tf.io.decode_raw(tf.strings.substr(data, start, length), tf.uint8), tf.int64)


def _unsigned(data: tf.Tensor, start: int, length: int, *, big_endian: bool) -> tf.Tensor:
    values = _bytes_at(data, start, length)
    shifts = tf.constant([8 * i for i in range(length)], tf.int64)
    if big_endian:
        shifts = tf.reverse(shifts, [0])
    return tf.reduce_sum(tf.bitwise.left_shift(values, shifts))


def _signed32(data: tf.Tensor, start: int) -> tf.Tensor:
    value = _unsigned(data, start, 4, big_endian=False)
    return tf.where(value >= 2**31, value - 2**32, value)


def _width_height(data: tf.Tensor, format_index: tf.Tensor) -> tf.Tensor:
    """int64 `[width, height]` read from the header of the format at `format_index`."""

    def jpeg():
        shape = tf.cast(tf.image.extract_jpeg_shape(data), tf.int64)
        return tf.stack([shape[1], shape[0]])

    def png():
        return tf.stack(
            [_unsigned(data, 16, 4, big_endian=True), _unsigned(data, 20, 4, big_endian=True)]
        )

    def gif():
        return tf.stack(
            [_unsigned(data, 6, 2, big_endian=False), _unsigned(data, 8, 2, big_endian=False)]
        )

    def bmp():
        # A bottom-up BMP stores a positive height, a top-down one a negative height.
        return tf.stack([_signed32(data, 18), tf.abs(_signed32(data, 22))])

    return tf.switch_case(format_index, [jpeg, png, gif, bmp])


def checked_image_size(image_bytes: tf.Tensor, max_pixels: int, *, position=None) -> tf.Tensor:
    """Asserts that scalar `image_bytes` is a JPEG/PNG/GIF/BMP of at most `max_pixels`.

    Only the header is read. Returns int64 `[width, height]`; run the decoder under a
    control dependency on it. `position` (int scalar tensor) names the image in errors.
    """
    where = "image" if position is None else tf.strings.format("image {} of the request", position)
    size = tf.strings.length(image_bytes)
    matches = tf.stack(
        [
            tf.logical_and(
                tf.equal(tf.strings.substr(image_bytes, 0, len(magic)), magic), size >= needed
            )
            for _, magic, needed in _SIGNATURES
        ]
    )
    problem = tf.where(
        size > 0,
        "is not a supported image: expected JPEG, PNG, GIF or BMP bytes (or the header is "
        "truncated); its first bytes (decimal) are",
        "is empty (0 bytes)",
    )
    first_bytes = tf.io.decode_raw(tf.strings.substr(image_bytes, 0, 8), tf.uint8)
    known = tf.debugging.Assert(tf.reduce_any(matches), [where, problem, first_bytes], summarize=8)
    with tf.control_dependencies([known]):
        format_index = tf.argmax(tf.cast(matches, tf.int32), output_type=tf.int32)
        width_height = _width_height(image_bytes, format_index)
    pixels = width_height[0] * width_height[1]
    check = tf.debugging.Assert(
        tf.logical_and(tf.reduce_all(width_height > 0), pixels <= max_pixels),
        [
            where,
            "header says",
            width_height[0],
            "x",
            width_height[1],
            "pixels; expected a positive size of at most",
            max_pixels,
            "pixels",
        ],
    )
    with tf.control_dependencies([check]):
        return tf.identity(width_height)


def decode_image_batch(
    image_bytes: tf.Tensor,
    image_shape: tuple[int, int],
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> tf.Tensor:
    """Encoded images `tf.string [batch]` -> uint8 RGB `[batch, height, width, 3]`.

    Each image's header is checked (`checked_image_size`) before it is decoded with the
    training pipeline's own `decode_image` (same RGB conversion and resize). GIFs give their
    first frame; the pixel limit applies to the GIF's logical screen.

    Args:
        image_bytes: 1-D `tf.string` tensor of encoded files.
        image_shape: `(height, width)` the model takes.
        max_pixels: largest width x height accepted. Defaults to 40 megapixels.
    """
    check_positive_int("max_pixels", max_pixels)
    height, width = image_shape

    def decode_one(args):
        data, position = args
        with tf.control_dependencies([checked_image_size(data, max_pixels, position=position)]):
            return decode_image(data, (height, width))

    image_bytes = tf.convert_to_tensor(image_bytes, tf.string)
    positions = tf.range(tf.shape(image_bytes, out_type=tf.int64)[0])
    return tf.map_fn(
        decode_one,
        (image_bytes, positions),
        fn_output_signature=tf.TensorSpec([height, width, 3], tf.uint8),
    )
