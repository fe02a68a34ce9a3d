"""Sharded TFRecords of (encoded image, captions): caption data too large to list in memory.

```
DIR/
  manifest.json                      format, version, per split: files, images, captions
  train-00000-of-00004.tfrecord ...  one tf.train.Example per image:
  val-00000-of-00001.tfrecord  ...     image (the file's bytes as they are: JPEG/PNG/...),
                                       image_id, split, captions (all of the image's captions)
```

`write_caption_tfrecords(frame, out_dir, num_shards)` writes them from a caption
DataFrame (any reader of `data/readers/`; `xmodal data to-tfrecord PATH --shards N`).
`make_caption_tfrecord_dataset(dir, tokenizer, split=...)` reads them into the same
`({"images", "token_ids"}, caption_out)` batches as `make_caption_dataset` (each image
decoded once for all of its captions); under a multi-worker strategy the shards are split
between workers by file (`AutoShardPolicy.FILE`). `read_caption_tfrecords` gives the
captions as a DataFrame (for the vocabulary) without decoding images.

Example:

>>> import pathlib, tempfile
>>> import numpy as np, pandas as pd
>>> from PIL import Image
>>> from xmodal_keras.data.text_tokenizer import CaptionTokenizer
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "a.png")
>>> frame = pd.DataFrame({"image_id": ["a.png"] * 2, "image_path": [str(root / "a.png")] * 2,
...                       "caption": ["A dog.", "A red dog."], "split": ["train"] * 2})
>>> manifest = write_caption_tfrecords(frame, root / "records", num_shards=1)
>>> manifest["splits"]["train"]["num_captions"]
2
>>> tokenizer = CaptionTokenizer.from_captions(frame.caption, sequence_length=5)
>>> dataset = make_caption_tfrecord_dataset(root / "records", tokenizer, image_size=(4, 4),
...                                         batch_size=2)
>>> inputs, caption_out = next(iter(dataset))
>>> inputs["images"].shape, inputs["token_ids"].shape, caption_out.shape
(TensorShape([2, 4, 4, 3]), TensorShape([2, 5]), TensorShape([2, 5]))
"""

import json
import os
import pathlib
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import tensorflow as tf

from xmodal_keras.atomic_files import atomic_write_text
from xmodal_keras.data.datasets import DEFAULT_SHUFFLE_BUFFER_SIZE, plan_caption_dataset
from xmodal_keras.data.image_preprocessing import _validate_image_size, decode_image
from xmodal_keras.data.sharding import shard_by

MANIFEST_FILE = "manifest.json"
FORMAT_NAME = "xmodal_caption_tfrecords"
FORMAT_VERSION = 1
FEATURES = {
    "image": tf.io.FixedLenFeature([], tf.string),
    "image_id": tf.io.FixedLenFeature([], tf.string),
    "split": tf.io.FixedLenFeature([], tf.string),
    "captions": tf.io.VarLenFeature(tf.string),
}


def _bytes_feature(values: Sequence[bytes]) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))


def _shard_name(split: str, index: int, num_shards: int) -> str:
    return f"{split}-{index:05d}-of-{num_shards:05d}.tfrecord"


def write_caption_tfrecords(
    frame: pd.DataFrame, out_dir: str | os.PathLike, *, num_shards: int = 8
) -> dict:
    """Write a caption DataFrame as sharded TFRecords, one `tf.train.Example` per image.

    Images go round-robin into `min(num_shards, images in the split)` shards per split,
    their encoded bytes copied as they are (no re-encoding). Images are checked first
    (`plan_caption_dataset`: one `DataValidationError` listing every bad file). Shards are
    written under temporary names and renamed, and `manifest.json` is written last, so a
    reader never sees a half-written set.

    Args:
        frame: caption DataFrame (`image_id`, `image_path`, `caption`, `split`).
        out_dir: folder to write (created; existing shards of the same names replaced).
        num_shards: shards per split, int >= 1. Defaults to 8.

    Returns:
        The manifest dict (also written as `manifest.json`).
    """
    if isinstance(num_shards, bool) or not isinstance(num_shards, int) or num_shards < 1:
        raise ValueError(f"`num_shards` must be an int >= 1. Received: num_shards={num_shards!r}")
    missing = [c for c in ("image_id", "image_path", "caption", "split") if c not in frame]
    if missing:
        raise ValueError(
            f"The caption frame is missing columns {missing}. Received: columns={list(frame)}"
        )
    frame = plan_caption_dataset(frame).frame
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "splits": {}}
    for split, rows in frame.groupby("split", sort=True):
        images = rows.groupby("image_path", sort=False)
        num_images = images.ngroups
        shards = min(num_shards, num_images)
        names = [_shard_name(str(split), i, shards) for i in range(shards)]
        temps = [out / f".{name}.tmp" for name in names]
        writers = [tf.io.TFRecordWriter(str(temp)) for temp in temps]
        try:
            for index, (path, image_rows) in enumerate(images):
                example = tf.train.Example(
                    features=tf.train.Features(
                        feature={
                            "image": _bytes_feature([pathlib.Path(path).read_bytes()]),
                            "image_id": _bytes_feature([str(image_rows.image_id.iloc[0]).encode()]),
                            "split": _bytes_feature([str(split).encode()]),
                            "captions": _bytes_feature(
                                [str(c).encode() for c in image_rows.caption]
                            ),
                        }
                    )
                )
                writers[index % shards].write(example.SerializeToString())
        finally:
            for writer in writers:
                writer.close()
        for temp, name in zip(temps, names, strict=True):
            os.replace(temp, out / name)
        manifest["splits"][str(split)] = {
            "files": names,
            "num_images": int(num_images),
            "num_captions": int(len(rows)),
        }
    atomic_write_text(out / MANIFEST_FILE, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def is_caption_tfrecord_dir(path: str | os.PathLike) -> bool:
    """True when `path` is a folder written by `write_caption_tfrecords`."""
    return (pathlib.Path(path) / MANIFEST_FILE).is_file()


def read_manifest(path: str | os.PathLike) -> dict:
    """The `manifest.json` of a TFRecord folder (checked: format and version)."""
    manifest_path = pathlib.Path(path) / MANIFEST_FILE
    if not manifest_path.is_file():
        raise FileNotFoundError(
            f"Not a caption TFRecord folder: {manifest_path} is missing (write one with "
            "`xmodal data to-tfrecord PATH --out DIR`)"
        )
    manifest = json.loads(manifest_path.read_text("utf-8"))
    if manifest.get("format") != FORMAT_NAME or manifest.get("version") != FORMAT_VERSION:
        raise ValueError(
            f"{manifest_path}: expected format {FORMAT_NAME!r} version {FORMAT_VERSION}. "
            f"Received: format={manifest.get('format')!r}, version={manifest.get('version')!r}"
        )
    return manifest


def tfrecord_files(path: str | os.PathLike, split: str) -> list[str]:
    """The shard files of one split (absolute paths, in order)."""
    manifest = read_manifest(path)
    if split not in manifest["splits"]:
        raise ValueError(
            f"{path} has no {split!r} split. Expected one of {sorted(manifest['splits'])}. "
            f"Received: split={split!r}"
        )
    root = pathlib.Path(path).absolute()
    return [str(root / name) for name in manifest["splits"][split]["files"]]


def _parse(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    example = tf.io.parse_single_example(serialized, FEATURES)
    example["captions"] = tf.sparse.to_dense(example["captions"], default_value="")
    return example


def read_caption_tfrecords(path: str | os.PathLike, split: str | None = None) -> pd.DataFrame:
    """The captions of a TFRecord folder as a caption DataFrame (images not decoded).

    `image_path` is `"<shard file>#<record index>"` (the image lives in the shard).
    """
    manifest = read_manifest(path)
    splits = [split] if split is not None else sorted(manifest["splits"])
    rows = []
    for name in splits:
        for file in tfrecord_files(path, name):
            for index, serialized in enumerate(tf.data.TFRecordDataset(file)):
                example = tf.io.parse_single_example(
                    serialized,
                    {key: FEATURES[key] for key in ("image_id", "split", "captions")},
                )
                image_id = example["image_id"].numpy().decode()
                for caption in example["captions"].values.numpy():
                    rows.append((image_id, f"{file}#{index}", caption.decode(), name))
    return pd.DataFrame(rows, columns=["image_id", "image_path", "caption", "split"])


def read_tfrecord_images(
    path: str | os.PathLike,
    split: str,
    image_ids: Sequence[str],
    image_size: tuple[int, int],
) -> np.ndarray:
    """Decoded uint8 `[N, H, W, 3]` images of `image_ids` (in that order) from a split."""
    image_size = _validate_image_size(image_size)
    wanted = set(image_ids)
    found = {}
    dataset = tf.data.TFRecordDataset(tfrecord_files(path, split)).map(_parse)
    for example in dataset:
        image_id = example["image_id"].numpy().decode()
        if image_id in wanted:
            found[image_id] = decode_image(example["image"], image_size).numpy()
    missing = sorted(wanted - set(found))
    if missing:
        raise ValueError(f"Images not in the {split!r} TFRecords of {path}. Received: {missing}")
    return np.stack([found[i] for i in image_ids])


def make_caption_tfrecord_dataset(
    path: str | os.PathLike,
    tokenizer: Callable[[tf.Tensor], tf.Tensor],
    *,
    split: str = "train",
    image_size: tuple[int, int] = (64, 64),
    batch_size: int = 32,
    shuffle: bool = True,
    seed: int | None = 0,
    cache: bool = False,
    repeat: bool = False,
    drop_remainder: bool = False,
    shuffle_buffer_size: int | None = None,
) -> tf.data.Dataset:
    """TFRecord folder -> `({"images": uint8 [B,H,W,3], "token_ids": int32 [B,T]},
    caption_out int32 [B,T])`, like `make_caption_dataset`.

    Shards are interleaved (deterministic order), each image decoded once and repeated
    for each of its captions, which are tokenised in-graph. The dataset's auto-shard
    policy is FILE: under `MultiWorkerMirroredStrategy` each worker reads its own shards
    (write at least as many shards as workers).

    Args:
        path: folder from `write_caption_tfrecords`.
        tokenizer: a `CaptionTokenizer` (strings `[N]` -> int32 `[N, T+1]`), traced into
            the pipeline.
        split: `"train"`, `"val"` or `"test"`. Defaults to `"train"`.
        image_size, batch_size, shuffle, seed, cache, repeat, drop_remainder,
        shuffle_buffer_size: as in `make_caption_dataset`.
    """
    image_size = _validate_image_size(image_size)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(
            f"`batch_size` must be a positive int. Received: batch_size={batch_size!r}"
        )
    files = tfrecord_files(path, split)
    buffer_size = shuffle_buffer_size or DEFAULT_SHUFFLE_BUFFER_SIZE

    dataset = tf.data.Dataset.from_tensor_slices(files)
    if shuffle and not cache:
        dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.interleave(
        tf.data.TFRecordDataset,
        cycle_length=min(len(files), 8),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    if shuffle and not cache:
        dataset = dataset.shuffle(buffer_size, seed=seed, reshuffle_each_iteration=True)

    def decode(serialized):
        example = _parse(serialized)
        return decode_image(example["image"], image_size), example["captions"]

    dataset = dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if cache:
        dataset = dataset.cache()
        if shuffle:
            dataset = dataset.shuffle(buffer_size, seed=seed, reshuffle_each_iteration=True)

    def expand(image, captions):
        tokens = tf.cast(tokenizer(captions), tf.int32)
        count = tf.shape(captions)[0]
        return tf.repeat(image[tf.newaxis], count, axis=0), tokens

    dataset = dataset.map(expand, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.unbatch()
    if shuffle:
        dataset = dataset.shuffle(buffer_size, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    dataset = dataset.map(
        lambda images, tokens: ({"images": images, "token_ids": tokens[:, :-1]}, tokens[:, 1:]),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return shard_by(dataset.prefetch(tf.data.AUTOTUNE), "file")
