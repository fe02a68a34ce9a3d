"""Files the reader tests write: tiny images, text files and one small fixture per format."""

import json
import os
import pathlib

import pandas as pd
import pytest
from tiny_images import write_png


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


def karpathy_json(images: list[dict]) -> str:
    return json.dumps({"dataset": "coco", "images": images})


def kimage(filename, split, *captions, filepath=None):
    image = {"filename": filename, "split": split, "sentences": [{"raw": c} for c in captions]}
    if filepath is not None:
        image["filepath"] = filepath
    return image


def coco_json(images, annotations) -> str:
    return json.dumps({"info": {}, "images": images, "annotations": annotations})


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
