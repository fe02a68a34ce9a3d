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

    def initial_state(self, grid, pooled=None, batched_matmul=False) -> dict:
        """Decoding state before the first token: per-block key/value caches.

        Cross-attention keys and values are projected from the grid once per image; the
        self-attention caches start as zeros and get one position per `step`. Every
        cache is `[batch, positions, heads, head_dim]`, or with `batched_matmul` (the
        layout `step(..., batched_matmul=True)` needs) keys `[batch, heads, head_dim,
        positions]` and values `[batch, heads, positions, head_dim]`: either way a step
        transposes nothing (TF's oneDNN transpose took ~120 us a call at batch 1).
        """
        memory = self.prepare_grid(grid)
        batch, regions = ops.shape(memory)[0], ops.shape(memory)[1]
        flat_memory = ops.reshape(memory, (-1, memory.shape[-1]))
        layouts = {"keys": (0, 2, 3, 1), "values": (0, 2, 1, 3)} if batched_matmul else {}
        state = {"self_keys": [], "self_values": [], "cross_keys": [], "cross_values": []}
        for layer in self.decoder_layers:
            cross_attention = layer._cross_attention_layer
            for kind in ("keys", "values"):
                cache_shape = (batch, self.sequence_length, self.num_heads, self.head_dim)
                dense = getattr(cross_attention, f"_{kind[:-1]}_dense")
                # One MatMul on [batch * regions, dim]: the layer's EinsumDense ran a
                # batched MatMul (~225 us a call on 2 CPU cores at batch 1).
                projection = _head_projection({kind[:-1]: (dense, 1.0)}, memory.dtype)
                projected = ops.reshape(
                    _dense(flat_memory, projection),
                    (batch, regions, self.num_heads, self.head_dim),
                )
                if kind in layouts:
                    cache_shape = tuple(cache_shape[axis] for axis in layouts[kind])
                    projected = ops.transpose(projected, layouts[kind])
                state[f"self_{kind}"].append(ops.zeros(cache_shape, memory.dtype))
                state[f"cross_{kind}"].append(projected)
        return state

    def step_weights(self, fuse_query_key_value: bool = True) -> dict:
        """Every weight `step` uses, read and shaped for it once.

        A decoding loop reads these before its first token and passes them to every
        `step(..., weights=...)`, so a step reads no variable and reshapes no kernel:
        at batch 1 a step is bound by how many ops it runs, not by FLOPs.

        Args:
            fuse_query_key_value: the self-attention's query, key and value projections
                as one `MatMul` (eight fewer ops a block), or three. Defaults to True.
        """
        dtype = self.compute_dtype
        scale = 1.0 / math.sqrt(self.head_dim)  # attention's scale, in the query kernels
        embedding = self.token_embedding
        blocks = []
        for layer in self.decoder_layers:
            self_attention = layer._self_attention_layer
            cross_attention = layer._cross_attention_layer
            blocks.append(
                {
                    "self_query_key_value": _head_projections(
                        {
                            "query": (self_attention._query_dense, scale),
                            "key": (self_attention._key_dense, 1.0),
                            "value": (self_attention._value_dense, 1.0),
                        },
                        dtype,
                        fuse_query_key_value,
                    ),
                    "self_output": _merge_projection(self_attention._output_dense, dtype),
                    "cross_query": _head_projection(
                        {"query": (cross_attention._query_dense, scale)}, dtype
                    ),
                    "cross_output": _merge_projection(cross_attention._output_dense, dtype),
                    "self_norm": _norm_weights(layer._self_attention_layer_norm),
                    "cross_norm": _norm_weights(layer._cross_attention_layer_norm),
                    "feedforward_norm": _norm_weights(layer._feedforward_layer_norm),
                    "feedforward_in": _dense_weights(layer._feedforward_intermediate_dense, dtype),
                    "feedforward_out": _dense_weights(layer._feedforward_output_dense, dtype),
                }
            )
        return {
            "tokens": ops.cast(embedding.token_embedding.embeddings, dtype),
            "positions": ops.cast(embedding.position_embedding.position_embeddings, dtype),
            "blocks": blocks,
            "logits": _dense_weights(self.logits_dense, dtype),
        }

    def step(
        self, token_ids, state: dict, index, training=None, weights=None, batched_matmul=False
    ):
        """One decoding step at position `index` (int scalar tensor), for inference.

        The same weights and order as each KerasHub block's `call` (a test checks equal
        logits), written as matrix ops on one token kept as a `[batch, hidden]` matrix:
        the blocks' own rank-3 layer calls ran about 390 ops a step (shape arithmetic,
        transposes around the softmax, a variable read per weight), this about 170 (the
        self-attention's query, key and value in one `MatMul`).
        The new key/value row is written into the cache with a broadcast `where`, not
        KerasHub's `ops.slice_update`: that lowers to `XlaDynamicUpdateSlice`, which
        stock TF Serving lacks; `SelectV2` every runtime (SavedModel, LiteRT) has.

        Args:
            token_ids: int `[batch]`, the previous token.
            state: from `initial_state` or the previous step.
            index: int scalar tensor, the token's position.
            training: passed to the blocks' dropout (a no-op at inference).
            weights: `step_weights()`, read once per decoding loop. Defaults to reading
                them in this call.
            batched_matmul: attention by batched `MatMul`s instead of broadcast
                multiplies: faster from about 8 rows on 2 CPU cores, slower below (TF's
                oneDNN batched `MatMul` costs ~70 us a call). The state must have been
                made with `initial_state(..., batched_matmul=True)`. Defaults to False.

        Returns:
            `(logits [batch, vocabulary_size], new_state, None)`; cross-attention maps
            for pictures come from `cross_attention_weights`.
        """
        if weights is None:
            # A step on its own (the LiteRT export's `decode_step` and `caption` loop)
            # keeps three projections: fused, int8 LiteRT gives queries, keys and values
            # one range, and int8 captions equal to float fell from 66 % to 57 % (demo).
            weights = self.step_weights(fuse_query_key_value=False)
        x = ops.take(weights["tokens"], token_ids, axis=0)
        x = x + ops.take(weights["positions"], index, axis=0)
        # Shaped once a step for every block, for the caches' and the scores' layouts:
        # positions on axis 1 (broadcast form) or last (batched MatMuls; values: axis 2).
        cache_positions = ops.arange(self.sequence_length)
        written = ops.equal(cache_positions, index)
        visible = ops.less_equal(cache_positions, index)
        if batched_matmul:
            written_keys, written_values = written, ops.reshape(written, (-1, 1))
        else:
            visible = ops.reshape(visible, (-1, 1, 1))
            written_keys = written_values = ops.reshape(written, (-1, 1, 1))
        mask = (visible, ops.cast(visible, x.dtype))
        new_state = {key: [] for key in state}
        blocks = zip(self.decoder_layers, weights["blocks"], strict=True)
        for number, (layer, block) in enumerate(blocks):
            first = layer.normalize_first
            residual = x
            if first:
                x = _layer_norm(x, block["self_norm"])
            query, new_key, new_value = (
                projected
                for projection in block["self_query_key_value"]
                for projected in _project_heads(x, projection, batched_matmul)
            )
            keys = ops.where(written_keys, new_key, state["self_keys"][number])
            values = ops.where(written_values, new_value, state["self_values"][number])
            attended = _attend_one_query(query, keys, values, mask, batched_matmul)
            x = _dense(attended, block["self_output"])
            x = layer._self_attention_dropout(x, training=training) + residual
            if not first:
                x = _layer_norm(x, block["self_norm"])

            cross_keys = state["cross_keys"][number]
            cross_values = state["cross_values"][number]
            residual = x
            if first:
                x = _layer_norm(x, block["cross_norm"])
            (query,) = _project_heads(x, block["cross_query"], batched_matmul)
            attended = _attend_one_query(query, cross_keys, cross_values, None, batched_matmul)
            x = _dense(attended, block["cross_output"])
            x = layer._cross_attention_dropout(x, training=training) + residual
            if not first:
                x = _layer_norm(x, block["cross_norm"])

            residual = x
            if first:
                x = _layer_norm(x, block["feedforward_norm"])
            activation = layer._feedforward_intermediate_dense.activation
            x = _dense(activation(_dense(x, block["feedforward_in"])), block["feedforward_out"])
            x = layer._feedforward_dropout(x, training=training) + residual
            if not first:
                x = _layer_norm(x, block["feedforward_norm"])

            new_state["self_keys"].append(keys)
            new_state["self_values"].append(values)
            new_state["cross_keys"].append(cross_keys)
            new_state["cross_values"].append(cross_values)
        return _dense(x, weights["logits"]), new_state, None

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


def _head_projection(denses: dict, dtype) -> dict:
    """Keras attention projections (`EinsumDense` "abc,cde->abde", kernels `[dim, heads,
    head_dim]`) of the same input as one `[dim, parts * heads * head_dim]` matrix and a
    flat bias: `denses` maps a kind ("query", "key", "value") to `(dense, scale)`, the
    scale multiplying that projection (`_project_heads` splits them)."""
    _, heads, head_dim = next(iter(denses.values()))[0].kernel.shape
    kernels, biases = [], []
    for dense, scale in denses.values():
        kernels.append(ops.reshape(ops.cast(dense.kernel, dtype), (-1, heads * head_dim)) * scale)
        bias = ops.zeros((heads * head_dim,), dtype) if dense.bias is None else dense.bias
        biases.append(ops.reshape(ops.cast(bias, dtype), (-1,)) * scale)
    return {
        "kernel": ops.concatenate(kernels, axis=-1),
        "bias": ops.concatenate(biases, axis=-1),
        "kinds": tuple(denses),
        "heads": heads,
        "head_dim": head_dim,
    }


def _head_projections(denses: dict, dtype, fuse: bool) -> list[dict]:
    """`[_head_projection(denses)]`, or one projection per kind when not `fuse`."""
    if fuse:
        return [_head_projection(denses, dtype)]
    return [_head_projection({kind: dense}, dtype) for kind, dense in denses.items()]


def _merge_projection(dense, dtype) -> dict:
    """The attention output projection (`EinsumDense` "abcd,cde->abe", kernel `[heads,
    head_dim, dim]`) as a `[heads * head_dim, dim]` matrix."""
    heads, head_dim, dim = dense.kernel.shape
    kernel = ops.reshape(ops.cast(dense.kernel, dtype), (heads * head_dim, dim))
    bias = None if dense.bias is None else ops.cast(dense.bias, dtype)
    return {"kernel": kernel, "bias": bias}


def _dense_weights(dense, dtype) -> dict:
    bias = None if dense.bias is None else ops.cast(dense.bias, dtype)
    return {"kernel": ops.cast(dense.kernel, dtype), "bias": bias}


def _norm_weights(norm) -> dict:
    if norm.rms_scaling or norm.axis not in (-1, [-1]):
        raise ValueError(
            "The decoding step supports a layer norm over the last axis, without RMS "
            f"scaling. Received: axis={norm.axis}, rms_scaling={norm.rms_scaling}"
        )
    gamma = None if norm.gamma is None else ops.cast(norm.gamma, "float32")
    beta = None if norm.beta is None else ops.cast(norm.beta, "float32")
    return {"gamma": gamma, "beta": beta, "epsilon": norm.epsilon}


def _dense(x, weights: dict):
    y = ops.matmul(x, weights["kernel"])
    return y if weights["bias"] is None else y + weights["bias"]


def _project_heads(x, projection: dict, batched_matmul: bool = False) -> list:
    """`x` `[batch, dim]` through a `_head_projection` by one `MatMul`: one tensor per
    kind (a single query or cache position), `[batch, 1, heads, head_dim]`, or in the
    batched-MatMul layouts a query or value `[batch, heads, 1, head_dim]` and a key
    `[batch, heads, head_dim, 1]` (size-1 axes move: reshapes, no transpose)."""
    heads, head_dim, kinds = projection["heads"], projection["head_dim"], projection["kinds"]
    layout = (heads, 1, head_dim) if batched_matmul else (1, heads, head_dim)
    y = _dense(x, projection)
    if len(kinds) == 1:
        projected = [ops.reshape(y, (-1, *layout))]
    else:
        projected = ops.unstack(ops.reshape(y, (-1, len(kinds), *layout)), len(kinds), axis=1)
    if batched_matmul and "key" in kinds:  # for `query @ keys` without a transpose
        k = kinds.index("key")
        projected[k] = ops.reshape(projected[k], (-1, heads, head_dim, 1))
    return projected


def _layer_norm(x, weights: dict):
    """`keras.layers.LayerNormalization` over the last axis, in float32 as Keras does:
    nine ops; the layer's call adds a variable read per weight and a `StopGradient`."""
    x32 = ops.cast(x, "float32")
    centred = x32 - ops.mean(x32, axis=-1, keepdims=True)
    variance = ops.mean(ops.square(centred), axis=-1, keepdims=True)
    scale = ops.rsqrt(variance + weights["epsilon"])
    if weights["gamma"] is not None:
        scale = scale * weights["gamma"]
    normalized = centred * scale
    if weights["beta"] is not None:
        normalized = normalized + weights["beta"]
    return ops.cast(normalized, x.dtype)


def _attend_one_query(query, keys, values, mask=None, batched_matmul=False):
    """Dot-product attention for a single query position, per head.

    Broadcast form: `query` `[batch, 1, heads, head_dim]` (already scaled), `keys` and
    `values` `[batch, positions, heads, head_dim]`; a broadcast multiply and a sum
    replace Keras' einsums (no transposes; LiteRT builtins only). Batched-MatMul form
    (faster on many rows, 70 us a call in TF's oneDNN at batch 1): `query` `[batch,
    heads, 1, head_dim]`, `keys` `[batch, heads, head_dim, positions]`, `values`
    `[batch, heads, positions, head_dim]`. `mask`: (bool, the same as 0/1 floats) which
    positions are visible, broadcastable to the scores. Returns `[batch, heads *
    head_dim]`. Masked positions get zero weight: the same attention as Keras' masked
    softmax (a -1e9 score) in exact arithmetic.
    """
    if batched_matmul:
        scores = ops.matmul(query, keys)  # [batch, heads, 1, positions]
        positions = -1
    else:
        scores = ops.sum(query * keys, axis=-1, keepdims=True)  # [batch, positions, heads, 1]
        positions = 1
    if mask is not None:
        # A masked position takes the lowest score of the row, so the max below is a
        # visible position's and the sum of weights is >= 1. Not a -1e9 score: int8 LiteRT
        # gives every tensor one range, and -1e9 stretched the scores' range so far that
        # all real scores quantized to one value (int8 captions equal to float on 2 % of
        # the demo's test images). Not a constant score either: when every visible score
        # was far below it, the visible weights underflowed to 0 / 0 (NaN).
        lowest = ops.min(scores, axis=positions, keepdims=True)
        scores = ops.where(mask[0], scores, lowest)
    # The softmax written out: TF's oneDNN softmax took 77 us a call on one token's
    # scores (a fifth of a batch-1 caption); these few ops take about 10.
    weights = ops.exp(scores - ops.max(scores, axis=positions, keepdims=True))
    if mask is not None:
        weights = weights * mask[1]
    # The sum is >= 1 (the max position's weight is 1), so the floor changes nothing in
    # float. In int8 LiteRT a score row below its calibrated range clipped the max, every
    # weight rounded to 0, and the DIV kernel stopped the caption loop on a zero divisor
    # (1 of the demo captioner's 100 val images); 0.5 is many int8 steps above zero.
    weights = weights / ops.maximum(ops.sum(weights, axis=positions, keepdims=True), 0.5)
    if batched_matmul:
        attended = ops.matmul(weights, values)
    else:
        attended = ops.sum(weights * values, axis=1)
    return ops.reshape(attended, (-1, math.prod(query.shape[1:])))
