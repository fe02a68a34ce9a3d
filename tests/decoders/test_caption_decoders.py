"""The caption decoders: layer contract, step == teacher forcing, attention penalty."""

import numpy as np
import pytest
import tensorflow as tf
from helpers import run_layer_test

from xmodal_keras.decoders import (
    GRUCaptionDecoder,
    LSTMCaptionDecoder,
    TransformerCaptionDecoder,
)
from xmodal_keras.decoders.transformer_caption_decoder import _attend_one_query

VOCAB, LENGTH, REGIONS, FEATURES = 12, 6, 4, 6
rng = np.random.default_rng(0)
TOKENS = rng.integers(1, VOCAB, (2, LENGTH)).astype("int32")
GRID = rng.normal(size=(2, REGIONS, FEATURES)).astype("float32")
POOLED = rng.normal(size=(2, FEATURES)).astype("float32")

GRU_KWARGS = {"vocabulary_size": VOCAB, "embedding_dim": 8, "hidden_dim": 8}
LSTM_KWARGS = {"vocabulary_size": VOCAB, "embedding_dim": 8, "hidden_dim": 8, "dropout": 0.1}
TRANSFORMER_KWARGS = {
    "vocabulary_size": VOCAB,
    "sequence_length": LENGTH,
    "hidden_dim": 8,
    "num_heads": 2,
    "num_layers": 2,
}


def test_gru_decoder_layer_contract():
    run_layer_test(
        GRUCaptionDecoder,
        {**GRU_KWARGS, "attention_regularization": 0.0},
        {"token_ids": TOKENS, "grid": GRID, "pooled": POOLED},
        (2, LENGTH, VOCAB),
    )


def test_lstm_decoder_layer_contract():
    run_layer_test(
        LSTMCaptionDecoder,
        LSTM_KWARGS,
        {"token_ids": TOKENS, "grid": GRID, "pooled": POOLED},
        (2, LENGTH, VOCAB),
        expected_num_trainable_weights=8,
    )


def test_transformer_decoder_layer_contract():
    run_layer_test(
        TransformerCaptionDecoder,
        TRANSFORMER_KWARGS,
        {"token_ids": TOKENS, "grid": GRID},
        (2, LENGTH, VOCAB),
    )


def _step_all(decoder, tokens):
    state = decoder.initial_state(tf.constant(GRID), tf.constant(POOLED))
    logits = []
    for index in range(tokens.shape[1]):
        step_logits, state, _ = decoder.step(
            tf.constant(tokens[:, index]), state, tf.constant(index)
        )
        logits.append(step_logits.numpy())
    return np.stack(logits, axis=1)


@pytest.mark.parametrize(
    "decoder",
    [
        GRUCaptionDecoder(**GRU_KWARGS),
        LSTMCaptionDecoder(**LSTM_KWARGS),
        TransformerCaptionDecoder(**TRANSFORMER_KWARGS),
    ],
    ids=["gru", "lstm", "transformer"],
)
def test_step_by_step_equals_teacher_forcing(decoder):
    """The step function (GRU / LSTM state, KV cache) reproduces the full-sequence
    logits (for the LSTM: its cell, step by step, equals the `keras.layers.LSTM` loop)."""
    full = decoder(TOKENS, GRID, POOLED).numpy()
    np.testing.assert_allclose(_step_all(decoder, TOKENS), full, atol=1e-5)


@pytest.mark.parametrize("batched_matmul", [False, True])
def test_transformer_step_with_weights_read_once_equals_teacher_forcing(batched_matmul):
    """The decoding loops' step: weights from `step_weights()`, attention by broadcast
    products (few rows) or batched MatMuls (many)."""
    decoder = TransformerCaptionDecoder(**TRANSFORMER_KWARGS)
    full = decoder(TOKENS, GRID).numpy()
    weights = decoder.step_weights()
    state = decoder.initial_state(tf.constant(GRID), batched_matmul=batched_matmul)
    logits = []
    for index in range(LENGTH):
        step_logits, state, _ = decoder.step(
            tf.constant(TOKENS[:, index]),
            state,
            tf.constant(index),
            weights=weights,
            batched_matmul=batched_matmul,
        )
        logits.append(step_logits.numpy())
    np.testing.assert_allclose(np.stack(logits, axis=1), full, atol=1e-5)


@pytest.mark.parametrize("batched_matmul", [False, True])
def test_masked_attention_stays_a_distribution_when_visible_scores_are_very_low(batched_matmul):
    """Visible scores of -200 against a masked (empty cache) position's 0: the softmax
    must shift by the visible maximum. A constant masked score (-16) used to set the
    shift, and the visible weights underflowed to 0 / 0 (NaN)."""
    head_dim, positions = 4, 3
    keys = np.zeros((1, positions, 1, head_dim), "float32")
    keys[0, :2, 0] = [[-50.0, 0, 0, 0], [-51.0, 0, 0, 0]]  # two written cache rows
    values = rng.normal(size=(1, positions, 1, head_dim)).astype("float32")
    query = np.array([[[[4.0, 0, 0, 0]]]], "float32")  # scores -200, -204, 0 (unwritten)
    visible = np.array([True, True, False]).reshape(1, positions, 1, 1)
    mask = (tf.constant(visible), tf.constant(visible.astype("float32")))
    if batched_matmul:
        query = query.transpose(0, 2, 1, 3)
        keys = keys.transpose(0, 2, 3, 1)
        values = values.transpose(0, 2, 1, 3)
        mask = tuple(tf.reshape(m, (1, 1, 1, positions)) for m in mask)
    attended = _attend_one_query(query, keys, values, mask, batched_matmul).numpy()
    weights = np.exp([0.0, -4.0]) / np.exp([0.0, -4.0]).sum()
    expected = weights @ _value_rows(values, batched_matmul)[:2]
    np.testing.assert_allclose(attended[0], expected, rtol=1e-5)


def _value_rows(values, batched_matmul):
    """The `[positions, head_dim]` values of the single batch row and head."""
    return values[0, 0] if batched_matmul else values[0, :, 0]


def test_gru_attention_sums_to_one_and_penalty_is_added():
    decoder = GRUCaptionDecoder(**GRU_KWARGS, attention_regularization=2.0)
    padded = TOKENS.copy()
    padded[:, 4:] = 0
    logits, attention = decoder(padded, GRID, POOLED, return_attention=True)
    assert attention.shape == (2, LENGTH, REGIONS)
    np.testing.assert_allclose(attention.numpy().sum(-1), 1.0, atol=1e-5)
    coverage = (attention.numpy() * (padded != 0)[..., None]).sum(axis=1)
    expected = 2.0 * np.mean(np.sum((1.0 - coverage) ** 2, axis=-1))
    (penalty,) = decoder.losses
    np.testing.assert_allclose(penalty.numpy(), expected, rtol=1e-5)


def test_region_positions_change_the_output():
    """Without position embeddings the GRU cannot tell left from right."""
    decoder = GRUCaptionDecoder(**GRU_KWARGS)
    flipped = GRID[:, ::-1]
    assert not np.allclose(decoder(TOKENS, GRID, POOLED), decoder(TOKENS, flipped, POOLED))
    plain = GRUCaptionDecoder(**GRU_KWARGS, grid_position_embedding=False)
    # Attention pooling is order-free, so reversing the regions changes nothing.
    np.testing.assert_allclose(
        plain(TOKENS, GRID, POOLED), plain(TOKENS, flipped, POOLED), atol=1e-5
    )


def test_lstm_reads_the_pooled_image_first_and_ignores_the_grid():
    """Show and Tell: the image enters as the LSTM's input at step -1, from a zero state;
    there is no attention, so the region grid changes nothing."""
    decoder = LSTMCaptionDecoder(**LSTM_KWARGS)
    logits = decoder(TOKENS, GRID, POOLED).numpy()
    np.testing.assert_array_equal(decoder(TOKENS, np.zeros_like(GRID), POOLED), logits)
    assert not np.allclose(decoder(TOKENS, GRID, POOLED[::-1]), logits)
    image = decoder.image_embedding_dense(POOLED)
    zeros = tf.zeros((2, 8))
    _, (hidden, cell) = decoder.lstm.cell(image, [zeros, zeros])
    state = decoder.initial_state(GRID, POOLED)
    np.testing.assert_allclose(state["hidden"], hidden, atol=1e-6)
    np.testing.assert_allclose(state["cell"], cell, atol=1e-6)
    assert decoder.step(tf.constant(TOKENS[:, 0]), state)[2] is None


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"embedding_dim": 0}, "Received: embedding_dim=0"),
        ({"dropout": -0.1}, "Received: dropout=-0.1"),
    ],
)
def test_lstm_decoder_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LSTMCaptionDecoder(**{**LSTM_KWARGS, **kwargs})


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"hidden_dim": 0}, "Received: hidden_dim=0"),
        ({"dropout": 1.0}, "Received: dropout=1.0"),
        ({"attention_regularization": -1.0}, "Received: attention_regularization=-1.0"),
    ],
)
def test_gru_decoder_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GRUCaptionDecoder(**{**GRU_KWARGS, **kwargs})


def test_transformer_decoder_rejects_heads_that_do_not_divide():
    with pytest.raises(ValueError, match="Received: hidden_dim=8, num_heads=3"):
        TransformerCaptionDecoder(**{**TRANSFORMER_KWARGS, "num_heads": 3})


def test_transformer_cross_attention_weights_are_distributions():
    decoder = TransformerCaptionDecoder(**TRANSFORMER_KWARGS)
    decoder(TOKENS, GRID)
    weights = decoder.cross_attention_weights(TOKENS, GRID).numpy()
    assert weights.shape == (2, LENGTH, REGIONS)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
    # Causal: the map at position t does not depend on later tokens.
    changed = TOKENS.copy()
    changed[:, -1] = (changed[:, -1] % (VOCAB - 1)) + 1
    other = decoder.cross_attention_weights(changed, GRID).numpy()
    np.testing.assert_allclose(other[:, :-1], weights[:, :-1], atol=1e-6)
