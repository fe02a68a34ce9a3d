"""Element-wise (Hadamard) product fusion."""

import keras

from xmodal_keras.api_export import xmodal_export
from xmodal_keras.layers.fusion_inputs import check_same_last_dim, modality_list


@xmodal_export
class ProductFusion(keras.layers.Layer):
    """Multiplies per-modality vectors element by element.

    Multiplicative fusion as used for VQA joint embeddings (Antol et al.,
    *VQA: Visual Question Answering*, 2015): a feature survives only where
    every modality agrees. Every input must have the same size `d` (project
    them first). Has no weights.

    Call arguments:
        inputs: a list of `[batch, d]` tensors, or a dict of them.

    Returns:
        `[batch, d]`.

    Args:
        **kwargs: forwarded to `keras.layers.Layer` (`name`, `dtype`, ...).

    Example:

    >>> import numpy as np
    >>> fused = ProductFusion()([np.full((2, 3), 2.0), np.full((2, 3), 3.0)])
    >>> fused.numpy().tolist()
    [[6.0, 6.0, 6.0], [6.0, 6.0, 6.0]]
    """

    def build(self, input_shape):
        check_same_last_dim(modality_list(input_shape, type(self).__name__), type(self).__name__)
        self.built = True

    def call(self, inputs):
        tensors = modality_list(inputs, type(self).__name__)
        fused = tensors[0]
        for tensor in tensors[1:]:  # a Python loop over modalities, not over tensor values
            fused = fused * tensor
        return fused

    def compute_output_shape(self, input_shape):
        return tuple(modality_list(input_shape, type(self).__name__)[0])
