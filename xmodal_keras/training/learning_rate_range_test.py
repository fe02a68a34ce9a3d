"""The learning-rate range test (Smith 2017, "Cyclical Learning Rates"): a short run whose
learning rate grows exponentially, step by step, from `min_learning_rate` to
`max_learning_rate`. The loss falls while the rate is useful and blows up once it is too
large; a rate about 10x below the one with the lowest (smoothed) loss trains well with
warm-up and cosine decay. Systematic where a hand-picked constant is not: it is measured
on the user's data and model in a minute.
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from xmodal_keras.argument_checks import check_positive_int


@dataclasses.dataclass(frozen=True)
class LearningRateRangeResult:
    """Per-step learning rates and losses of a range test, and the suggested peak rate.

    Attributes:
        learning_rates: the rate of each step.
        losses: each step's training loss.
        smoothed_losses: the losses after bias-corrected exponential smoothing.
        suggested_learning_rate: the rate at the lowest smoothed loss, divided by
            `divisor` (see `learning_rate_range_test`).
        stopped_early: the loss exceeded `divergence x` its best, so the test stopped.
    """

    learning_rates: np.ndarray
    losses: np.ndarray
    smoothed_losses: np.ndarray
    suggested_learning_rate: float
    stopped_early: bool

    def table(self, rows: int = 12) -> str:
        """A Markdown table of about `rows` evenly spaced steps."""
        indices = np.unique(np.linspace(0, len(self.losses) - 1, rows).round().astype(int))
        lines = ["| step | learning rate | loss | smoothed loss |", "|---|---|---|---|"]
        for i in indices:
            lines.append(
                f"| {i} | {self.learning_rates[i]:.2e} | {self.losses[i]:.3f} | "
                f"{self.smoothed_losses[i]:.3f} |"
            )
        return "\n".join(lines)


class _RecordBatchLosses(keras.callbacks.Callback):
    """Per-batch losses (Keras logs the epoch's running mean) and divergence stopping."""

    def __init__(self, divergence: float, smoothing: float):
        super().__init__()
        self.divergence = divergence
        self.smoothing = smoothing
        self.losses: list[float] = []
        self.smoothed: list[float] = []
        self.stopped_early = False
        self._average = 0.0

    def on_train_batch_end(self, batch, logs=None):
        mean = float(logs["loss"])
        previous = self._previous_mean if self.losses else 0.0
        self._previous_mean = mean
        loss = (batch + 1) * mean - batch * previous  # equal batches: undo the running mean
        self.losses.append(loss)
        self._average = self.smoothing * self._average + (1 - self.smoothing) * loss
        smoothed = self._average / (1 - self.smoothing ** len(self.losses))
        self.smoothed.append(smoothed)
        if not np.isfinite(loss) or smoothed > self.divergence * min(self.smoothed):
            self.stopped_early = True
            self.model.stop_training = True


def learning_rate_range_test(
    model: keras.Model,
    dataset: tf.data.Dataset,
    *,
    loss: keras.losses.Loss,
    min_learning_rate: float = 1e-5,
    max_learning_rate: float = 1e-1,
    num_steps: int = 100,
    weight_decay: float = 1e-4,
    clipnorm: float | None = 1.0,
    smoothing: float = 0.9,
    divergence: float = 4.0,
    divisor: float = 10.0,
) -> LearningRateRangeResult:
    """Train `model` for `num_steps` with an exponentially growing learning rate.

    The model is compiled here with AdamW (the optimizer every `compile_*` helper uses,
    same `weight_decay` and `clipnorm`) on an exponential ramp, and its weights change:
    build a fresh model for the real training. `dataset` must give full, equal batches
    for `num_steps` steps (e.g. `repeat=True`).

    Args:
        model: an untrained Keras model.
        dataset: `(inputs, targets)` batches.
        loss: the training loss.
        min_learning_rate, max_learning_rate: the ramp's ends. Defaults to 1e-5 and 1e-1.
        num_steps: steps of the ramp. Defaults to 100.
        weight_decay, clipnorm: AdamW settings. Defaults to 1e-4 and 1.0.
        smoothing: exponential smoothing of the losses. Defaults to 0.9.
        divergence: stop once the smoothed loss exceeds this many times its best.
            Defaults to 4.
        divisor: suggested rate = rate at the lowest smoothed loss / this. Defaults to 10.

    Returns:
        A `LearningRateRangeResult`.

    Example:

    >>> import numpy as np, tensorflow as tf
    >>> x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    >>> data = tf.data.Dataset.from_tensor_slices((x, x @ np.ones((4, 1), "float32")))
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    >>> result = learning_rate_range_test(model, data.batch(8).repeat(),
    ...     loss=keras.losses.MeanSquaredError(), num_steps=30)
    >>> len(result.losses) <= 30 and 1e-6 < result.suggested_learning_rate < 1e-1
    True
    """
    check_positive_int("num_steps", num_steps)
    if not 0 < min_learning_rate < max_learning_rate:
        raise ValueError(
            "Expected 0 < min_learning_rate < max_learning_rate. Received: "
            f"min_learning_rate={min_learning_rate!r}, max_learning_rate={max_learning_rate!r}"
        )
    growth = (max_learning_rate / min_learning_rate) ** (1 / max(1, num_steps - 1))
    # ExponentialDecay with a rate > 1 is an exponential ramp: min * growth**step.
    ramp = keras.optimizers.schedules.ExponentialDecay(
        min_learning_rate, decay_steps=1, decay_rate=growth
    )
    model.compile(
        optimizer=keras.optimizers.AdamW(ramp, weight_decay=weight_decay, clipnorm=clipnorm),
        loss=loss,
    )
    recorder = _RecordBatchLosses(divergence, smoothing)
    model.fit(
        dataset, epochs=1, steps_per_epoch=num_steps, callbacks=[recorder], verbose=0, shuffle=False
    )
    steps = len(recorder.losses)
    learning_rates = min_learning_rate * growth ** np.arange(steps)
    smoothed = np.asarray(recorder.smoothed)
    best = int(np.argmin(smoothed))
    return LearningRateRangeResult(
        learning_rates=learning_rates,
        losses=np.asarray(recorder.losses),
        smoothed_losses=smoothed,
        suggested_learning_rate=float(learning_rates[best] / divisor),
        stopped_early=recorder.stopped_early,
    )
