import io
import pathlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from xmodal_keras.data import image_preprocessing
from xmodal_keras.data.image_preprocessing import (
    decode_image,
    find_bad_images,
    load_image,
    read_image_files,
)

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
    with pytest.raises(ValueError, match=r"Received: image_size=\(0, 4\)"):
        decode_image(tf.constant(b""), (0, 4))
    with pytest.raises(ValueError, match="Received: image_size=64"):
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
    assert decode[str(truncated)] == (
        "cannot be decoded (JPEG: jpeg::Uncompress failed. Invalid JPEG data or crop window.)"
    )
    assert find_bad_images(paths, mode="none") == []
    assert find_bad_images([good]) == []
    with pytest.raises(ValueError, match="Received: mode='full'"):
        find_bad_images(paths, mode="full")


def test_decoding_in_threads_traces_the_decoder_once(tmp_path, caplog):
    paths = [
        save(Image.fromarray(smooth_rgb(seed=seed)), tmp_path / f"{seed}.png") for seed in range(16)
    ]
    image_preprocessing._tf_decoder.cache_clear()  # untraced, as in a fresh process
    with caplog.at_level("WARNING", logger="tensorflow"):
        assert find_bad_images(paths, mode="decode", max_workers=8) == []
    assert image_preprocessing._tf_decoder().experimental_get_tracing_count() == 1
    assert not [record for record in caplog.records if "retracing" in record.getMessage()]


def jpeg_with_orientation(path, orientation: int, *, big_endian: bool = False) -> str:
    """A 24 x 32 JPEG whose EXIF says how to turn it (IFD0 tag 0x0112)."""
    if big_endian:  # Pillow writes "II"; the same IFD by hand in "MM" byte order
        entry = (0x0112).to_bytes(2, "big") + (3).to_bytes(2, "big") + (1).to_bytes(4, "big")
        ifd = (1).to_bytes(2, "big") + entry + orientation.to_bytes(2, "big") + bytes(6)
        exif = b"Exif\0\0MM\0*" + (8).to_bytes(4, "big") + ifd
    else:
        exif = Image.Exif()
        exif[0x0112] = orientation
        exif = exif.tobytes()
    return save(Image.fromarray(smooth_rgb()), path, quality=95, exif=exif)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_like_pil(tmp_path, orientation):
    from PIL import ImageOps

    path = jpeg_with_orientation(tmp_path / "photo.jpg", orientation)
    with Image.open(path) as image:
        assert image.getexif()[0x0112] == orientation
        expected = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    decoded = decode_file(path, shape=expected.shape[:2])  # same size: no resampling
    assert decoded.shape == expected.shape
    diff = np.abs(decoded.astype(int) - expected.astype(int))
    assert diff.mean() < 3.0, orientation  # JPEG decoders differ a little; a wrong turn a lot


def test_exif_orientation_in_big_endian_tiff(tmp_path):
    path = jpeg_with_orientation(tmp_path / "mm.jpg", 6, big_endian=True)
    stored = decode_file(jpeg_with_orientation(tmp_path / "ii.jpg", 1), shape=(24, 32))
    np.testing.assert_array_equal(decode_file(path, shape=(32, 24)), np.rot90(stored, k=-1))


def oversized_png(path, width: int, height: int) -> str:
    """A valid 4 x 4 PNG whose header claims `width` x `height` pixels."""
    buffer = io.BytesIO()
    Image.fromarray(smooth_rgb(4, 4)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    pathlib.Path(path).write_bytes(bytes(data))
    return str(path)


def test_read_image_files_checks_headers_and_reports_each_bad_file(tmp_path):
    good = save(Image.fromarray(smooth_rgb()), tmp_path / "good.png")
    bomb = oversized_png(tmp_path / "bomb.png", 20_000, 20_000)  # 400 megapixels
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(pathlib.Path(good).read_bytes()[:200])
    images, failures = read_image_files([good, bomb, str(truncated), good], SHAPE)
    np.testing.assert_array_equal(images[0], decode_file(good))
    assert images[1] is None and images[2] is None and images[3] is not None
    assert failures[0] == (
        bomb,
        "image header says 20000 x 20000 pixels; expected a positive size of at most "
        "40000000 pixels",
    )
    assert failures[1][0] == str(truncated) and len(failures) == 2


def test_find_bad_images_decodes_by_default_with_a_progress_bar(tmp_path, capsys):
    good = save(Image.fromarray(smooth_rgb()), tmp_path / "good.jpg", quality=90)
    truncated = tmp_path / "cut.jpg"
    data = pathlib.Path(good).read_bytes()
    truncated.write_bytes(data[: len(data) * 2 // 3])
    assert find_bad_images([good, str(truncated)], mode="header") == []  # PIL verify passes it
    bad = find_bad_images([good, str(truncated)], progress=True)
    assert [path for path, _ in bad] == [str(truncated)]
    assert bad[0][1].startswith("cannot be decoded (JPEG: jpeg::Uncompress failed")
    assert "Checking 2 image files (decode)" in capsys.readouterr().out
