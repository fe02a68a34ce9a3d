"""Concatenation fusion: the simplest early-fusion baseline."""

import keras
from keras import ops

from xmodal_keras.api_export import xmodal_export
from xmodal_keras.layers.fusion_inputs import modality_list


@xmodal_export
class ConcatFusion(keras.layers.Layer):
    """Concatenates per-modality vectors along the feature axis.

    Early fusion by concatenation (e.g. Baltrušaitis et al., *Multimodal
    Machine Learning: A Survey and Taxonomy*, 2019): the head that follows
    learns every interaction between modalities. Has no weights.

    Call arguments:
        inputs: a list of `[batch, d_i]` tensors, or a dict of them (read in
            sorted key order).

    Returns:
        `[batch, sum(d_i)]`.

    Args:
        **kwargs: forwarded to `keras.layers.Layer` (`name`, `dtype`, ...).

    Example:

    >>> import numpy as np
    >>> fused = ConcatFusion()([np.ones((2, 4)), np.zeros((2, 3))])
    >>> tuple(fused.shape)
    (2, 7)
    """

    def build(self, input_shape):
        modality_list(input_shape, type(self).__name__)
        self.built = True

    def call(self, inputs):
        return ops.concatenate(modality_list(inputs, type(self).__name__), axis=-1)

    def compute_output_shape(self, input_shape):
        shapes = modality_list(input_shape, type(self).__name__)
        dims = [shape[-1] for shape in shapes]
        total = None if None in dims else sum(dims)
        return (*shapes[0][:-1], total)
