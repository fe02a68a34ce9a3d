"""Image decoding shared by training (tf.data) and serving graphs, and a pre-flight file check.

`decode_image` is a pure TF function with a static output shape; the exported serving graph
calls the same function, so training and serving resize identically (bilinear, antialiased,
rounded to uint8).

Example:

>>> import io
>>> import numpy as np
>>> from PIL import Image
>>> buffer = io.BytesIO()
>>> Image.fromarray(np.zeros((8, 6, 4), np.uint8)).save(buffer, format="PNG")
>>> image = decode_image(tf.constant(buffer.getvalue()), image_shape=(4, 3))
>>> image.shape, image.dtype.name
(TensorShape([4, 3, 3]), 'uint8')
"""

import concurrent.futures
import os
from collections.abc import Iterable

import tensorflow as tf

# Formats `tf.io.decode_image` can read, by PIL format name.
TF_DECODABLE_FORMATS = frozenset({"JPEG", "MPO", "PNG", "GIF", "BMP", "WEBP"})
CHECK_MODES = ("header", "decode", "none")


def _validate_image_shape(image_shape) -> tuple[int, int]:
    try:
        height, width = (int(size) for size in image_shape)
        valid = height > 0 and width > 0 and (height, width) == tuple(image_shape)
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ValueError(
            "`image_shape` must be a (height, width) pair of positive ints. "
            f"Received: image_shape={image_shape!r}"
        )
    return height, width


def decode_image(image_bytes: tf.Tensor, image_shape: tuple[int, int]) -> tf.Tensor:
    """Encoded JPEG/PNG/GIF/BMP bytes (scalar `tf.string`) -> uint8 RGB `[height, width, 3]`.

    RGBA loses its alpha channel, grayscale is replicated to 3 channels, palette images are
    expanded, an animated GIF gives its first frame. The image is resized (bilinear,
    antialias=True), rounded and clipped to uint8. Core TF ops only.

    Args:
        image_bytes: scalar `tf.string` with the encoded file.
        image_shape: `(height, width)` of the output.
    """
    height, width = _validate_image_shape(image_shape)
    image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False, dtype=tf.uint8)
    image = tf.ensure_shape(image, [None, None, 3])
    return tf.ensure_shape(resize_image(image, (height, width)), [height, width, 3])


def resize_image(images: tf.Tensor, image_shape: tuple[int, int]) -> tf.Tensor:
    """RGB `[..., H, W, 3]` (any size, uint8 or float in [0, 255]) -> uint8 at `image_shape`.

    Bilinear with antialiasing, rounded and clipped: the one resize training and every
    exported signature use.
    """
    height, width = _validate_image_shape(image_shape)
    images = tf.image.resize(images, (height, width), method="bilinear", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(images), 0.0, 255.0), tf.uint8)


def load_image(path: tf.Tensor | str, image_shape: tuple[int, int]) -> tf.Tensor:
    """Read an image file and `decode_image` it: uint8 `[height, width, 3]`."""
    return decode_image(tf.io.read_file(path), image_shape)


def _check_one(path: str, mode: str) -> str | None:
    """Reason `path` cannot be used as an image, or None when it looks fine."""
    from PIL import Image, UnidentifiedImageError

    try:
        if not os.path.exists(path):
            return "file not found"
        if os.path.isdir(path):
            return "is a directory, not an image file"
        if os.path.getsize(path) == 0:
            return "empty file"
        with Image.open(path) as image:
            image_format = image.format
            if image_format not in TF_DECODABLE_FORMATS:
                return (
                    f"unsupported image format {image_format} "
                    "(TensorFlow decodes JPEG, PNG, GIF, BMP, WEBP)"
                )
            if mode == "header":
                image.verify()
            else:
                image.load()
    except UnidentifiedImageError:
        return "not an image (PIL: cannot identify image file)"
    except Exception as error:  # noqa: BLE001 - every failure is a reason to report
        return f"corrupt image (PIL: {error})"
    return None


def find_bad_images(
    paths: Iterable[str | os.PathLike], mode: str = "header", max_workers: int | None = None
) -> list[tuple[str, str]]:
    """Check image files with PIL in a thread pool; return `(path, reason)` for each bad one.

    Args:
        paths: image file paths (duplicates are checked once and reported once).
        mode: "header" (PIL open + verify: fast; catches missing, empty, non-image and
            unsupported files and corrupt headers), "decode" (full PIL decode: also catches
            truncated files) or "none" (no check). Defaults to "header".
        max_workers: thread count. Defaults to `min(32, cpu_count + 4)`.

    Example:

    >>> find_bad_images(["/no/such/file.png"])
    [('/no/such/file.png', 'file not found')]
    """
    if mode not in CHECK_MODES:
        raise ValueError(f"`mode` must be one of {CHECK_MODES}. Received: mode={mode!r}")
    unique_paths = list(dict.fromkeys(os.fspath(path) for path in paths))
    if mode == "none" or not unique_paths:
        return []
    if max_workers is None:
        max_workers = min(32, (os.cpu_count() or 1) + 4)
    with concurrent.futures.ThreadPoolExecutor(max_workers=max_workers) as pool:
        reasons = list(pool.map(lambda path: _check_one(path, mode), unique_paths))
    return [
        (path, reason)
        for path, reason in zip(unique_paths, reasons, strict=True)
        if reason is not None
    ]
