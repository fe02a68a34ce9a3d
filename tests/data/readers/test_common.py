"""Tests for the checks every reader shares (xmodal_keras/data/readers/common.py).

Image files, paths leaving the data folder, empty, missing and repeated rows.
"""

import os

import pytest
from reader_files import (
    TOKENS,
    error_text,
    jsonl,
    karpathy_json,
    kimage,
    make_flickr8k,
    touch,
    write,
)

from xmodal_keras.data import readers
from xmodal_keras.data.validation import DataValidationError


def test_image_paths_must_name_regular_image_files(tmp_path, fails_instead_of_hanging):
    touch(tmp_path / "good.png")
    (tmp_path / "folder.png").mkdir()
    os.mkfifo(tmp_path / "pipe.png")
    os.symlink(tmp_path / "loop.png", tmp_path / "loop.png")
    write(tmp_path / "notes.png", "not an image")
    (tmp_path / "empty.png").write_bytes(b"")
    names = ["good", "folder", "pipe", "loop", "notes", "empty"]
    path = write(
        tmp_path / "captions.csv",
        "image_path,caption\n" + "".join(f"{name}.png,A {name}\n" for name in names),
    )
    with pytest.raises(DataValidationError) as excinfo:
        readers.read_captions(path)
    expected = "field 'image_path': expected an existing image file, got"
    assert error_text(excinfo).split("\n")[1:] == [
        f"  {path}:3: {expected} {tmp_path / 'folder.png'} (a directory)",
        f"  {path}:4: {expected} {tmp_path / 'pipe.png'} (a FIFO (named pipe), not a regular file)",
        f"  {path}:5: {expected} {tmp_path / 'loop.png'} (a symlink loop)",
        f"  {path}:6: {expected} {tmp_path / 'notes.png'} "
        "(not a JPEG, PNG, GIF, BMP or WEBP image (by its first bytes))",
        f"  {path}:7: {expected} {tmp_path / 'empty.png'} (an empty file)",
    ]
    # The pair readers use the same check (a FIFO's audio path is refused too).
    pairs = write(
        tmp_path / "pairs.csv",
        "image_path,text,label,audio_path\ngood.png,hi,0,pipe.png\npipe.png,yo,1,good.png\n",
    )
    with pytest.raises(DataValidationError) as excinfo:
        readers.read_pairs(pairs)
    assert error_text(excinfo).split("\n")[1:] == [
        f"  {pairs}:2: field 'audio_path': expected an existing audio file, got "
        f"{tmp_path / 'pipe.png'} (a FIFO (named pipe), not a regular file)",
        f"  {pairs}:3: field 'image_path': expected an existing image file, got "
        f"{tmp_path / 'pipe.png'} (a FIFO (named pipe), not a regular file)",
    ]


def test_paths_leaving_the_data_folder_are_refused_unless_allowed(tmp_path):
    outside = touch(tmp_path / "outside.png")
    data = tmp_path / "data"
    touch(data / "img" / "a.png")
    os.symlink(outside, data / "img" / "linked.png")  # a link inside may point anywhere
    hint = "(--allow-outside-root or allow_outside_root=True reads files elsewhere)"
    csv = write(
        data / "captions.csv",
        f"image_path,caption\nimg/a.png,A dog\nimg/linked.png,A cat\n../outside.png,A cow\n"
        f"{outside},A hen\n../../etc/passwd,A secret\n",
    )
    with pytest.raises(DataValidationError) as excinfo:
        readers.read_captions(csv)
    assert error_text(excinfo).split("\n")[1:] == [
        f"  {csv}:{line}: field 'image_path': expected a file inside the data folder {data} "
        f"{hint}, got {written!r}"
        for line, written in ((4, "../outside.png"), (5, str(outside)), (6, "../../etc/passwd"))
    ]
    with pytest.raises(DataValidationError, match="etc/passwd"):  # outside, then missing
        readers.read_captions(csv, allow_outside_root=True)
    write(csv, "image_path,caption\nimg/a.png,A dog\n../outside.png,A cow\n")
    assert len(readers.read_captions(csv, allow_outside_root=True)) == 2

    # Karpathy: a `filepath` climbing out of the image root.
    karpathy = write(
        data / "dataset_x.json",
        karpathy_json([kimage("outside.png", "train", "A cow", filepath="..")]),
    )
    with pytest.raises(DataValidationError, match=r"images\[0\]\.filename': expected a file "):
        readers.read_karpathy_json(karpathy)
    assert len(readers.read_karpathy_json(karpathy, allow_outside_root=True)) == 1
    # Hateful Memes, pair CSV and Flickr8k: the JSONL's / CSV's / image folder.
    memes = write(
        data / "train.jsonl", jsonl({"id": 1, "img": "../outside.png", "text": "t", "label": 0})
    )
    with pytest.raises(
        DataValidationError, match=f"field 'img': expected a file inside the data folder {data} "
    ):
        readers.read_pairs(memes)
    assert len(readers.read_pairs(memes, allow_outside_root=True)) == 1
    pairs = write(data / "pairs.csv", f"image_path,text,label\n{outside},t,0\n")
    with pytest.raises(DataValidationError, match="field 'image_path': expected a file inside"):
        readers.read_pairs(pairs)
    assert len(readers.read_pairs(pairs, allow_outside_root=True)) == 1
    flickr = make_flickr8k(tmp_path / "flickr")
    write(flickr / "Flickr_8k.testImages.txt", "../../outside.png\n")
    write(flickr / "Flickr8k.token.txt", TOKENS + "../../outside.png#0\tA cow\n")
    with pytest.raises(DataValidationError, match="field 'image': expected a file inside"):
        readers.read_flickr8k(flickr)
    frame = readers.read_flickr8k(flickr, allow_outside_root=True)
    assert frame.split.tolist().count("test") == 1


def test_empty_missing_and_repeated_rows_are_problems(tmp_path):
    touch(tmp_path / "a.png")
    header_only = write(tmp_path / "header_only.csv", "image_path,caption\n\n")
    with pytest.raises(DataValidationError) as excinfo:
        readers.read_captions(header_only)
    assert error_text(excinfo) == (
        f"1 problem in {header_only}:\n"
        f"  {header_only}: expected at least one row below the header line, got none"
    )
    with pytest.raises(DataValidationError, match="at least one row below the header"):
        readers.read_pairs(write(tmp_path / "pairs.csv", "image_path,text,label\n"))

    path = write(
        tmp_path / "captions.csv",
        "image_path,caption\n"
        "a.png,A dog\n"
        "a.png,NaN\n"
        "a.png,nan\n"
        "a.png,\u200b\n"  # a zero-width space
        "a.png, ... \n"
        "a.png, A dog \n"  # a copy of line 2
        "a.png,A cat\n",
    )
    with pytest.raises(DataValidationError) as excinfo:
        readers.read_captions(path)
    assert error_text(excinfo).split("\n")[1:] == [
        f"  {path}:3: field 'caption': expected non-empty text, got 'NaN' (a missing-value marker)",
        f"  {path}:4: field 'caption': expected non-empty text, got 'nan' (a missing-value marker)",
        f"  {path}:5: field 'caption': expected text with a letter or digit, got '\\u200b'",
        f"  {path}:6: field 'caption': expected text with a letter or digit, got ' ... '",
        f"  {path}:7: expected each row once, got a copy of line 2",
    ]
    pairs = write(
        tmp_path / "pairs.csv", "image_path,text,label\na.png,hi,0\na.png,None,1\na.png,hi,0\n"
    )
    with pytest.raises(DataValidationError) as excinfo:
        readers.read_pairs(pairs)
    assert error_text(excinfo).split("\n")[1:] == [
        f"  {pairs}:3: field 'text': expected non-empty text, got 'None' (a missing-value marker)",
        f"  {pairs}:4: expected each row once, got a copy of line 2",
    ]
    memes = write(
        tmp_path / "train.jsonl", jsonl({"id": 1, "img": "a.png", "text": "NULL", "label": 0})
    )
    with pytest.raises(DataValidationError, match="got 'NULL' \\(a missing-value marker\\)"):
        readers.read_pairs(memes)
