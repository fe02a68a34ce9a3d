"""Header-checked decoding of untrusted image bytes (the serving graphs' image input)."""

import functools
import io
import re

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from xmodal_keras.data.image_header import checked_image
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


@functools.cache
def graph_decoder(size: tuple[int, int], **options) -> tf.types.experimental.PolymorphicFunction:
    """`decode_image_batch` in a `tf.function`, as the serving graphs run it. One per
    settings for the whole module: each batch shape traces once (~3 s), not once a test."""
    return tf.function(lambda batch: decode_image_batch(batch, size, **options))


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
    decode = graph_decoder((8, 8), max_pixels=10_000)
    with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape(message)):
        decode(tf.constant([encode("PNG"), data]))


def test_pixel_limit_is_configurable():
    data = encode("PNG", size=(20, 10))
    assert decode_image_batch(tf.constant([data]), (4, 4), max_pixels=200).shape[0] == 1
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"at most\W+199"):
        decode_image_batch(tf.constant([data]), (4, 4), max_pixels=199)


def gif_bytes(*frames: np.ndarray) -> bytes:
    images = [Image.fromarray(frame).convert("P") for frame in frames]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], loop=0)
    return buffer.getvalue()


def noise(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)


def test_a_gif_frame_larger_than_its_screen_is_refused():
    data = bytearray(gif_bytes(noise(120, 100)))
    data[6:10] = (1).to_bytes(2, "little") * 2  # logical screen 1 x 1, frame still 100 x 120
    decode = graph_decoder((8, 8), max_pixels=10_000)
    message = "image 1 of the request] [first GIF frame is] [100] [x] [120]"
    with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape(message)):
        decode(tf.constant([encode("PNG"), bytes(data)]))


def test_only_the_first_gif_frame_reaches_the_decoder():
    first = noise(24, 32)
    data = gif_bytes(first, noise(24, 32, seed=1), noise(24, 32, seed=2))
    decodable = checked_image(tf.constant(data), max_pixels=1000)["bytes"].numpy()
    with Image.open(io.BytesIO(decodable)) as gif:
        assert gif.n_frames == 1  # TF's GIF decoder decodes every frame it is given
        np.testing.assert_array_equal(np.asarray(gif.convert("RGB")), first_frame(data))
    assert decodable[:-1] == data[: len(decodable) - 1] and decodable[-1:] == b"\x3b"
    batch = decode_image_batch(tf.constant([data]), (24, 32)).numpy()
    np.testing.assert_array_equal(batch[0], first_frame(data))


def first_frame(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as gif:
        return np.asarray(gif.convert("RGB"))


def test_a_gif_cut_inside_its_first_frame_is_named():
    data = gif_bytes(noise(24, 32))
    with pytest.raises(tf.errors.InvalidArgumentError, match="is a truncated or malformed GIF"):
        decode_image_batch(tf.constant([data[: len(data) // 2]]), (8, 8))


@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "BMP"])
def test_a_truncated_file_names_the_image(image_format):
    data = encode(image_format, size=(40, 30))
    truncated = data[: len(data) * 2 // 3]
    decode = graph_decoder((8, 8))
    message = f"image 2 of the request] [is a truncated] [{image_format}] [file: its]"
    with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape(message)):
        decode(tf.constant([data, data, truncated, data]))


def test_data_after_a_jpeg_end_marker_is_accepted():
    data = encode("JPEG", size=(40, 30))
    with_video = data + b"ftypmp42 a motion photo's video" + bytes(100)
    batch = decode_image_batch(tf.constant([data, with_video]), (8, 8)).numpy()
    np.testing.assert_array_equal(batch[0], batch[1])


def test_an_empty_batch_decodes_to_no_images():
    decode = tf.function(
        lambda batch: decode_image_batch(batch, (8, 6)),
        input_signature=[tf.TensorSpec([None], tf.string)],
    )
    assert decode(tf.constant([], tf.string)).shape == (0, 8, 6, 3)


def test_serving_decode_turns_jpegs_by_their_exif_orientation():
    image = Image.fromarray(noise(6, 10))
    exif = image.getexif()
    exif[0x0112] = 6  # stored landscape, to be seen rotated 90 degrees clockwise
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif.tobytes())
    turned = decode_image_batch(tf.constant([buffer.getvalue()]), (10, 6)).numpy()[0]
    stored = tf.io.decode_jpeg(buffer.getvalue()).numpy()
    np.testing.assert_array_equal(turned, np.rot90(stored, k=-1))
