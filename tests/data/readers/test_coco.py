"""Tests for the COCO captions reader (xmodal_keras/data/readers/coco.py)."""

import pandas as pd
import pytest
from reader_files import (
    assert_caption_frame,
    coco_json,
    error_text,
    touch,
    write,
)

from xmodal_keras.data import readers
from xmodal_keras.data.validation import DataValidationError


def test_read_coco_captions_split_from_name_and_sibling_image_folder(tmp_path):
    touch(tmp_path / "val2017" / "000001.jpg")
    touch(tmp_path / "val2017" / "000002.jpg")
    path = write(
        tmp_path / "annotations" / "captions_val2017.json",
        coco_json(
            [
                {"id": 1, "file_name": "000001.jpg"},
                {"id": 2, "file_name": "000002.jpg"},
                {"id": 3, "file_name": "000003.jpg"},  # no captions: left out
            ],
            [
                {"id": 10, "image_id": 2, "caption": "A cat. "},
                {"id": 11, "image_id": 1, "caption": "A dog"},
                {"id": 12, "image_id": 2, "caption": "Another cat"},
            ],
        ),
    )
    frame = readers.read_coco_captions(path)
    assert_caption_frame(frame)
    assert frame.values.tolist() == [
        ["1", str(tmp_path / "val2017/000001.jpg"), "A dog", "val"],
        ["2", str(tmp_path / "val2017/000002.jpg"), "A cat.", "val"],
        ["2", str(tmp_path / "val2017/000002.jpg"), "Another cat", "val"],
    ]
    pd.testing.assert_frame_equal(readers.read_captions(path), frame)
    frame = readers.read_captions(path, format="coco", split="test")
    assert set(frame["split"]) == {"test"}


def test_read_coco_captions_problems(tmp_path):
    touch(tmp_path / "a.jpg")
    path = write(
        tmp_path / "captions_train2017.json",
        coco_json(
            [{"id": 1, "file_name": "a.jpg"}, {"id": 1, "file_name": "b.jpg"}],
            [
                {"id": 1, "image_id": 1, "caption": "ok"},
                {"id": 1, "image_id": 1, "caption": "same annotation id"},
                {"id": 2, "image_id": 7, "caption": "  "},
            ],
        ),
    )
    with pytest.raises(DataValidationError) as excinfo:
        readers.read_coco_captions(path, images_dir=tmp_path)
    assert error_text(excinfo) == "\n".join(
        [
            f"4 problems in {path}:",
            f"  {path}: field 'images[1].id': expected a unique image id, got 1 (also images[0])",
            f"  {path}: field 'annotations[1].id': expected a unique annotation id, "
            "got 1 (also annotations[0])",
            f"  {path}: field 'annotations[2].image_id': expected the id of an entry in "
            "'images', got 7",
            f"  {path}: field 'annotations[2].caption': expected non-empty text, got '  '",
        ]
    )


def test_read_coco_captions_needs_a_split(tmp_path):
    path = write(tmp_path / "captions.json", coco_json([], []))
    with pytest.raises(ValueError, match="Cannot tell the split of .*captions.json"):
        readers.read_coco_captions(path)
    with pytest.raises(ValueError, match="Received: split='holdout'"):
        readers.read_coco_captions(path, split="holdout")
    assert len(readers.read_coco_captions(path, split="val")) == 0
