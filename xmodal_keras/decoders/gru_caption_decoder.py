"""GRU caption decoder with additive visual attention (Show, Attend and Tell)."""

import keras
import keras_hub
import tensorflow as tf

from xmodal_keras.api_export import xmodal_export
from xmodal_keras.argument_checks import check_positive_int
from xmodal_keras.layers.additive_attention import AdditiveVisualAttention


@xmodal_export
class GRUCaptionDecoder(keras.layers.Layer):
    """Attention GRU that predicts the next caption token from image regions.

    At each step the previous hidden state attends over the region grid (additive
    attention, Xu et al. 2015, "Show, Attend and Tell"); the attended context, gated by
    the state, is fed with the token embedding to a GRU cell, and a deep output layer
    maps (state, context, embedding) to vocabulary logits. The initial state comes from
    the pooled image vector. Training (`call`, teacher forcing over a whole caption) and
    decoding (`initial_state` + `step`, one token at a time) run the same `step`, so the
    generator, the SavedModel and the TFLite model cannot drift from training.

    With `attention_regularization > 0` the layer adds the doubly stochastic penalty
    `lambda * sum_regions (1 - sum_steps alpha)^2` (averaged over the batch, padding
    steps excluded) so that every region receives attention over the caption.

    Args:
        vocabulary_size: int, number of token ids.
        embedding_dim: int, size of the token embedding. Defaults to 256.
        hidden_dim: int, GRU state size. Defaults to 512.
        attention_dim: int, size of the attention space. Defaults to `hidden_dim`.
        dropout: float, dropout before the output layer. Defaults to 0.
        attention_regularization: float, weight of the doubly stochastic penalty
            (the paper uses 1). Its minimum is not 0 when a caption has fewer steps
            than the grid has regions, so it shifts the reported loss. Defaults to 0.
        grid_position_embedding: bool, add a learned embedding of each region's
            position to the grid features, so "left of" and "above" can be read from
            the attended context. Defaults to True.
        **kwargs: forwarded to `keras.layers.Layer`.

    Example:

    >>> import numpy as np
    >>> decoder = GRUCaptionDecoder(vocabulary_size=12, embedding_dim=8, hidden_dim=8)
    >>> logits = decoder(np.ones((2, 5), "int32"), np.ones((2, 4, 6)), np.ones((2, 6)))
    >>> tuple(logits.shape)
    (2, 5, 12)
    """

    def __init__(
        self,
        vocabulary_size: int,
        embedding_dim: int = 256,
        hidden_dim: int = 512,
        attention_dim: int | None = None,
        dropout: float = 0.0,
        attention_regularization: float = 0.0,
        grid_position_embedding: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in [
            ("vocabulary_size", vocabulary_size),
            ("embedding_dim", embedding_dim),
            ("hidden_dim", hidden_dim),
        ]:
            check_positive_int(name, value)
        if attention_dim is not None:
            check_positive_int("attention_dim", attention_dim)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout!r}")
        if attention_regularization < 0:
            raise ValueError(
                "`attention_regularization` must be >= 0. "
                f"Received: attention_regularization={attention_regularization!r}"
            )
        self.vocabulary_size = vocabulary_size
        self.embedding_dim = embedding_dim
        self.hidden_dim = hidden_dim
        self.attention_dim = attention_dim
        self.dropout = dropout
        self.attention_regularization = attention_regularization
        self.grid_position_embedding = grid_position_embedding

    def build(self, token_ids_shape, grid_shape, pooled_shape):
        batch, num_regions, feature_dim = grid_shape
        hidden = (batch, self.hidden_dim)
        dtype = self.dtype_policy
        if self.grid_position_embedding:
            self.region_position_embedding = keras_hub.layers.PositionEmbedding(
                sequence_length=num_regions, name="region_position_embedding", dtype=dtype
            )
            self.region_position_embedding.build(grid_shape)
        self.token_embedding = keras.layers.Embedding(
            self.vocabulary_size, self.embedding_dim, name="token_embedding", dtype=dtype
        )
        self.token_embedding.build((batch,))
        self.initial_state_dense = keras.layers.Dense(
            self.hidden_dim, activation="tanh", name="initial_state_dense", dtype=dtype
        )
        self.initial_state_dense.build(pooled_shape)
        self.attention = AdditiveVisualAttention(
            hidden_dim=self.attention_dim or self.hidden_dim, name="attention", dtype=dtype
        )
        self.attention.build(grid_shape, hidden)
        # Show, Attend and Tell's gating scalar beta = sigmoid(f_beta(h)), one per feature.
        self.context_gate = keras.layers.Dense(
            feature_dim, activation="sigmoid", name="context_gate", dtype=dtype
        )
        self.context_gate.build(hidden)
        self.cell = keras.layers.GRUCell(self.hidden_dim, name="gru_cell", dtype=dtype)
        self.cell.build((batch, self.embedding_dim + feature_dim))
        self.deep_output_dense = keras.layers.Dense(
            self.embedding_dim, name="deep_output_dense", dtype=dtype
        )
        self.deep_output_dense.build((batch, self.hidden_dim + feature_dim))
        self.output_dropout = keras.layers.Dropout(self.dropout, name="output_dropout")
        self.logits_dense = keras.layers.Dense(
            self.vocabulary_size, name="logits_dense", dtype=dtype
        )
        self.logits_dense.build((batch, self.embedding_dim))
        self.built = True

    def prepare_grid(self, grid):
        """Grid features as the attention sees them (with region positions added)."""
        if self.grid_position_embedding:
            grid = grid + self.region_position_embedding(grid)
        return grid

    def initial_state(self, grid, pooled) -> dict:
        """Decoding state before the first token: `{"grid", "hidden"}`."""
        return {"grid": self.prepare_grid(grid), "hidden": self.initial_state_dense(pooled)}

    def step(self, token_ids, state: dict, index=None, training=None):
        """One decoding step.

        Args:
            token_ids: int tensor `[batch]`, the previous token.
            state: dict from `initial_state` or a previous `step`.
            index: the token's position; unused (the GRU state carries it), accepted so
                every decoder's `step` has one signature.

        Returns:
            `(logits [batch, vocabulary_size], new_state, attention [batch, regions])`.
        """
        grid, hidden = state["grid"], state["hidden"]
        context, attention = self.attention(grid, hidden)
        context = context * self.context_gate(hidden)
        embedded = self.token_embedding(token_ids)
        hidden, _ = self.cell(
            keras.ops.concatenate([embedded, context], axis=-1), [hidden], training=training
        )
        deep = self.deep_output_dense(keras.ops.concatenate([hidden, context], axis=-1))
        deep = keras.ops.tanh(deep + embedded)
        logits = self.logits_dense(self.output_dropout(deep, training=training))
        return logits, {"grid": grid, "hidden": hidden}, attention

    def call(self, token_ids, grid, pooled, training=None, return_attention=False):
        state = self.initial_state(grid, pooled)
        batch = keras.ops.shape(grid)[0]

        def scan_step(previous, token_ids_t):
            step_state = {"grid": state["grid"], "hidden": previous[0]}
            logits, step_state, attention = self.step(token_ids_t, step_state, training=training)
            return step_state["hidden"], logits, attention

        # Teacher forcing: run `step` over the caption, time-major. tf.scan rather than
        # keras.ops.scan, whose TensorFlow implementation rejects per-step outputs
        # shaped unlike the carry (Keras 3.15).
        initializer = (
            state["hidden"],
            keras.ops.zeros((batch, self.vocabulary_size), self.compute_dtype),
            keras.ops.zeros(keras.ops.shape(grid)[:2], self.compute_dtype),
        )
        _, logits, attention = tf.scan(
            scan_step, keras.ops.transpose(token_ids, (1, 0)), initializer=initializer
        )
        logits = keras.ops.transpose(logits, (1, 0, 2))
        attention = keras.ops.transpose(attention, (1, 0, 2))
        if self.attention_regularization > 0:
            self._add_attention_penalty(token_ids, attention)
        if return_attention:
            return logits, attention
        return logits

    def _add_attention_penalty(self, token_ids, attention):
        steps = keras.ops.cast(keras.ops.not_equal(token_ids, 0), "float32")
        coverage = keras.ops.sum(keras.ops.cast(attention, "float32") * steps[..., None], axis=1)
        penalty = keras.ops.mean(keras.ops.sum(keras.ops.square(1.0 - coverage), axis=-1))
        self.add_loss(self.attention_regularization * penalty)

    def compute_output_shape(self, token_ids_shape, grid_shape, pooled_shape):
        return (*token_ids_shape, self.vocabulary_size)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "embedding_dim": self.embedding_dim,
                "hidden_dim": self.hidden_dim,
                "attention_dim": self.attention_dim,
                "dropout": self.dropout,
                "attention_regularization": self.attention_regularization,
                "grid_position_embedding": self.grid_position_embedding,
            }
        )
        return config
