"""`build_transformer_captioner`: CNN encoder + KerasHub Transformer decoder."""

import keras

from xmodal_keras.decoders.transformer_caption_decoder import TransformerCaptionDecoder
from xmodal_keras.models.captioner_parts import (
    CAPTION_DECODER_NAME,
    captioner_image_encoder,
    captioner_inputs,
)


def build_transformer_captioner(
    *,
    vocabulary_size: int,
    sequence_length: int,
    image_shape: tuple[int, int, int] = (64, 64, 3),
    encoder: str | keras.Model = "small_cnn",
    encoder_weights: str | None = None,
    trainable_blocks: int | None = None,
    encoder_kwargs: dict | None = None,
    hidden_dim: int = 256,
    intermediate_dim: int | None = None,
    num_layers: int = 2,
    num_heads: int = 4,
    dropout: float = 0.0,
) -> keras.Model:
    """Build a Transformer captioner: `{"images", "token_ids"}` -> next-token logits.

    The image encoder's region grid is projected and cross-attended by a
    `TransformerCaptionDecoder` (KerasHub `TokenAndPositionEmbedding` +
    `TransformerDecoder` blocks) reading `token_ids` with a causal mask. Logits are
    `[batch, sequence_length, vocabulary_size]`. Build it inside a `tf.distribute`
    strategy scope to train on several devices.

    Args:
        vocabulary_size: int, the tokenizer's vocabulary size.
        sequence_length: int, length of `token_ids` (and of the KV caches).
        image_shape, encoder, encoder_weights, trainable_blocks, encoder_kwargs: see
            `build_gru_captioner`.
        hidden_dim, intermediate_dim, num_layers, num_heads, dropout: see
            `TransformerCaptionDecoder`.

    Example:

    >>> import numpy as np
    >>> model = build_transformer_captioner(vocabulary_size=12, sequence_length=6,
    ...     image_shape=(32, 32, 3), encoder_kwargs={"hidden_dim": 8},
    ...     hidden_dim=8, num_heads=2, num_layers=1)
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
    decoder = TransformerCaptionDecoder(
        vocabulary_size=vocabulary_size,
        sequence_length=sequence_length,
        hidden_dim=hidden_dim,
        intermediate_dim=intermediate_dim,
        num_layers=num_layers,
        num_heads=num_heads,
        dropout=dropout,
        name=CAPTION_DECODER_NAME,
    )
    logits = decoder(inputs["token_ids"], features["grid"])
    return keras.Model(inputs, logits, name="transformer_captioner")
