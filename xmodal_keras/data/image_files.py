"""Is this path a usable image file? Checked without ever opening what is not a regular file.

`file_problem` looks at `os.stat` only (a FIFO opened for reading blocks until a writer
comes: never open one); `image_file_problem` then reads the first bytes of a regular file
and checks the signature of a format TensorFlow decodes. The readers call these for every
path; `find_unusable_images` adds `find_bad_images` on the files that pass (PIL header
check; in "decode" mode the full decode training does), and `preflight_images` is the one
check every trainer runs on its images before training.

Example:

>>> import os, pathlib, tempfile
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> os.mkfifo(folder / "pipe.png")
>>> file_problem(folder / "pipe.png")
'a FIFO (named pipe), not a regular file'
>>> _ = (folder / "notes.png").write_text("hello")
>>> image_file_problem(folder / "notes.png")
'not a JPEG, PNG, GIF, BMP or WEBP image (by its first bytes)'
>>> image_file_problem(folder)
'a directory'
"""

import concurrent.futures
import errno
import os
import stat
from collections.abc import Iterable

import pandas as pd

from xmodal_keras.data.image_preprocessing import find_bad_images
from xmodal_keras.data.validation import DataValidationError, ProblemCollector

NOT_FOUND = "no such file"
IMAGE_FORMATS_TEXT = "a JPEG, PNG, GIF, BMP or WEBP image"
_SIGNATURE_BYTES = 12


def file_problem(path: str | os.PathLike) -> str | None:
    """Why `path` is not a regular file (following symlinks), or None; never opens it."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return NOT_FOUND  # also a symlink to nothing
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "a symlink loop"
        if error.errno == errno.ENOTDIR:
            return NOT_FOUND  # a folder in the path is a file
        return f"unreadable ({error.strerror})"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe), not a regular file"
    if stat.S_ISSOCK(mode):
        return "a socket, not a regular file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device, not a regular file"
    return "not a regular file"


def _is_image_signature(head: bytes) -> bool:
    return head.startswith(
        (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")
    ) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def image_file_problem(path: str | os.PathLike) -> str | None:
    """Why `path` is not an image file TensorFlow decodes (by its first bytes), or None.

    The file is opened only when `os.stat` says it is a regular file, and then without
    blocking (`O_NONBLOCK`) and checked again, so a file swapped for a FIFO cannot hang.
    """
    reason = file_problem(path)
    if reason is not None:
        return reason
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as error:
        return f"unreadable ({error.strerror})"
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            return "not a regular file"
        head = os.read(descriptor, _SIGNATURE_BYTES)
    except OSError as error:
        return f"unreadable ({error.strerror})"
    finally:
        os.close(descriptor)
    if not head:
        return "an empty file"
    if not _is_image_signature(head):
        return f"not {IMAGE_FORMATS_TEXT} (by its first bytes)"
    return None


def find_unusable_images(
    paths: Iterable[str | os.PathLike], mode: str = "decode", max_workers: int | None = None
) -> list[tuple[str, str]]:
    """`(path, reason)` for each path that is no usable image, in order, each path once.

    `image_file_problem` first (no FIFO, directory or device is ever opened), then
    `find_bad_images(..., mode=mode)` on the regular image files.

    Args:
        paths: image file paths.
        mode: `find_bad_images` mode: "decode" (as training decodes), "header" or "none"
            (`image_file_problem` only). Defaults to "decode".
        max_workers: thread count. Defaults to `find_bad_images`' default.
    """
    unique_paths = list(dict.fromkeys(os.fspath(path) for path in paths))
    if max_workers is None:
        max_workers = min(32, (os.cpu_count() or 1) + 4)
    with concurrent.futures.ThreadPoolExecutor(max_workers=max_workers) as pool:
        reasons = dict(zip(unique_paths, pool.map(image_file_problem, unique_paths), strict=True))
    regular = [path for path, reason in reasons.items() if reason is None]
    reasons.update(find_bad_images(regular, mode=mode, max_workers=max_workers))
    return [(path, reasons[path]) for path in unique_paths if reasons[path] is not None]


def preflight_images(frame: pd.DataFrame, *, source: str, mode: str = "decode") -> None:
    """Check every image of a caption or pair frame before training; raise on bad ones.

    The one image check of every trainer (captioner, retrieval, fusion): a training run
    never starts on a directory, FIFO, non-image, corrupt or truncated file.

    Args:
        frame: a frame with an `image_path` column (all splits: val and test images are
            read after training).
        source: the data's name in the error (its path).
        mode: `find_unusable_images` mode. Defaults to "decode".

    Raises:
        DataValidationError: listing every bad image and why.
    """
    problems = ProblemCollector()
    for path, reason in find_unusable_images(frame["image_path"].astype(str), mode=mode):
        problems.add(path, None, None, IMAGE_FORMATS_TEXT, reason)
    if problems:
        raise DataValidationError(f"the images of {source}", problems.problems)
