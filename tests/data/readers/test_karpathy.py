"""Tests for the Karpathy split JSON reader (xmodal_keras/data/readers/karpathy.py)."""

import pandas as pd
import pytest
from reader_files import (
    assert_caption_frame,
    error_text,
    karpathy_json,
    kimage,
    touch,
    write,
)

from xmodal_keras.data import readers
from xmodal_keras.data.validation import DataValidationError


def test_read_karpathy_json_coco_style(tmp_path):
    for name in ("val2014/x.jpg", "val2014/y.jpg", "train2014/z.jpg", "val2014/w.jpg"):
        touch(tmp_path / "coco" / name)
    path = write(
        tmp_path / "dataset_coco.json",
        karpathy_json(
            [
                kimage("x.jpg", "test", "A man. ", "A person", filepath="val2014"),
                kimage("y.jpg", "restval", "A tree", filepath="val2014"),
                kimage("z.jpg", "train", "A boat", filepath="train2014"),
                kimage("w.jpg", "val", "A road", filepath="val2014"),
            ]
        ),
    )
    frame = readers.read_karpathy_json(path, images_dir=tmp_path / "coco")
    assert_caption_frame(frame)
    assert frame.values.tolist() == [
        ["val2014/x.jpg", str(tmp_path / "coco/val2014/x.jpg"), "A man.", "test"],
        ["val2014/x.jpg", str(tmp_path / "coco/val2014/x.jpg"), "A person", "test"],
        ["val2014/y.jpg", str(tmp_path / "coco/val2014/y.jpg"), "A tree", "train"],
        ["train2014/z.jpg", str(tmp_path / "coco/train2014/z.jpg"), "A boat", "train"],
        ["val2014/w.jpg", str(tmp_path / "coco/val2014/w.jpg"), "A road", "val"],
    ]
    pd.testing.assert_frame_equal(readers.read_captions(path, images_dir=tmp_path / "coco"), frame)


def test_read_karpathy_json_flickr_style_defaults_to_json_folder(tmp_path):
    touch(tmp_path / "a.jpg")
    path = write(
        tmp_path / "dataset_flickr8k.json",
        karpathy_json([kimage("a.jpg", "train", "A dog")]),
        bom=True,
    )
    frame = readers.read_captions(tmp_path)  # a folder with one dataset_*.json
    assert frame.values.tolist() == [["a.jpg", str(tmp_path / "a.jpg"), "A dog", "train"]]
    pd.testing.assert_frame_equal(readers.read_captions(path, format="karpathy"), frame)


def test_read_karpathy_json_problems_name_the_item(tmp_path):
    touch(tmp_path / "a.jpg")
    path = write(
        tmp_path / "dataset_flickr8k.json",
        karpathy_json(
            [
                kimage("a.jpg", "holdout", "A dog"),
                kimage("a.jpg", "train", "A dog"),
                kimage("b.jpg", "train", ""),
                {"filename": "c.jpg", "split": "test"},
            ]
        ),
    )
    with pytest.raises(DataValidationError) as excinfo:
        readers.read_karpathy_json(path)
    assert error_text(excinfo) == "\n".join(
        [
            f"6 problems in {path}:",
            f"  {path}: field 'images[0].split': expected one of train, val, test "
            "(or dev, validation, restval), got 'holdout'",
            f"  {path}: field 'images[1].filename': expected each image once, "
            "got 'a.jpg' (also images[0])",
            f"  {path}: field 'images[2].sentences[0].raw': expected non-empty text, got ''",
            f"  {path}: field 'images[2].filename': expected an existing image file, "
            f"got {tmp_path / 'b.jpg'}",
            f"  {path}: field 'images[3].sentences': expected a non-empty list, got None",
            f"  {path}: field 'images[3].filename': expected an existing image file, "
            f"got {tmp_path / 'c.jpg'}",
        ]
    )


def test_read_karpathy_json_bad_json_names_the_line(tmp_path):
    path = write(tmp_path / "dataset_coco.json", '{"images": [\n  {"filename": "a.jpg",,}\n]}')
    with pytest.raises(DataValidationError) as excinfo:
        readers.read_karpathy_json(path)
    assert (
        f"{path}:2: expected valid JSON, got Expecting property name enclosed in double quotes "
        "at column 24" in error_text(excinfo)
    )
