"""Additive (Bahdanau) visual attention, as in Show, Attend and Tell."""

import keras
from keras import ops

from xmodal_keras.api_export import xmodal_export


@xmodal_export
class AdditiveVisualAttention(keras.layers.Layer):
    """Additive attention of a decoder state over image regions.

    Scores every region with `v^T tanh(W_f features + W_h hidden)`, softmaxes
    the scores over the regions and returns the weighted sum of the features
    (Bahdanau et al., 2015; Xu et al., 2015, "Show, Attend and Tell").

    Call arguments:
        features: float tensor `[batch, num_regions, feature_dim]`.
        hidden: float tensor `[batch, state_dim]`, the decoder state.
        features_mask: optional bool tensor `[batch, num_regions]`; `False`
            regions get zero weight. Defaults to `None` (all regions).

    Returns:
        `(context, weights)`: `context` is `[batch, feature_dim]`, `weights` is
        `[batch, num_regions]` and sums to 1 over the regions.

    Args:
        hidden_dim: int, size of the attention space (`W_f`, `W_h` outputs).
        **kwargs: forwarded to `keras.layers.Layer` (`name`, `dtype`, ...).

    Example:

    >>> import numpy as np
    >>> layer = AdditiveVisualAttention(hidden_dim=8)
    >>> context, weights = layer(np.ones((2, 16, 4)), np.ones((2, 6)))
    >>> tuple(context.shape), tuple(weights.shape)
    ((2, 4), (2, 16))
    """

    def __init__(self, hidden_dim: int, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(hidden_dim, int) or isinstance(hidden_dim, bool) or hidden_dim < 1:
            raise ValueError(
                f"`hidden_dim` must be a positive int. Received: hidden_dim={hidden_dim!r}"
            )
        self.hidden_dim = hidden_dim

    def build(self, features_shape, hidden_shape, features_mask_shape=None):
        self.features_dense = keras.layers.Dense(
            self.hidden_dim, name="features_dense", dtype=self.dtype_policy
        )
        self.features_dense.build(features_shape)
        self.hidden_dense = keras.layers.Dense(
            self.hidden_dim, use_bias=False, name="hidden_dense", dtype=self.dtype_policy
        )
        self.hidden_dense.build(hidden_shape)
        self.score_dense = keras.layers.Dense(
            1, use_bias=False, name="score_dense", dtype=self.dtype_policy
        )
        self.score_dense.build((*features_shape[:-1], self.hidden_dim))
        self.built = True

    def call(self, features, hidden, features_mask=None):
        projected = self.features_dense(features) + ops.expand_dims(self.hidden_dense(hidden), 1)
        scores = ops.squeeze(self.score_dense(ops.tanh(projected)), axis=-1)
        # Softmax in float32 so mixed precision cannot overflow it.
        scores = ops.cast(scores, "float32")
        if features_mask is not None:
            scores = ops.where(ops.cast(features_mask, "bool"), scores, -1e9)
        weights = ops.softmax(scores, axis=-1)
        weights = ops.cast(weights, features.dtype)
        context = ops.sum(ops.expand_dims(weights, -1) * features, axis=1)
        return context, weights

    def compute_output_shape(self, features_shape, hidden_shape, features_mask_shape=None):
        return (features_shape[0], features_shape[-1]), tuple(features_shape[:2])

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"hidden_dim": self.hidden_dim})
        return config
