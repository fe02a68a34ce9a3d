"""Write a folder so that readers see all of it or none of it (atomic rename)."""

import contextlib
import os
import pathlib
import shutil
import tempfile
from collections.abc import Iterator


@contextlib.contextmanager
def atomic_directory(final_dir: str | os.PathLike) -> Iterator[pathlib.Path]:
    """Yields an empty temporary folder beside `final_dir`; renames it into place on success.

    The temporary folder is a hidden sibling (`.NAME.tmp-XXXX`) on the same file system,
    so the final `os.rename` is atomic: a server polling the parent (TF Serving) never sees
    half a version, and an exception or a killed process leaves no `final_dir`. A stale
    temporary folder from a killed process is harmless: TF Serving ignores names that are
    not version numbers.

    Args:
        final_dir: the folder to create. It must not exist yet.

    Example:

    >>> import pathlib, tempfile
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "1"
    >>> with atomic_directory(target) as tmp:
    ...     _ = (tmp / "saved_model.pb").write_bytes(b"...")
    >>> sorted(p.name for p in target.iterdir())
    ['saved_model.pb']
    """
    final_dir = pathlib.Path(final_dir)
    if final_dir.exists():
        raise FileExistsError(f"Refusing to overwrite an existing folder: {final_dir}")
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = pathlib.Path(tempfile.mkdtemp(prefix=f".{final_dir.name}.tmp-", dir=final_dir.parent))
    try:
        yield tmp_dir
        os.rename(tmp_dir, final_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise


def next_version(model_dir: str | os.PathLike) -> int:
    """The next free TF Serving version number under `model_dir` (1 when there is none).

    Example:

    >>> import tempfile
    >>> next_version(tempfile.mkdtemp())
    1
    """
    model_dir = pathlib.Path(model_dir)
    versions = [int(p.name) for p in model_dir.glob("*") if p.is_dir() and p.name.isdigit()]
    return max(versions, default=0) + 1
