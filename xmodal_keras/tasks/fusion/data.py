"""A fusion run's data: the pair frame its `data` names, class weights, the vocabulary's
coverage, and the `tf.data` pipeline of its modalities (image, text, tabular, audio)."""

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd
import tensorflow as tf

from xmodal_keras.argument_checks import check_positive_int
from xmodal_keras.data.datasets import make_pair_dataset
from xmodal_keras.data.pair_side_inputs import check_side_inputs, load_wav, pair_frame_lines
from xmodal_keras.data.readers import read_pairs
from xmodal_keras.data.shapes import load_shapes
from xmodal_keras.data.text_tokenizer import normalize_caption
from xmodal_keras.data.wordpiece_text_tokenizer import TextTokenizer, WordPieceTextTokenizer
from xmodal_keras.encoders.tabular_encoder import tabular_features
from xmodal_keras.models.fusion_classifier import (
    MODALITY_INPUTS,
)
from xmodal_keras.tasks.fusion.settings import DEFAULT_MODALITIES, FusionTrainConfig


def vocabulary_coverage(tokenizer: TextTokenizer, texts: Sequence[str]) -> float:
    """The share of the words of `texts` (after `normalize_caption`) in the vocabulary; for
    a WordPiece tokenizer, the share of its pieces that are not `[UNK]`.

    Example:

    >>> from xmodal_keras.data import CaptionTokenizer
    >>> tokenizer = CaptionTokenizer.from_captions(["a red circle"], sequence_length=4)
    >>> vocabulary_coverage(tokenizer, ["a blue circle", "a red circle"])
    0.8333333333333334
    """
    if isinstance(tokenizer, WordPieceTextTokenizer):
        return tokenizer.piece_coverage([str(text) for text in texts])
    known = set(tokenizer.get_vocabulary())
    words = [word for text in texts for word in normalize_caption(str(text)).split()]
    return sum(word in known for word in words) / len(words) if words else 1.0


def read_pair_data(config: FusionTrainConfig) -> pd.DataFrame:
    """The pair DataFrame of a run's `data` (all splits), its side inputs checked.

    Raises:
        DataValidationError: a problem in the data; for the side inputs (`numeric_columns`,
            `categorical_columns`, `audio_column`) each names the data file, the line (a
            CSV's physical line, header = 1; 1-based rows for other formats) and the column.
    """
    if config.is_shapes:
        root = load_shapes(
            num_images=config.shapes_num_images,
            image_size=config.shapes_image_size,
            seed=config.shapes_seed,
        )
        frame = read_pairs(root, "hateful_memes")
    else:
        frame = read_pairs(config.data, config.format, allow_outside_root=config.allow_outside_root)
    if not (config.numeric_columns or config.categorical_columns or config.audio_column):
        return frame
    lines = None if config.is_shapes else pair_frame_lines(config.data, frame)
    source = config.data if lines is not None else f"{config.data} (rows counted from 1)"
    base_dir = config.data if os.path.isdir(config.data) else os.path.dirname(config.data)
    return check_side_inputs(
        frame,
        numeric_columns=config.numeric_columns,
        categorical_columns=config.categorical_columns,
        audio_column=config.audio_column,
        audio_sample_rate=config.audio_sample_rate,
        source=source,
        lines=lines,
        base_dir=base_dir,
        allow_outside_root=config.allow_outside_root,
    )


def labelled(frame: pd.DataFrame, split: str) -> pd.DataFrame:
    """The rows of `split` that have a label (Hateful-Memes test files have -1)."""
    return frame[(frame.split == split) & (frame.label >= 0)]


def balanced_class_weight(labels: Sequence[int] | np.ndarray, num_classes: int) -> dict[int, float]:
    """`n / (num_classes * count_c)` per class (scikit-learn's "balanced"); absent classes 1.

    Example:

    >>> balanced_class_weight([0, 0, 0, 1], 2)
    {0: 0.6666666666666666, 1: 2.0}
    """
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)
    total = counts.sum()
    return {
        c: float(total / (num_classes * counts[c])) if counts[c] else 1.0
        for c in range(num_classes)
    }


def make_fusion_dataset(
    frame: pd.DataFrame,
    tokenizer: TextTokenizer,
    *,
    modalities: Sequence[str] = DEFAULT_MODALITIES,
    image_size: tuple[int, int] = (64, 64),
    batch_size: int = 32,
    shuffle: bool = False,
    seed: int | None = 0,
    cache: bool = False,
    repeat: bool = False,
    numeric_columns: Sequence[str] = (),
    categorical_columns: Sequence[str] = (),
    audio_column: str | None = None,
    audio_samples: int = 16000,
) -> tf.data.Dataset:
    """Pair frame -> `({"images": uint8 [B,H,W,3], "token_ids": int32 [B,T+1]}, label [B])`.

    `make_pair_dataset` (images decoded once per image, raw text) with the text tokenised
    in the pipeline; only the inputs of `modalities` are kept. Side inputs: `"tabular"`
    is `{column: [B, 1]}` (float32 for `numeric_columns`, string for
    `categorical_columns`, from `tabular_features`); `"audio"` is float32
    `[B, audio_samples]`, the WAV files of `audio_column` read with `load_wav` (check
    them first with `check_side_inputs`, as `read_pair_data` does).
    """
    keys = [MODALITY_INPUTS[m] for m in modalities]
    if "tabular" in modalities and not (numeric_columns or categorical_columns):
        raise ValueError(
            "The 'tabular' modality needs `numeric_columns` and/or `categorical_columns`. "
            f"Received: numeric_columns={numeric_columns!r}, "
            f"categorical_columns={categorical_columns!r}"
        )
    if "audio" in modalities and audio_column is None:
        raise ValueError("The 'audio' modality needs `audio_column`. Received: audio_column=None")
    check_positive_int("audio_samples", audio_samples)
    side = {"tabular", "audio"} & set(modalities)
    if side:
        # Rows travel through `make_pair_dataset` (regrouped by image) as their position
        # in `frame`, carried in the label slot; the labels and side inputs are gathered
        # by position afterwards.
        label_table = tf.constant(frame["label"].to_numpy(np.int64).astype(np.int32))
        tabular = {}
        if "tabular" in side:
            features = tabular_features(
                frame, numeric_columns=numeric_columns, categorical_columns=categorical_columns
            )
            tabular = {column: tf.constant(values) for column, values in features.items()}
        if "audio" in side:
            if audio_column not in frame.columns:
                raise ValueError(
                    f"The frame has no audio column. Received: audio_column={audio_column!r}, "
                    f"columns={list(frame.columns)}"
                )
            audio_paths = tf.constant(frame[audio_column].astype(str).tolist())
        frame = frame.assign(label=np.arange(len(frame), dtype=np.int64))
    dataset = make_pair_dataset(
        frame,
        image_size=image_size,
        batch_size=batch_size,
        shuffle=shuffle,
        seed=seed,
        cache=cache,
        repeat=repeat,
        check_images="none",
    )

    def to_model_inputs(inputs, labels):
        model_inputs = {}
        if "images" in keys:
            model_inputs["images"] = inputs["images"]
        if "token_ids" in keys:
            model_inputs["token_ids"] = tokenizer(inputs["text"])
        if side:
            positions, labels = labels, tf.gather(label_table, labels)
        if "tabular" in side:
            model_inputs["tabular"] = {c: tf.gather(v, positions) for c, v in tabular.items()}
        if "audio" in side:
            model_inputs["audio"] = tf.map_fn(
                lambda path: load_wav(path, audio_samples),
                tf.gather(audio_paths, positions),
                fn_output_signature=tf.TensorSpec([audio_samples], tf.float32),
            )
        return {key: model_inputs[key] for key in keys}, labels

    return dataset.map(to_model_inputs, num_parallel_calls=tf.data.AUTOTUNE).prefetch(
        tf.data.AUTOTUNE
    )
