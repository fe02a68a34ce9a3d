"""Tests for format detection and dispatch (xmodal_keras/data/readers/detect.py)."""

import pytest
from reader_files import (
    assert_caption_frame,
    coco_json,
    error_text,
    make_flickr8k,
    make_memes,
    write,
)

from xmodal_keras.data import readers
from xmodal_keras.data.validation import DataValidationError


def test_dispatch_errors_list_supported_formats(tmp_path):
    with pytest.raises(FileNotFoundError, match="No such file or directory: .*Supported formats"):
        readers.read_captions(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="hateful_memes"):
        readers.read_pairs(tmp_path / "nope.jsonl")
    other = write(tmp_path / "notes.txt", "hello\n")
    with pytest.raises(ValueError, match="Could not recognise captions data .*flickr8k"):
        readers.read_captions(other)
    with pytest.raises(ValueError, match="Could not recognise pairs data .*hateful_memes"):
        readers.read_pairs(tmp_path)
    with pytest.raises(ValueError, match="Received: format='tsv'"):
        readers.read_captions(other, format="tsv")
    with pytest.raises(ValueError, match="applies to the 'coco' format only"):
        readers.read_captions(make_flickr8k(tmp_path / "f"), split="train")


def test_detect_formats(tmp_path):
    root = make_flickr8k(tmp_path)
    make_memes(root)
    assert readers.detect_formats(root) == [("captions", "flickr8k"), ("pairs", "hateful_memes")]
    pairs = write(tmp_path / "p.csv", "image_path,text,label\n")
    assert readers.detect_formats(pairs) == [("pairs", "csv")]
    coco = write(tmp_path / "c.json", coco_json([{"id": 1, "file_name": "a.jpg"}], []))
    assert readers.detect_formats(coco) == [("captions", "coco")]
    assert readers.detect_formats(tmp_path / "nothing") == []


def test_reads_the_builtin_shapes_dataset(tiny_shapes_dir):
    captions = readers.read_captions(tiny_shapes_dir)
    assert_caption_frame(captions)
    assert captions["image_id"].nunique() == 40
    assert (captions.groupby("image_id").size() == 5).all()
    assert set(captions["split"]) == {"train", "val", "test"}
    pairs = readers.read_pairs(tiny_shapes_dir)
    assert list(pairs.columns) == ["id", "image_path", "text", "label", "split"]
    assert pairs["id"].is_unique and set(pairs["label"]) == {0, 1}
    assert set(pairs["image_path"]) == set(captions["image_path"])


def test_an_unrecognised_csv_names_its_missing_columns_as_format_csv_does(tmp_path):
    path = write(tmp_path / "data.csv", "file,sentence\na.png,A dog\n")
    messages = {}
    for kind, read in (("captions", readers.read_captions), ("pairs", readers.read_pairs)):
        with pytest.raises(DataValidationError) as auto:
            read(path)
        with pytest.raises(DataValidationError) as explicit:
            read(path, format="csv")
        assert error_text(auto) == error_text(explicit)
        messages[kind] = error_text(auto)
    assert (
        "field 'caption': expected a 'caption' column in the header, got columns file, sentence"
        in messages["captions"]
    )
    assert "field 'label': expected a 'label' column in the header" in messages["pairs"]
