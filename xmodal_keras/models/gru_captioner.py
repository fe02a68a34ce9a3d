"""`build_gru_captioner`: CNN encoder + attention GRU decoder (Show, Attend and Tell)."""

import keras

from xmodal_keras.decoders.gru_caption_decoder import GRUCaptionDecoder
from xmodal_keras.models.captioner_parts import (
    CAPTION_DECODER_NAME,
    captioner_image_encoder,
    captioner_inputs,
)


def build_gru_captioner(
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
    attention_dim: int | None = None,
    dropout: float = 0.0,
    attention_regularization: float = 0.0,
) -> keras.Model:
    """Build a Show-Attend-Tell captioner: `{"images", "token_ids"}` -> next-token logits.

    The image (uint8 or float RGB in [0, 255], `image_shape`) goes through the image
    encoder (its own preprocessing inside) to a region grid and a pooled vector; a
    `GRUCaptionDecoder` attends over the grid while reading `token_ids` (teacher
    forcing) and returns logits `[batch, sequence_length, vocabulary_size]`. Build it
    inside a `tf.distribute` strategy scope to train on several devices.

    Args:
        vocabulary_size: int, the tokenizer's vocabulary size.
        sequence_length: int, length of `token_ids` (and the longest caption decoded).
        image_shape: `(height, width, 3)`. Defaults to `(64, 64, 3)`.
        encoder: a name from `IMAGE_ENCODER_NAMES` or an encoder model returning
            `{"grid", "pooled"}`. Defaults to `"small_cnn"`.
        encoder_weights: `"imagenet"`, `None` or a weights file. Defaults to `None`.
        trainable_blocks: how many of the encoder's last blocks train; `None` trains
            all without weights and none with weights. Defaults to `None`.
        encoder_kwargs: extra arguments for `build_image_encoder` (e.g. `hidden_dim`).
        embedding_dim, hidden_dim, attention_dim, dropout, attention_regularization:
            see `GRUCaptionDecoder`.

    Example:

    >>> import numpy as np
    >>> model = build_gru_captioner(vocabulary_size=12, sequence_length=6,
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
    decoder = GRUCaptionDecoder(
        vocabulary_size=vocabulary_size,
        embedding_dim=embedding_dim,
        hidden_dim=hidden_dim,
        attention_dim=attention_dim,
        dropout=dropout,
        attention_regularization=attention_regularization,
        name=CAPTION_DECODER_NAME,
    )
    logits = decoder(inputs["token_ids"], features["grid"], features["pooled"])
    return keras.Model(inputs, logits, name="gru_captioner")
