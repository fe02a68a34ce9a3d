"""`build_lstm_captioner`: CNN encoder + LSTM decoder fed the image first (Show and Tell)."""

import keras

from xmodal_keras.decoders.lstm_caption_decoder import LSTMCaptionDecoder
from xmodal_keras.models.captioner_parts import (
    CAPTION_DECODER_NAME,
    captioner_image_encoder,
    captioner_inputs,
)


def build_lstm_captioner(
    *,
    vocabulary_size: int,
    sequence_length: int,
    image_shape: tuple[int, int, int] = (64, 64, 3),
    encoder: str | keras.Model = "small_cnn",
    encoder_weights: str | None = None,
    trainable_blocks: int | None = None,
    encoder_kwargs: dict | None = None,
    embedding_dim: int = 256,
    hidden_dim: int = 512,
    dropout: float = 0.0,
) -> keras.Model:
    """Build a Show-and-Tell captioner: `{"images", "token_ids"}` -> next-token logits.

    The image encoder's pooled vector is projected and fed to an `LSTMCaptionDecoder`
    as its first input (Vinyals et al. 2015, im2txt); the LSTM then reads `token_ids`
    (teacher forcing) and returns logits `[batch, sequence_length, vocabulary_size]`.
    No attention: the region grid is not read. Build it inside a `tf.distribute`
    strategy scope to train on several devices.

    Args:
        vocabulary_size: int, the tokenizer's vocabulary size.
        sequence_length: int, length of `token_ids` (and the longest caption decoded).
        image_shape, encoder, encoder_weights, trainable_blocks, encoder_kwargs: see
            `build_gru_captioner`.
        embedding_dim, hidden_dim, dropout: see `LSTMCaptionDecoder`.

    Example:

    >>> import numpy as np
    >>> model = build_lstm_captioner(vocabulary_size=12, sequence_length=6,
    ...     image_shape=(32, 32, 3), encoder_kwargs={"hidden_dim": 8},
    ...     embedding_dim=8, hidden_dim=8)
    >>> logits = model({"images": np.zeros((2, 32, 32, 3), "uint8"),
    ...                 "token_ids": np.ones((2, 6), "int32")})
    >>> tuple(logits.shape)
    (2, 6, 12)
    """
    inputs = captioner_inputs(image_shape, sequence_length)
    image_encoder = captioner_image_encoder(
        encoder, image_shape, encoder_weights, trainable_blocks, encoder_kwargs
    )
    features = image_encoder(inputs["images"])
    decoder = LSTMCaptionDecoder(
        vocabulary_size=vocabulary_size,
        embedding_dim=embedding_dim,
        hidden_dim=hidden_dim,
        dropout=dropout,
        name=CAPTION_DECODER_NAME,
    )
    logits = decoder(inputs["token_ids"], features["grid"], features["pooled"])
    return keras.Model(inputs, logits, name="lstm_captioner")
