"""Cross-entropy over caption tokens that ignores padding."""

import keras
from keras import ops

from xmodal_keras.api_export import xmodal_export


@xmodal_export
class MaskedCaptionLoss(keras.losses.Loss):
    """Sparse categorical cross-entropy from logits, averaged over non-pad tokens.

    `y_true` is `[batch, length]` token ids, `y_pred` is `[batch, length,
    vocabulary_size]` logits. Positions where `y_true == pad_id` weigh 0, and the
    default reduction divides the summed loss by the number of non-pad tokens in
    the batch (not by `batch * length`), so padding never changes the loss. A
    `sample_weight` (`[batch]` or `[batch, length]`) multiplies the pad mask and
    the loss becomes the weighted mean over the non-pad tokens.

    With `label_smoothing=e` the target is `(1 - e) * one_hot + e / vocabulary_size`.

    Args:
        label_smoothing: float in [0, 1). Defaults to `0.0`.
        pad_id: the padding token id. Defaults to `0` (`"<pad>"`).
        name: loss name. Defaults to `"masked_caption_loss"`.
        reduction: a `keras.losses.Loss` reduction. Defaults to
            `"mean_with_sample_weight"` (mean over non-pad tokens).
        dtype: dtype of the computation. Defaults to `None` (`floatx`, float32),
            also when the model computes in float16.

    Example:

    >>> import numpy as np
    >>> loss = MaskedCaptionLoss()
    >>> logits = np.zeros((1, 3, 5), "float32")
    >>> round(float(loss(np.array([[4, 3, 0]]), logits)), 4)  # log(5)
    1.6094
    """

    def __init__(
        self,
        label_smoothing: float = 0.0,
        pad_id: int = 0,
        name: str = "masked_caption_loss",
        reduction: str = "mean_with_sample_weight",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(
                "`label_smoothing` must be in [0, 1). "
                f"Received: label_smoothing={label_smoothing!r}"
            )
        if not isinstance(pad_id, int) or isinstance(pad_id, bool):
            raise ValueError(f"`pad_id` must be an int. Received: pad_id={pad_id!r}")
        self.label_smoothing = float(label_smoothing)
        self.pad_id = pad_id

    def __call__(self, y_true, y_pred, sample_weight=None):
        mask = ops.cast(ops.not_equal(ops.convert_to_tensor(y_true), self.pad_id), self.dtype)
        if sample_weight is not None:
            sample_weight = ops.cast(ops.convert_to_tensor(sample_weight), self.dtype)
            if len(sample_weight.shape) == len(mask.shape) - 1:
                sample_weight = ops.expand_dims(sample_weight, -1)
            mask = mask * sample_weight
        return super().__call__(y_true, y_pred, sample_weight=mask)

    def call(self, y_true, y_pred):
        log_probs = ops.log_softmax(y_pred, axis=-1)
        labels = ops.expand_dims(ops.cast(y_true, "int32"), -1)
        nll = -ops.squeeze(ops.take_along_axis(log_probs, labels, axis=-1), -1)
        if self.label_smoothing == 0.0:
            return nll
        smooth = -ops.mean(log_probs, axis=-1)
        return (1.0 - self.label_smoothing) * nll + self.label_smoothing * smooth

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {"label_smoothing": self.label_smoothing, "pad_id": self.pad_id, "dtype": self.dtype}
        )
        return config
