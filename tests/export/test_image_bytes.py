"""Header-checked decoding of untrusted image bytes (the serving graphs' image input)."""

import io
import re

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from xmodal_keras.data.image_preprocessing import decode_image
from xmodal_keras.export.image_bytes import checked_image_size, decode_image_batch


def encode(image_format: str, mode: str = "RGB", size=(13, 7), **save_kwargs) -> bytes:
    rng = np.random.default_rng(0)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}.get(mode, 1)
    pixels = rng.integers(0, 255, (size[1], size[0], channels), dtype=np.uint8).squeeze()
    image = Image.fromarray(pixels, mode="RGBA" if channels == 4 else None)
    if mode == "P":
        image = image.convert("P")
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **save_kwargs)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "image_format, mode",
    [("JPEG", "RGB"), ("PNG", "RGBA"), ("PNG", "L"), ("GIF", "P"), ("BMP", "RGB")],
)
def test_header_size_matches_the_file(image_format, mode):
    data = encode(image_format, mode, size=(13, 7))
    assert checked_image_size(tf.constant(data), max_pixels=1000).numpy().tolist() == [13, 7]


def test_top_down_bmp_height_is_read_as_positive():
    data = bytearray(encode("BMP", size=(5, 3)))
    height = int.from_bytes(data[22:26], "little", signed=True)
    data[22:26] = (-height).to_bytes(4, "little", signed=True)
    assert checked_image_size(tf.constant(bytes(data)), max_pixels=100).numpy().tolist() == [5, 3]


def test_batch_decodes_exactly_like_the_training_pipeline():
    files = [encode("JPEG"), encode("PNG", "RGBA"), encode("PNG", "L"), encode("GIF", "P")]
    batch = decode_image_batch(tf.constant(files), (8, 6))
    expected = np.stack([decode_image(tf.constant(data), (8, 6)).numpy() for data in files])
    np.testing.assert_array_equal(batch.numpy(), expected)


def oversized_png(width: int, height: int) -> bytes:
    """A small, valid PNG whose header claims `width` x `height` pixels."""
    data = bytearray(encode("PNG", size=(4, 4)))
    data[16:20] = width.to_bytes(4, "big")
    data[20:24] = height.to_bytes(4, "big")
    return bytes(data)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "image 1 of the request] [is empty (0 bytes)"),
        (b"just some text", "is not a supported image: expected JPEG, PNG, GIF or BMP"),
        (b"\x89PNG\r\n\x1a\n", "is not a supported image"),
        (oversized_png(30000, 30000), "header says] [30000] [x] [30000]"),
        (oversized_png(0, 10), "expected a positive size"),
    ],
    ids=["empty", "text", "truncated-header", "bomb", "zero-width"],
)
def test_bad_bytes_fail_with_a_message_naming_the_image(data, message):
    decode = tf.function(lambda batch: decode_image_batch(batch, (8, 8), max_pixels=10_000))
    with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape(message)):
        decode(tf.constant([encode("PNG"), data]))


def test_pixel_limit_is_configurable():
    data = encode("PNG", size=(20, 10))
    assert decode_image_batch(tf.constant([data]), (4, 4), max_pixels=200).shape[0] == 1
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"at most\W+199"):
        decode_image_batch(tf.constant([data]), (4, 4), max_pixels=199)
