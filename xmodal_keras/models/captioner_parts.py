"""Inputs and image encoder shared by the captioner builders (not public API)."""

import keras

from xmodal_keras.encoders.cnn_image_encoder import build_image_encoder

IMAGE_ENCODER_NAME = "image_encoder"
CAPTION_DECODER_NAME = "caption_decoder"


def captioner_inputs(image_shape: tuple[int, int, int], sequence_length: int) -> dict:
    """The `{"images", "token_ids"}` inputs every captioner takes."""
    if not isinstance(sequence_length, int) or isinstance(sequence_length, bool):
        raise ValueError(f"`sequence_length` must be an int. Received: {sequence_length!r}")
    if sequence_length < 2:
        raise ValueError(
            f"`sequence_length` must be >= 2. Received: sequence_length={sequence_length}"
        )
    return {
        "images": keras.Input(shape=tuple(image_shape), dtype="uint8", name="images"),
        "token_ids": keras.Input(shape=(sequence_length,), dtype="int32", name="token_ids"),
    }


def captioner_image_encoder(
    encoder: str | keras.Model,
    image_shape: tuple[int, int, int],
    encoder_weights,
    trainable_blocks: int | None,
    encoder_kwargs: dict | None,
) -> keras.Model:
    """An image encoder by name (see `build_image_encoder`), or the model given."""
    if isinstance(encoder, keras.Model):
        model = encoder
    else:
        model = build_image_encoder(
            encoder,
            image_shape=tuple(image_shape),
            weights=encoder_weights,
            trainable_blocks=trainable_blocks,
            **(encoder_kwargs or {}),
        )
    model.name = IMAGE_ENCODER_NAME
    return model
