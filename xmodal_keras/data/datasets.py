"""tf.data builders: caption and pair DataFrames -> batched `(inputs, targets)` for `model.fit`.

Each image is read and decoded **once** for all of its rows (captions or pairs): the
pipeline runs over unique images, then expands each decoded image to one element per row.

```
images (+ their tokenised captions) -> shuffle image order (seeded, each epoch)
  -> read + decode + resize (parallel, AUTOTUNE, order kept) -> [cache decoded images]
  -> one element per (image, caption) -> shuffle pairs -> [repeat] -> batch
  -> split token_ids / caption_out -> [augment] -> prefetch
```

With `cache=True` the decoded images are cached in a fixed order and shuffled after the
cache (a shuffle before a cache would freeze the first epoch's order).

Bad images are found before the pipeline is built (`find_bad_images`: every image decoded
once in a thread pool, with a progress bar from 1,000 images):
`on_bad_image="raise"` raises one `DataValidationError` listing every bad file and why,
`"skip"` drops those images with their rows and logs a warning. `plan_caption_dataset` /
`plan_pair_dataset` run that check alone and return a `DatasetPlan` whose
`num_skipped_images` / `skipped` tell how much was dropped; pass the plan instead of the
frame to build the dataset without checking twice.

Example:

>>> import pathlib, tempfile
>>> import numpy as np, pandas as pd
>>> from PIL import Image
>>> from xmodal_keras.data.text_tokenizer import CaptionTokenizer
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "a.png")
>>> frame = pd.DataFrame({"image_id": ["a.png"] * 2, "image_path": [str(root / "a.png")] * 2,
...                       "caption": ["A dog.", "A red dog."], "split": ["train"] * 2})
>>> tokenizer = CaptionTokenizer.from_captions(frame.caption, sequence_length=5)
>>> dataset = make_caption_dataset(frame, tokenizer, image_size=(4, 4), batch_size=2)
>>> inputs, caption_out = next(iter(dataset))
>>> inputs["images"].shape, inputs["token_ids"].shape, caption_out.shape
(TensorShape([2, 4, 4, 3]), TensorShape([2, 5]), TensorShape([2, 5]))
"""

import dataclasses
import logging
from collections.abc import Callable

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from xmodal_keras.data.image_preprocessing import (
    CHECK_MODES,
    _validate_image_size,
    find_bad_images,
    load_image,
)
from xmodal_keras.data.validation import ProblemCollector

logger = logging.getLogger(__name__)

ON_BAD_IMAGE = ("raise", "skip")
CAPTION_REQUIRED_COLUMNS = ("image_path", "caption")
PAIR_REQUIRED_COLUMNS = ("image_path", "text", "label")
DEFAULT_SHUFFLE_BUFFER_SIZE = 1024


@dataclasses.dataclass(frozen=True, eq=False)
class DatasetPlan:
    """A frame whose images were checked: the rows kept and the images dropped.

    Attributes:
        frame: the rows whose image passed the check (index kept from the input).
        skipped: `(image_path, reason)` for each dropped image (empty in "raise" mode).
        num_skipped_rows: rows (captions or pairs) dropped with those images.
        on_bad_image: the mode used; "skip" also drops files that only fail in TF decode.
    """

    frame: pd.DataFrame
    skipped: list[tuple[str, str]]
    num_skipped_rows: int
    on_bad_image: str

    @property
    def num_skipped_images(self) -> int:
        return len(self.skipped)

    @property
    def num_images(self) -> int:
        return int(self.frame["image_path"].nunique())


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {choices}. Received: {name}={value!r}")


def _plan(
    frame: pd.DataFrame,
    required_columns: tuple[str, ...],
    kind: str,
    on_bad_image: str,
    check_images: str,
) -> DatasetPlan:
    _check_choice("on_bad_image", on_bad_image, ON_BAD_IMAGE)
    _check_choice("check_images", check_images, CHECK_MODES)
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(
            f"`frame` must be a pandas DataFrame. Received: frame of type {type(frame).__name__}"
        )
    missing = [column for column in required_columns if column not in frame.columns]
    if missing:
        raise ValueError(
            f"The {kind} frame is missing columns {missing} (needs {list(required_columns)}). "
            f"Received: columns={list(frame.columns)}"
        )
    if len(frame) == 0:
        raise ValueError(f"The {kind} frame is empty. Received: len(frame)=0")
    paths = frame["image_path"].astype(str)
    bad = find_bad_images(paths.unique(), mode=check_images)
    if not bad:
        return DatasetPlan(frame, [], 0, on_bad_image)
    if on_bad_image == "raise":
        problems = ProblemCollector()
        for path, reason in bad:
            problems.add(path, None, None, "a JPEG, PNG, GIF, BMP or WEBP image", reason)
        problems.raise_if_any(f"the {kind} frame's images (on_bad_image='skip' drops them)")
    dropped = paths.isin({path for path, _ in bad})
    kept = frame[~dropped.to_numpy()]
    logger.warning(
        "Skipping %d bad image(s) and their %d %s row(s): %s",
        len(bad),
        int(dropped.sum()),
        kind,
        "; ".join(f"{path}: {reason}" for path, reason in bad[:5])
        + (f"; ... and {len(bad) - 5} more" if len(bad) > 5 else ""),
    )
    if len(kept) == 0:
        raise ValueError(
            f"Every image of the {kind} frame is bad. Received: {len(bad)} bad image(s), "
            f"first: {bad[0][0]} ({bad[0][1]})"
        )
    return DatasetPlan(kept, bad, int(dropped.sum()), on_bad_image)


def plan_caption_dataset(
    frame: pd.DataFrame, *, on_bad_image: str = "raise", check_images: str = "decode"
) -> DatasetPlan:
    """Check a caption frame's images; raise on bad ones or drop them (see `DatasetPlan`)."""
    return _plan(frame, CAPTION_REQUIRED_COLUMNS, "caption", on_bad_image, check_images)


def plan_pair_dataset(
    frame: pd.DataFrame, *, on_bad_image: str = "raise", check_images: str = "decode"
) -> DatasetPlan:
    """Check a pair frame's images; raise on bad ones or drop them (see `DatasetPlan`)."""
    return _plan(frame, PAIR_REQUIRED_COLUMNS, "pair", on_bad_image, check_images)


def build_caption_augmentation(
    translation: float = 0.05, zoom: float = 0.1, contrast: float = 0.1, seed: int | None = None
) -> keras.Sequential:
    """Random translation, zoom and contrast for caption training (no flips).

    Flips are left out on purpose: captions say "left" and "right", and a mirrored image
    would contradict its caption.
    """
    return keras.Sequential(
        [
            keras.layers.RandomTranslation(translation, translation, seed=seed),
            keras.layers.RandomZoom(zoom, seed=seed),
            keras.layers.RandomContrast(contrast, seed=seed),
        ],
        name="caption_augmentation",
    )


def _validate_common(batch_size, image_size, shuffle_buffer_size, augment) -> tuple[int, int]:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(
            f"`batch_size` must be a positive int. Received: batch_size={batch_size!r}"
        )
    if shuffle_buffer_size is not None and (
        not isinstance(shuffle_buffer_size, int) or shuffle_buffer_size <= 0
    ):
        raise ValueError(
            "`shuffle_buffer_size` must be None or a positive int. "
            f"Received: shuffle_buffer_size={shuffle_buffer_size!r}"
        )
    if augment is not None and not callable(augment):
        raise ValueError(
            "`augment` must be None or a callable such as a Keras layer. "
            f"Received: augment={augment!r}"
        )
    return _validate_image_size(image_size)


def _group_by_image(frame: pd.DataFrame) -> tuple[list[str], np.ndarray, pd.DataFrame]:
    """Unique image paths (first-appearance order), row counts, rows sorted by image."""
    paths = frame["image_path"].astype(str)
    order = pd.Index(paths.unique())
    position = order.get_indexer(paths)
    sort = np.argsort(position, kind="stable")
    counts = np.bincount(position, minlength=len(order))
    return order.tolist(), counts, frame.iloc[sort]


def _augment_images(augment: Callable, images: tf.Tensor) -> tf.Tensor:
    images = augment(tf.cast(images, tf.float32), training=True)
    return tf.cast(tf.clip_by_value(tf.round(images), 0.0, 255.0), tf.uint8)


def _image_rows_dataset(
    paths: list[str],
    row_counts: np.ndarray,
    rows: dict[str, tf.Tensor],
    *,
    image_size: tuple[int, int],
    batch_size: int,
    shuffle: bool,
    seed: int | None,
    cache: bool,
    repeat: bool,
    drop_remainder: bool,
    ignore_errors: bool,
    shuffle_buffer_size: int | None,
) -> tf.data.Dataset:
    """Batches of `(image, rows)`; each image decoded once and paired with each of its rows.

    `rows` maps names to tensors with one entry per row, grouped by image in `paths` order
    with `row_counts[i]` rows for image i.
    """
    lengths = tf.constant(row_counts, tf.int64)
    grouped = {
        name: tf.RaggedTensor.from_row_lengths(values, lengths) for name, values in rows.items()
    }
    num_images = len(paths)
    num_rows = int(np.sum(row_counts))
    buffer_size = shuffle_buffer_size or DEFAULT_SHUFFLE_BUFFER_SIZE

    dataset = tf.data.Dataset.from_tensor_slices((tf.constant(paths), grouped))
    if shuffle and not cache:
        # Cheap elements (path + row tensors): shuffle the whole image order every epoch.
        dataset = dataset.shuffle(num_images, seed=seed, reshuffle_each_iteration=True)

    def decode(path, image_rows):
        # `load_image` is looked up at trace time, so tests can count decodes.
        return load_image(path, image_size), image_rows

    dataset = dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if ignore_errors:
        dataset = dataset.ignore_errors(log_warning=True)
    if cache:
        dataset = dataset.cache()
        if shuffle:
            dataset = dataset.shuffle(
                min(num_images, buffer_size), seed=seed, reshuffle_each_iteration=True
            )

    def expand(image, image_rows):
        image_rows = {
            name: value.to_tensor() if isinstance(value, tf.RaggedTensor) else value
            for name, value in image_rows.items()
        }
        count = tf.shape(next(iter(image_rows.values())))[0]
        return tf.repeat(image[tf.newaxis], count, axis=0), image_rows

    dataset = dataset.map(expand, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.unbatch()
    if shuffle:
        dataset = dataset.shuffle(
            min(num_rows, buffer_size), seed=seed, reshuffle_each_iteration=True
        )
    if repeat:
        dataset = dataset.repeat()
    return dataset.batch(
        batch_size,
        drop_remainder=drop_remainder,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )


def make_caption_dataset(
    frame: pd.DataFrame | DatasetPlan,
    tokenizer: Callable[[tf.Tensor], tf.Tensor],
    *,
    image_size: tuple[int, int] = (64, 64),
    batch_size: int = 32,
    shuffle: bool = True,
    seed: int | None = 0,
    augment: Callable | None = None,
    cache: bool = False,
    repeat: bool = False,
    drop_remainder: bool = False,
    on_bad_image: str = "raise",
    check_images: str = "decode",
    shuffle_buffer_size: int | None = None,
) -> tf.data.Dataset:
    """Caption frame -> `({"images": uint8 [B,H,W,3], "token_ids": int32 [B,T]}, caption_out)`.

    `tokens = tokenizer(captions)` has length `T + 1`; `token_ids = tokens[:, :-1]` and
    `caption_out = tokens[:, 1:]` (int32, `<pad>` = 0 so a masked loss ignores padding).
    One element per caption, so an image with 5 captions appears 5 times per epoch.

    Args:
        frame: caption DataFrame (`image_path`, `caption`, ...) or a `DatasetPlan` from
            `plan_caption_dataset` (then no second image check is made).
        tokenizer: a `CaptionTokenizer` (or any callable: strings `[N]` -> int32 `[N, T+1]`);
            captions are tokenised once, up front.
        image_size: `(height, width)` images are resized to. Defaults to (64, 64).
        batch_size: pairs per batch. Defaults to 32.
        shuffle: shuffle image order and pairs, differently each epoch. Defaults to True.
        seed: shuffle seed; the same seed gives the same order. Defaults to 0.
        augment: optional Keras layer / Sequential applied per batch of images (as float
            0-255, `training=True`; rounded back to uint8), e.g. `build_caption_augmentation()`.
            Avoid flips: captions mention left and right. Defaults to None.
        cache: cache decoded images in memory after the first epoch. Defaults to False.
        repeat: repeat forever (use with `steps_per_epoch`). Defaults to False.
        drop_remainder: drop the last partial batch. Defaults to False.
        on_bad_image: "raise" (one `DataValidationError` listing every bad image) or "skip"
            (drop bad images and their captions, log a warning; files that only fail in TF
            decoding are dropped by `ignore_errors`). Defaults to "raise".
        check_images: `find_bad_images` mode: "decode" (full decode, as training does:
            catches truncated files; ~3 s per 5,000 64x64 PNGs on 2 cores), "header" or
            "none". Defaults to "decode".
        shuffle_buffer_size: pair shuffle buffer (and decoded-image buffer with `cache`).
            Defaults to 1024.
    """
    image_size = _validate_common(batch_size, image_size, shuffle_buffer_size, augment)
    if isinstance(frame, DatasetPlan):
        plan = frame
        _plan(plan.frame, CAPTION_REQUIRED_COLUMNS, "caption", plan.on_bad_image, "none")
    else:
        plan = plan_caption_dataset(frame, on_bad_image=on_bad_image, check_images=check_images)
    paths, counts, rows = _group_by_image(plan.frame)
    tokens = tf.convert_to_tensor(tokenizer(tf.constant(rows["caption"].astype(str).tolist())))
    if tokens.shape.rank != 2 or tokens.shape[1] is None or tokens.shape[1] < 2:
        raise ValueError(
            "`tokenizer` must map N strings to ids of shape [N, T + 1] with T >= 1. "
            f"Received: tokens.shape={tokens.shape}"
        )
    dataset = _image_rows_dataset(
        paths,
        counts,
        {"tokens": tf.cast(tokens, tf.int32)},
        image_size=image_size,
        batch_size=batch_size,
        shuffle=shuffle,
        seed=seed,
        cache=cache,
        repeat=repeat,
        drop_remainder=drop_remainder,
        ignore_errors=plan.on_bad_image == "skip",
        shuffle_buffer_size=shuffle_buffer_size,
    )

    def to_inputs_targets(images, batch_rows):
        if augment is not None:
            images = _augment_images(augment, images)
        tokens = batch_rows["tokens"]
        return {"images": images, "token_ids": tokens[:, :-1]}, tokens[:, 1:]

    dataset = dataset.map(to_inputs_targets, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def make_pair_dataset(
    frame: pd.DataFrame | DatasetPlan,
    *,
    image_size: tuple[int, int] = (64, 64),
    batch_size: int = 32,
    shuffle: bool = True,
    seed: int | None = 0,
    augment: Callable | None = None,
    cache: bool = False,
    repeat: bool = False,
    drop_remainder: bool = False,
    on_bad_image: str = "raise",
    check_images: str = "decode",
    shuffle_buffer_size: int | None = None,
) -> tf.data.Dataset:
    """Pair frame -> `({"images": uint8 [B,H,W,3], "text": tf.string [B]}, label int32 [B])`.

    Text stays raw (models tokenise in-graph). Arguments as in `make_caption_dataset`;
    `frame` needs `image_path`, `text` and integer `label` columns (-1 = unlabelled), or is
    a `DatasetPlan` from `plan_pair_dataset`. Images shared by several pairs are decoded once.
    """
    image_size = _validate_common(batch_size, image_size, shuffle_buffer_size, augment)
    if isinstance(frame, DatasetPlan):
        plan = frame
        _plan(plan.frame, PAIR_REQUIRED_COLUMNS, "pair", plan.on_bad_image, "none")
    else:
        plan = plan_pair_dataset(frame, on_bad_image=on_bad_image, check_images=check_images)
    paths, counts, rows = _group_by_image(plan.frame)
    try:
        labels = rows["label"].to_numpy(dtype=np.int64)
    except (TypeError, ValueError) as error:
        raise ValueError(
            "The pair frame's `label` column must hold integers (-1 = unlabelled). "
            f"Received: label dtype {rows['label'].dtype} ({error})"
        ) from None
    dataset = _image_rows_dataset(
        paths,
        counts,
        {
            "text": tf.constant(rows["text"].astype(str).tolist(), tf.string),
            "label": tf.constant(labels.astype(np.int32)),
        },
        image_size=image_size,
        batch_size=batch_size,
        shuffle=shuffle,
        seed=seed,
        cache=cache,
        repeat=repeat,
        drop_remainder=drop_remainder,
        ignore_errors=plan.on_bad_image == "skip",
        shuffle_buffer_size=shuffle_buffer_size,
    )

    def to_inputs_targets(images, batch_rows):
        if augment is not None:
            images = _augment_images(augment, images)
        return {"images": images, "text": batch_rows["text"]}, batch_rows["label"]

    dataset = dataset.map(to_inputs_targets, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)
