"""Low-rank bilinear pooling (MLB), for any number of modalities."""

import keras

from xmodal_keras.api_export import xmodal_export
from xmodal_keras.argument_checks import check_positive_int
from xmodal_keras.layers.fusion_inputs import modality_list


@xmodal_export
class BilinearFusion(keras.layers.Layer):
    """Multimodal low-rank bilinear pooling (MLB).

    Kim et al., *Hadamard Product for Low-rank Bilinear Pooling* (2017):
    `fused = P^T (tanh(U_1^T x_1) * ... * tanh(U_N^T x_N)) + b`, a rank-`rank`
    factorisation of the full bilinear (for N modalities, multilinear) form
    that captures every pairwise interaction at linear cost.

    Call arguments:
        inputs: a list of `[batch, d_i]` tensors (sizes may differ), or a dict
            of them (sorted key order).

    Returns:
        `[batch, output_dim]`, or `[batch, rank]` when `output_dim` is `None`.

    Args:
        rank: int, size of the joint (Hadamard product) space.
        output_dim: int, size of the output projection `P`. Defaults to
            `None`: no projection (the head that follows plays `P`).
        activation: activation of the per-modality projections. Defaults to
            `"tanh"` (as in the paper).
        dropout: float in [0, 1), dropout on the joint vector before `P`.
            Defaults to `0.0`.
        **kwargs: forwarded to `keras.layers.Layer` (`name`, `dtype`, ...).

    Example:

    >>> import numpy as np
    >>> layer = BilinearFusion(rank=6, output_dim=3)
    >>> tuple(layer([np.ones((2, 4)), np.ones((2, 5))]).shape)
    (2, 3)
    """

    def __init__(
        self,
        rank: int,
        output_dim: int | None = None,
        activation: str = "tanh",
        dropout: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_positive_int("rank", rank)
        if output_dim is not None:
            check_positive_int("output_dim", output_dim)
        if not isinstance(dropout, int | float) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout!r}")
        self.rank = rank
        self.output_dim = output_dim
        self.activation = keras.activations.serialize(keras.activations.get(activation))
        self.dropout = float(dropout)

    def build(self, input_shape):
        shapes = modality_list(input_shape, type(self).__name__)
        self.modality_denses = []
        for i, shape in enumerate(shapes):
            dense = keras.layers.Dense(
                self.rank,
                activation=self.activation,
                name=f"modality_{i}_dense",
                dtype=self.dtype_policy,
            )
            dense.build(shape)
            self.modality_denses.append(dense)
        self.dropout_layer = keras.layers.Dropout(
            self.dropout, name="dropout", dtype=self.dtype_policy
        )
        self.output_dense = None
        if self.output_dim is not None:
            self.output_dense = keras.layers.Dense(
                self.output_dim, name="output_dense", dtype=self.dtype_policy
            )
            self.output_dense.build((*shapes[0][:-1], self.rank))
        self.built = True

    def call(self, inputs, training=None):
        tensors = modality_list(inputs, type(self).__name__)
        joint = None
        for dense, x in zip(self.modality_denses, tensors, strict=True):
            projected = dense(x)
            joint = projected if joint is None else joint * projected
        joint = self.dropout_layer(joint, training=training)
        if self.output_dense is not None:
            joint = self.output_dense(joint)
        return joint

    def compute_output_shape(self, input_shape):
        shapes = modality_list(input_shape, type(self).__name__)
        return (*shapes[0][:-1], self.output_dim if self.output_dim is not None else self.rank)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "rank": self.rank,
                "output_dim": self.output_dim,
                "activation": self.activation,
                "dropout": self.dropout,
            }
        )
        return config
