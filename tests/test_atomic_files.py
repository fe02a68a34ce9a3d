"""`atomic_write`: all of the file or none of it, with the umask's mode."""

import os
import pathlib

import pytest

from xmodal_keras.atomic_files import STAGING_MARK, atomic_write, atomic_write_text


def _leftovers(folder: pathlib.Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if STAGING_MARK in path.name)


def test_a_failed_write_keeps_the_old_file_and_leaves_no_staging_file(tmp_path):
    path = atomic_write_text(tmp_path / "config.json", "old\n")

    def write_then_fail(staging: str) -> None:
        pathlib.Path(staging).write_text("half")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError, match="killed mid-write"):
        atomic_write(path, write_then_fail)
    assert path.read_text() == "old\n"
    assert _leftovers(tmp_path) == []


def test_the_writer_sees_the_suffix_it_asked_for_and_the_file_gets_the_umask_mode(tmp_path):
    seen = []

    def write(staging: str) -> None:
        seen.append(staging)
        pathlib.Path(staging).write_bytes(b"\x00\x01")

    old_mask = os.umask(0o022)
    try:
        path = atomic_write(tmp_path / "new" / "model.keras", write, suffix=".keras")
    finally:
        os.umask(old_mask)
    assert seen[0].endswith(".keras") and STAGING_MARK in seen[0]
    assert path.read_bytes() == b"\x00\x01"
    assert path.stat().st_mode & 0o777 == 0o644
    assert _leftovers(path.parent) == []


def test_text_is_written_as_utf8_with_newline_line_ends(tmp_path):
    path = atomic_write_text(tmp_path / "vocab.txt", "é\nb\n")
    assert path.read_bytes() == "é\nb\n".encode()
