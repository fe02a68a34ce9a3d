"""`build_multitask_captioner`: a captioner with an added contrastive loss on its image encoder.

The captioner's own image encoder is shared: its pooled vector goes through a
`ProjectionHead` into a space shared with a text tower that reads the same
`token_ids` tokens, and `ContrastiveLogits` (learned temperature) scores every image of
the batch against every caption. Training both heads at once with `model.fit` (masked
caption loss + `InfoNCELoss`, see `compile_multitask_captioner`) asks the encoder for
features that both describe the image word by word and pick it out among the batch's
other images (the multi-task setups of CoCa, Yu et al., 2022, and ALBEF, Li et al.,
2021, in small). The captioner's layers are the multi-task model's layers, so the
captioner decodes with `CaptionGenerator` after multi-task training.

Example:

>>> import numpy as np
>>> from xmodal_keras.models.gru_captioner import build_gru_captioner
>>> captioner = build_gru_captioner(vocabulary_size=12, sequence_length=6,
...     image_shape=(32, 32, 3), encoder_kwargs={"hidden_dim": 8},
...     embedding_dim=8, hidden_dim=8)
>>> model = build_multitask_captioner(captioner, embedding_dim=8, hidden_dim=8,
...     projection_dim=4)
>>> inputs = {"images": np.zeros((3, 32, 32, 3), "uint8"),
...           "token_ids": np.ones((3, 6), "int32")}
>>> {k: tuple(v.shape) for k, v in model(inputs).items()}
{'caption': (3, 6, 12), 'contrastive': (3, 3)}
>>> inputs, targets = multitask_captioner_targets(inputs, np.ones((3, 6), "int32"))
>>> targets["contrastive"].numpy().tolist()  # three identical images: one group
[0, 0, 0]
"""

import keras
import tensorflow as tf
from keras import tree

from xmodal_keras.argument_checks import check_positive_int
from xmodal_keras.layers.contrastive_logits import ContrastiveLogits
from xmodal_keras.layers.projection_head import ProjectionHead
from xmodal_keras.models.captioner_parts import CAPTION_DECODER_NAME, IMAGE_ENCODER_NAME
from xmodal_keras.models.dual_encoder import build_text_tower

CAPTION_OUTPUT = "caption"
CONTRASTIVE_OUTPUT = "contrastive"
IMAGE_EMBEDDINGS_NAME = "image_embeddings"
TEXT_TOWER_NAME = "text_tower"
CONTRASTIVE_LOGITS_NAME = "contrastive_logits"


def _image_features(captioner: keras.Model) -> dict:
    """The image encoder's `{"grid", "pooled"}` tensors inside the captioner's graph."""
    try:
        encoder = captioner.get_layer(IMAGE_ENCODER_NAME)
        captioner.get_layer(CAPTION_DECODER_NAME)
        image = captioner.input["images"]
        captioner.input["token_ids"]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(
            "`captioner` must be a model from `build_gru_captioner`, `build_lstm_captioner` "
            "or `build_transformer_captioner` (inputs {'images', 'token_ids'}, layers "
            f"'{IMAGE_ENCODER_NAME}' and '{CAPTION_DECODER_NAME}'). "
            f"Received: captioner={getattr(captioner, 'name', captioner)!r}"
        ) from error
    nodes = [
        node
        for node in encoder._inbound_nodes
        if any(tensor is image for tensor in node.input_tensors)
    ]
    if len(nodes) != 1:
        raise ValueError(
            "The captioner's image encoder must be called once on its 'image' input. "
            f"Received: {len(nodes)} such calls in captioner={captioner.name!r}"
        )
    return tree.pack_sequence_as(encoder.output, nodes[0].output_tensors)


def build_multitask_captioner(
    captioner: keras.Model,
    *,
    text_encoder: str = "bigru",
    embedding_dim: int = 128,
    hidden_dim: int = 128,
    num_layers: int = 1,
    num_heads: int = 2,
    intermediate_dim: int | None = None,
    projection_dim: int = 64,
    dropout: float = 0.0,
    initial_temperature: float = 0.07,
    trainable_temperature: bool = True,
    name: str = "multitask_captioner",
) -> keras.Model:
    """Add a contrastive head on a captioner's image encoder: `{"caption", "contrastive"}`.

    The returned functional model takes the captioner's inputs (`{"images", "token_ids"}`)
    and returns `{"caption": next-token logits [B, S, vocabulary_size], "contrastive":
    [B, B] logits}` (row = image, column = caption). The image side is the captioner's
    own image encoder (its pooled vector, computed once for both heads) -> `ProjectionHead`
    (`"image_projection"`) -> `UnitNormalization` (`"image_embeddings"`); the text side is
    a text tower (`"text_tower"`, as in `build_dual_encoder`) over `token_ids`;
    `ContrastiveLogits` (`"contrastive_logits"`) holds the learned temperature. Every
    layer of `captioner` is shared, not copied: training the multi-task model trains
    `captioner`, `captioner_from_multitask(model)` gets it back (also after loading a
    `.keras` file), and `CaptionGenerator` decodes with either.

    Train with `compile_multitask_captioner` and a captioning dataset mapped by
    `multitask_captioner_targets`.

    Args:
        captioner: a model from `build_gru_captioner`, `build_lstm_captioner` or
            `build_transformer_captioner` (or a loaded one).
        text_encoder: `"bigru"` or `"transformer"`. Defaults to `"bigru"`.
        embedding_dim, hidden_dim, num_layers, num_heads, intermediate_dim: the text
            encoder (see `build_text_encoder`). Default to 128, 128, 1, 2, None.
        projection_dim: size of the shared space. Defaults to 64.
        dropout: dropout in the text encoder and both projection heads. Defaults to 0.
        initial_temperature, trainable_temperature: see `ContrastiveLogits`.
            Default to 0.07 and True.
        name: model name. Defaults to `"multitask_captioner"`.

    Returns:
        A `keras.Model` with dict outputs `"caption"` and `"contrastive"`.
    """
    if not isinstance(captioner, keras.Model):
        raise ValueError(f"`captioner` must be a keras.Model. Received: captioner={captioner!r}")
    check_positive_int("projection_dim", projection_dim)
    features = _image_features(captioner)
    inputs = captioner.input
    image_embeddings = ProjectionHead(projection_dim, dropout=dropout, name="image_projection")(
        features["pooled"]
    )
    image_embeddings = keras.layers.UnitNormalization(axis=-1, name=IMAGE_EMBEDDINGS_NAME)(
        image_embeddings
    )
    text_tower = build_text_tower(
        vocabulary_size=captioner.get_layer(CAPTION_DECODER_NAME).vocabulary_size,
        sequence_length=inputs["token_ids"].shape[1],
        projection_dim=projection_dim,
        text_encoder=text_encoder,
        embedding_dim=embedding_dim,
        hidden_dim=hidden_dim,
        num_layers=num_layers,
        num_heads=num_heads,
        intermediate_dim=intermediate_dim,
        dropout=dropout,
        name=TEXT_TOWER_NAME,
    )
    logits = ContrastiveLogits(
        initial_temperature=initial_temperature,
        trainable_temperature=trainable_temperature,
        name=CONTRASTIVE_LOGITS_NAME,
    )(image_embeddings, text_tower(inputs["token_ids"]))
    outputs = {CAPTION_OUTPUT: captioner.output, CONTRASTIVE_OUTPUT: logits}
    return keras.Model(inputs, outputs, name=name)


def _check_multitask(model: keras.Model) -> None:
    if not isinstance(getattr(model, "output", None), dict) or set(model.output) != {
        CAPTION_OUTPUT,
        CONTRASTIVE_OUTPUT,
    }:
        raise ValueError(
            "`model` must come from `build_multitask_captioner` (outputs 'caption' and "
            f"'contrastive'). Received: model={getattr(model, 'name', model)!r}"
        )


def captioner_from_multitask(model: keras.Model, name: str = "captioner") -> keras.Model:
    """The captioner inside a multi-task model: `{"images", "token_ids"}` -> logits.

    Shares the weights; use it with `CaptionGenerator`, `model.save` or the exporters.
    """
    _check_multitask(model)
    return keras.Model(model.input, model.output[CAPTION_OUTPUT], name=name)


def multitask_retrieval_towers(model: keras.Model) -> tuple[keras.Model, keras.Model]:
    """`(image_tower, text_tower)` of a multi-task model, for retrieval (shared weights).

    `image_tower`: uint8 images -> `[B, projection_dim]`; `text_tower`: `token_ids`
    token ids (`<start> words <end> <pad>...` without the tokenizer's last id) ->
    `[B, projection_dim]`. Both L2-normalised.
    """
    _check_multitask(model)
    image_tower = keras.Model(
        model.input["images"], model.get_layer(IMAGE_EMBEDDINGS_NAME).output, name="image_tower"
    )
    return image_tower, model.get_layer(TEXT_TOWER_NAME)


def _image_group_ids(images: tf.Tensor) -> tf.Tensor:
    """int32 `[B]`: for each image, the first row of the batch with the same pixels."""
    flat = tf.cast(tf.reshape(images, [tf.shape(images)[0], -1]), tf.int64)
    positions = tf.range(tf.shape(flat)[1], dtype=tf.int64)
    # Two exact integer checksums; equal images always agree, distinct ones practically never.
    weights = (positions * 2654435761) % 65521 + 1
    fingerprints = tf.stack(
        [tf.reduce_sum(flat, axis=1), tf.reduce_sum(flat * weights, axis=1)], axis=1
    )  # [B, 2]
    same = tf.reduce_all(tf.equal(fingerprints[:, None, :], fingerprints[None, :, :]), axis=-1)
    return tf.cast(tf.argmax(tf.cast(same, tf.int32), axis=1), tf.int32)


def multitask_captioner_targets(inputs: dict, caption_out) -> tuple[dict, dict]:
    """Map a captioning batch `(inputs, caption_out)` to the multi-task model's targets.

    Use as `make_caption_dataset(...).map(multitask_captioner_targets)`. The contrastive
    target is a group id per row (`InfoNCELoss`): rows with the same image pixels share
    one, so two captions of one image in a batch are positives of each other, not
    negatives. With an `augment` layer each augmented copy counts as its own image.

    Returns:
        `(inputs, {"caption": caption_out, "contrastive": int32 [B]})`.
    """
    if not isinstance(inputs, dict) or "images" not in inputs:
        raise ValueError(
            "`inputs` must be a dict with an 'image' entry (a captioning batch). "
            f"Received: inputs={type(inputs).__name__}"
        )
    images = tf.convert_to_tensor(inputs["images"])
    targets = {CAPTION_OUTPUT: caption_out, CONTRASTIVE_OUTPUT: _image_group_ids(images)}
    return inputs, targets
