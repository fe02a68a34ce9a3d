import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from xmodal_keras.data.image_preprocessing import decode_image, find_bad_images, load_image

SHAPE = (12, 16)


def smooth_rgb(height=24, width=32, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (height + width)], -1)
    image = image + rng.integers(-20, 20, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def save(image: Image.Image, path, **kwargs):
    image.save(path, **kwargs)
    return str(path)


def decode_file(path, shape=SHAPE):
    return decode_image(tf.io.read_file(str(path)), shape).numpy()


def test_shape_dtype_and_jpeg_close_to_pil(tmp_path):
    array = smooth_rgb()
    path = save(Image.fromarray(array), tmp_path / "a.jpg", quality=95)
    image = decode_image(tf.io.read_file(path), SHAPE)
    assert image.dtype == tf.uint8
    assert image.shape == (12, 16, 3)
    with Image.open(path) as pil_image:
        pil = np.asarray(pil_image.convert("RGB").resize((16, 12), Image.BILINEAR))
    diff = np.abs(image.numpy().astype(int) - pil.astype(int))
    assert diff.mean() < 3.0
    assert diff.max() < 40


def test_lossless_formats_decode_identically(tmp_path):
    array = smooth_rgb()
    rgb = Image.fromarray(array)
    png = decode_file(save(rgb, tmp_path / "rgb.png"))
    bmp = decode_file(save(rgb, tmp_path / "rgb.bmp"))
    np.testing.assert_array_equal(png, bmp)
    # RGBA: the alpha channel is dropped (not blended)
    alpha = np.full(array.shape[:2] + (1,), 7, np.uint8)
    rgba = decode_file(
        save(Image.fromarray(np.concatenate([array, alpha], -1)), tmp_path / "a.png")
    )
    np.testing.assert_array_equal(rgba, png)


def test_grayscale_replicated(tmp_path):
    gray = smooth_rgb()[..., 0]
    decoded = decode_file(save(Image.fromarray(gray, mode="L"), tmp_path / "g.png"))
    assert decoded.shape == (12, 16, 3)
    np.testing.assert_array_equal(decoded[..., 0], decoded[..., 1])
    np.testing.assert_array_equal(decoded[..., 0], decoded[..., 2])
    as_rgb = decode_file(save(Image.fromarray(np.stack([gray] * 3, -1)), tmp_path / "g3.png"))
    np.testing.assert_array_equal(decoded, as_rgb)


def test_palette_png(tmp_path):
    palette_image = Image.fromarray(smooth_rgb()).quantize(colors=16)
    assert palette_image.mode == "P"
    decoded = decode_file(save(palette_image, tmp_path / "p.png"))
    expected = decode_file(save(palette_image.convert("RGB"), tmp_path / "p_rgb.png"))
    np.testing.assert_array_equal(decoded, expected)


def test_gif_first_frame(tmp_path):
    first = np.zeros((24, 32, 3), np.uint8)
    first[:, :16] = (255, 0, 0)
    first[:, 16:] = (0, 0, 255)
    second = np.full((24, 32, 3), (0, 255, 0), np.uint8)
    frames = [Image.fromarray(first), Image.fromarray(second)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    with Image.open(path) as gif:
        assert gif.n_frames == 2
    decoded = decode_file(path, shape=(24, 32))
    assert decoded.shape == (24, 32, 3)
    np.testing.assert_array_equal(decoded, first)


def test_load_image_str_and_tensor(tmp_path):
    path = save(Image.fromarray(smooth_rgb()), tmp_path / "x.png")
    eager = load_image(path, SHAPE).numpy()
    in_graph = next(
        iter(tf.data.Dataset.from_tensors(tf.constant(path)).map(lambda p: load_image(p, SHAPE)))
    )
    assert in_graph.shape == (12, 16, 3)  # static shape inside the graph
    np.testing.assert_array_equal(in_graph.numpy(), eager)


def test_bad_image_shape():
    with pytest.raises(ValueError, match=r"Received: image_shape=\(0, 4\)"):
        decode_image(tf.constant(b""), (0, 4))
    with pytest.raises(ValueError, match="Received: image_shape=64"):
        decode_image(tf.constant(b""), 64)


def test_find_bad_images(tmp_path):
    good = save(Image.fromarray(smooth_rgb()), tmp_path / "good.jpg", quality=90)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.png"
    text.write_text("not an image at all")
    truncated = tmp_path / "truncated.jpg"
    with open(good, "rb") as file:
        data = file.read()
    truncated.write_bytes(data[: len(data) * 2 // 3])  # header intact, pixel data cut
    tiff = save(Image.fromarray(smooth_rgb()), tmp_path / "x.tiff")
    missing = str(tmp_path / "missing.png")
    paths = [good, str(empty), str(text), str(truncated), tiff, missing, good, str(text)]

    header = dict(find_bad_images(paths, mode="header"))
    assert header == {
        str(empty): "empty file",
        str(text): "not an image (PIL: cannot identify image file)",
        tiff: "unsupported image format TIFF (TensorFlow decodes JPEG, PNG, GIF, BMP, WEBP)",
        missing: "file not found",
    }
    assert len(find_bad_images(paths, mode="header")) == 4  # duplicates reported once

    decode = dict(find_bad_images(paths, mode="decode"))
    assert set(decode) == set(header) | {str(truncated)}
    assert decode[str(truncated)].startswith("corrupt image (PIL: ")
    assert find_bad_images(paths, mode="none") == []
    assert find_bad_images([good]) == []
    with pytest.raises(ValueError, match="Received: mode='full'"):
        find_bad_images(paths, mode="full")
