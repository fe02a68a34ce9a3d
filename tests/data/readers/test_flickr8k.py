"""Tests for the Flickr8k reader (xmodal_keras/data/readers/flickr8k.py)."""

import pandas as pd
import pytest
from reader_files import (
    assert_caption_frame,
    error_text,
    make_flickr8k,
    write,
)

from xmodal_keras.data import readers
from xmodal_keras.data.validation import DataValidationError


def test_read_flickr8k_rows_splits_and_paths(tmp_path):
    root = make_flickr8k(tmp_path)
    frame = readers.read_flickr8k(root)
    assert_caption_frame(frame)
    assert frame.values.tolist() == [
        ["a.jpg", str(root / "Flicker8k_Dataset" / "a.jpg"), "A dog runs .", "train"],
        ["a.jpg", str(root / "Flicker8k_Dataset" / "a.jpg"), "A brown dog.", "train"],
        ["b.jpg", str(root / "Flicker8k_Dataset" / "b.jpg"), "Two cats sleep", "train"],
        ["c.jpg", str(root / "Flicker8k_Dataset" / "c.jpg"), "A red car", "val"],
        ["d.jpg", str(root / "Flicker8k_Dataset" / "d.jpg"), "A bird flies", "test"],
    ]
    pd.testing.assert_frame_equal(readers.read_captions(root), frame)
    pd.testing.assert_frame_equal(readers.read_captions(root / "Flickr8k.token.txt"), frame)
    result = readers.read_with_problems(root, kind="captions")
    assert result.notes == [
        "1 image(s) in Flickr8k.token.txt are in no split file and were dropped: 'a.jpg.1'"
    ]


@pytest.mark.parametrize("image_dir", ["Flickr8k_Dataset", "Images"])
def test_read_flickr8k_text_subfolder_layout(tmp_path, image_dir):
    root = make_flickr8k(tmp_path, image_dir=image_dir, text_dir="Flickr8k_text")
    frame = readers.read_captions(root)
    assert_caption_frame(frame)
    assert frame["image_path"].iloc[0] == str(root / image_dir / "a.jpg")
    assert frame["split"].tolist() == ["train", "train", "train", "val", "test"]


def test_read_flickr8k_bom_crlf_reads_like_clean(tmp_path):
    clean = readers.read_flickr8k(make_flickr8k(tmp_path / "clean"), check_images=False)
    root = make_flickr8k(tmp_path / "crlf")
    for path in root.glob("*.txt"):
        write(path, path.read_text(), bom=True, crlf=True)
    crlf = readers.read_flickr8k(root, check_images=False)
    pd.testing.assert_frame_equal(crlf.drop(columns="image_path"), clean.drop(columns="image_path"))


def test_read_flickr8k_reports_every_problem(tmp_path):
    root = make_flickr8k(tmp_path)
    write(
        root / "Flickr8k.token.txt",
        "a.jpg#0\tA dog\n"
        "a.jpg#0\tSame id again\n"
        "b.jpg#0\t   \n"
        "no tab here\n"
        "c.jpg#0\tA car\n"
        "d.jpg#0\tA bird\n"
        "e.jpg#0\tNo such image file\n",
    )
    write(root / "Flickr_8k.trainImages.txt", "a.jpg\nb.jpg\ne.jpg\n")
    write(root / "Flickr_8k.devImages.txt", "c.jpg\na.jpg\n")
    token = root / "Flickr8k.token.txt"
    with pytest.raises(DataValidationError) as excinfo:
        readers.read_flickr8k(root)
    images = root / "Flicker8k_Dataset"
    assert error_text(excinfo) == "\n".join(
        [
            f"6 problems in {root}:",
            f"  {token}:2: field 'id': expected a unique '<image file>#<n>' id, "
            "got 'a.jpg#0' (first on line 1)",
            f"  {token}:3: field 'caption': expected non-empty text, got ''",
            f"  {token}:4: expected '<image file>#<n><TAB><caption>', got 'no tab here'",
            f"  {root / 'Flickr_8k.trainImages.txt'}:2: field 'image': expected an image with "
            "captions in Flickr8k.token.txt, got 'b.jpg'",
            f"  {root / 'Flickr_8k.trainImages.txt'}:3: field 'image': expected an existing "
            f"image file in {images}, got 'e.jpg'",
            f"  {root / 'Flickr_8k.devImages.txt'}:2: field 'image': expected an image listed "
            "once, in one split file, got 'a.jpg' (already listed at "
            "Flickr_8k.trainImages.txt:1)",
        ]
    )
    assert len(excinfo.value.problems) == 6


def test_read_flickr8k_needs_split_files_and_image_folder(tmp_path):
    write(tmp_path / "Flickr8k.token.txt", "a.jpg#0\tA dog\n")
    with pytest.raises(DataValidationError) as excinfo:
        readers.read_flickr8k(tmp_path)
    message = error_text(excinfo)
    assert (
        f"{tmp_path}: expected an image folder named Flicker8k_Dataset, Flickr8k_Dataset, "
        "Images (or pass images_dir=), got none" in message
    )
    assert (
        f"{tmp_path}: expected at least one split file (Flickr_8k.trainImages.txt, "
        "Flickr_8k.devImages.txt, Flickr_8k.testImages.txt), got none" in message
    )


def test_read_flickr8k_undecodable_bytes_name_the_line(tmp_path):
    root = make_flickr8k(tmp_path)
    token = root / "Flickr8k.token.txt"
    token.write_bytes(b"a.jpg#0\tA dog\nb.jpg#0\tA caf\xe9\nc.jpg#0\tA car\nd.jpg#0\tA bird\n")
    with pytest.raises(DataValidationError) as excinfo:
        readers.read_flickr8k(root)
    assert f"{token}:2: expected UTF-8 text, got undecodable byte 0xe9 at column 14" in error_text(
        excinfo
    )
