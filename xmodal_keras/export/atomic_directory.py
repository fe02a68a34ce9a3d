"""Write folders and files so that readers see all of them or none (atomic rename).

Every export goes through here: `write_version` for TF Serving's numbered version folders,
`atomic_directory` for a named folder (`NAME_tflite/`); a single file (a config a server
polls) goes through `xmodal_keras.atomic_files`. What they share:

- the work happens in a hidden staging sibling (`.NAME.tmp-XXXXXXXX`) on the same file
  system, renamed into place at the end, so a polling server never sees half of it;
- staging folders are made with `os.mkdir`, so they get the mode the umask gives (0755
  under the usual 022), not `mkdtemp`'s 0700:
  a server running as another user can read what was exported;
- a writer holds an exclusive `flock` on its staging folder until it is done; the next
  writer in the same parent removes every staging folder whose lock is free (the
  leftovers of killed writers) and never one that a running writer holds;
- a rename never replaces a folder another writer finished meanwhile: a named folder is
  refused (`FileExistsError`), an automatic version number moves on to the next one.
"""

import contextlib
import errno
import fcntl
import os
import pathlib
import secrets
import shutil
from collections.abc import Callable, Iterator

from xmodal_keras.argument_checks import check_positive_int
from xmodal_keras.atomic_files import STAGING_MARK

_TAKEN = (errno.EEXIST, errno.ENOTEMPTY)


def _lock(path: pathlib.Path) -> int | None:
    """An open descriptor holding `path`'s exclusive lock, or None when another process
    holds it or the folder is gone (or was replaced) meanwhile."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.path.samestat(os.fstat(fd), os.stat(path)):
            return fd
    except OSError:
        pass
    os.close(fd)
    return None


def remove_stale_staging(parent: str | os.PathLike) -> list[pathlib.Path]:
    """Removes the staging folders in `parent` that no running writer holds; returns them."""
    removed = []
    for path in sorted(pathlib.Path(parent).glob(f".*{STAGING_MARK}*")):
        if not path.is_dir() or path.is_symlink():
            continue
        fd = _lock(path)
        if fd is None:
            continue
        try:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
        finally:
            os.close(fd)
    return removed


@contextlib.contextmanager
def _staging(parent: pathlib.Path, name: str) -> Iterator[pathlib.Path]:
    """A new locked staging folder `parent/.NAME.tmp-XXXXXXXX`, removed on an exception."""
    parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(parent)
    while True:
        path = parent / f".{name}{STAGING_MARK}{secrets.token_hex(4)}"
        try:
            os.mkdir(path)  # mode 0o777 & ~umask
        except FileExistsError:
            continue
        fd = _lock(path)  # None: another writer's cleanup took it first; take another name
        if fd is not None:
            break
    try:
        yield path
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise
    finally:
        os.close(fd)


def _rename(staging: pathlib.Path, final: pathlib.Path) -> None:
    try:
        os.rename(staging, final)
    except OSError as error:
        if error.errno not in _TAKEN:
            raise
        raise FileExistsError(
            f"Refusing to overwrite {final}: another export wrote it while this one ran"
        ) from None


@contextlib.contextmanager
def atomic_directory(final_dir: str | os.PathLike) -> Iterator[pathlib.Path]:
    """Yields an empty staging folder beside `final_dir`; renames it into place on success.

    An exception or a killed process leaves no `final_dir` (a killed one's staging folder
    is removed by the next write in the same parent).

    Args:
        final_dir: the folder to create. It must not exist yet, nor appear while the
            block runs (`FileExistsError` either way).

    Example:

    >>> import pathlib, tempfile
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "tiny_tflite"
    >>> with atomic_directory(target) as tmp:
    ...     _ = (tmp / "model.tflite").write_bytes(b"...")
    >>> sorted(p.name for p in target.iterdir())
    ['model.tflite']
    """
    final_dir = pathlib.Path(final_dir)
    if final_dir.exists():
        raise FileExistsError(f"Refusing to overwrite an existing folder: {final_dir}")
    with _staging(final_dir.parent, final_dir.name) as staging:
        yield staging
        _rename(staging, final_dir)


def write_version(
    model_dir: str | os.PathLike,
    write: Callable[[pathlib.Path], object],
    *,
    version: int | None = None,
) -> pathlib.Path:
    """Calls `write(staging_folder)`, then renames the folder to `model_dir/VERSION`.

    With `version=None` the number is the next free one when `write` has finished, so
    concurrent exports get successive numbers in the order they finish; when another
    export takes that number first, the next one is used.

    Args:
        model_dir: TF Serving's model folder (`base_dir/NAME`).
        write: fills the staging folder it is given.
        version: a version number that must not exist yet (`FileExistsError`, also when
            another export takes it meanwhile). Defaults to the next free number.

    Returns:
        The version folder.

    Example:

    >>> import tempfile
    >>> model_dir = pathlib.Path(tempfile.mkdtemp()) / "captioner"
    >>> write_version(model_dir, lambda tmp: (tmp / "saved_model.pb").write_bytes(b"")).name
    '1'
    """
    model_dir = pathlib.Path(model_dir)
    if version is not None:
        check_positive_int("version", version)
        if (model_dir / str(version)).exists():
            raise FileExistsError(
                f"Refusing to overwrite an existing folder: {model_dir / str(version)}"
            )
    with _staging(model_dir, str(version or next_version(model_dir))) as staging:
        write(staging)
        while True:
            final_dir = model_dir / str(version or next_version(model_dir))
            try:
                _rename(staging, final_dir)
                return final_dir
            except FileExistsError:
                if version is not None:
                    raise


def next_version(model_dir: str | os.PathLike) -> int:
    """The next free TF Serving version number under `model_dir` (1 when there is none).

    Example:

    >>> import tempfile
    >>> next_version(tempfile.mkdtemp())
    1
    """
    model_dir = pathlib.Path(model_dir)
    if not model_dir.is_dir():
        return 1
    versions = [int(p.name) for p in model_dir.iterdir() if p.name.isdigit()]
    return max(versions, default=0) + 1
