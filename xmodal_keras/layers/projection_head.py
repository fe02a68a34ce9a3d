"""Projection of one modality's features into the shared embedding space."""

import keras

from xmodal_keras.api_export import xmodal_export
from xmodal_keras.argument_checks import check_positive_int


@xmodal_export
class ProjectionHead(keras.layers.Layer):
    """`Dense -> gelu -> Dense (+ residual) -> dropout -> LayerNorm`, into a shared space.

    The head of keras.io's "Natural language image search with a Dual Encoder"
    (after CLIP, Radford et al., 2021): `p = W1 x`, `y = LayerNorm(p + dropout(W2
    gelu(p)))`. Works on any rank: `[..., d] -> [..., projection_dim]`.

    Args:
        projection_dim: size of the shared space.
        dropout: dropout rate in [0, 1) before the residual add. Defaults to 0.0.
        **kwargs: forwarded to `keras.layers.Layer` (`name`, `dtype`, ...).

    Example:

    >>> import numpy as np
    >>> head = ProjectionHead(projection_dim=4)
    >>> tuple(head(np.ones((2, 3, 8))).shape)
    (2, 3, 4)
    """

    def __init__(self, projection_dim: int, dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        check_positive_int("projection_dim", projection_dim)
        if (
            isinstance(dropout, bool)
            or not isinstance(dropout, int | float)
            or not 0 <= dropout < 1
        ):
            raise ValueError(f"`dropout` must be a float in [0, 1). Received: dropout={dropout!r}")
        self.projection_dim = projection_dim
        self.dropout = dropout
        self.supports_masking = True

    def build(self, input_shape):
        projected_shape = (*input_shape[:-1], self.projection_dim)
        self.projection_dense = keras.layers.Dense(
            self.projection_dim, name="projection_dense", dtype=self.dtype_policy
        )
        self.projection_dense.build(input_shape)
        self.hidden_dense = keras.layers.Dense(
            self.projection_dim, name="hidden_dense", dtype=self.dtype_policy
        )
        self.hidden_dense.build(projected_shape)
        self.dropout_layer = keras.layers.Dropout(
            self.dropout, name="dropout", dtype=self.dtype_policy
        )
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=1e-6, name="layer_norm", dtype=self.dtype_policy
        )
        self.layer_norm.build(projected_shape)
        self.built = True

    def call(self, inputs, training=None):
        projected = self.projection_dense(inputs)
        x = self.hidden_dense(keras.activations.gelu(projected))
        x = self.dropout_layer(x, training=training)
        return self.layer_norm(projected + x)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.projection_dim)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"projection_dim": self.projection_dim, "dropout": self.dropout})
        return config
