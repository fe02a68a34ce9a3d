"""A real 2x2 PNG, for reader tests whose image files must pass the readers' image check."""

import io
import pathlib

import numpy as np
from PIL import Image


def _png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((2, 2, 3), 127, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


TINY_PNG = _png_bytes()


def write_png(path: pathlib.Path) -> pathlib.Path:
    """Write `TINY_PNG` to `path` (parents made); returns `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(TINY_PNG)
    return path
