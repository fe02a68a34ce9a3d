"""tf.data for dual encoders: caption frame -> `({"images", "token_ids"}, image_index)`.

Each image is decoded once for all of its captions (the caption pipeline's
`_image_rows_dataset`), then one element per caption. The target is the row's image
index, so `InfoNCELoss` treats two captions of one image in a batch as positives of
each other instead of as negatives.

Example:

>>> import pathlib, tempfile
>>> import numpy as np, pandas as pd
>>> from PIL import Image
>>> from xmodal_keras.data.text_tokenizer import CaptionTokenizer
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> for name in ("a.png", "b.png"):
...     Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / name)
>>> frame = pd.DataFrame({"image_path": [str(root / n) for n in ("a.png", "a.png", "b.png")],
...                       "caption": ["A dog.", "A red dog.", "A cat."]})
>>> tokenizer = CaptionTokenizer.from_captions(frame.caption, sequence_length=5)
>>> inputs, image_index = next(iter(make_retrieval_dataset(
...     frame, tokenizer, image_size=(4, 4), batch_size=3, shuffle=False)))
>>> inputs["images"].shape, inputs["token_ids"].shape, image_index.numpy().tolist()
(TensorShape([3, 4, 4, 3]), TensorShape([3, 6]), [0, 0, 1])
"""

from collections.abc import Callable

import numpy as np
import pandas as pd
import tensorflow as tf

from xmodal_keras.data.datasets import (
    DatasetPlan,
    _group_by_image,
    _image_rows_dataset,
    _validate_common,
    plan_caption_dataset,
)


def make_retrieval_dataset(
    frame: pd.DataFrame | DatasetPlan,
    tokenizer: Callable[[tf.Tensor], tf.Tensor],
    *,
    image_size: tuple[int, int] = (64, 64),
    batch_size: int = 64,
    shuffle: bool = True,
    seed: int | None = 0,
    cache: bool = False,
    repeat: bool = False,
    drop_remainder: bool = False,
    on_bad_image: str = "raise",
    check_images: str = "decode",
    shuffle_buffer_size: int | None = None,
) -> tf.data.Dataset:
    """Caption frame -> `({"images": uint8 [B,H,W,3], "token_ids": int32 [B,T+1]}, image_index)`.

    `token_ids` is the whole tokenizer output (`<start> words <end> <pad>...`);
    `image_index` (int32 `[B]`) numbers the frame's unique image paths in order of first
    appearance. Arguments as in `make_caption_dataset` (no augmentation here).
    """
    image_size = _validate_common(batch_size, image_size, shuffle_buffer_size, None)
    if isinstance(frame, DatasetPlan):
        plan = frame
    else:
        plan = plan_caption_dataset(frame, on_bad_image=on_bad_image, check_images=check_images)
    paths, counts, rows = _group_by_image(plan.frame)
    tokens = tf.convert_to_tensor(tokenizer(tf.constant(rows["caption"].astype(str).tolist())))
    if tokens.shape.rank != 2 or tokens.shape[1] is None:
        raise ValueError(
            "`tokenizer` must map N strings to ids of shape [N, length]. "
            f"Received: tokens.shape={tokens.shape}"
        )
    dataset = _image_rows_dataset(
        paths,
        counts,
        {
            "tokens": tf.cast(tokens, tf.int32),
            "image_index": tf.constant(np.repeat(np.arange(len(paths)), counts), tf.int32),
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
        return {"images": images, "token_ids": batch_rows["tokens"]}, batch_rows["image_index"]

    dataset = dataset.map(to_inputs_targets, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)
