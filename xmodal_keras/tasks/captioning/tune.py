"""`tune_captioner`: the learning-rate range test for a captioner's run settings.

`xmodal tune captioner --data DIR [same flags as train]` runs it: the model and data the
settings describe, an exponential learning-rate ramp over a few hundred steps, and a
suggested `--learning-rate` (the rate at the lowest smoothed loss / 10).
"""

import keras

from xmodal_keras.data.datasets import make_caption_dataset
from xmodal_keras.losses.masked_caption_loss import MaskedCaptionLoss
from xmodal_keras.tasks.captioning.data import read_caption_data, tokenizer_from_captions
from xmodal_keras.tasks.captioning.settings import CaptionerTrainConfig
from xmodal_keras.tasks.captioning.train import build_captioner_from_config
from xmodal_keras.training.learning_rate_range_test import (
    LearningRateRangeResult,
    learning_rate_range_test,
)


def tune_captioner(
    config: CaptionerTrainConfig,
    *,
    min_learning_rate: float = 1e-5,
    max_learning_rate: float = 1e-1,
    num_steps: int = 200,
) -> LearningRateRangeResult:
    """The learning-rate range test on the train split of `config.data`.

    Uses the run's model, batch size, label smoothing, weight decay and seed, and AdamW
    with gradient clipping at 1 (as `compile_captioner`).

    Example:

    >>> result = tune_captioner(CaptionerTrainConfig(data="shapes"))  # doctest: +SKIP
    >>> print(result.suggested_learning_rate)  # doctest: +SKIP
    """
    keras.utils.set_random_seed(config.seed)
    frame = read_caption_data(config)
    train = frame[frame.split == "train"]
    if train.empty:
        raise ValueError(f"The data has no 'train' captions. Received: data={config.data!r}")
    config = config.resolved(train.caption)
    tokenizer = tokenizer_from_captions(config, train.caption)
    dataset = make_caption_dataset(
        train,
        tokenizer,
        image_size=(config.image_size, config.image_size),
        batch_size=config.batch_size,
        seed=config.seed,
        cache=True,
        repeat=True,
        drop_remainder=True,
    )
    model = build_captioner_from_config(config, tokenizer.vocabulary_size)
    return learning_rate_range_test(
        model,
        dataset,
        loss=MaskedCaptionLoss(label_smoothing=config.label_smoothing),
        min_learning_rate=min_learning_rate,
        max_learning_rate=max_learning_rate,
        num_steps=num_steps,
        weight_decay=config.weight_decay,
    )
