"""A captioner run's data: the caption frame its `data` names, its vocabulary, and the
repeated, sharded `tf.data` pipelines it trains on."""

import math
import pathlib
from collections.abc import Sequence

import pandas as pd
import tensorflow as tf

from xmodal_keras.data.datasets import make_caption_dataset
from xmodal_keras.data.readers import read_captions
from xmodal_keras.data.shapes import load_shapes
from xmodal_keras.data.sharding import shard_by
from xmodal_keras.data.text_tokenizer import CaptionTokenizer
from xmodal_keras.data.tfrecords import (
    is_caption_tfrecord_dir,
    make_caption_tfrecord_dataset,
    read_caption_tfrecords,
)
from xmodal_keras.tasks.captioning.settings import CaptionerTrainConfig


def shapes_root(config: CaptionerTrainConfig) -> pathlib.Path | None:
    """The shapes dataset root of a run (built-in or a path to one), else None."""
    if config.is_shapes:
        return load_shapes(
            num_images=config.shapes_num_images,
            image_size=config.shapes_image_size,
            seed=config.shapes_seed,
        )
    if isinstance(config.data, str):
        path = pathlib.Path(config.data)
        if path.is_dir() and (path / "scenes.jsonl").is_file():
            return path
    return None


def tfrecord_dir(config: CaptionerTrainConfig) -> str | None:
    """The run's data when it is a TFRecord folder (`xmodal data to-tfrecord`), else None."""
    if isinstance(config.data, str) and not config.is_shapes:
        if config.format in ("auto", "tfrecord") and is_caption_tfrecord_dir(config.data):
            return config.data
    return None


def read_caption_data(config: CaptionerTrainConfig) -> pd.DataFrame:
    """The caption DataFrame of a run's `data` (all splits)."""
    if config.is_shapes:
        return read_captions(shapes_root(config), "flickr8k")
    if tfrecord_dir(config) is not None:
        return read_caption_tfrecords(config.data)
    paths = [config.data] if isinstance(config.data, str) else list(config.data)
    frames = [
        read_captions(path, config.format, allow_outside_root=config.allow_outside_root)
        for path in paths
    ]
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def data_name(data: str | Sequence[str]) -> str:
    """A run's `data` setting as text for messages: a path, or the paths joined."""
    return data if isinstance(data, str) else ", ".join(data)


def tokenizer_from_captions(config: CaptionerTrainConfig, captions) -> CaptionTokenizer:
    """The vocabulary a run builds from its train captions (`min_count`, the size cap)."""
    return CaptionTokenizer.from_captions(
        captions,
        sequence_length=config.resolved().sequence_length,
        min_count=config.min_count,
        max_size=config.max_vocabulary_size,
    )


def make_train_datasets(
    config: CaptionerTrainConfig,
    tokenizer: CaptionTokenizer,
    train: pd.DataFrame,
    val: pd.DataFrame,
    global_batch: int,
) -> tuple[tf.data.Dataset, dict]:
    """The repeated train dataset and `fit`'s validation arguments, sharded for workers:
    by data for in-memory file lists, by file for TFRecord shards."""
    image_size = (config.image_size, config.image_size)
    records = tfrecord_dir(config)

    def make(frame: pd.DataFrame, split: str, shuffle: bool) -> tf.data.Dataset:
        common = {
            "image_size": image_size,
            "batch_size": global_batch,
            "shuffle": shuffle,
            "seed": config.seed,
            "cache": True,
            "repeat": True,
        }
        if records is not None:
            return make_caption_tfrecord_dataset(records, tokenizer, split=split, **common)
        return shard_by(
            make_caption_dataset(frame, tokenizer, check_images="none", **common), "data"
        )

    fit_val = {}
    if not val.empty:
        fit_val["validation_data"] = make(val, "val", shuffle=False)
        fit_val["validation_steps"] = math.ceil(len(val) / global_batch)
    return make(train, "train", shuffle=True), fit_val
