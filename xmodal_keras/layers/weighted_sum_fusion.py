"""Learned weighted sum of modalities (softmax weights)."""

import keras
import numpy as np
from keras import ops

from xmodal_keras.api_export import xmodal_export
from xmodal_keras.layers.fusion_inputs import check_same_last_dim, modality_list


@xmodal_export
class WeightedSumFusion(keras.layers.Layer):
    """Sums per-modality vectors with learned softmax weights.

    `fused = sum_i softmax(w)_i * x_i` with one learned logit `w_i` per
    modality, initialised to zero (an equal average). The weights are readable
    after training (`modality_weights()`), a cheap view of how much the model
    leans on each modality (cf. the scalar mixing weights of Peters et al.,
    *Deep contextualized word representations*, 2018). Every input must have
    the same size `d`.

    Call arguments:
        inputs: a list of `[batch, d]` tensors, or a dict of them (sorted key
            order gives the modality index).

    Returns:
        `[batch, d]`.

    Args:
        **kwargs: forwarded to `keras.layers.Layer` (`name`, `dtype`, ...).

    Example:

    >>> import numpy as np
    >>> layer = WeightedSumFusion()
    >>> fused = layer([np.zeros((2, 3)), np.ones((2, 3))])
    >>> fused.numpy().tolist()
    [[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]]
    >>> layer.modality_weights().tolist()
    [0.5, 0.5]
    """

    def build(self, input_shape):
        shapes = modality_list(input_shape, type(self).__name__)
        check_same_last_dim(shapes, type(self).__name__)
        self.modality_logits = self.add_weight(
            shape=(len(shapes),), initializer="zeros", name="modality_logits"
        )
        self.built = True

    def call(self, inputs):
        tensors = modality_list(inputs, type(self).__name__)
        # Softmax in float32 so mixed precision cannot overflow it.
        weights = ops.softmax(ops.cast(self.modality_logits, "float32"))
        stacked = ops.stack(tensors, axis=1)  # [batch, modalities, d]
        weights = ops.cast(weights, stacked.dtype)
        return ops.sum(stacked * weights[None, :, None], axis=1)

    def compute_output_shape(self, input_shape):
        return tuple(modality_list(input_shape, type(self).__name__)[0])

    def modality_weights(self) -> np.ndarray:
        """The current softmax weights, one per modality (sums to 1)."""
        return keras.ops.convert_to_numpy(ops.softmax(ops.cast(self.modality_logits, "float32")))
