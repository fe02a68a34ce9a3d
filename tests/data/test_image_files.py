"""The image file checks every reader and trainer shares: regular files only, never a FIFO."""

import os

import pandas as pd
import pytest
from tiny_images import TINY_PNG, write_png

from xmodal_keras.data.image_files import (
    file_problem,
    find_unusable_images,
    image_file_problem,
    preflight_images,
)
from xmodal_keras.data.validation import DataValidationError


@pytest.fixture
def files(tmp_path):
    """One path of each kind the checks tell apart."""
    paths = {
        "good": write_png(tmp_path / "good.png"),
        "folder": tmp_path / "folder.png",
        "fifo": tmp_path / "pipe.png",
        "loop": tmp_path / "loop.png",
        "missing": tmp_path / "missing.png",
        "broken_link": tmp_path / "broken.png",
        "text": tmp_path / "notes.png",
        "empty": tmp_path / "empty.png",
        "bad_header": tmp_path / "bad_header.png",
        "link_to_good": tmp_path / "link.png",
    }
    paths["folder"].mkdir()
    os.mkfifo(paths["fifo"])
    os.symlink(paths["loop"], paths["loop"])
    os.symlink(tmp_path / "nowhere.png", paths["broken_link"])
    paths["text"].write_text("hello")
    paths["empty"].write_bytes(b"")
    paths["bad_header"].write_bytes(TINY_PNG[:8] + b"\x00" * 40)  # PNG signature, then junk
    os.symlink(paths["good"], paths["link_to_good"])
    return {name: str(path) for name, path in paths.items()}


def test_file_and_image_file_problems(files, fails_instead_of_hanging):
    assert {name: file_problem(path) for name, path in files.items()} == {
        "good": None,
        "folder": "a directory",
        "fifo": "a FIFO (named pipe), not a regular file",
        "loop": "a symlink loop",
        "missing": "no such file",
        "broken_link": "no such file",
        "text": None,
        "empty": None,
        "bad_header": None,
        "link_to_good": None,
    }
    assert image_file_problem(files["text"]) == (
        "not a JPEG, PNG, GIF, BMP or WEBP image (by its first bytes)"
    )
    assert image_file_problem(files["empty"]) == "an empty file"
    assert image_file_problem(files["fifo"]) == "a FIFO (named pipe), not a regular file"
    assert image_file_problem(files["bad_header"]) is None  # the signature is fine
    assert image_file_problem(files["link_to_good"]) is None
    assert file_problem("/dev/null") == "a device, not a regular file"


def test_find_unusable_images_adds_the_pil_check_and_never_opens_a_fifo(
    files, fails_instead_of_hanging
):
    bad = dict(find_unusable_images([*files.values(), files["fifo"]], mode="header"))
    assert sorted(bad) == sorted(
        files[name] for name in files if name not in ("good", "link_to_good")
    )
    assert bad[files["fifo"]] == "a FIFO (named pipe), not a regular file"
    assert bad[files["bad_header"]].startswith(("corrupt image", "not an image"))
    assert find_unusable_images([files["good"]], mode="decode") == []


def test_preflight_images_raises_one_error_naming_every_bad_image(files):
    frame = pd.DataFrame({"image_path": [files["good"], files["folder"], files["good"]]})
    with pytest.raises(DataValidationError) as excinfo:
        preflight_images(frame, source="data/pairs.csv")
    assert str(excinfo.value) == (
        "1 problem in the images of data/pairs.csv:\n"
        f"  {files['folder']}: expected a JPEG, PNG, GIF, BMP or WEBP image, got a directory"
    )
    preflight_images(frame.iloc[[0, 2]], source="data/pairs.csv")
