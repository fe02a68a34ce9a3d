"""Symmetric InfoNCE (CLIP) loss over an image-text similarity matrix."""

import keras
from keras import ops

from xmodal_keras.api_export import xmodal_export


@xmodal_export
class InfoNCELoss(keras.losses.Loss):
    """Symmetric InfoNCE: cross-entropy over rows (image->text) and columns (text->image).

    `y_pred` is the `[batch, batch]` logits matrix (row `i` = image `i`, column `j` =
    text `j`), e.g. from `ContrastiveLogits`, which holds the learnable temperature.
    `y_true` is `[batch]` (or `[batch, 1]`) integer group ids: pairs `i`, `j` with the
    same id are both positives (two captions of one image in a batch). With all ids
    distinct (e.g. `arange(batch)`) this is exactly CLIP's loss:
    `(CE(logits, arange) + CE(logits^T, arange)) / 2`. With repeated ids the target of
    a row is uniform over its positives (soft targets), so a second caption of the
    same image is never pushed away as a negative.

    The per-example loss is `(row_i + column_i) / 2`; the default reduction averages
    it over the batch. Computed in float32 (van den Oord et al., 2018, *Representation
    Learning with Contrastive Predictive Coding*; Radford et al., 2021, CLIP).

    Args:
        name: loss name. Defaults to `"info_nce_loss"`.
        reduction: a `keras.losses.Loss` reduction. Defaults to
            `"sum_over_batch_size"`.
        dtype: computation dtype. Defaults to `None` (`floatx`, float32).

    Example:

    >>> import numpy as np
    >>> loss = InfoNCELoss()
    >>> round(float(loss(np.arange(3), np.zeros((3, 3), "float32"))), 4)  # log(3)
    1.0986
    """

    def __init__(
        self,
        name: str = "info_nce_loss",
        reduction: str = "sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        logits = ops.cast(y_pred, "float32")
        groups = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        positives = ops.cast(ops.equal(groups[:, None], groups[None, :]), "float32")
        targets = positives / ops.sum(positives, axis=-1, keepdims=True)
        # `positives` is symmetric, so the same targets serve the columns.
        image_to_text = -ops.sum(targets * ops.log_softmax(logits, axis=1), axis=1)
        text_to_image = -ops.sum(targets * ops.log_softmax(logits, axis=0), axis=0)
        return ops.cast((image_to_text + text_to_image) / 2.0, self.dtype)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"dtype": self.dtype})
        return config
