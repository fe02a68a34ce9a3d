"""What every task's training settings share: the fields (one help text each) and the checks.

The three settings dataclasses (`CaptionerTrainConfig`, `RetrievalTrainConfig`,
`FusionTrainConfig`) declare these fields with the factories below, so a flag means the
same in every `xmodal train` command, and check them with `TrainingSettings.check_training`.

Example:

>>> import dataclasses
>>> @dataclasses.dataclass(frozen=True)
... class Settings(TrainingSettings):
...     data: str = "shapes"
...     epochs: int = 1
...     batch_size: int = 8
...     sequence_length: int | None = None
...     learning_rate: float = 1e-3
...     tower_learning_rate_scale: float = 1.0
...     tower_frozen_epochs: int = 0
...     strategy: str = strategy_setting()
...     precision: str = precision_setting()
...     pretrained_towers = ()
...     def __post_init__(self):
...         self.check_training(positive_ints=("epochs", "batch_size"), min_sequence_length=2)
>>> Settings(batch_size=0)
Traceback (most recent call last):
...
ValueError: `batch_size` must be a positive int. Received: batch_size=0
"""

import os
from collections.abc import Sequence
from typing import Any

from xmodal_keras.argument_checks import check_positive_int
from xmodal_keras.data.readers.common import ALLOW_OUTSIDE_ROOT_HELP
from xmodal_keras.runs.run_settings import RunSettings
from xmodal_keras.runs.settings_flags import setting
from xmodal_keras.training.distribute import STRATEGY_HELP, STRATEGY_NAMES
from xmodal_keras.training.precision import (
    JIT_COMPILE_HELP,
    PRECISION_HELP,
    PRECISIONS,
    check_precision,
)
from xmodal_keras.training.tower_fine_tuning import check_tower_fine_tuning

# What a text encoder's `sequence_length` counts (`check_training`'s `sequence_length_meaning`).
SEQUENCE_LENGTH_MEANING = " (`<start>`, the words, `<end>`)"


def strategy_setting() -> Any:
    """The `strategy` field: a `get_strategy` name, `"auto"` by default."""
    return setting("auto", STRATEGY_HELP, choices=STRATEGY_NAMES)


def precision_setting() -> Any:
    """The `precision` field: a Keras dtype policy name or `"auto"` (`resolve_precision`)."""
    return setting("auto", PRECISION_HELP, choices=PRECISIONS)


def jit_compile_setting() -> Any:
    """The `jit_compile` field (off by default)."""
    return setting(False, JIT_COMPILE_HELP)


def seed_setting() -> Any:
    """The `seed` field (0)."""
    return setting(0, "random seed: weights, shuffling, dropout")


def allow_outside_root_setting() -> Any:
    """The `allow_outside_root` field (off: image paths stay inside the data folder)."""
    return setting(False, ALLOW_OUTSIDE_ROOT_HELP)


def trainable_blocks_setting() -> Any:
    """The `trainable_blocks` field of the image encoder."""
    return setting(None, "image encoder blocks to fine-tune (default: all, or none with --weights)")


def encoder_num_layers_setting() -> Any:
    """The `encoder_num_layers` field of a from-scratch image encoder."""
    return setting(None, "stride-2 stages of a from-scratch encoder (default: 3)")


def min_count_setting(texts: str) -> Any:
    """The `min_count` field: the vocabulary keeps words seen this often in the train `texts`."""
    return setting(1, f"keep words seen at least this often in train {texts}")


def max_vocabulary_size_setting() -> Any:
    """The `max_vocabulary_size` field (no cap)."""
    return setting(None, "cap the vocabulary (default: no cap)")


def text_trainable_layers_setting() -> Any:
    """The `text_trainable_layers` field of a `keras_hub:` text encoder."""
    return setting(
        None,
        "keras_hub: text encoder: its last Transformer layers that train (default: all; 0: frozen)",
    )


def shapes_num_images_setting(data: str, default: int) -> Any:
    """The `shapes_num_images` field of a task whose built-in dataset is `--data {data}`."""
    return setting(default, f"--data {data}: images to generate")


def shapes_image_size_setting(data: str) -> Any:
    """The `shapes_image_size` field (64 pixels)."""
    return setting(64, f"--data {data}: generated image side")


def shapes_seed_setting(data: str) -> Any:
    """The `shapes_seed` field (0)."""
    return setting(0, f"--data {data}: generator seed")


class TrainingSettings(RunSettings):
    """Mixin of a task's frozen training-settings dataclass: the checks every task makes.

    The dataclass must have `data`, `epochs`, `sequence_length`, `learning_rate`,
    `strategy`, `precision`, the `tower_*` fields and a `pretrained_towers` property.
    """

    def check_training(
        self,
        *,
        positive_ints: Sequence[str],
        min_sequence_length: int,
        sequence_length_meaning: str = "",
    ) -> None:
        """Raise a `ValueError` naming the first setting out of range.

        `data` given as a list of paths becomes a tuple (an empty one is refused);
        `positive_ints` name the fields that must be ints >= 1; `sequence_length` must be
        None or an int >= `min_sequence_length` (`sequence_length_meaning`, e.g.
        `" (<start>, the words, <end>)"`, says what it counts).
        """
        if not isinstance(self.data, str):
            object.__setattr__(self, "data", tuple(os.fspath(p) for p in self.data))
            if not self.data:
                raise ValueError("`data` must name at least one dataset. Received: data=()")
        if self.strategy not in STRATEGY_NAMES:
            raise ValueError(
                f"`strategy` must be one of {STRATEGY_NAMES}. Received: {self.strategy=!r}"
            )
        check_precision(self.precision)
        for name in positive_ints:
            check_positive_int(name, getattr(self, name))
        length = self.sequence_length
        if length is not None and (not isinstance(length, int) or length < min_sequence_length):
            raise ValueError(
                f"`sequence_length`{sequence_length_meaning} must be an int >= "
                f"{min_sequence_length} or None. Received: sequence_length={length!r}"
            )
        if not 0 < self.learning_rate:
            raise ValueError(f"`learning_rate` must be > 0. Received: {self.learning_rate=!r}")
        check_tower_fine_tuning(
            self.tower_learning_rate_scale,
            self.tower_frozen_epochs,
            epochs=self.epochs,
            pretrained_towers=self.pretrained_towers,
        )

    def absolute_data(self, builtin: str) -> str | tuple[str, ...]:
        """`data` with its paths made absolute; the built-in dataset's name stays as it is.

        Example:

        >>> import dataclasses
        >>> @dataclasses.dataclass(frozen=True)
        ... class Settings(TrainingSettings):
        ...     data: str = "shapes"
        >>> Settings().absolute_data("shapes")
        'shapes'
        >>> os.path.isabs(Settings(data="captions.csv").absolute_data("shapes"))
        True
        """
        if self.data == builtin:
            return self.data
        if isinstance(self.data, str):
            return os.path.abspath(self.data)
        return tuple(os.path.abspath(p) for p in self.data)
