"""Next-token accuracy over non-pad positions."""

import keras
from keras import ops

from xmodal_keras.api_export import xmodal_export


@xmodal_export
class MaskedTokenAccuracy(keras.metrics.Metric):
    """Share of non-pad positions whose arg-max logit is the true token.

    `y_true` is `[batch, length]` token ids, `y_pred` is `[batch, length,
    vocabulary_size]` logits (or probabilities). Positions with
    `y_true == pad_id` are not counted; an optional `sample_weight` (`[batch]`
    or `[batch, length]`) weighs the rest. The value accumulates over batches
    until `reset_state()`.

    Args:
        pad_id: the padding token id. Defaults to `0` (`"<pad>"`).
        name: metric name. Defaults to `"masked_token_accuracy"`.
        dtype: dtype of the state. Defaults to `None` (float32).

    Example:

    >>> import numpy as np
    >>> metric = MaskedTokenAccuracy()
    >>> logits = np.eye(5, dtype="float32")[[[4, 2, 0]]]  # predicts 4, 2, 0
    >>> metric.update_state(np.array([[4, 3, 0]]), logits)
    >>> float(metric.result())  # 1 right of 2 non-pad tokens
    0.5
    """

    def __init__(self, pad_id: int = 0, name: str = "masked_token_accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)
        if not isinstance(pad_id, int) or isinstance(pad_id, bool):
            raise ValueError(f"`pad_id` must be an int. Received: pad_id={pad_id!r}")
        self.pad_id = pad_id
        self.correct = self.add_variable(shape=(), initializer="zeros", name="correct")
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(ops.convert_to_tensor(y_true), "int32")
        y_pred = ops.convert_to_tensor(y_pred)
        predicted = ops.cast(ops.argmax(y_pred, axis=-1), "int32")
        weight = ops.cast(ops.not_equal(y_true, self.pad_id), self.dtype)
        if sample_weight is not None:
            sample_weight = ops.cast(ops.convert_to_tensor(sample_weight), self.dtype)
            if len(sample_weight.shape) == len(weight.shape) - 1:
                sample_weight = ops.expand_dims(sample_weight, -1)
            weight = weight * sample_weight
        hits = ops.cast(ops.equal(predicted, y_true), self.dtype) * weight
        self.correct.assign_add(ops.sum(hits))
        self.total.assign_add(ops.sum(weight))

    def result(self):
        return ops.divide_no_nan(self.correct, self.total)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"pad_id": self.pad_id})
        return config
