"""CaptionerTextReader: the captioner's log-likelihood and masked hidden states of a text."""

import numpy as np
import pytest

from xmodal_keras.decoders.captioner_text_reader import CaptionerTextReader
from xmodal_keras.decoders.transformer_caption_decoder import TransformerCaptionDecoder

VOCABULARY, LENGTH, HIDDEN = 11, 5, 8
TOKEN_IDS = np.array([[2, 5, 6, 3, 0, 0], [2, 7, 8, 9, 4, 3]], "int32")


@pytest.fixture(scope="module")
def decoder_and_reader():
    decoder = TransformerCaptionDecoder(
        vocabulary_size=VOCABULARY,
        sequence_length=LENGTH,
        hidden_dim=HIDDEN,
        num_heads=2,
        num_layers=2,
    )
    grid = np.random.default_rng(0).normal(size=(2, 4, 6)).astype("float32")
    decoder(TOKEN_IDS[:, :-1], grid)
    reader = CaptionerTextReader(decoder.get_config(), grid_shape=(4, 6))
    reader(TOKEN_IDS, grid)
    reader.decoder.set_weights(decoder.get_weights())
    return decoder, reader, grid


def test_log_likelihood_is_the_captioners_over_the_texts_tokens(decoder_and_reader):
    decoder, reader, grid = decoder_and_reader
    features = np.asarray(reader(TOKEN_IDS, grid))
    assert features.shape == (2, HIDDEN + 2) == (2, reader.output_dim)
    logits = np.asarray(decoder(TOKEN_IDS[:, :-1], grid), "float64")
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    targets = TOKEN_IDS[:, 1:]
    for row in range(2):
        scored = [log_probs[row, t, targets[row, t]] for t in range(LENGTH) if targets[row, t]]
        np.testing.assert_allclose(features[row, -2], sum(scored), rtol=1e-5)
        np.testing.assert_allclose(features[row, -1], np.mean(scored), rtol=1e-5)


def test_hidden_states_are_averaged_over_the_texts_tokens_only(decoder_and_reader):
    decoder, reader, grid = decoder_and_reader
    inputs = TOKEN_IDS[:, :-1]
    memory = decoder.prepare_grid(grid)
    hidden = decoder.token_embedding(inputs)
    for layer in decoder.decoder_layers:
        hidden = layer(hidden, memory)
    hidden = np.asarray(hidden)
    features = np.asarray(reader(TOKEN_IDS, grid))
    for row in range(2):
        read = inputs[row] != 0
        np.testing.assert_allclose(features[row, :HIDDEN], hidden[row, read].mean(0), atol=1e-5)
    # The first text has one padded position, which the mean leaves out.
    assert not np.allclose(features[0, :HIDDEN], hidden[0].mean(0), atol=1e-3)


def test_without_a_grid_the_text_is_read_against_a_blank_image(decoder_and_reader):
    _, reader, grid = decoder_and_reader
    blank = np.asarray(reader(TOKEN_IDS, np.zeros_like(grid)))
    np.testing.assert_allclose(np.asarray(reader(TOKEN_IDS)), blank, atol=1e-6)
    assert not np.allclose(np.asarray(reader(TOKEN_IDS, grid)), blank)


def test_config_round_trip_rebuilds_the_same_decoder(decoder_and_reader):
    _, reader, grid = decoder_and_reader
    config = reader.get_config()
    assert config["grid_shape"] == [4, 6]
    copy = CaptionerTextReader.from_config(config)
    copy(TOKEN_IDS, grid)
    copy.set_weights(reader.get_weights())
    np.testing.assert_allclose(copy(TOKEN_IDS, grid), reader(TOKEN_IDS, grid), atol=1e-6)


def test_bad_arguments_are_refused():
    config = TransformerCaptionDecoder(
        vocabulary_size=5, sequence_length=3, hidden_dim=4, num_heads=1, num_layers=1
    ).get_config()
    with pytest.raises(ValueError, match=r"`decoder_config` must be .* Received: decoder_config="):
        CaptionerTextReader("decoder")
    with pytest.raises(ValueError, match=r"`grid_shape` must be .* Received: grid_shape=\(4,\)"):
        CaptionerTextReader(config, grid_shape=(4,))
    with pytest.raises(ValueError, match=r"needs `grid_shape` .* Received: grid_shape=None"):
        CaptionerTextReader(config)(np.ones((1, 4), "int32"))
