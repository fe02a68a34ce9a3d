"""Tests for the caption / pair readers: one small fixture per real format, good and broken."""

import json
import os
import pathlib

import pandas as pd
import pytest
from tiny_images import write_png

from xmodal_keras.data import sources
from xmodal_keras.data.validation import DataValidationError


def touch(path: pathlib.Path) -> pathlib.Path:
    """A tiny real image file (the readers check image files by their first bytes)."""
    return write_png(path)


def write(path: pathlib.Path, text: str, *, bom: bool = False, crlf: bool = False) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if crlf:
        text = text.replace("\n", "\r\n")
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def error_text(excinfo: pytest.ExceptionInfo) -> str:
    assert isinstance(excinfo.value, ValueError)
    return str(excinfo.value)


def assert_caption_frame(frame: pd.DataFrame) -> None:
    assert list(frame.columns) == ["image_id", "image_path", "caption", "split"]
    for column in frame.columns:
        assert pd.api.types.is_string_dtype(frame[column]), column
    assert all(os.path.isabs(p) for p in frame["image_path"])
    assert set(frame["split"]) <= {"train", "val", "test"}


# --------------------------------------------------------------------------- Flickr8k

TOKENS = (
    "a.jpg#0\tA dog runs .\n"
    "a.jpg#1\t  A brown dog.  \n"
    "b.jpg#0\tTwo cats sleep\n"
    "c.jpg#0\tA red car\n"
    "d.jpg#0\tA bird flies\n"
    "a.jpg.1#0\tAn entry in no split file\n"
)


def make_flickr8k(root: pathlib.Path, image_dir: str = "Flicker8k_Dataset", text_dir: str = "."):
    for name in ("a.jpg", "b.jpg", "c.jpg", "d.jpg"):
        touch(root / image_dir / name)
    text = root / text_dir
    write(text / "Flickr8k.token.txt", TOKENS)
    write(text / "Flickr_8k.trainImages.txt", "a.jpg\nb.jpg\n")
    write(text / "Flickr_8k.devImages.txt", "c.jpg\n")
    write(text / "Flickr_8k.testImages.txt", "d.jpg\n")
    return root


def test_read_flickr8k_rows_splits_and_paths(tmp_path):
    root = make_flickr8k(tmp_path)
    frame = sources.read_flickr8k(root)
    assert_caption_frame(frame)
    assert frame.values.tolist() == [
        ["a.jpg", str(root / "Flicker8k_Dataset" / "a.jpg"), "A dog runs .", "train"],
        ["a.jpg", str(root / "Flicker8k_Dataset" / "a.jpg"), "A brown dog.", "train"],
        ["b.jpg", str(root / "Flicker8k_Dataset" / "b.jpg"), "Two cats sleep", "train"],
        ["c.jpg", str(root / "Flicker8k_Dataset" / "c.jpg"), "A red car", "val"],
        ["d.jpg", str(root / "Flicker8k_Dataset" / "d.jpg"), "A bird flies", "test"],
    ]
    pd.testing.assert_frame_equal(sources.read_captions(root), frame)
    pd.testing.assert_frame_equal(sources.read_captions(root / "Flickr8k.token.txt"), frame)
    result = sources.read_with_problems(root, kind="captions")
    assert result.notes == [
        "1 image(s) in Flickr8k.token.txt are in no split file and were dropped: 'a.jpg.1'"
    ]


@pytest.mark.parametrize("image_dir", ["Flickr8k_Dataset", "Images"])
def test_read_flickr8k_text_subfolder_layout(tmp_path, image_dir):
    root = make_flickr8k(tmp_path, image_dir=image_dir, text_dir="Flickr8k_text")
    frame = sources.read_captions(root)
    assert_caption_frame(frame)
    assert frame["image_path"].iloc[0] == str(root / image_dir / "a.jpg")
    assert frame["split"].tolist() == ["train", "train", "train", "val", "test"]


def test_read_flickr8k_bom_crlf_reads_like_clean(tmp_path):
    clean = sources.read_flickr8k(make_flickr8k(tmp_path / "clean"), check_images=False)
    root = make_flickr8k(tmp_path / "crlf")
    for path in root.glob("*.txt"):
        write(path, path.read_text(), bom=True, crlf=True)
    crlf = sources.read_flickr8k(root, check_images=False)
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
        sources.read_flickr8k(root)
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
        sources.read_flickr8k(tmp_path)
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
        sources.read_flickr8k(root)
    assert f"{token}:2: expected UTF-8 text, got undecodable byte 0xe9 at column 14" in error_text(
        excinfo
    )


# --------------------------------------------------------------------------- Karpathy JSON


def karpathy_json(images: list[dict]) -> str:
    return json.dumps({"dataset": "coco", "images": images})


def kimage(filename, split, *captions, filepath=None):
    image = {"filename": filename, "split": split, "sentences": [{"raw": c} for c in captions]}
    if filepath is not None:
        image["filepath"] = filepath
    return image


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
    frame = sources.read_karpathy_json(path, images_dir=tmp_path / "coco")
    assert_caption_frame(frame)
    assert frame.values.tolist() == [
        ["val2014/x.jpg", str(tmp_path / "coco/val2014/x.jpg"), "A man.", "test"],
        ["val2014/x.jpg", str(tmp_path / "coco/val2014/x.jpg"), "A person", "test"],
        ["val2014/y.jpg", str(tmp_path / "coco/val2014/y.jpg"), "A tree", "train"],
        ["train2014/z.jpg", str(tmp_path / "coco/train2014/z.jpg"), "A boat", "train"],
        ["val2014/w.jpg", str(tmp_path / "coco/val2014/w.jpg"), "A road", "val"],
    ]
    pd.testing.assert_frame_equal(sources.read_captions(path, images_dir=tmp_path / "coco"), frame)


def test_read_karpathy_json_flickr_style_defaults_to_json_folder(tmp_path):
    touch(tmp_path / "a.jpg")
    path = write(
        tmp_path / "dataset_flickr8k.json",
        karpathy_json([kimage("a.jpg", "train", "A dog")]),
        bom=True,
    )
    frame = sources.read_captions(tmp_path)  # a folder with one dataset_*.json
    assert frame.values.tolist() == [["a.jpg", str(tmp_path / "a.jpg"), "A dog", "train"]]
    pd.testing.assert_frame_equal(sources.read_captions(path, format="karpathy"), frame)


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
        sources.read_karpathy_json(path)
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
        sources.read_karpathy_json(path)
    assert (
        f"{path}:2: expected valid JSON, got Expecting property name enclosed in double quotes "
        "at column 24" in error_text(excinfo)
    )


# --------------------------------------------------------------------------- COCO captions


def coco_json(images, annotations) -> str:
    return json.dumps({"info": {}, "images": images, "annotations": annotations})


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
    frame = sources.read_coco_captions(path)
    assert_caption_frame(frame)
    assert frame.values.tolist() == [
        ["1", str(tmp_path / "val2017/000001.jpg"), "A dog", "val"],
        ["2", str(tmp_path / "val2017/000002.jpg"), "A cat.", "val"],
        ["2", str(tmp_path / "val2017/000002.jpg"), "Another cat", "val"],
    ]
    pd.testing.assert_frame_equal(sources.read_captions(path), frame)
    frame = sources.read_captions(path, format="coco", split="test")
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
        sources.read_coco_captions(path, images_dir=tmp_path)
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
        sources.read_coco_captions(path)
    with pytest.raises(ValueError, match="Received: split='holdout'"):
        sources.read_coco_captions(path, split="holdout")
    assert len(sources.read_coco_captions(path, split="val")) == 0


# --------------------------------------------------------------------------- caption CSV


def test_read_caption_csv(tmp_path):
    touch(tmp_path / "img" / "a.png")
    touch(tmp_path / "b.png")
    path = write(
        tmp_path / "captions.csv",
        'image_path,caption,split\nimg/a.png," A dog, running ",train\nb.png,A cat,dev\n'
        "\nb.png,Cat again,val\n",
    )
    frame = sources.read_caption_csv(path)
    assert_caption_frame(frame)
    assert frame.values.tolist() == [
        ["img/a.png", str(tmp_path / "img/a.png"), "A dog, running", "train"],
        ["b.png", str(tmp_path / "b.png"), "A cat", "val"],
        ["b.png", str(tmp_path / "b.png"), "Cat again", "val"],
    ]
    pd.testing.assert_frame_equal(sources.read_captions(path), frame)


def test_read_caption_csv_without_split_column_is_train(tmp_path):
    touch(tmp_path / "a.png")
    path = write(tmp_path / "captions.csv", "image_path,caption\na.png,A dog\n")
    assert sources.read_captions(path)["split"].tolist() == ["train"]
    frame = sources.read_caption_csv(path, default_split="test")
    assert frame["split"].tolist() == ["test"]


def test_read_caption_csv_bom_crlf_reads_like_clean(tmp_path):
    touch(tmp_path / "a.png")
    text = 'image_path,caption,split\na.png,"Two\nlines",train\na.png,Déjà vu,train\n'
    clean = sources.read_captions(write(tmp_path / "clean.csv", text))
    bom_crlf = sources.read_captions(write(tmp_path / "crlf.csv", text, bom=True, crlf=True))
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
        sources.read_captions(path)
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
        sources.read_captions(path)
    assert error_text(excinfo).split("\n")[1:] == [
        f"  {path}:2: expected valid CSV, got ',' expected after '\"'",
        f"  {path}:4: expected valid CSV, got a quote opened on this line and never closed",
    ]


def test_read_caption_csv_lists_20_problems_and_a_count(tmp_path):
    touch(tmp_path / "a.png")
    rows = "".join("a.png,\n" for _ in range(25))
    path = write(tmp_path / "captions.csv", "image_path,caption\na.png,ok\n" + rows)
    with pytest.raises(DataValidationError) as excinfo:
        sources.read_captions(path)
    lines = error_text(excinfo).split("\n")
    assert lines[0] == f"25 problems in {path}:"
    assert lines[1] == f"  {path}:3: field 'caption': expected non-empty text, got ''"
    assert lines[20] == f"  {path}:22: field 'caption': expected non-empty text, got ''"
    assert lines[21:] == ["  ... and 5 more"]
    assert len(excinfo.value.problems) == 25


def test_read_caption_csv_header_and_encoding_problems(tmp_path):
    path = write(tmp_path / "captions.csv", "image,caption\na.png,A dog\n")
    with pytest.raises(DataValidationError) as excinfo:
        sources.read_caption_csv(path)
    assert error_text(excinfo) == (
        f"1 problem in {path}:\n  {path}:1: field 'image_path': expected a 'image_path' "
        "column in the header, got columns image, caption"
    )
    path.write_bytes(b"image_path,caption\na.png,caf\xc3\n")
    with pytest.raises(DataValidationError) as excinfo:
        sources.read_caption_csv(path, check_images=False)
    assert error_text(excinfo) == (
        f"1 problem in {path}:\n  {path}:2: expected UTF-8 text, "
        "got undecodable byte 0xc3 at column 10"
    )
    path.write_bytes(b"")
    with pytest.raises(DataValidationError, match="expected a header line with columns"):
        sources.read_caption_csv(path)


# --------------------------------------------------------------------------- Hateful Memes


def jsonl(*items) -> str:
    return "".join(json.dumps(item) + "\n" for item in items)


def make_memes(root: pathlib.Path) -> pathlib.Path:
    for name in ("1.png", "2.png", "3.png", "4.png"):
        touch(root / "img" / name)
    write(
        root / "train.jsonl",
        jsonl(
            {"id": 1, "img": "img/1.png", "label": 0, "text": " its a meme "},
            {"id": 2, "img": "img/2.png", "label": 1, "text": "another"},
        ),
    )
    write(root / "dev_seen.jsonl", jsonl({"id": 3, "img": "img/3.png", "label": 1, "text": "t3"}))
    write(root / "dev_unseen.jsonl", jsonl({"id": 3, "img": "img/3.png", "label": 1, "text": "t3"}))
    write(root / "test_unseen.jsonl", jsonl({"id": "4", "img": "img/4.png", "text": "t4"}))
    write(root / "scenes.jsonl", "not a memes file\n")  # ignored
    return root


def test_read_hateful_memes_folder(tmp_path):
    root = make_memes(tmp_path)
    frame = sources.read_hateful_memes(root)
    assert list(frame.columns) == ["id", "image_path", "text", "label", "split"]
    assert frame["label"].dtype == "int64"
    assert frame.values.tolist() == [
        ["1", str(root / "img/1.png"), "its a meme", 0, "train"],
        ["2", str(root / "img/2.png"), "another", 1, "train"],
        ["3", str(root / "img/3.png"), "t3", 1, "val"],
        ["4", str(root / "img/4.png"), "t4", -1, "test"],
    ]
    pd.testing.assert_frame_equal(sources.read_pairs(root), frame)
    assert sources.read_with_problems(root, kind="pairs").notes == [
        "1 identical entries listed in two files of one split kept once"
    ]
    single = sources.read_pairs(root / "dev_seen.jsonl")
    assert single.values.tolist() == [["3", str(root / "img/3.png"), "t3", 1, "val"]]
    renamed = write(tmp_path / "memes.jsonl", (root / "train.jsonl").read_text())
    assert sources.read_hateful_memes(renamed, split="test")["split"].tolist() == ["test"] * 2
    with pytest.raises(ValueError, match="Cannot tell the split of"):
        sources.read_hateful_memes(renamed)


def test_read_hateful_memes_bom_crlf_reads_like_clean(tmp_path):
    root = make_memes(tmp_path)
    clean = sources.read_pairs(root / "train.jsonl")
    write(root / "train.jsonl", (root / "train.jsonl").read_text() + "\n", bom=True, crlf=True)
    pd.testing.assert_frame_equal(sources.read_pairs(root / "train.jsonl"), clean)


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
        sources.read_pairs(root)
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
        sources.read_pairs(root)
    assert error_text(excinfo).split("\n")[1:] == [
        f"  {dev}:1: field 'id': expected a unique id, got '3' (also dev_seen.jsonl:1)",
        f"  {test}:1: field 'img': expected an existing image file, got {root / 'img/9.png'}",
    ]


# --------------------------------------------------------------------------- pair CSV


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
    frame = sources.read_pair_csv(path)
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
    pd.testing.assert_frame_equal(sources.read_pairs(path), frame)


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
        sources.read_pairs(path)
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


# --------------------------------------------------------------------------- dispatch


def test_dispatch_errors_list_supported_formats(tmp_path):
    with pytest.raises(FileNotFoundError, match="No such file or directory: .*Supported formats"):
        sources.read_captions(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="hateful_memes"):
        sources.read_pairs(tmp_path / "nope.jsonl")
    other = write(tmp_path / "notes.txt", "hello\n")
    with pytest.raises(ValueError, match="Could not recognise captions data .*flickr8k"):
        sources.read_captions(other)
    with pytest.raises(ValueError, match="Could not recognise pairs data .*hateful_memes"):
        sources.read_pairs(tmp_path)
    with pytest.raises(ValueError, match="Received: format='tsv'"):
        sources.read_captions(other, format="tsv")
    with pytest.raises(ValueError, match="applies to the 'coco' format only"):
        sources.read_captions(make_flickr8k(tmp_path / "f"), split="train")


def test_detect_formats(tmp_path):
    root = make_flickr8k(tmp_path)
    make_memes(root)
    assert sources.detect_formats(root) == [("captions", "flickr8k"), ("pairs", "hateful_memes")]
    pairs = write(tmp_path / "p.csv", "image_path,text,label\n")
    assert sources.detect_formats(pairs) == [("pairs", "csv")]
    coco = write(tmp_path / "c.json", coco_json([{"id": 1, "file_name": "a.jpg"}], []))
    assert sources.detect_formats(coco) == [("captions", "coco")]
    assert sources.detect_formats(tmp_path / "nothing") == []


def test_reads_the_builtin_shapes_dataset(tiny_shapes_dir):
    captions = sources.read_captions(tiny_shapes_dir)
    assert_caption_frame(captions)
    assert captions["image_id"].nunique() == 40
    assert (captions.groupby("image_id").size() == 5).all()
    assert set(captions["split"]) == {"train", "val", "test"}
    pairs = sources.read_pairs(tiny_shapes_dir)
    assert list(pairs.columns) == ["id", "image_path", "text", "label", "split"]
    assert pairs["id"].is_unique and set(pairs["label"]) == {0, 1}
    assert set(pairs["image_path"]) == set(captions["image_path"])


# --------------------------------------------------------------------------- hardening


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
        sources.read_captions(path)
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
        sources.read_pairs(pairs)
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
        sources.read_captions(csv)
    assert error_text(excinfo).split("\n")[1:] == [
        f"  {csv}:{line}: field 'image_path': expected a file inside the data folder {data} "
        f"{hint}, got {written!r}"
        for line, written in ((4, "../outside.png"), (5, str(outside)), (6, "../../etc/passwd"))
    ]
    with pytest.raises(DataValidationError, match="etc/passwd"):  # outside, then missing
        sources.read_captions(csv, allow_outside_root=True)
    write(csv, "image_path,caption\nimg/a.png,A dog\n../outside.png,A cow\n")
    assert len(sources.read_captions(csv, allow_outside_root=True)) == 2

    # Karpathy: a `filepath` climbing out of the image root.
    karpathy = write(
        data / "dataset_x.json",
        karpathy_json([kimage("outside.png", "train", "A cow", filepath="..")]),
    )
    with pytest.raises(DataValidationError, match=r"images\[0\]\.filename': expected a file "):
        sources.read_karpathy_json(karpathy)
    assert len(sources.read_karpathy_json(karpathy, allow_outside_root=True)) == 1
    # Hateful Memes, pair CSV and Flickr8k: the JSONL's / CSV's / image folder.
    memes = write(
        data / "train.jsonl", jsonl({"id": 1, "img": "../outside.png", "text": "t", "label": 0})
    )
    with pytest.raises(
        DataValidationError, match=f"field 'img': expected a file inside the data folder {data} "
    ):
        sources.read_pairs(memes)
    assert len(sources.read_pairs(memes, allow_outside_root=True)) == 1
    pairs = write(data / "pairs.csv", f"image_path,text,label\n{outside},t,0\n")
    with pytest.raises(DataValidationError, match="field 'image_path': expected a file inside"):
        sources.read_pairs(pairs)
    assert len(sources.read_pairs(pairs, allow_outside_root=True)) == 1
    flickr = make_flickr8k(tmp_path / "flickr")
    write(flickr / "Flickr_8k.testImages.txt", "../../outside.png\n")
    write(flickr / "Flickr8k.token.txt", TOKENS + "../../outside.png#0\tA cow\n")
    with pytest.raises(DataValidationError, match="field 'image': expected a file inside"):
        sources.read_flickr8k(flickr)
    frame = sources.read_flickr8k(flickr, allow_outside_root=True)
    assert frame.split.tolist().count("test") == 1


def test_empty_missing_and_repeated_rows_are_problems(tmp_path):
    touch(tmp_path / "a.png")
    header_only = write(tmp_path / "header_only.csv", "image_path,caption\n\n")
    with pytest.raises(DataValidationError) as excinfo:
        sources.read_captions(header_only)
    assert error_text(excinfo) == (
        f"1 problem in {header_only}:\n"
        f"  {header_only}: expected at least one row below the header line, got none"
    )
    with pytest.raises(DataValidationError, match="at least one row below the header"):
        sources.read_pairs(write(tmp_path / "pairs.csv", "image_path,text,label\n"))

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
        sources.read_captions(path)
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
        sources.read_pairs(pairs)
    assert error_text(excinfo).split("\n")[1:] == [
        f"  {pairs}:3: field 'text': expected non-empty text, got 'None' (a missing-value marker)",
        f"  {pairs}:4: expected each row once, got a copy of line 2",
    ]
    memes = write(
        tmp_path / "train.jsonl", jsonl({"id": 1, "img": "a.png", "text": "NULL", "label": 0})
    )
    with pytest.raises(DataValidationError, match="got 'NULL' \\(a missing-value marker\\)"):
        sources.read_pairs(memes)


def test_an_unrecognised_csv_names_its_missing_columns_as_format_csv_does(tmp_path):
    path = write(tmp_path / "data.csv", "file,sentence\na.png,A dog\n")
    messages = {}
    for kind, read in (("captions", sources.read_captions), ("pairs", sources.read_pairs)):
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
