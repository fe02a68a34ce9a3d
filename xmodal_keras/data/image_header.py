"""Reading encoded image files with core TensorFlow ops, before (and around) decoding.

One place for what the training pipeline, the serving graphs and the CLIs read from an
image file's bytes, so the three see the same pixels and the same limits:

- `checked_image`: format and size from the header, checked *before* anything is decoded
  (a GIF's logical screen and its first frame's descriptor both count), plus the bytes to
  hand the decoder (a GIF cut after its first frame, so later frames are never decoded),
  once the file is found whole (a truncated JPEG, PNG, BMP or GIF is named as such);
- `first_gif_frame`: that cut alone (TF's GIF decoder decodes every frame, even when it
  returns only the first);
- `exif_orientation` / `apply_orientation`: the EXIF orientation tag of a JPEG (APP1
  "Exif" segment, TIFF IFD0, tag 0x0112) and the flip / rotation it asks for.

Every read is bounds-checked (a byte past the end reads as -1) and every loop advances
at least one byte per step, so a hostile file cannot make them run forever. A failed
check is a `tf.debugging.Assert`: an `InvalidArgument` error naming the image and what
was wrong.

Example:

>>> import io
>>> import numpy as np
>>> from PIL import Image
>>> buffer = io.BytesIO()
>>> Image.fromarray(np.zeros((8, 6, 3), np.uint8)).save(buffer, format="PNG")
>>> checked = checked_image(tf.constant(buffer.getvalue()), max_pixels=100)
>>> checked["size"].numpy().tolist(), checked["format"].numpy()
([6, 8], b'PNG')
"""

import tensorflow as tf

DEFAULT_MAX_PIXELS = 40_000_000
SUPPORTED_FORMATS = ("JPEG", "PNG", "GIF", "BMP")
# (format, magic bytes at offset 0, header bytes needed to read width and height)
_SIGNATURES = (
    ("JPEG", b"\xff\xd8\xff", 3),
    ("PNG", b"\x89PNG\r\n\x1a\n", 24),
    ("GIF", b"GIF8", 10),
    ("BMP", b"BM", 26),
)
_GIF = SUPPORTED_FORMATS.index("GIF")
_EXIF_ORIENTATION_TAG = 0x0112
_MAX_IFD_ENTRIES = 64
_EXIF_SEGMENTS = 4


class _Bytes:
    """Bounds-checked reads of a scalar `tf.string`: a byte past the end reads as -1."""

    def __init__(self, data: tf.Tensor):
        self.values = tf.io.decode_raw(data, tf.uint8)
        self.size = tf.size(self.values, out_type=tf.int64)
        self._padded = tf.concat([self.values, tf.zeros([1], tf.uint8)], 0)

    def byte(self, offset) -> tf.Tensor:
        offset = tf.convert_to_tensor(offset, tf.int64)
        inside = tf.logical_and(offset >= 0, offset < self.size)
        value = tf.cast(tf.gather(self._padded, tf.where(inside, offset, self.size)), tf.int64)
        return tf.where(inside, value, -1)

    def uint(self, offset, length: int, big_endian) -> tf.Tensor:
        """Unsigned `length`-byte integer(s) at `offset` (scalar or vector of offsets)."""
        offset = tf.convert_to_tensor(offset, tf.int64)
        values = self.byte(offset[..., None] + tf.range(length, dtype=tf.int64))
        little = tf.constant([8 * i for i in range(length)], tf.int64)
        low_first = tf.reduce_sum(tf.bitwise.left_shift(values, little), -1)
        high_first = tf.reduce_sum(tf.bitwise.left_shift(values, tf.reverse(little, [0])), -1)
        return tf.where(big_endian, high_first, low_first)


def _signed32(data: _Bytes, offset: int) -> tf.Tensor:
    value = data.uint(offset, 4, big_endian=False)
    return tf.where(value >= 2**31, value - 2**32, value)


def _format_index(image_bytes: tf.Tensor) -> tf.Tensor:
    """int32 index into `SUPPORTED_FORMATS` of the file's magic bytes, or -1."""
    size = tf.strings.length(image_bytes)
    matches = tf.stack(
        [
            tf.logical_and(
                tf.equal(tf.strings.substr(image_bytes, 0, len(magic)), magic), size >= needed
            )
            for _, magic, needed in _SIGNATURES
        ]
    )
    index = tf.argmax(tf.cast(matches, tf.int32), output_type=tf.int32)
    return tf.where(tf.reduce_any(matches), index, -1)


def _width_height(image_bytes: tf.Tensor, data: _Bytes, format_index: tf.Tensor) -> tf.Tensor:
    """int64 `[width, height]` read from the header of the format at `format_index`."""

    def jpeg():
        shape = tf.cast(tf.image.extract_jpeg_shape(image_bytes), tf.int64)
        return tf.stack([shape[1], shape[0]])

    def png():
        return tf.stack([data.uint(16, 4, True), data.uint(20, 4, True)])

    def gif():
        return tf.stack([data.uint(6, 2, False), data.uint(8, 2, False)])

    def bmp():
        # A bottom-up BMP stores a positive height, a top-down one a negative height.
        return tf.stack([_signed32(data, 18), tf.abs(_signed32(data, 22))])

    return tf.switch_case(format_index, [jpeg, png, gif, bmp])


def _skip_sub_blocks(data: _Bytes, offset: tf.Tensor) -> tf.Tensor:
    """Offset just after the 0 terminator of the GIF sub-blocks starting at `offset`
    (past the end, `> size`, when the terminator is missing)."""
    (offset,) = tf.while_loop(
        lambda at: tf.logical_and(at < data.size, data.byte(at) > 0),
        lambda at: (at + data.byte(at) + 1,),
        (offset,),
    )
    return offset + 1


def _color_table_size(packed: tf.Tensor) -> tf.Tensor:
    present = tf.bitwise.bitwise_and(packed, 0x80) > 0
    entries = tf.bitwise.left_shift(tf.constant(2, tf.int64), tf.bitwise.bitwise_and(packed, 7))
    return tf.where(present, 3 * entries, 0)


def _gif_first_frame(data: _Bytes) -> dict[str, tf.Tensor]:
    """The first image descriptor of a GIF: its extent (`left + width`, `top + height`),
    size, and the offset just after its data (`end`); `complete` when all were found."""
    start = 13 + _color_table_size(data.byte(10))
    # Extension blocks (0x21, label, sub-blocks) until the first image descriptor (0x2C).
    (descriptor,) = tf.while_loop(
        lambda at: tf.equal(data.byte(at), 0x21),
        lambda at: (_skip_sub_blocks(data, at + 2),),
        (start,),
    )
    left, top = data.uint(descriptor + 1, 2, False), data.uint(descriptor + 3, 2, False)
    width, height = data.uint(descriptor + 5, 2, False), data.uint(descriptor + 7, 2, False)
    pixels_start = descriptor + 10 + _color_table_size(data.byte(descriptor + 9))
    end = _skip_sub_blocks(data, pixels_start + 1)  # after the LZW minimum code size byte
    complete = tf.logical_and(tf.equal(data.byte(descriptor), 0x2C), end <= data.size)
    return {
        "extent": tf.stack([left + width, top + height]),
        "size": tf.stack([width, height]),
        "end": end,
        "complete": complete,
    }


def _cut_after(image_bytes: tf.Tensor, end: tf.Tensor) -> tf.Tensor:
    """The GIF's bytes up to `end`, closed with the trailer byte (0x3B)."""
    return tf.strings.join([tf.strings.substr(image_bytes, tf.constant(0, tf.int64), end), "\x3b"])


def first_gif_frame(image_bytes: tf.Tensor) -> tf.Tensor:
    """A GIF's bytes cut after its first frame (other files, and GIFs whose first frame
    cannot be found, are returned unchanged), so the decoder decodes one frame only."""
    image_bytes = tf.convert_to_tensor(image_bytes, tf.string)

    def cut():
        frame = _gif_first_frame(_Bytes(image_bytes))
        return tf.cond(
            frame["complete"], lambda: _cut_after(image_bytes, frame["end"]), lambda: image_bytes
        )

    return tf.cond(tf.equal(_format_index(image_bytes), _GIF), cut, lambda: image_bytes)


def _where(position) -> tf.Tensor:
    if position is None:
        return tf.constant("image")
    return tf.strings.format("image {} of the request", position)


def checked_image(image_bytes: tf.Tensor, max_pixels: int, *, position=None) -> dict:
    """Assert that scalar `image_bytes` is a JPEG/PNG/GIF/BMP of at most `max_pixels`.

    Only headers are read before the size check: the file's, and for a GIF its first
    frame's descriptor (a frame may be larger than the GIF's logical screen). Then the
    file is checked to be whole (a JPEG's end-of-image marker after its scan, a PNG's
    chunks up to IEND, an uncompressed BMP's rows, a GIF's first frame), so a truncated
    file is named, not left to a decoder error that names no image. `position` (int
    scalar tensor) names the image in errors.

    Returns:
        `{"size": int64 [width, height], "format": "JPEG"|"PNG"|"GIF"|"BMP", "bytes": what
        to decode}` (a GIF cut after its first frame); run the decoder on `"bytes"`.
    """
    image_bytes = tf.convert_to_tensor(image_bytes, tf.string)
    where = _where(position)
    size = tf.strings.length(image_bytes)
    format_index = _format_index(image_bytes)
    problem = tf.where(
        size > 0,
        "is not a supported image: expected JPEG, PNG, GIF or BMP bytes (or the header is "
        "truncated); its first bytes (decimal) are",
        "is empty (0 bytes)",
    )
    first_bytes = tf.io.decode_raw(tf.strings.substr(image_bytes, 0, 8), tf.uint8)
    known = tf.debugging.Assert(format_index >= 0, [where, problem, first_bytes], summarize=8)
    with tf.control_dependencies([known]):
        data = _Bytes(image_bytes)
        width_height = _width_height(image_bytes, data, tf.maximum(format_index, 0))
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

    def checked_gif():
        frame = _gif_first_frame(data)
        found = tf.debugging.Assert(
            frame["complete"],
            [
                where,
                "is a truncated or malformed GIF: no complete first frame in its",
                size,
                "bytes",
            ],
        )
        with tf.control_dependencies([found]):
            extent_pixels = frame["extent"][0] * frame["extent"][1]
        fits = tf.debugging.Assert(
            tf.logical_and(tf.reduce_all(frame["size"] > 0), extent_pixels <= max_pixels),
            [
                where,
                "first GIF frame is",
                frame["size"][0],
                "x",
                frame["size"][1],
                "pixels, reaching",
                frame["extent"][0],
                "x",
                frame["extent"][1],
                "pixels; expected a positive size of at most",
                max_pixels,
                "pixels",
            ],
        )
        with tf.control_dependencies([fits]):
            return _cut_after(image_bytes, frame["end"])

    def checked_other():
        complete = tf.switch_case(
            format_index,
            [
                lambda: _jpeg_complete(data),
                lambda: _png_complete(data),
                lambda: tf.constant(True),  # a GIF is checked frame by frame
                lambda: _bmp_complete(data, width_height),
            ],
        )
        whole = tf.debugging.Assert(
            complete,
            [where, "is a truncated", image_format, "file: its", size, "bytes end inside it"],
        )
        with tf.control_dependencies([whole]):
            return tf.identity(image_bytes)

    image_format = tf.gather(tf.constant(SUPPORTED_FORMATS), tf.maximum(format_index, 0))
    with tf.control_dependencies([check]):
        decodable = tf.cond(tf.equal(format_index, _GIF), checked_gif, checked_other)
        return {"size": tf.identity(width_height), "format": image_format, "bytes": decodable}


def _jpeg_scan_offset(data: _Bytes) -> tf.Tensor:
    """Offset of a JPEG's first scan (SOS) marker, or -1: walks the marker segments from
    the start of the file; every step moves on at least one byte."""

    def more(at, scan):
        return tf.reduce_all([scan < 0, tf.equal(data.byte(at), 0xFF), at + 4 <= data.size])

    def step(at, scan):
        marker = data.byte(at + 1)
        standalone = tf.logical_or(
            tf.logical_or(tf.equal(marker, 0x01), tf.equal(marker, 0xD8)),
            tf.logical_and(marker >= 0xD0, marker <= 0xD7),
        )
        next_at = tf.where(
            tf.equal(marker, 0xFF),
            at + 1,  # a fill byte
            tf.where(standalone, at + 2, at + 2 + data.uint(at + 2, 2, True)),
        )
        next_at = tf.where(tf.equal(marker, 0xD9), data.size, next_at)  # image ends: no scan
        return next_at, tf.where(tf.equal(marker, 0xDA), at, scan)

    _, scan = tf.while_loop(
        more, step, (tf.constant(2, tf.int64), tf.constant(-1, tf.int64)), parallel_iterations=1
    )
    return scan


def _jpeg_complete(data: _Bytes) -> tf.Tensor:
    """An end-of-image marker (FF D9) after the first scan: scan data holds no FF D9 (an
    FF byte there is stuffed as FF 00), so a file cut short has none. The file's last two
    bytes first; the segment walk and search only when they are not the marker (data
    after it, such as a motion photo's video, or a file cut short)."""

    def search():
        scan = _jpeg_scan_offset(data)
        after_scan = data.values[tf.maximum(scan, 0) :]
        found = tf.reduce_any(
            tf.logical_and(tf.equal(after_scan[:-1], 0xFF), tf.equal(after_scan[1:], 0xD9))
        )
        return tf.logical_and(scan >= 0, found)

    ends_with_marker = tf.logical_and(
        tf.equal(data.byte(data.size - 2), 0xFF), tf.equal(data.byte(data.size - 1), 0xD9)
    )
    return tf.cond(ends_with_marker, lambda: tf.constant(True), search)


def _jpeg_exif_offset(data: _Bytes) -> tf.Tensor:
    """Offset of the TIFF header in a JPEG's APP1 "Exif\\0\\0" segment, or -1. Looks at
    the first `_EXIF_SEGMENTS` segments, unrolled (no loop): the Exif standard puts the
    segment right after the start-of-image marker, JFIF files after their APP0."""
    exif_name = tf.constant(list(b"Exif\0\0"), tf.int64)
    at = tf.constant(2, tf.int64)
    found = tf.constant(-1, tf.int64)
    for _ in range(_EXIF_SEGMENTS):
        is_exif = tf.reduce_all(
            [
                found < 0,
                tf.equal(data.byte(at), 0xFF),
                tf.equal(data.byte(at + 1), 0xE1),
                tf.reduce_all(tf.equal(data.byte(at + 4 + tf.range(6, dtype=tf.int64)), exif_name)),
            ]
        )
        found = tf.where(is_exif, at + 10, found)
        at = at + 2 + data.uint(at + 2, 2, True)
    return found


def _png_complete(data: _Bytes) -> tf.Tensor:
    """The chunks (length, type, data, CRC) from byte 8 reach an IEND chunk in the file."""
    iend = int.from_bytes(b"IEND", "big")

    def more(at, done):
        return tf.logical_and(tf.logical_not(done), at + 12 <= data.size)

    def step(at, done):
        length = data.uint(at, 4, True)
        return at + 12 + length, tf.equal(data.uint(at + 4, 4, True), iend)

    end, done = tf.while_loop(more, step, (tf.constant(8, tf.int64), tf.constant(False)))
    return tf.logical_and(done, end <= data.size)


def _bmp_complete(data: _Bytes, width_height: tf.Tensor) -> tf.Tensor:
    """An uncompressed BMP holds all its rows (rows padded to 4 bytes); others pass."""
    bits = data.uint(28, 2, False)
    compression = data.uint(30, 4, False)
    row_bytes = (bits * width_height[0] + 31) // 32 * 4
    needed = data.uint(10, 4, False) + row_bytes * width_height[1]
    uncompressed = tf.logical_or(tf.equal(compression, 0), tf.equal(compression, 3))
    return tf.logical_or(tf.logical_not(uncompressed), needed <= data.size)


def _orientation_from_tiff(data: _Bytes, tiff: tf.Tensor) -> tf.Tensor:
    order = data.byte(tiff)
    big_endian = tf.equal(order, 0x4D)  # "MM"; "II" is little-endian
    known_order = tf.logical_and(
        tf.equal(order, data.byte(tiff + 1)),
        tf.logical_or(big_endian, tf.equal(order, 0x49)),
    )
    ifd = tiff + data.uint(tiff + 4, 4, big_endian)
    count = data.uint(ifd, 2, big_endian)
    index = tf.range(_MAX_IFD_ENTRIES, dtype=tf.int64)
    entries = ifd + 2 + 12 * index
    match = tf.reduce_all(
        [
            index < count,
            entries + 12 <= data.size,
            tf.equal(data.uint(entries, 2, big_endian), _EXIF_ORIENTATION_TAG),
            tf.equal(data.uint(entries + 2, 2, big_endian), 3),  # SHORT
        ],
        axis=0,
    )
    value = tf.gather(data.uint(entries + 8, 2, big_endian), tf.argmax(tf.cast(match, tf.int32)))
    valid = tf.reduce_all([known_order, tf.reduce_any(match), value >= 1, value <= 8])
    return tf.cast(tf.where(valid, value, 1), tf.int32)


def exif_orientation(image_bytes: tf.Tensor) -> tf.Tensor:
    """int32 EXIF orientation (1..8) of a JPEG's bytes; 1 (as stored) when the file is not
    a JPEG, has no EXIF segment or no valid orientation tag."""
    image_bytes = tf.convert_to_tensor(image_bytes, tf.string)

    def from_jpeg():
        data = _Bytes(image_bytes)
        tiff = _jpeg_exif_offset(data)
        return tf.cond(
            tiff >= 0,
            lambda: _orientation_from_tiff(data, tiff),
            lambda: tf.constant(1, tf.int32),
        )

    is_jpeg = tf.equal(_format_index(image_bytes), SUPPORTED_FORMATS.index("JPEG"))
    return tf.cond(is_jpeg, from_jpeg, lambda: tf.constant(1, tf.int32))


def apply_orientation(image: tf.Tensor, orientation: tf.Tensor) -> tf.Tensor:
    """`[H, W, C]` image as stored -> as meant to be seen, for EXIF `orientation` 1..8
    (what `PIL.ImageOps.exif_transpose` does); other values leave it unchanged.

    Plain `tf.reverse` / `tf.transpose` (the `tf.image` helpers add rank asserts)."""

    def transposed():
        return tf.transpose(image, [1, 0, 2])

    branches = [
        lambda: image,
        lambda: tf.reverse(image, [1]),  # mirrored left-right
        lambda: tf.reverse(image, [0, 1]),  # rotated 180
        lambda: tf.reverse(image, [0]),  # mirrored top-bottom
        transposed,  # mirrored along the main diagonal
        lambda: tf.reverse(transposed(), [1]),  # rotated 90 clockwise to view
        lambda: tf.reverse(transposed(), [0, 1]),  # mirrored along the other diagonal
        lambda: tf.reverse(transposed(), [0]),  # rotated 90 counter-clockwise to view
    ]
    index = tf.where((orientation >= 1) & (orientation <= 8), orientation - 1, 0)
    return tf.switch_case(tf.cast(index, tf.int32), branches)
