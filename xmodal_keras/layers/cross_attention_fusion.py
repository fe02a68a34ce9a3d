"""Bidirectional cross-attention fusion of two sequences (e.g. text tokens and image regions)."""

import keras
from keras import ops

from xmodal_keras.api_export import xmodal_export
from xmodal_keras.argument_checks import check_positive_int


@xmodal_export
class CrossAttentionFusion(keras.layers.Layer):
    """Co-attention: each sequence attends to the other, then both are pooled.

    As in the co-attentional transformer layers of ViLBERT (Lu et al., 2019)
    and LXMERT (Tan & Bansal, 2019): `first` (e.g. text tokens) attends to
    `second` (e.g. image regions) and `second` attends back to `first`, each
    with multi-head attention (Vaswani et al., 2017), a residual connection and
    layer normalisation. Each result is averaged over its valid positions and
    the two averages are concatenated. Padded keys get no attention and padded
    positions are left out of the averages, so what padding holds never
    changes the output.

    Call arguments:
        first: float `[batch, first_length, first_dim]`, e.g. text tokens.
        second: float `[batch, second_length, second_dim]`, e.g. image regions
            or audio frames.
        first_mask: optional bool `[batch, first_length]`, `False` at padding.
            Defaults to `None` (all valid).
        second_mask: optional bool `[batch, second_length]`. Defaults to `None`.

    Returns:
        `[batch, first_dim + second_dim]`.

    Args:
        num_heads: int, attention heads. Defaults to `2`.
        key_dim: int, size of each head. Defaults to `None`:
            `max(1, first_dim // num_heads)`.
        dropout: float in [0, 1), attention dropout. Defaults to `0.0`.
        **kwargs: forwarded to `keras.layers.Layer` (`name`, `dtype`, ...).

    Example:

    >>> import numpy as np
    >>> layer = CrossAttentionFusion(num_heads=2)
    >>> text, regions = np.ones((2, 5, 8)), np.ones((2, 16, 8))
    >>> mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    >>> tuple(layer(text, regions, first_mask=mask).shape)
    (2, 16)
    """

    def __init__(
        self, num_heads: int = 2, key_dim: int | None = None, dropout: float = 0.0, **kwargs
    ):
        super().__init__(**kwargs)
        check_positive_int("num_heads", num_heads)
        if key_dim is not None:
            check_positive_int("key_dim", key_dim)
        if not isinstance(dropout, int | float) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout!r}")
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.dropout = float(dropout)
        # Implicit Keras masks (e.g. from an upstream `Embedding(mask_zero=True)`) are
        # accepted without a warning and ignored: pass `first_mask` / `second_mask`.
        self.supports_masking = True

    def build(self, first_shape, second_shape, first_mask_shape=None, second_mask_shape=None):
        for arg, shape in (("first", first_shape), ("second", second_shape)):
            if len(shape) != 3 or shape[-1] is None:
                raise ValueError(
                    f"CrossAttentionFusion expects `{arg}` of shape [batch, length, dim]. "
                    f"Received: {arg}_shape={tuple(shape)}"
                )
        key_dim = self.key_dim or max(1, first_shape[-1] // self.num_heads)
        self.first_attention = keras.layers.MultiHeadAttention(
            self.num_heads,
            key_dim,
            dropout=self.dropout,
            name="first_attention",
            dtype=self.dtype_policy,
        )
        self.first_attention.build(first_shape, second_shape)
        self.second_attention = keras.layers.MultiHeadAttention(
            self.num_heads,
            key_dim,
            dropout=self.dropout,
            name="second_attention",
            dtype=self.dtype_policy,
        )
        self.second_attention.build(second_shape, first_shape)
        self.first_norm = keras.layers.LayerNormalization(
            epsilon=1e-5, name="first_norm", dtype=self.dtype_policy
        )
        self.first_norm.build(first_shape)
        self.second_norm = keras.layers.LayerNormalization(
            epsilon=1e-5, name="second_norm", dtype=self.dtype_policy
        )
        self.second_norm.build(second_shape)
        self.built = True

    def call(self, first, second, first_mask=None, second_mask=None, training=None):
        first_mask = _valid(first, first_mask)
        second_mask = _valid(second, second_mask)
        first_attended = self.first_attention(
            query=first,
            value=second,
            attention_mask=ops.expand_dims(second_mask, 1),  # [batch, 1, second_length]
            training=training,
        )
        second_attended = self.second_attention(
            query=second,
            value=first,
            attention_mask=ops.expand_dims(first_mask, 1),
            training=training,
        )
        first_out = self.first_norm(first + first_attended)
        second_out = self.second_norm(second + second_attended)
        return ops.concatenate(
            [_masked_mean(first_out, first_mask), _masked_mean(second_out, second_mask)], axis=-1
        )

    def compute_mask(self, *args, **kwargs):
        return None  # the pooled output has no positions left to mask

    def compute_output_shape(
        self, first_shape, second_shape, first_mask_shape=None, second_mask_shape=None
    ):
        return (first_shape[0], first_shape[-1] + second_shape[-1])

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {"num_heads": self.num_heads, "key_dim": self.key_dim, "dropout": self.dropout}
        )
        return config


def _valid(sequence, mask):
    """The bool mask of valid positions (all valid when `mask` is None)."""
    if mask is None:
        return ops.ones(ops.shape(sequence)[:2], dtype="bool")
    return ops.cast(mask, "bool")


def _masked_mean(sequence, mask):
    weights = ops.cast(ops.expand_dims(mask, -1), sequence.dtype)
    total = ops.sum(sequence * weights, axis=1)
    count = ops.maximum(ops.sum(weights, axis=1), ops.cast(1.0, sequence.dtype))
    return total / count
