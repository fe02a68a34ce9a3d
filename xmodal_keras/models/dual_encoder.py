"""`build_dual_encoder`: CLIP-style image and text towers into one L2-normalised space."""

import keras

from xmodal_keras.argument_checks import check_positive_int
from xmodal_keras.encoders.cnn_image_encoder import build_image_encoder
from xmodal_keras.encoders.text_encoder import build_text_encoder
from xmodal_keras.layers.contrastive_logits import ContrastiveLogits
from xmodal_keras.layers.projection_head import ProjectionHead

IMAGE_TOWER_NAME = "image_tower"
TEXT_TOWER_NAME = "text_tower"
LOGITS_NAME = "logits"


def build_image_tower(
    *,
    image_shape: tuple[int, int, int],
    projection_dim: int,
    encoder: str | keras.Model = "small_cnn",
    encoder_weights: str | None = None,
    trainable_blocks: int | None = None,
    encoder_kwargs: dict | None = None,
    dropout: float = 0.0,
    name: str = IMAGE_TOWER_NAME,
) -> keras.Model:
    """uint8 images `[B, H, W, 3]` -> L2-normalised embeddings `[B, projection_dim]`.

    Image encoder (nested model `"image_encoder"`, its pooled vector) ->
    `ProjectionHead` (`"image_projection"`) -> `UnitNormalization`.
    """
    if isinstance(encoder, keras.Model):
        image_encoder = encoder
    else:
        image_encoder = build_image_encoder(
            encoder,
            image_shape=tuple(image_shape),
            weights=encoder_weights,
            trainable_blocks=trainable_blocks,
            **(encoder_kwargs or {}),
        )
    image_encoder.name = "image_encoder"
    images = keras.Input(shape=tuple(image_shape), dtype="uint8", name="images")
    x = image_encoder(images)["pooled"]
    x = ProjectionHead(projection_dim, dropout=dropout, name="image_projection")(x)
    embeddings = keras.layers.UnitNormalization(axis=-1, name="image_embeddings")(x)
    return keras.Model(images, embeddings, name=name)


def build_text_tower(
    *,
    vocabulary_size: int,
    sequence_length: int,
    projection_dim: int,
    text_encoder: str = "bigru",
    embedding_dim: int = 128,
    hidden_dim: int = 128,
    num_layers: int = 1,
    num_heads: int = 2,
    intermediate_dim: int | None = None,
    dropout: float = 0.0,
    trainable_layers: int | None = None,
    name: str = TEXT_TOWER_NAME,
) -> keras.Model:
    """int32 token ids `[B, S]` -> L2-normalised embeddings `[B, projection_dim]`.

    `build_text_encoder` (nested model `"text_encoder"`, masked-mean pooled; `text_encoder`
    may be `keras_hub:PRESET_OR_DIR`, `trainable_layers` its last layers that train) ->
    `ProjectionHead` (`"text_projection"`) -> `UnitNormalization`.
    """
    encoder = build_text_encoder(
        vocabulary_size=vocabulary_size,
        sequence_length=sequence_length,
        embedding_dim=embedding_dim,
        hidden_dim=hidden_dim,
        kind=text_encoder,
        num_layers=num_layers,
        num_heads=num_heads,
        intermediate_dim=intermediate_dim,
        dropout=dropout,
        trainable_layers=trainable_layers,
        name="text_encoder",
    )
    token_ids = keras.Input(shape=(sequence_length,), dtype="int32", name="token_ids")
    x = encoder(token_ids)["pooled"]
    x = ProjectionHead(projection_dim, dropout=dropout, name="text_projection")(x)
    embeddings = keras.layers.UnitNormalization(axis=-1, name="text_embeddings")(x)
    return keras.Model(token_ids, embeddings, name=name)


def build_dual_encoder(
    *,
    vocabulary_size: int,
    sequence_length: int,
    image_shape: tuple[int, int, int] = (64, 64, 3),
    encoder: str | keras.Model = "small_cnn",
    encoder_weights: str | None = None,
    trainable_blocks: int | None = None,
    encoder_kwargs: dict | None = None,
    text_encoder: str = "bigru",
    embedding_dim: int = 128,
    hidden_dim: int = 128,
    num_layers: int = 1,
    num_heads: int = 2,
    intermediate_dim: int | None = None,
    text_trainable_layers: int | None = None,
    projection_dim: int = 64,
    dropout: float = 0.0,
    initial_temperature: float = 0.07,
    trainable_temperature: bool = True,
) -> keras.Model:
    """Build a CLIP-style dual encoder: `{"images", "token_ids"}` -> similarity logits.

    Two towers map images and captions into one `projection_dim` space with L2-normalised
    embeddings; `ContrastiveLogits` (layer `"logits"`, holding the learnable temperature)
    scores every image of the batch against every caption: `[B, B]` logits, row = image.
    Train with `model.fit(x, y)` where `y` is `[B]` integer image ids and the loss is
    `InfoNCELoss` (see `compile_dual_encoder`). Embed one modality alone with the towers:
    `model.get_layer("image_tower")` (uint8 images -> `[B, projection_dim]`) and
    `model.get_layer("text_tower")` (token ids -> `[B, projection_dim]`).

    Args:
        vocabulary_size: the tokenizer's vocabulary size.
        sequence_length: length of `token_ids` (a `CaptionTokenizer(sequence_length=S - 1)`
            gives `S` ids: `<start> words <end> <pad>...`).
        image_shape: `(height, width, 3)`. Defaults to `(64, 64, 3)`.
        encoder: image encoder name from `IMAGE_ENCODER_NAMES` or a model returning
            `{"grid", "pooled"}`. Defaults to `"small_cnn"`.
        encoder_weights: `"imagenet"`, `None` or a weights file. Defaults to `None`.
        trainable_blocks: the image encoder's last blocks that train (see
            `build_image_encoder`). Defaults to `None`.
        encoder_kwargs: extra `build_image_encoder` arguments (e.g. `hidden_dim`).
        text_encoder: `"bigru"`, `"transformer"` or `"keras_hub:PRESET_OR_DIR"` (a
            pretrained BERT-family backbone). Defaults to `"bigru"`.
        embedding_dim, hidden_dim, num_layers, num_heads, intermediate_dim: the text
            encoder (see `build_text_encoder`; not for presets). Default to 128, 128, 1, 2,
            None.
        text_trainable_layers: a preset's last Transformer layers that train (None: all;
            0: frozen). Defaults to None.
        projection_dim: size of the shared space. Defaults to 64.
        dropout: dropout in the text encoder and both projection heads. Defaults to 0.
        initial_temperature, trainable_temperature: see `ContrastiveLogits`.
            Default to 0.07 and True.

    Returns:
        A `keras.Model` named `"dual_encoder"`.

    Example:

    >>> import numpy as np
    >>> model = build_dual_encoder(vocabulary_size=12, sequence_length=6,
    ...     image_shape=(32, 32, 3), encoder_kwargs={"hidden_dim": 8},
    ...     embedding_dim=8, hidden_dim=8, projection_dim=4)
    >>> logits = model({"images": np.zeros((3, 32, 32, 3), "uint8"),
    ...                 "token_ids": np.ones((3, 6), "int32")})
    >>> tuple(logits.shape)
    (3, 3)
    >>> tuple(model.get_layer("text_tower")(np.ones((2, 6), "int32")).shape)
    (2, 4)
    """
    check_positive_int("projection_dim", projection_dim)
    image_tower = build_image_tower(
        image_shape=image_shape,
        projection_dim=projection_dim,
        encoder=encoder,
        encoder_weights=encoder_weights,
        trainable_blocks=trainable_blocks,
        encoder_kwargs=encoder_kwargs,
        dropout=dropout,
    )
    text_tower = build_text_tower(
        vocabulary_size=vocabulary_size,
        sequence_length=sequence_length,
        projection_dim=projection_dim,
        text_encoder=text_encoder,
        embedding_dim=embedding_dim,
        hidden_dim=hidden_dim,
        num_layers=num_layers,
        num_heads=num_heads,
        intermediate_dim=intermediate_dim,
        dropout=dropout,
        trainable_layers=text_trainable_layers,
    )
    inputs = {
        "images": keras.Input(shape=tuple(image_shape), dtype="uint8", name="images"),
        "token_ids": keras.Input(shape=(sequence_length,), dtype="int32", name="token_ids"),
    }
    logits = ContrastiveLogits(
        initial_temperature=initial_temperature,
        trainable_temperature=trainable_temperature,
        name=LOGITS_NAME,
    )(image_tower(inputs["images"]), text_tower(inputs["token_ids"]))
    return keras.Model(inputs, logits, name="dual_encoder")
