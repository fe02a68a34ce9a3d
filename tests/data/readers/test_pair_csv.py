"""Tests for the pair CSV reader (xmodal_keras/data/readers/pair_csv.py)."""

import pandas as pd
import pytest
from reader_files import (
    error_text,
    touch,
    write,
)

from xmodal_keras.data import readers
from xmodal_keras.data.validation import DataValidationError


def test_read_pair_csv_keeps_extra_columns(tmp_path):
    touch(tmp_path / "a.png")
    touch(tmp_path / "sounds" / "a.wav")
    path = write(
        tmp_path / "pairs.csv",
        "image_path,text,label,split,age,score,city,audio_path\n"
        "a.png,hello,1,train,31,0.5,Paris,sounds/a.wav\n"
        "a.png,bye,0,dev,40,1,07000,sounds/a.wav\n"
        "a.png,unknown,,test,52,2.5,Rome,sounds/a.wav\n",
    )
    frame = readers.read_pair_csv(path)
    assert list(frame.columns) == [
        "id",
        "image_path",
        "text",
        "label",
        "split",
        "age",
        "score",
        "city",
        "audio_path",
    ]
    assert frame["label"].dtype == "int64"
    assert frame["age"].dtype == "int64" and frame["score"].dtype == "float64"
    assert pd.api.types.is_string_dtype(frame["city"])
    assert frame["id"].tolist() == ["2", "3", "4"]  # the rows' line numbers
    assert frame["label"].tolist() == [1, 0, -1]
    assert frame["split"].tolist() == ["train", "val", "test"]
    assert frame["city"].tolist() == ["Paris", "07000", "Rome"]
    assert set(frame["audio_path"]) == {str(tmp_path / "sounds/a.wav")}
    assert set(frame["image_path"]) == {str(tmp_path / "a.png")}
    pd.testing.assert_frame_equal(readers.read_pairs(path), frame)


def test_read_pair_csv_reports_labels_ids_and_files(tmp_path):
    touch(tmp_path / "a.png")
    path = write(
        tmp_path / "pairs.csv",
        "id,image_path,text,label\n"
        "p1,a.png,ok,0\n"
        "p2,a.png,ok,-1\n"
        "p3,a.png,ok,1.5\n"
        "p4,a.png,ok,\n"
        "p1,a.png,ok,3\n"
        "p6,b.png,,yes\n",
        bom=True,
        crlf=True,
    )
    with pytest.raises(DataValidationError) as excinfo:
        readers.read_pairs(path)
    assert error_text(excinfo).split("\n")[1:] == [
        f"  {path}:3: field 'label': expected an integer >= 0, got '-1'",
        f"  {path}:4: field 'label': expected an integer >= 0, got '1.5'",
        f"  {path}:5: field 'label': expected an integer >= 0, got ''",
        f"  {path}:6: field 'id': expected a unique id, got 'p1' (first on line 2)",
        f"  {path}:7: field 'text': expected non-empty text, got ''",
        f"  {path}:7: field 'label': expected an integer >= 0, got 'yes'",
        f"  {path}:7: field 'image_path': expected an existing image file, "
        f"got {tmp_path / 'b.png'}",
    ]
