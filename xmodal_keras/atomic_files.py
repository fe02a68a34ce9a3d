"""Write a file so that readers see all of it or none: a staging sibling, then one rename.

Every file the package writes for others to read (run settings, the vocabulary,
`model.keras`, history, metrics, PNGs, retrieval indexes, serving configs, TFRecord
manifests) goes through `atomic_write`:

- the bytes go to a hidden staging file beside the target (`.NAME.tmp-XXXXXXXX`), on the
  same file system, renamed over the target with `os.replace` at the end;
- the staging file is made with `os.open(..., 0o666)`, so it gets the mode the umask gives
  (0644 under the usual 022), not `mkstemp`'s 0600: a server running as another user can
  read what was written;
- on any exception the staging file is removed and the target is left as it was.

Example:

>>> import pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "settings.json"
>>> atomic_write_text(path, "{}\\n").read_text()
'{}\\n'
"""

import os
import pathlib
import secrets
from collections.abc import Callable

STAGING_MARK = ".tmp-"


def _new_staging_file(path: pathlib.Path, suffix: str) -> pathlib.Path:
    """Creates an empty, new staging file beside `path` (umask mode) and returns it."""
    while True:
        staging = path.with_name(f".{path.name}{STAGING_MARK}{secrets.token_hex(4)}{suffix}")
        try:
            os.close(os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return staging
        except FileExistsError:
            continue


def atomic_write(
    path: str | os.PathLike, write: Callable[[str], None], *, suffix: str = ""
) -> pathlib.Path:
    """Calls `write(staging_path)`, then renames the staging file to `path`; returns `path`.

    Args:
        path: the file to write; its folder is created if missing.
        write: writes the whole file at the path it is given (for example `model.save`).
        suffix: the staging file's ending, for writers that insist on one (".keras",
            ".npz", ".png").
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = _new_staging_file(path, suffix)
    try:
        write(str(staging))
        os.replace(staging, path)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> pathlib.Path:
    """Writes `text` as UTF-8 with "\\n" line ends to `path` atomically; returns `path`."""

    def write(staging: str) -> None:
        with open(staging, "w", encoding="utf-8", newline="\n") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())

    return atomic_write(path, write)
