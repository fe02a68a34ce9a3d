"""Tests for dataset inspection: statistics per format, and problems reported, not raised."""

import json
import pathlib

import pytest
from tiny_images import write_png

from xmodal_keras.data.inspection import (
    CaptionStats,
    PairStats,
    format_report,
    inspect_dataset,
)


def touch(path: pathlib.Path) -> None:
    write_png(path)


def write(path: pathlib.Path, text: str) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def jsonl(*items) -> str:
    return "".join(json.dumps(item) + "\n" for item in items)


def make_flickr8k(root: pathlib.Path) -> pathlib.Path:
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        touch(root / "Images" / name)
    write(
        root / "Flickr8k.token.txt",
        "a.jpg#0\tA dog runs.\n"
        "a.jpg#1\tThe dog runs fast\n"
        "b.jpg#0\tA cat\n"
        "c.jpg#0\tA red car on a road\n"
        "x.jpg#0\tIn no split file\n",
    )
    write(root / "Flickr_8k.trainImages.txt", "a.jpg\nb.jpg\n")
    write(root / "Flickr_8k.testImages.txt", "c.jpg\n")
    return root


def make_memes(root: pathlib.Path) -> pathlib.Path:
    touch(root / "img" / "1.png")
    write(
        root / "train.jsonl",
        jsonl(
            {"id": 1, "img": "img/1.png", "label": 0, "text": "one two"},
            {"id": 2, "img": "img/1.png", "label": 1, "text": "one two three"},
            {"id": 3, "img": "img/1.png", "label": 1, "text": "one"},
        ),
    )
    write(root / "test.jsonl", jsonl({"id": 4, "img": "img/1.png", "text": "a b c d"}))
    return root


def test_inspect_flickr8k(tmp_path):
    report = inspect_dataset(make_flickr8k(tmp_path))
    assert report.formats == ["flickr8k"]
    [view] = report.views
    assert view.kind == "captions" and view.problem_count == 0 and view.pairs is None
    assert view.captions == CaptionStats(
        images_per_split={"train": 2, "test": 1},
        captions_per_split={"train": 3, "test": 1},
        vocabulary_size=7,  # a dog runs . the fast cat
        caption_length={"p5": 2, "p50": 4, "p95": 6, "max": 6},
        captions_per_image={"min": 1, "mean": 4 / 3, "max": 2},
    )
    assert view.notes == [
        "1 image(s) in Flickr8k.token.txt are in no split file and were dropped: 'x.jpg'"
    ]
    text = format_report(report)
    assert text == "\n".join(
        [
            f"Dataset: {tmp_path}",
            "Formats: flickr8k (captions)",
            "",
            f"== captions (flickr8k): {tmp_path} ==",
            "  split  images  captions",
            "  train       2         3",
            "  test        1         1",
            "  total       3         4",
            "  vocabulary (train, words): 7",
            "  caption length (words): p5=2 p50=4 p95=6 max=6",
            "  captions per image: min=1 mean=1.33 max=2",
            "  note: 1 image(s) in Flickr8k.token.txt are in no split file and were dropped: "
            "'x.jpg'",
            "  problems found: 0",
        ]
    )


def test_inspect_hateful_memes(tmp_path):
    report = inspect_dataset(make_memes(tmp_path))
    [view] = report.views
    assert (view.kind, view.format, view.captions) == ("pairs", "hateful_memes", None)
    assert view.pairs == PairStats(
        pairs_per_split={"train": 3, "test": 1},
        labels_per_split={"train": {0: 1, 1: 2}, "test": {-1: 1}},
        text_length={"p5": 1, "p50": 3, "p95": 4, "max": 4},
        extra_columns=[],
    )
    lines = format_report(report).split("\n")
    assert lines[3:] == [
        f"== pairs (hateful_memes): {tmp_path} ==",
        "  split  pairs  label 0  label 1  unlabelled",
        "  train      3  1 (33%)  2 (67%)      0 (0%)",
        "  test       1   0 (0%)   0 (0%)    1 (100%)",
        "  total      4        1        2           1",
        "  text length (words): p5=1 p50=3 p95=4 max=4",
        "  extra columns: none",
        "  problems found: 0",
    ]


def test_inspect_caption_and_pair_csv(tmp_path):
    touch(tmp_path / "a.png")
    captions = write(
        tmp_path / "captions.csv", "image_path,caption,split\na.png,A dog,val\na.png,Dogs,val\n"
    )
    [view] = inspect_dataset(captions).views
    assert (view.kind, view.format) == ("captions", "csv")
    assert view.captions.captions_per_split == {"val": 2}
    assert view.captions.vocabulary_size is None
    assert "  vocabulary (train, words): n/a (no train split)" in format_report(
        inspect_dataset(captions)
    )
    pairs = write(tmp_path / "pairs.csv", "image_path,text,label,age\na.png,hi,2,30\n")
    [view] = inspect_dataset(pairs, format="csv").views
    assert (view.kind, view.format) == ("pairs", "csv")
    assert view.pairs.extra_columns == ["age"]
    assert view.pairs.labels_per_split == {"train": {2: 1}}
    assert "  extra columns: age" in format_report(inspect_dataset(pairs))


def test_inspect_karpathy_and_coco(tmp_path):
    touch(tmp_path / "val2017" / "1.jpg")
    karpathy = write(
        tmp_path / "dataset_coco.json",
        json.dumps(
            {
                "images": [
                    {
                        "filepath": "val2017",
                        "filename": "1.jpg",
                        "split": "restval",
                        "sentences": [{"raw": "A b"}, {"raw": "C"}],
                    }
                ]
            }
        ),
    )
    [view] = inspect_dataset(karpathy).views
    assert view.format == "karpathy"
    assert view.captions.captions_per_split == {"train": 2}
    assert view.captions.vocabulary_size == 3
    coco = write(
        tmp_path / "captions_val2017.json",
        json.dumps(
            {
                "images": [{"id": 1, "file_name": "1.jpg"}],
                "annotations": [{"image_id": 1, "caption": "A b"}],
            }
        ),
    )
    [view] = inspect_dataset(coco).views
    assert view.format == "coco"
    assert view.captions.images_per_split == {"val": 1}


def test_inspect_reports_problems_instead_of_raising(tmp_path):
    touch(tmp_path / "a.png")
    bad_rows = "".join(f"missing{i}.png,\n" for i in range(12))  # 2 problems per row
    path = write(tmp_path / "captions.csv", "image_path,caption\na.png,A good caption\n" + bad_rows)
    report = inspect_dataset(path)
    [view] = report.views
    assert view.problem_count == 24 and report.problem_count == 24
    assert len(view.problems) == 20
    assert view.problems[0] == f"{path}:3: field 'caption': expected non-empty text, got ''"
    assert view.captions.captions_per_split == {"train": 1}  # stats of the valid rows
    lines = format_report(report).split("\n")
    assert "  problems found: 24" in lines
    assert f"    {path}:3: field 'caption': expected non-empty text, got ''" in lines
    assert lines[-1] == "    ... and 4 more"


def test_inspect_unreadable_file_is_a_problem_not_a_crash(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_bytes(b'{"id": 1, "img": "x.png", "label": 0, "text": "caf\xe9"}\n')
    [view] = inspect_dataset(path).views
    assert view.problems == [
        f"{path}:1: expected UTF-8 text, got undecodable byte 0xe9 at column 51"
    ]
    assert view.pairs.pairs_per_split == {} and view.pairs.text_length == {}
    assert "  text length (words): n/a" in format_report(inspect_dataset(path))


def test_inspect_folder_with_both_views(tmp_path):
    make_flickr8k(tmp_path)
    make_memes(tmp_path)
    report = inspect_dataset(tmp_path)
    assert [(v.kind, v.format) for v in report.views] == [
        ("captions", "flickr8k"),
        ("pairs", "hateful_memes"),
    ]
    text = format_report(report)
    assert "Formats: flickr8k (captions), hateful_memes (pairs)" in text
    assert text.count("problems found: 0") == 2


def test_inspect_bad_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match="No such file or directory"):
        inspect_dataset(tmp_path / "nope")
    with pytest.raises(ValueError, match="Could not recognise a dataset"):
        inspect_dataset(tmp_path)
    with pytest.raises(ValueError, match="Received: format='parquet'"):
        inspect_dataset(tmp_path, format="parquet")


def test_inspect_builtin_shapes_dataset(tiny_shapes_dir):
    report = inspect_dataset(tiny_shapes_dir)
    assert report.formats == ["flickr8k", "hateful_memes"]
    assert report.problem_count == 0
    captions, pairs = report.views
    assert sum(captions.captions.images_per_split.values()) == 40
    assert captions.captions.captions_per_image == {"min": 5, "mean": 5.0, "max": 5}
    assert set(pairs.pairs.labels_per_split["train"]) == {0, 1}


def test_inspect_auto_and_format_csv_say_the_same_of_an_unknown_header(tmp_path):
    path = write(tmp_path / "data.csv", "file,sentence\na.png,A dog\n")
    auto, explicit = inspect_dataset(path), inspect_dataset(path, format="csv")
    assert auto.views == explicit.views
    assert auto.views[0].problems == [
        f"{path}:1: field 'image_path': expected a 'image_path' column in the header, "
        "got columns file, sentence",
        f"{path}:1: field 'caption': expected a 'caption' column in the header, "
        "got columns file, sentence",
    ]


def test_inspect_refuses_paths_outside_the_folder_unless_allowed(tmp_path):
    touch(tmp_path / "a.png")
    path = write(tmp_path / "data" / "captions.csv", "image_path,caption\n../a.png,A dog\n")
    [view] = inspect_dataset(path).views
    assert view.problem_count == 1 and "expected a file inside the data folder" in view.problems[0]
    [view] = inspect_dataset(path, allow_outside_root=True).views
    assert view.problem_count == 0 and view.captions.captions_per_split == {"train": 1}


def truncated_jpeg(path: pathlib.Path) -> pathlib.Path:
    """A JPEG cut after 2/3 of its bytes: its header reads, its pixels do not decode."""
    import io

    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) * 2 // 3])
    return path


def test_inspect_decode_finds_truncated_images(tmp_path, capsys):
    from xmodal_keras.cli import main

    touch(tmp_path / "good.png")
    truncated_jpeg(tmp_path / "cut.jpg")
    csv = write(tmp_path / "c.csv", "image_path,caption\ngood.png,A dog.\ncut.jpg,A cat.\n")
    assert inspect_dataset(csv).problem_count == 0  # headers only: the file looks fine
    (view,) = inspect_dataset(csv, decode_images=True).views
    assert view.problem_count == 1
    assert view.problems[0].startswith(f"{tmp_path / 'cut.jpg'}: expected a JPEG, PNG, GIF,")
    assert "cannot be decoded (JPEG: jpeg::Uncompress failed" in view.problems[0]
    assert main(["data", "inspect", str(csv), "--decode", "--strict"]) == 1
    assert "problems found: 1" in capsys.readouterr().out
    assert main(["data", "inspect", str(csv), "--strict"]) == 0
