"""Tests for the caption CSV reader (xmodal_keras/data/readers/caption_csv.py)."""

import pandas as pd
import pytest
from reader_files import (
    assert_caption_frame,
    error_text,
    touch,
    write,
)

from xmodal_keras.data import readers
from xmodal_keras.data.validation import DataValidationError


def test_read_caption_csv(tmp_path):
    touch(tmp_path / "img" / "a.png")
    touch(tmp_path / "b.png")
    path = write(
        tmp_path / "captions.csv",
        'image_path,caption,split\nimg/a.png," A dog, running ",train\nb.png,A cat,dev\n'
        "\nb.png,Cat again,val\n",
    )
    frame = readers.read_caption_csv(path)
    assert_caption_frame(frame)
    assert frame.values.tolist() == [
        ["img/a.png", str(tmp_path / "img/a.png"), "A dog, running", "train"],
        ["b.png", str(tmp_path / "b.png"), "A cat", "val"],
        ["b.png", str(tmp_path / "b.png"), "Cat again", "val"],
    ]
    pd.testing.assert_frame_equal(readers.read_captions(path), frame)


def test_read_caption_csv_without_split_column_is_train(tmp_path):
    touch(tmp_path / "a.png")
    path = write(tmp_path / "captions.csv", "image_path,caption\na.png,A dog\n")
    assert readers.read_captions(path)["split"].tolist() == ["train"]
    frame = readers.read_caption_csv(path, default_split="test")
    assert frame["split"].tolist() == ["test"]


def test_read_caption_csv_bom_crlf_reads_like_clean(tmp_path):
    touch(tmp_path / "a.png")
    text = 'image_path,caption,split\na.png,"Two\nlines",train\na.png,Déjà vu,train\n'
    clean = readers.read_captions(write(tmp_path / "clean.csv", text))
    bom_crlf = readers.read_captions(write(tmp_path / "crlf.csv", text, bom=True, crlf=True))
    pd.testing.assert_frame_equal(bom_crlf, clean)
    assert clean["caption"].tolist() == ["Two\nlines", "Déjà vu"]


def test_read_caption_csv_reports_every_bad_row(tmp_path):
    touch(tmp_path / "a.png")
    path = write(
        tmp_path / "captions.csv",
        "image_path,caption,split\n"
        "a.png,A dog,train\n"
        'a.png,"A dog, quoted\ncontinued",train\n'  # lines 3-4: one row
        "a.png,,train\n"  # line 5
        "a.png,A dog,extra,train\n"  # line 6
        "missing.png,A cat,holdout\n"  # line 7
        ",A cat,test\n"  # line 8
        "a.png,Same image,test\n",  # line 9
    )
    with pytest.raises(DataValidationError) as excinfo:
        readers.read_captions(path)
    assert error_text(excinfo) == "\n".join(
        [
            f"6 problems in {path}:",
            f"  {path}:5: field 'caption': expected non-empty text, got ''",
            f"  {path}:6: expected 3 comma-separated fields (image_path,caption,split), "
            "got 4 fields",
            f"  {path}:7: field 'split': expected one of train, val, test "
            "(or dev, validation, restval), got 'holdout'",
            f"  {path}:7: field 'image_path': expected an existing image file, "
            f"got {tmp_path / 'missing.png'}",
            f"  {path}:8: field 'image_path': expected a file path, got ''",
            f"  {path}:9: field 'split': expected split 'train' for this image, as on line 2, "
            "got 'test'",
        ]
    )


def test_read_caption_csv_bad_quoting(tmp_path):
    touch(tmp_path / "a.png")
    path = write(
        tmp_path / "captions.csv",
        'image_path,caption\na.png,"x"y\na.png,ok\na.png,"never closed\na.png,ok\n',
    )
    with pytest.raises(DataValidationError) as excinfo:
        readers.read_captions(path)
    assert error_text(excinfo).split("\n")[1:] == [
        f"  {path}:2: expected valid CSV, got ',' expected after '\"'",
        f"  {path}:4: expected valid CSV, got a quote opened on this line and never closed",
    ]


def test_read_caption_csv_lists_20_problems_and_a_count(tmp_path):
    touch(tmp_path / "a.png")
    rows = "".join("a.png,\n" for _ in range(25))
    path = write(tmp_path / "captions.csv", "image_path,caption\na.png,ok\n" + rows)
    with pytest.raises(DataValidationError) as excinfo:
        readers.read_captions(path)
    lines = error_text(excinfo).split("\n")
    assert lines[0] == f"25 problems in {path}:"
    assert lines[1] == f"  {path}:3: field 'caption': expected non-empty text, got ''"
    assert lines[20] == f"  {path}:22: field 'caption': expected non-empty text, got ''"
    assert lines[21:] == ["  ... and 5 more"]
    assert len(excinfo.value.problems) == 25


def test_read_caption_csv_header_and_encoding_problems(tmp_path):
    path = write(tmp_path / "captions.csv", "image,caption\na.png,A dog\n")
    with pytest.raises(DataValidationError) as excinfo:
        readers.read_caption_csv(path)
    assert error_text(excinfo) == (
        f"1 problem in {path}:\n  {path}:1: field 'image_path': expected a 'image_path' "
        "column in the header, got columns image, caption"
    )
    path.write_bytes(b"image_path,caption\na.png,caf\xc3\n")
    with pytest.raises(DataValidationError) as excinfo:
        readers.read_caption_csv(path, check_images=False)
    assert error_text(excinfo) == (
        f"1 problem in {path}:\n  {path}:2: expected UTF-8 text, "
        "got undecodable byte 0xc3 at column 10"
    )
    path.write_bytes(b"")
    with pytest.raises(DataValidationError, match="expected a header line with columns"):
        readers.read_caption_csv(path)
