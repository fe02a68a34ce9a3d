"""Transformer caption decoder: KerasHub decoder blocks cross-attending to image regions."""

import math

import keras
import keras_hub
from keras import ops
from keras_hub.src.layers.modeling.transformer_layer_utils import compute_causal_mask

from xmodal_keras.api_export import xmodal_export
from xmodal_keras.argument_checks import check_positive_int

# The score a masked cache position takes before its weight is set to zero: low enough that
# it barely takes softmax mass, near enough to real scores to keep int8 ranges tight.
MASKED_SCORE = -16.0


@xmodal_export
class TransformerCaptionDecoder(keras.layers.Layer):
    """Transformer decoder over caption tokens with cross-attention to the region grid.

    Tokens go through KerasHub's `TokenAndPositionEmbedding` and `num_layers` KerasHub
    `TransformerDecoder` blocks (causal self-attention, cross-attention to the projected
    grid; Vaswani et al. 2017); a dense layer gives vocabulary logits. Grid features are
    projected to `hidden_dim` and get a learned region-position embedding.

    Decoding uses key/value caches: `initial_state` projects every block's
    cross-attention keys and values once per image, and `step` writes one token's keys
    and values into the self-attention caches (fixed `[batch, sequence_length, heads,
    head_dim]` tensors, one per block), so each step costs one token, not the prefix.

    Args:
        vocabulary_size: int, number of token ids.
        sequence_length: int, the longest token sequence (positions and caches).
        hidden_dim: int, model width. Defaults to 256.
        intermediate_dim: int, feed-forward width. Defaults to `4 * hidden_dim`.
        num_layers: int, decoder blocks. Defaults to 2.
        num_heads: int, attention heads; must divide `hidden_dim`. Defaults to 4.
        dropout: float. Defaults to 0.
        **kwargs: forwarded to `keras.layers.Layer`.

    Example:

    >>> import numpy as np
    >>> decoder = TransformerCaptionDecoder(
    ...     vocabulary_size=12, sequence_length=5, hidden_dim=8, num_heads=2, num_layers=1)
    >>> logits = decoder(np.ones((2, 5), "int32"), np.ones((2, 4, 6)))
    >>> tuple(logits.shape)
    (2, 5, 12)
    """

    def __init__(
        self,
        vocabulary_size: int,
        sequence_length: int,
        hidden_dim: int = 256,
        intermediate_dim: int | None = None,
        num_layers: int = 2,
        num_heads: int = 4,
        dropout: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in [
            ("vocabulary_size", vocabulary_size),
            ("sequence_length", sequence_length),
            ("hidden_dim", hidden_dim),
            ("num_layers", num_layers),
            ("num_heads", num_heads),
        ]:
            check_positive_int(name, value)
        if intermediate_dim is not None:
            check_positive_int("intermediate_dim", intermediate_dim)
        if hidden_dim % num_heads:
            raise ValueError(
                "`num_heads` must divide `hidden_dim`. "
                f"Received: hidden_dim={hidden_dim}, num_heads={num_heads}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout!r}")
        self.vocabulary_size = vocabulary_size
        self.sequence_length = sequence_length
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.dropout = dropout

    @property
    def head_dim(self) -> int:
        return self.hidden_dim // self.num_heads

    def build(self, token_ids_shape, grid_shape, pooled_shape=None):
        batch, num_regions, _ = grid_shape
        dtype = self.dtype_policy
        memory_shape = (batch, num_regions, self.hidden_dim)
        self.grid_projection = keras.layers.Dense(
            self.hidden_dim, name="grid_projection", dtype=dtype
        )
        self.grid_projection.build(grid_shape)
        self.region_position_embedding = keras_hub.layers.PositionEmbedding(
            sequence_length=num_regions, name="region_position_embedding", dtype=dtype
        )
        self.region_position_embedding.build(memory_shape)
        self.token_embedding = keras_hub.layers.TokenAndPositionEmbedding(
            vocabulary_size=self.vocabulary_size,
            sequence_length=self.sequence_length,
            embedding_dim=self.hidden_dim,
            name="token_embedding",
            dtype=dtype,
        )
        self.token_embedding.build((batch, None))
        self.decoder_layers = []
        for index in range(self.num_layers):
            layer = keras_hub.layers.TransformerDecoder(
                intermediate_dim=self.intermediate_dim or 4 * self.hidden_dim,
                num_heads=self.num_heads,
                dropout=self.dropout,
                name=f"transformer_decoder_{index}",
                dtype=dtype,
            )
            layer.build((batch, None, self.hidden_dim), memory_shape)
            self.decoder_layers.append(layer)
        self.logits_dense = keras.layers.Dense(
            self.vocabulary_size, name="logits_dense", dtype=dtype
        )
        self.logits_dense.build((batch, None, self.hidden_dim))
        self.built = True

    def prepare_grid(self, grid):
        """The projected, position-embedded grid the decoder cross-attends to."""
        memory = self.grid_projection(grid)
        return memory + self.region_position_embedding(memory)

    def call(self, token_ids, grid, pooled=None, training=None):
        memory = self.prepare_grid(grid)
        x = self.token_embedding(token_ids)
        for layer in self.decoder_layers:
            x = layer(x, memory, training=training)
        return self.logits_dense(x)

    def initial_state(self, grid, pooled=None) -> dict:
        """Decoding state before the first token: per-block key/value caches.

        Cross-attention keys and values are projected from the grid once per image; the
        self-attention caches start as zeros and get one position per `step`.
        """
        memory = self.prepare_grid(grid)
        batch = ops.shape(memory)[0]
        cache_shape = (batch, self.sequence_length, self.num_heads, self.head_dim)
        state = {"self_keys": [], "self_values": [], "cross_keys": [], "cross_values": []}
        for layer in self.decoder_layers:
            cross_attention = layer._cross_attention_layer
            state["self_keys"].append(ops.zeros(cache_shape, memory.dtype))
            state["self_values"].append(ops.zeros(cache_shape, memory.dtype))
            state["cross_keys"].append(cross_attention._key_dense(memory))
            state["cross_values"].append(cross_attention._value_dense(memory))
        return state

    def step(self, token_ids, state: dict, index, training=None):
        """One decoding step at position `index` (int scalar tensor), for inference.

        Runs each KerasHub block's own sublayers on one token (the same weights and
        order as `call`; a test checks equal logits), but with our own cache: the new
        key/value row is written with a one-hot add instead of KerasHub's
        `ops.slice_update`. That op lowers to `XlaDynamicUpdateSlice`, which stock TF
        Serving lacks and TF runs through on-demand XLA per step; the one-hot write is
        plain `Mul`/`Add`, which every runtime (SavedModel, LiteRT builtins) has.

        Returns:
            `(logits [batch, vocabulary_size], new_state, None)`; cross-attention maps
            for pictures come from `cross_attention_weights`.
        """
        x = self.token_embedding(token_ids[:, None], start_index=index)
        positions = ops.arange(self.sequence_length)
        written = ops.cast(ops.equal(positions, index), x.dtype)[None, :, None, None]
        visible = ops.less_equal(positions, index)[None, :, None]
        new_state = {key: [] for key in state}
        for number, layer in enumerate(self.decoder_layers):
            self_attention = layer._self_attention_layer
            residual = x
            if layer.normalize_first:
                x = layer._self_attention_layer_norm(x)
            keys = state["self_keys"][number] + written * self_attention._key_dense(x)
            values = state["self_values"][number] + written * self_attention._value_dense(x)
            query = self_attention._query_dense(x)
            x = self_attention._output_dense(_attend_one_query(query, keys, values, visible))
            x = layer._self_attention_dropout(x, training=training) + residual
            if not layer.normalize_first:
                x = layer._self_attention_layer_norm(x)

            cross_attention = layer._cross_attention_layer
            cross_keys = state["cross_keys"][number]
            cross_values = state["cross_values"][number]
            residual = x
            if layer.normalize_first:
                x = layer._cross_attention_layer_norm(x)
            query = cross_attention._query_dense(x)
            x = cross_attention._output_dense(_attend_one_query(query, cross_keys, cross_values))
            x = layer._cross_attention_dropout(x, training=training) + residual
            if not layer.normalize_first:
                x = layer._cross_attention_layer_norm(x)

            residual = x
            if layer.normalize_first:
                x = layer._feedforward_layer_norm(x)
            x = layer._feedforward_output_dense(layer._feedforward_intermediate_dense(x))
            x = layer._feedforward_dropout(x, training=training) + residual
            if not layer.normalize_first:
                x = layer._feedforward_layer_norm(x)

            new_state["self_keys"].append(keys)
            new_state["self_values"].append(values)
            new_state["cross_keys"].append(cross_keys)
            new_state["cross_values"].append(cross_values)
        logits = self.logits_dense(x)[:, 0]
        return logits, new_state, None

    def cross_attention_weights(self, token_ids, grid):
        """Last block's cross-attention, averaged over heads: `[batch, tokens, regions]`.

        KerasHub's `TransformerDecoder` does not return attention scores, so this re-runs
        the last block's self-attention sub-block and scores its queries against the
        memory keys with the block's own projections (post-norm and pre-norm handled).
        """
        memory = self.prepare_grid(grid)
        x = self.token_embedding(token_ids)
        for layer in self.decoder_layers[:-1]:
            x = layer(x, memory)
        last = self.decoder_layers[-1]
        length = ops.shape(x)[1]
        causal = compute_causal_mask(ops.shape(x)[0], length, length)
        residual = x
        if last.normalize_first:
            x = last._self_attention_layer_norm(x)
        x = last._self_attention_layer(query=x, value=x, attention_mask=causal) + residual
        if last.normalize_first:
            x = last._cross_attention_layer_norm(x)
        else:
            x = last._self_attention_layer_norm(x)
        attention = last._cross_attention_layer
        query = attention._query_dense(x)
        key = attention._key_dense(memory)
        scores = ops.einsum("bthd,bnhd->bhtn", query, key) / math.sqrt(self.head_dim)
        weights = ops.softmax(ops.cast(scores, "float32"), axis=-1)
        return ops.mean(weights, axis=1)

    def compute_output_shape(self, token_ids_shape, grid_shape, pooled_shape=None):
        return (*token_ids_shape, self.vocabulary_size)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "sequence_length": self.sequence_length,
                "hidden_dim": self.hidden_dim,
                "intermediate_dim": self.intermediate_dim,
                "num_layers": self.num_layers,
                "num_heads": self.num_heads,
                "dropout": self.dropout,
            }
        )
        return config


def _attend_one_query(query, keys, values, visible=None):
    """Scaled dot-product attention for a single query position, per head.

    `query` `[batch, 1, heads, head_dim]`, `keys`/`values` `[batch, length, heads,
    head_dim]`, `visible` bool broadcastable to `[batch, length, heads]`. With one query,
    a broadcast multiply and a sum replace Keras' einsums (no transposes, LiteRT builtins
    only). Masked positions get zero weight and the visible weights are renormalised:
    the same attention as Keras' masked softmax (a -1e9 score) in exact arithmetic.
    """
    scale = 1.0 / math.sqrt(query.shape[-1])
    scores = ops.sum(query * scale * keys, axis=-1)
    if visible is None:
        return ops.sum(ops.softmax(scores, axis=1)[..., None] * values, axis=1, keepdims=True)
    # Not a -1e9 score: int8 LiteRT gives every tensor one range, and a -1e9 stretched the
    # scores' range so far that all real scores quantized to one value (uniform attention;
    # int8 captions equal to float on 2 % of the demo's test images). A masked position
    # takes MASKED_SCORE, inside the range real scores have, then weight zero.
    scores = ops.where(visible, scores, ops.cast(MASKED_SCORE, scores.dtype))
    weights = ops.softmax(scores, axis=1) * ops.cast(visible, scores.dtype)
    weights = weights / ops.sum(weights, axis=1, keepdims=True)
    return ops.sum(weights[..., None] * values, axis=1, keepdims=True)
