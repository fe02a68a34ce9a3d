"""Transfer: a fusion classifier that reads the text with a trained Transformer captioner.

A captioner trained on an image's captions knows which sentences fit the image: its
decoder's tokens cross-attend to the image regions, and its likelihood of a text is high
for a true statement and low for a false one. `build_fusion_classifier_from_captioner`
turns that into a cross-attention fusion classifier: the captioner's image encoder gives
the region grid, a `CaptionerTextReader` (the captioner's decoder, copied) reads the text
against it, and a head classifies the reader's features. Everything is fine-tuned.
"""

from collections.abc import Sequence

import keras

from xmodal_keras.argument_checks import check_positive_int
from xmodal_keras.decoders.captioner_text_reader import CaptionerTextReader
from xmodal_keras.decoders.transformer_caption_decoder import TransformerCaptionDecoder
from xmodal_keras.models.captioner_parts import CAPTION_DECODER_NAME, IMAGE_ENCODER_NAME
from xmodal_keras.models.fusion_classifier import OUTPUTS, classifier_logits, classifier_output

CAPTIONER_MODALITIES = ("image", "text")


def build_fusion_classifier_from_captioner(
    captioner: keras.Model,
    *,
    num_classes: int,
    modalities: Sequence[str] = CAPTIONER_MODALITIES,
    hidden_dim: int = 128,
    multi_label: bool = False,
    dropout: float = 0.0,
    output: str = "probabilities",
    name: str = "fusion_classifier",
) -> keras.Model:
    """A classifier of (image, text) pairs started from a trained Transformer captioner.

    The captioner's image encoder (copied) gives the region grid; a `CaptionerTextReader`
    holding a copy of its decoder reads the text's tokens against the grid and returns the
    mean cross-attended hidden state and the text's log-likelihood given the image; a head
    `Dense(hidden_dim, relu) -> dropout -> Dense` classifies them (binary, multi-class or
    multi-label as in `build_fusion_classifier`). The captioner itself is not changed.

    Unimodal baselines from the same layers: `modalities=("image",)` classifies the
    encoder's pooled vector; `("text",)` reads the text against a blank image.

    Args:
        captioner: a trained `build_transformer_captioner` model (`load_captioner`).
        num_classes: int >= 2.
        modalities: `("image", "text")` (default), `("image",)` or `("text",)`.
        hidden_dim: the head's hidden layer. Defaults to 128.
        multi_label, dropout, output, name: see `build_fusion_classifier`.

    Returns:
        A `keras.Model` with inputs `"images"` uint8 `[batch, H, W, 3]` (the captioner's
        image shape) and/or `"token_ids"` int32 `[batch, sequence_length + 1]` (the
        captioner's tokenizer with its `sequence_length`), like `build_fusion_classifier`.

    Raises:
        ValueError: `captioner` is not a Transformer captioner (GRU captioners have no
            per-token cross-attention to read), or bad modalities.

    Example:

    >>> import numpy as np
    >>> from xmodal_keras.models.transformer_captioner import build_transformer_captioner
    >>> captioner = build_transformer_captioner(vocabulary_size=12, sequence_length=5,
    ...     image_shape=(32, 32, 3), encoder_kwargs={"hidden_dim": 8},
    ...     hidden_dim=8, num_heads=2, num_layers=1)
    >>> model = build_fusion_classifier_from_captioner(captioner, num_classes=2, hidden_dim=8)
    >>> probabilities = model({"images": np.zeros((2, 32, 32, 3), "uint8"),
    ...                        "token_ids": np.array([[2, 5, 6, 3, 0, 0], [2, 7, 3, 0, 0, 0]])})
    >>> tuple(probabilities.shape)
    (2, 1)
    """
    modalities = tuple(modalities)
    if (
        not modalities
        or len(set(modalities)) != len(modalities)
        or any(m not in CAPTIONER_MODALITIES for m in modalities)
    ):
        raise ValueError(
            f"`modalities` must be distinct names from {CAPTIONER_MODALITIES}. "
            f"Received: modalities={modalities!r}"
        )
    check_positive_int("num_classes", num_classes)
    if num_classes < 2:
        raise ValueError(f"`num_classes` must be >= 2. Received: num_classes={num_classes}")
    check_positive_int("hidden_dim", hidden_dim)
    if output not in OUTPUTS:
        raise ValueError(f"`output` must be one of {OUTPUTS}. Received: output={output!r}")
    decoder, image_encoder = _captioner_parts(captioner)

    encoder = keras.models.clone_model(image_encoder)
    encoder.set_weights(image_encoder.get_weights())
    image_shape = tuple(encoder.input.shape[1:])
    grid_shape = tuple(int(d) for d in encoder.output["grid"].shape[1:])
    token_ids = keras.Input((decoder.sequence_length + 1,), dtype="int32", name="token_ids")
    images = keras.Input(image_shape, dtype="uint8", name="images")

    inputs = {}
    if "image" in modalities:
        inputs["images"] = images
        encoded = encoder(images)
    if "text" in modalities:
        inputs["token_ids"] = token_ids
        reader = CaptionerTextReader(
            decoder.get_config(), grid_shape=grid_shape, name="captioner_text_reader"
        )
        features = reader(token_ids, encoded["grid"] if "image" in modalities else None)
        reader.decoder.set_weights(decoder.get_weights())
    else:
        features = encoded["pooled"]
    units = 1 if num_classes == 2 and not multi_label else num_classes
    logits = classifier_logits(features, hidden_dim, units, dropout, prefix="")
    return keras.Model(inputs, classifier_output(logits, units, multi_label, output), name=name)


def _captioner_parts(captioner: keras.Model):
    names = [layer.name for layer in captioner.layers]
    if CAPTION_DECODER_NAME not in names or IMAGE_ENCODER_NAME not in names:
        raise ValueError(
            f"`captioner` must be a captioner with layers {IMAGE_ENCODER_NAME!r} and "
            f"{CAPTION_DECODER_NAME!r} (`build_transformer_captioner`). "
            f"Received: a model {captioner.name!r} with layers {names}"
        )
    decoder = captioner.get_layer(CAPTION_DECODER_NAME)
    if not isinstance(decoder, TransformerCaptionDecoder):
        raise ValueError(
            "`captioner` must be a Transformer captioner (its decoder's tokens cross-attend "
            "to the image regions, which the classifier reads); a GRU or LSTM captioner "
            f"cannot be read this way. Received: decoder {type(decoder).__name__}"
        )
    return decoder, captioner.get_layer(IMAGE_ENCODER_NAME)
