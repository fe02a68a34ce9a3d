"""Sharded caption TFRecords: write, read back (captions and pixels), CLI, bad input."""

import json

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from PIL import Image

from xmodal_keras.cli import main
from xmodal_keras.data.datasets import make_caption_dataset
from xmodal_keras.data.image_preprocessing import load_image
from xmodal_keras.data.readers import read_captions
from xmodal_keras.data.text_tokenizer import CaptionTokenizer
from xmodal_keras.data.tfrecords import (
    make_caption_tfrecord_dataset,
    read_caption_tfrecords,
    read_tfrecord_images,
    tfrecord_files,
    write_caption_tfrecords,
)


@pytest.fixture
def caption_frame(tmp_path) -> pd.DataFrame:
    """5 PNG images of distinct colours; 2-3 captions each; train and val."""
    rows = []
    for i in range(5):
        path = tmp_path / "images" / f"img{i}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(np.full((6, 8, 3), 40 * i, np.uint8)).save(path)
        split = "val" if i == 4 else "train"
        for k in range(2 + i % 2):
            rows.append((f"img{i}.png", str(path), f"shape {i} caption {k}", split))
    return pd.DataFrame(rows, columns=["image_id", "image_path", "caption", "split"])


def test_round_trip(caption_frame, tmp_path):
    out = tmp_path / "records"
    manifest = write_caption_tfrecords(caption_frame, out, num_shards=3)
    assert manifest["splits"]["train"] == {
        "files": [f"train-{i:05d}-of-00003.tfrecord" for i in range(3)],
        "num_images": 4,
        "num_captions": 10,
    }
    assert manifest["splits"]["val"]["files"] == ["val-00000-of-00001.tfrecord"]  # 1 image
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert not list(out.glob(".*"))  # no temporary files left

    back = read_caption_tfrecords(out)
    key = ["split", "image_id", "caption"]
    expected = caption_frame[key].sort_values(key).reset_index(drop=True)
    assert back[key].sort_values(key).reset_index(drop=True).equals(expected)
    assert back.image_path.str.contains(r"\.tfrecord#\d+$").all()

    images = read_tfrecord_images(out, "train", ["img3.png", "img0.png"], (4, 4))
    assert images.dtype == np.uint8 and images.shape == (2, 4, 4, 3)
    np.testing.assert_array_equal(images[0], load_image(caption_frame.image_path[7], (4, 4)))

    # The batches equal make_caption_dataset's on the same frame (up to order).
    tokenizer = CaptionTokenizer.from_captions(caption_frame.caption, sequence_length=6)
    train = caption_frame[caption_frame.split == "train"]
    common = {"image_size": (4, 4), "batch_size": 3, "shuffle": False}
    ours = make_caption_tfrecord_dataset(out, tokenizer, split="train", **common)
    reference = make_caption_dataset(train, tokenizer, **common)

    def rows(dataset):
        found = []
        for inputs, caption_out in dataset:
            for image, token_ids, target in zip(
                inputs["images"].numpy(),
                inputs["token_ids"].numpy(),
                caption_out.numpy(),
                strict=True,
            ):
                found.append((int(image[0, 0, 0]), tuple(token_ids), tuple(target)))
        return sorted(found)

    assert rows(ours) == rows(reference) and len(rows(ours)) == 10
    policy = ours.options().experimental_distribute.auto_shard_policy
    assert policy == tf.data.experimental.AutoShardPolicy.FILE

    repeated = make_caption_tfrecord_dataset(
        out, tokenizer, split="train", image_size=(4, 4), batch_size=4, repeat=True, cache=True
    )
    assert [b[0]["images"].shape[0] for b in repeated.take(4)] == [4, 4, 4, 4]


def test_cli_to_tfrecord(tiny_shapes_dir, tmp_path, capsys):
    out = tmp_path / "shards"
    assert main(["data", "to-tfrecord", str(tiny_shapes_dir), "--shards", "2", "--out", str(out)])\
        == 0  # fmt: skip
    printed = capsys.readouterr().out
    frame = read_captions(tiny_shapes_dir)
    for split in ("train", "val", "test"):
        part = frame[frame.split == split]
        line = f"{split}: {part.image_id.nunique()} images, {len(part)} captions in 2 shard(s)"
        assert line in printed
    assert len(tfrecord_files(out, "train")) == 2
    assert len(read_caption_tfrecords(out, "test")) == (frame.split == "test").sum()


def test_bad_arguments(caption_frame, tmp_path):
    with pytest.raises(ValueError, match="Received: num_shards=0"):
        write_caption_tfrecords(caption_frame, tmp_path / "x", num_shards=0)
    with pytest.raises(ValueError, match=r"missing columns \['split'\]"):
        write_caption_tfrecords(caption_frame.drop(columns="split"), tmp_path / "x")
    with pytest.raises(FileNotFoundError, match="manifest.json is missing"):
        read_caption_tfrecords(tmp_path)
    write_caption_tfrecords(caption_frame, tmp_path / "r", num_shards=1)
    with pytest.raises(ValueError, match=r"no 'test' split.*Received: split='test'"):
        tfrecord_files(tmp_path / "r", "test")
