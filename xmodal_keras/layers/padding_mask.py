"""A boolean padding mask from token ids, as a layer (no Lambda)."""

import keras
from keras import ops

from xmodal_keras.api_export import xmodal_export


@xmodal_export
class PaddingMask(keras.layers.Layer):
    """Token ids `[...]` -> bool mask `[...]`, `True` where the id is not `pad_id`.

    Pass the result as `padding_mask=` to KerasHub Transformer layers or as `mask=`
    to Keras RNNs and poolings, so padding is ignored without relying on implicit
    Keras mask propagation (which some KerasHub sublayers drop with a warning).

    Args:
        pad_id: the padding token id. Defaults to 0 (`<pad>`).
        **kwargs: forwarded to `keras.layers.Layer`.

    Example:

    >>> import numpy as np
    >>> PaddingMask()(np.array([[2, 5, 3, 0]])).numpy().tolist()
    [[True, True, True, False]]
    """

    def __init__(self, pad_id: int = 0, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(pad_id, int) or isinstance(pad_id, bool):
            raise ValueError(f"`pad_id` must be an int. Received: pad_id={pad_id!r}")
        self.pad_id = pad_id
        self.built = True

    def call(self, token_ids):
        return ops.not_equal(token_ids, ops.cast(self.pad_id, token_ids.dtype))

    def compute_output_spec(self, token_ids):
        return keras.KerasTensor(token_ids.shape, dtype="bool")

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"pad_id": self.pad_id})
        return config
