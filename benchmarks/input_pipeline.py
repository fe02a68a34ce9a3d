"""Input pipeline throughput: `make_caption_dataset` vs a naive per-example Python loader.

Prints image-caption pairs per second for, in the same run and on the same data:

- ours, no cache: tf.data, each image decoded once for its 5 captions, parallel decode;
- ours, cache: the same with decoded images cached in memory (timed after the first epoch);
- tf.data per caption: a plain tf.data pipeline (parallel decode, in-graph tokenisation)
  that decodes each image once per caption, to show what grouping by image adds;
- naive: a per-example Python loop (PIL decode + resize, Python tokenisation, numpy
  batching) that decodes each image once per caption, as simple loaders do.

Data: the built-in shapes dataset (`xmodal_keras.data.shapes.generate_shapes`, 5 captions
per image) written to a temporary directory, images stored at `--source-size` and resized
to `--image-size`.

Run:

    .venv/bin/python benchmarks/input_pipeline.py --num-images 2000 --image-size 64
"""

import argparse
import itertools
import os
import pathlib
import tempfile
import time

import numpy as np
import pandas as pd
import tensorflow as tf
from PIL import Image

from xmodal_keras.data.datasets import make_caption_dataset
from xmodal_keras.data.image_preprocessing import load_image
from xmodal_keras.data.text_tokenizer import (
    END_ID,
    PAD_ID,
    START_ID,
    UNK_ID,
    CaptionTokenizer,
    normalize_caption,
)

SEQUENCE_LENGTH = 20


def write_data(root: pathlib.Path, num_images: int, source_size: int) -> pd.DataFrame:
    """The shapes dataset as a caption frame (fallback: plain synthetic PNGs)."""
    try:
        from xmodal_keras.data.shapes import generate_shapes
    except ImportError:
        generate_shapes = None
    if generate_shapes is not None:
        data_dir = generate_shapes(root / "shapes", num_images=num_images, image_size=source_size)
        return read_caption_frame(data_dir)
    rng = np.random.default_rng(0)
    (root / "Images").mkdir()
    rows = []
    colors = ["red", "green", "blue", "yellow", "white"]
    for i in range(num_images):
        path = root / "Images" / f"img_{i:05d}.png"
        Image.fromarray(rng.integers(0, 255, (source_size, source_size, 3), np.uint8)).save(path)
        for k in range(5):
            rows.append((path.name, str(path), f"A {colors[(i + k) % 5]} square, {k}.", "train"))
    return pd.DataFrame(rows, columns=["image_id", "image_path", "caption", "split"])


def read_caption_frame(data_dir: pathlib.Path) -> pd.DataFrame:
    try:
        from xmodal_keras.data.readers import read_captions
    except ImportError:
        read_captions = None
    if read_captions is not None:
        return read_captions(data_dir / "Flickr8k.token.txt")
    rows = []
    with open(data_dir / "Flickr8k.token.txt", encoding="utf-8") as file:
        for line in file:
            if line.strip():
                key, caption = line.rstrip("\n").split("\t", 1)
                name = key.split("#")[0]
                rows.append((name, str(data_dir / "Images" / name), caption.strip(), "train"))
    return pd.DataFrame(rows, columns=["image_id", "image_path", "caption", "split"])


def time_batches(batches, num_batches: int, warmup: int) -> float:
    """Pairs per second over `num_batches` after `warmup` batches."""
    iterator = iter(batches)
    for _ in range(warmup):
        next(iterator)
    count = 0
    start = time.perf_counter()
    for batch in itertools.islice(iterator, num_batches):
        count += len(batch[1])
    return count / (time.perf_counter() - start)


def per_caption_dataset(frame, tokenizer, image_size, batch_size) -> tf.data.Dataset:
    """Ordinary tf.data pipeline over caption rows: one decode per caption."""
    dataset = tf.data.Dataset.from_tensor_slices(
        (frame.image_path.tolist(), frame.caption.tolist())
    )
    dataset = dataset.shuffle(len(frame), seed=0, reshuffle_each_iteration=True).repeat()

    def load(path, caption):
        tokens = tokenizer(caption)
        return load_image(path, image_size), tokens

    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.batch(batch_size).map(
        lambda images, tokens: ({"images": images, "token_ids": tokens[:, :-1]}, tokens[:, 1:])
    )
    return dataset.prefetch(tf.data.AUTOTUNE)


def naive_batches(frame: pd.DataFrame, tokenizer, image_size: int, batch_size: int):
    """Per-example Python loader: decodes each image once per caption."""
    index = {token: i for i, token in enumerate(tokenizer.vocabulary)}
    rng = np.random.default_rng(0)
    while True:
        order = rng.permutation(len(frame))
        for start in range(0, len(order), batch_size):
            images, tokens = [], []
            for row in order[start : start + batch_size]:
                path, caption = frame.image_path.iat[row], frame.caption.iat[row]
                with Image.open(path) as image:
                    image = image.convert("RGB").resize((image_size, image_size), Image.BILINEAR)
                    images.append(np.asarray(image))
                words = normalize_caption(caption).split()[: SEQUENCE_LENGTH - 1]
                ids = [START_ID] + [index.get(w, UNK_ID) for w in words] + [END_ID]
                tokens.append(ids + [PAD_ID] * (SEQUENCE_LENGTH + 1 - len(ids)))
            tokens = np.asarray(tokens, np.int32)
            yield {"images": np.stack(images), "token_ids": tokens[:, :-1]}, tokens[:, 1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-images", type=int, default=2000)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--source-size", type=int, default=128, help="stored image side")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-batches", type=int, default=100, help="timed batches per loader")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        frame = write_data(pathlib.Path(tmp), args.num_images, args.source_size)
        print(
            f"data: {frame.image_path.nunique()} images ({args.source_size}px), {len(frame)} "
            f"captions, written in {time.perf_counter() - start:.1f} s; resize to "
            f"{args.image_size}px, batch {args.batch_size}, {args.num_batches} timed batches, "
            f"{os.cpu_count()} CPU cores"
        )
        tokenizer = CaptionTokenizer.from_captions(frame.caption, sequence_length=SEQUENCE_LENGTH)
        shape = (args.image_size, args.image_size)
        batches_per_epoch = -(-len(frame) // args.batch_size)
        results = []
        dataset = make_caption_dataset(
            frame, tokenizer, image_size=shape, batch_size=args.batch_size, repeat=True
        )
        results.append(("make_caption_dataset", time_batches(dataset, args.num_batches, 5)))
        cached = make_caption_dataset(
            frame, tokenizer, image_size=shape, batch_size=args.batch_size, repeat=True, cache=True
        )
        # warm-up = one full epoch, so the timed batches read the cache
        results.append(
            (
                "make_caption_dataset(cache=True)",
                time_batches(cached, args.num_batches, batches_per_epoch + 1),
            )
        )
        per_caption = per_caption_dataset(frame, tokenizer, shape, args.batch_size)
        results.append(
            ("tf.data, decode per caption", time_batches(per_caption, args.num_batches, 5))
        )
        naive = naive_batches(frame, tokenizer, args.image_size, args.batch_size)
        results.append(
            ("naive per-example Python loader", time_batches(naive, args.num_batches, 2))
        )

    baseline = results[-1][1]
    print(f"\n| {'loader':<34} | {'pairs/s':>9} | {'vs naive':>8} |")
    print(f"|{'-' * 36}|{'-' * 11}|{'-' * 10}|")
    for name, rate in results:
        print(f"| {name:<34} | {rate:>9,.0f} | {rate / baseline:>7.1f}x |")


if __name__ == "__main__":
    main()
