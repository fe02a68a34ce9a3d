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
>>> image = decode_image(tf.constant(buffer.getvalue()), image_size=(4, 3))
>>> image.shape, image.dtype.name
(TensorShape([4, 3, 3]), 'uint8')
"""

import concurrent.futures
import functools
import os
import re
from collections.abc import Iterable, Sequence

import numpy as np
import tensorflow as tf

from xmodal_keras.data.image_header import (
    DEFAULT_MAX_PIXELS,
    apply_orientation,
    checked_image,
    exif_orientation,
    first_gif_frame,
)

# Formats `tf.io.decode_image` can read, by PIL format name.
TF_DECODABLE_FORMATS = frozenset({"JPEG", "MPO", "PNG", "GIF", "BMP", "WEBP"})
CHECK_MODES = ("decode", "header", "none")
PROGRESS_MIN_FILES = 1000


def _validate_image_size(image_size) -> tuple[int, int]:
    try:
        height, width = (int(size) for size in image_size)
        valid = height > 0 and width > 0 and (height, width) == tuple(image_size)
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ValueError(
            "`image_size` must be a (height, width) pair of positive ints. "
            f"Received: image_size={image_size!r}"
        )
    return height, width


def decode_image(
    image_bytes: tf.Tensor, image_size: tuple[int, int], *, max_pixels: int | None = None
) -> tf.Tensor:
    """Encoded JPEG/PNG/GIF/BMP bytes (scalar `tf.string`) -> uint8 RGB `[height, width, 3]`.

    RGBA loses its alpha channel, grayscale is replicated to 3 channels, palette images are
    expanded, an animated GIF gives its first frame (the only one decoded), a JPEG is
    turned as its EXIF orientation says. The image is resized (bilinear, antialias=True),
    rounded and clipped to uint8. Core TF ops only.

    Args:
        image_bytes: scalar `tf.string` with the encoded file.
        image_size: `(height, width)` of the output.
        max_pixels: when given, the header is checked first (`checked_image`: a supported
            format of at most this many pixels) and a bad file is an `InvalidArgument`
            error before anything is decoded. Defaults to None (no check).
    """
    height, width = _validate_image_size(image_size)
    if max_pixels is None:
        image_bytes = first_gif_frame(image_bytes)
    else:
        image_bytes = checked_image(image_bytes, max_pixels)["bytes"]
    image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False, dtype=tf.uint8)
    image = apply_orientation(
        tf.ensure_shape(image, [None, None, 3]), exif_orientation(image_bytes)
    )
    return tf.ensure_shape(resize_image(image, (height, width)), [height, width, 3])


def resize_image(images: tf.Tensor, image_size: tuple[int, int]) -> tf.Tensor:
    """RGB `[..., H, W, 3]` (any size, uint8 or float in [0, 255]) -> uint8 at `image_size`.

    Bilinear with antialiasing, rounded and clipped: the one resize training and every
    exported signature use.
    """
    height, width = _validate_image_size(image_size)
    images = tf.image.resize(images, (height, width), method="bilinear", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(images), 0.0, 255.0), tf.uint8)


def load_image(
    path: tf.Tensor | str, image_size: tuple[int, int], *, max_pixels: int | None = None
) -> tf.Tensor:
    """Read an image file and `decode_image` it: uint8 `[height, width, 3]`."""
    return decode_image(tf.io.read_file(path), image_size, max_pixels=max_pixels)


def error_line(error: tf.errors.OpError) -> str:
    """A TF op error (a failed `checked_image` assert, a decoder message) as one line."""
    message = error.message.split("\n")[0]
    message = re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", message)
    message = message.removeprefix("assertion failed: ")
    if message.startswith("[") and message.endswith("]"):
        message = " ".join(part.strip() for part in message[1:-1].split("] ["))
    return message.strip() or type(error).__name__


@functools.cache
def _file_loader(image_size: tuple[int, int], max_pixels: int | None):
    return tf.function(
        lambda path: load_image(path, image_size, max_pixels=max_pixels),
        input_signature=[tf.TensorSpec([], tf.string)],
    )


def read_image_files(
    paths: Sequence[str | os.PathLike],
    image_size: tuple[int, int],
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> tuple[list[np.ndarray | None], list[tuple[str, str]]]:
    """Read image files one by one with the training decode, header-checked first.

    What `xmodal caption` reads (both the Keras and the TFLite path): each file's header
    is checked (`checked_image`, at most `max_pixels`) before it is decoded, and a bad file
    is reported, not raised, so the other files still get read.

    Returns:
        `(images, failures)`: a uint8 `[height, width, 3]` array per path (None for a file
        that failed), and `(path, reason)` for each failed file, in `paths` order.

    Example:

    >>> images, failures = read_image_files(["/no/such.png"], (4, 4))
    >>> images, failures[0][0]
    ([None], '/no/such.png')
    """
    load = _file_loader(_validate_image_size(image_size), max_pixels)
    images: list[np.ndarray | None] = []
    failures = []
    for path in map(os.fspath, paths):
        try:
            images.append(load(tf.constant(path)).numpy())
        except tf.errors.OpError as error:
            images.append(None)
            failures.append((path, error_line(error)))
    return images, failures


@functools.cache
def _tf_decoder():
    return tf.function(
        lambda path: load_image(path, (1, 1)),  # the pixels: a shape alone would be folded
        input_signature=[tf.TensorSpec([], tf.string)],
    )


def _check_one(path: str, mode: str) -> str | None:
    """Reason `path` cannot be used as an image, or None when it looks fine."""
    from PIL import Image, UnidentifiedImageError

    try:
        if not os.path.exists(path):
            return "file not found"
        if os.path.isdir(path):
            return "is a directory, not an image file"
        if not os.path.isfile(path):  # a FIFO or device: opening it could block
            return "not a regular file"
        if os.path.getsize(path) == 0:
            return "empty file"
        with Image.open(path) as image:
            image_format = image.format
            if image_format not in TF_DECODABLE_FORMATS:
                return (
                    f"unsupported image format {image_format} "
                    "(TensorFlow decodes JPEG, PNG, GIF, BMP, WEBP)"
                )
            image.verify()
    except UnidentifiedImageError:
        return "not an image (PIL: cannot identify image file)"
    except Exception as error:  # noqa: BLE001 - every failure is a reason to report
        return f"corrupt image (PIL: {error})"
    if mode == "decode":
        try:
            _tf_decoder()(tf.constant(path))
        except tf.errors.OpError as error:
            return f"cannot be decoded ({image_format}: {error_line(error)})"
    return None


def find_bad_images(
    paths: Iterable[str | os.PathLike],
    mode: str = "decode",
    max_workers: int | None = None,
    *,
    progress: bool | None = None,
) -> list[tuple[str, str]]:
    """Check image files in a thread pool; return `(path, reason)` for each bad one.

    Args:
        paths: image file paths (duplicates are checked once and reported once).
        mode: "decode" (PIL header check, then the full decode training does: also catches
            truncated and corrupt image data; about 0.3 ms per 64x64 PNG), "header" (PIL
            open + verify only: catches missing, empty, non-image and unsupported files
            and corrupt headers) or "none" (no check). Defaults to "decode".
        max_workers: thread count. Defaults to `min(32, cpu_count + 4)`.
        progress: show a progress bar (on stdout). Defaults to None: shown when decoding
            at least 1000 files.

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
    if progress is None:
        progress = mode == "decode" and len(unique_paths) >= PROGRESS_MIN_FILES
    bar = None
    if progress:
        import keras

        print(f"Checking {len(unique_paths)} image files ({mode})", flush=True)
        bar = keras.utils.Progbar(len(unique_paths), unit_name="image")
    if mode == "decode":
        # Trace once here: threads that call an untraced tf.function at the same time
        # each trace it (and TensorFlow warns of retracing).
        _tf_decoder().get_concrete_function()
    reasons = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max_workers) as pool:
        for done, reason in enumerate(pool.map(lambda p: _check_one(p, mode), unique_paths), 1):
            reasons.append(reason)
            if bar is not None and (done % 100 == 0 or done == len(unique_paths)):
                bar.update(done)
    return [
        (path, reason)
        for path, reason in zip(unique_paths, reasons, strict=True)
        if reason is not None
    ]
