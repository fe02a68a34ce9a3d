"""Tests for the Hateful-Memes JSONL reader (xmodal_keras/data/readers/hateful_memes.py)."""

import pandas as pd
import pytest
from reader_files import (
    error_text,
    jsonl,
    make_memes,
    write,
)

from xmodal_keras.data import readers
from xmodal_keras.data.validation import DataValidationError


def test_read_hateful_memes_folder(tmp_path):
    root = make_memes(tmp_path)
    frame = readers.read_hateful_memes(root)
    assert list(frame.columns) == ["id", "image_path", "text", "label", "split"]
    assert frame["label"].dtype == "int64"
    assert frame.values.tolist() == [
        ["1", str(root / "img/1.png"), "its a meme", 0, "train"],
        ["2", str(root / "img/2.png"), "another", 1, "train"],
        ["3", str(root / "img/3.png"), "t3", 1, "val"],
        ["4", str(root / "img/4.png"), "t4", -1, "test"],
    ]
    pd.testing.assert_frame_equal(readers.read_pairs(root), frame)
    assert readers.read_with_problems(root, kind="pairs").notes == [
        "1 identical entries listed in two files of one split kept once"
    ]
    single = readers.read_pairs(root / "dev_seen.jsonl")
    assert single.values.tolist() == [["3", str(root / "img/3.png"), "t3", 1, "val"]]
    renamed = write(tmp_path / "memes.jsonl", (root / "train.jsonl").read_text())
    assert readers.read_hateful_memes(renamed, split="test")["split"].tolist() == ["test"] * 2
    with pytest.raises(ValueError, match="Cannot tell the split of"):
        readers.read_hateful_memes(renamed)


def test_read_hateful_memes_bom_crlf_reads_like_clean(tmp_path):
    root = make_memes(tmp_path)
    clean = readers.read_pairs(root / "train.jsonl")
    write(root / "train.jsonl", (root / "train.jsonl").read_text() + "\n", bom=True, crlf=True)
    pd.testing.assert_frame_equal(readers.read_pairs(root / "train.jsonl"), clean)


def test_read_hateful_memes_reports_every_problem(tmp_path):
    root = make_memes(tmp_path)
    train = write(
        root / "train.jsonl",
        jsonl({"id": 1, "img": "img/1.png", "label": 0, "text": "ok"})
        + '{"id": 2, "img": "img/2.png", "label": 1, "text": "bad json"\n'
        + jsonl(
            {"id": 5, "img": "img/1.png", "label": 2, "text": "label 2"},
            {"id": 6, "img": "img/1.png", "label": "1", "text": "label as text"},
            {"id": 7, "img": "img/1.png", "text": "no label"},
            {"id": 1, "img": "img/2.png", "label": 0, "text": "duplicate id"},
            {"id": 8, "img": "img/9.png", "label": 0, "text": ""},
            {"img": "img/1.png", "label": 0, "text": "no id"},
            [1, 2],
        ),
    )
    with pytest.raises(DataValidationError) as excinfo:
        readers.read_pairs(root)
    assert error_text(excinfo) == "\n".join(
        [
            f"8 problems in {root}:",
            f"  {train}:2: expected a JSON object, got Expecting ',' delimiter at column 61",
            f"  {train}:3: field 'label': expected 0 or 1, got 2",
            f"  {train}:4: field 'label': expected 0 or 1, got '1'",
            f"  {train}:5: field 'label': expected 0 or 1, got nothing",
            f"  {train}:6: field 'id': expected a unique id, got '1' (also train.jsonl:1)",
            f"  {train}:7: field 'text': expected non-empty text, got ''",
            f"  {train}:8: field 'id': expected an integer or text id, got None",
            f"  {train}:9: expected a JSON object, got list",
        ]
    )


def test_read_hateful_memes_missing_image_and_conflicting_duplicate(tmp_path):
    root = make_memes(tmp_path)
    dev = write(
        root / "dev_unseen.jsonl", jsonl({"id": 3, "img": "img/3.png", "label": 0, "text": "t3"})
    )
    test = write(root / "test_seen.jsonl", jsonl({"id": 9, "img": "img/9.png", "text": "t9"}))
    with pytest.raises(DataValidationError) as excinfo:
        readers.read_pairs(root)
    assert error_text(excinfo).split("\n")[1:] == [
        f"  {dev}:1: field 'id': expected a unique id, got '3' (also dev_seen.jsonl:1)",
        f"  {test}:1: field 'img': expected an existing image file, got {root / 'img/9.png'}",
    ]
