"""Transformer caption decoder: KerasHub decoder blocks cross-attending to image regions."""

import math

import keras
import keras_hub
from keras import ops
from keras_hub.src.layers.modeling.transformer_layer_utils import compute_causal_mask

from xmodal_keras.api_export import xmodal_export
from xmodal_keras.argument_checks import check_positive_int


@xmodal_export
class TransformerCaptionDecoder(keras.layers.Layer):
    """Transformer decoder over caption tokens with cross-attention to the region grid.

    Tokens go through KerasHub's `TokenAndPositionEmbedding` and `num_layers` KerasHub
    `TransformerDecoder` blocks (causal self-attention, cross-attention to the projected
    grid; Vaswani et al. 2017); a dense layer gives vocabulary logits. Grid features are
    projected to `hidden_dim` and get a learned region-position embedding.

    Decoding uses KerasHub's key/value caches: `initial_state` computes every block's
    cross-attention cache once per image, and `step` appends one token's keys and values
    to the self-attention caches (fixed `[batch, 2, sequence_length, heads, head_dim]`
    tensors, one per block), so each step costs one token, not the whole prefix.

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
        """Decoding state before the first token: memory and per-block KV caches."""
        memory = self.prepare_grid(grid)
        batch = ops.shape(memory)[0]
        cache_shape = (batch, 2, self.sequence_length, self.num_heads, self.head_dim)
        cross_shape = (batch, 2, ops.shape(memory)[1], self.num_heads, self.head_dim)
        x = self.token_embedding(ops.zeros((batch, 1), "int32"))
        self_caches, cross_caches = [], []
        for layer in self.decoder_layers:
            # Index 0 fills the cross-attention cache from `memory`; the self-attention
            # slot it writes is overwritten by the first real `step`.
            x, self_cache, cross_cache = layer(
                x,
                memory,
                self_attention_cache=ops.zeros(cache_shape, x.dtype),
                self_attention_cache_update_index=0,
                cross_attention_cache=ops.zeros(cross_shape, x.dtype),
                cross_attention_cache_update_index=0,
            )
            self_caches.append(self_cache)
            cross_caches.append(cross_cache)
        return {"memory": memory, "self_cache": self_caches, "cross_cache": cross_caches}

    def step(self, token_ids, state: dict, index, training=None):
        """One decoding step at position `index` (int scalar tensor).

        Returns:
            `(logits [batch, vocabulary_size], new_state, None)`; cross-attention maps
            for pictures come from `cross_attention_weights`.
        """
        x = self.token_embedding(token_ids[:, None], start_index=index)
        self_caches, cross_caches = [], []
        for layer, self_cache, cross_cache in zip(
            self.decoder_layers, state["self_cache"], state["cross_cache"], strict=True
        ):
            x, self_cache, cross_cache = layer(
                x,
                state["memory"],
                self_attention_cache=self_cache,
                self_attention_cache_update_index=index,
                cross_attention_cache=cross_cache,
                cross_attention_cache_update_index=None,
                training=training,
            )
            self_caches.append(self_cache)
            cross_caches.append(cross_cache)
        logits = self.logits_dense(x)[:, 0]
        new_state = {
            "memory": state["memory"],
            "self_cache": self_caches,
            "cross_cache": cross_caches,
        }
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
