"""The sequence output at each text's end token, as a layer (CLIP's text pooling)."""

import keras
from keras import ops

from xmodal_keras.api_export import xmodal_export


@xmodal_export
class EndTokenPooling(keras.layers.Layer):
    """`(sequence [B, S, D], token_ids [B, S])` -> `[B, D]`: the vector at the first
    `end_token_id` of each row (row 0's first position when a row has none).

    CLIP pools its causal text encoder there: the end token is the first position that
    has read the whole text. KerasHub's `CLIPTextPooler` finds it as the largest id,
    which is the same for CLIP's vocabulary (`<|endoftext|>` is its last token); naming
    the id keeps it right for any vocabulary.

    Args:
        end_token_id: the end token's id.
        **kwargs: forwarded to `keras.layers.Layer`.

    Example:

    >>> import numpy as np
    >>> sequence = np.arange(12, dtype="float32").reshape(1, 4, 3)
    >>> EndTokenPooling(end_token_id=9)(sequence, np.array([[5, 7, 9, 0]])).numpy().tolist()
    [[6.0, 7.0, 8.0]]
    """

    def __init__(self, end_token_id: int, **kwargs):
        super().__init__(**kwargs)
        if isinstance(end_token_id, bool) or not isinstance(end_token_id, int) or end_token_id < 0:
            raise ValueError(f"`end_token_id` must be an int >= 0. Received: {end_token_id!r}")
        self.end_token_id = end_token_id
        self.built = True

    def call(self, sequence, token_ids):
        is_end = ops.equal(token_ids, ops.cast(self.end_token_id, token_ids.dtype))
        position = ops.argmax(ops.cast(is_end, "int32"), axis=-1)
        position = ops.expand_dims(ops.expand_dims(position, -1), -1)
        return ops.squeeze(ops.take_along_axis(sequence, position, axis=1), axis=1)

    def compute_output_shape(self, sequence_shape, token_ids_shape):
        return (sequence_shape[0], sequence_shape[-1])

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"end_token_id": self.end_token_id})
        return config
