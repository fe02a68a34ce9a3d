"""`build_dual_encoder_from_clip`: a whole KerasHub CLIP preset as our dual encoder.

The preset's towers, with their pretrained projections and temperature, in the layout
every retrieval tool reads (`build_dual_encoder`'s): `image_tower` (uint8 images ->
L2-normalised embedding), `text_tower` (token ids -> embedding) and `logits`
(`ContrastiveLogits`). So a CLIP preset is ready for zero-shot retrieval before any
training, and fine-tunes with `model.fit` like any run.

- image tower: the converter's scale and offset (`ScaleOffset`), `CLIPVisionEncoder`
  (layer `"image_encoder"`), its class token, the preset's `vision_projection`;
- text tower: `CLIPTextEncoder` (layer `"text_encoder"`) on `<|startoftext|> pieces
  <|endoftext|> 0...` (`ClipTextTokenizer`), the vector at the end token
  (`EndTokenPooling`), the preset's `text_projection`;
- logits: temperature `exp(-logit_scale)` of the preset.

These equal `CLIPBackbone.get_vision_embeddings` / `get_text_embeddings`, normalised
(tested). SigLIP presets are not read yet (their pooling head and sigmoid loss differ).
"""

import math

import keras
import keras_hub

from xmodal_keras.encoders.keras_hub_image_encoder import converter_scale_offset
from xmodal_keras.encoders.keras_hub_presets import keras_hub_preset
from xmodal_keras.layers.contrastive_logits import ContrastiveLogits
from xmodal_keras.layers.end_token_pooling import EndTokenPooling
from xmodal_keras.layers.scale_offset import ScaleOffset
from xmodal_keras.models.dual_encoder import IMAGE_TOWER_NAME, LOGITS_NAME, TEXT_TOWER_NAME


def load_clip_backbone(preset: str) -> keras_hub.models.CLIPBackbone:
    """`CLIPBackbone.from_preset` of `keras_hub:PRESET_OR_DIR`, in the global dtype policy."""
    name = keras_hub_preset(preset)
    backbone = keras_hub.models.Backbone.from_preset(name, dtype=keras.config.dtype_policy())
    if not isinstance(backbone, keras_hub.models.CLIPBackbone):
        raise ValueError(
            f"`--from {preset}` needs a CLIP preset (a CLIPBackbone); it holds a "
            f"{type(backbone).__name__}."
        )
    return backbone


def load_clip_tokenizer(preset: str):
    """The preset's KerasHub `CLIPTokenizer`."""
    return keras_hub.tokenizers.Tokenizer.from_preset(keras_hub_preset(preset))


def build_dual_encoder_from_clip(
    preset: str, *, sequence_length: int, end_token_id: int | None = None
) -> keras.Model:
    """The dual encoder of a CLIP preset: `{"images", "token_ids"}` -> `[B, B]` logits.

    Args:
        preset: `keras_hub:PRESET_OR_DIR` of a CLIP preset.
        sequence_length: token ids the text tower reads (at most the preset's
            `max_sequence_length`).
        end_token_id: the tokenizer's `<|endoftext|>` id, where the text is pooled.
            Defaults to the preset tokenizer's.

    Returns:
        A `keras.Model` named `"dual_encoder"` whose image tower reads uint8 images of
        the preset's `image_shape`.

    Example:

    >>> import tempfile, numpy as np
    >>> folder = tempfile.mkdtemp()
    >>> keras_hub.models.CLIPBackbone(
    ...     vision_encoder=keras_hub.models.CLIPVisionEncoder(patch_size=8, hidden_dim=8,
    ...         num_layers=1, num_heads=1, intermediate_dim=8, image_shape=(16, 16, 3)),
    ...     text_encoder=keras_hub.models.CLIPTextEncoder(vocabulary_size=10,
    ...         embedding_dim=8, hidden_dim=8, num_layers=1, num_heads=1,
    ...         intermediate_dim=8, max_sequence_length=6),
    ...     projection_dim=4).save_to_preset(folder)
    >>> model = build_dual_encoder_from_clip("keras_hub:" + folder, sequence_length=6,
    ...     end_token_id=9)
    >>> model({"images": np.zeros((2, 16, 16, 3), "uint8"),
    ...     "token_ids": np.array([[8, 1, 9, 0, 0, 0]] * 2)}).shape
    TensorShape([2, 2])
    """
    backbone = load_clip_backbone(preset)
    if end_token_id is None:
        end_token_id = load_clip_tokenizer(preset).end_token_id
    vision, text = backbone.vision_encoder, backbone.text_encoder
    if not 3 <= sequence_length <= text.max_sequence_length:
        raise ValueError(
            f"The CLIP preset {preset!r} reads 3 to {text.max_sequence_length} token ids. "
            f"Received: sequence_length={sequence_length}"
        )
    if not 0 <= end_token_id < text.vocabulary_size:
        raise ValueError(
            f"`end_token_id` must be an id of the preset's {text.vocabulary_size} tokens. "
            f"Received: end_token_id={end_token_id}"
        )
    image_shape = tuple(vision.image_shape)
    scale, offset = converter_scale_offset(keras_hub_preset(preset))
    vision.name, text.name = "image_encoder", "text_encoder"

    images = keras.Input(shape=image_shape, dtype="uint8", name="images")
    x = ScaleOffset(scale=scale, offset=offset, name="preprocessing")(images)
    tokens = vision({"images": x})
    class_token = keras.layers.Cropping1D((0, tokens.shape[1] - 1), name="class_token")(tokens)
    pooled = keras.layers.Reshape((tokens.shape[2],), name="pooled")(class_token)
    embeddings = keras.layers.UnitNormalization(axis=-1, name="image_embeddings")(
        backbone.vision_projection(pooled)
    )
    image_tower = keras.Model(images, embeddings, name=IMAGE_TOWER_NAME)

    token_ids = keras.Input(shape=(sequence_length,), dtype="int32", name="token_ids")
    sequence = text({"token_ids": token_ids})
    pooled = EndTokenPooling(end_token_id, name="end_token_pooling")(sequence, token_ids)
    embeddings = keras.layers.UnitNormalization(axis=-1, name="text_embeddings")(
        backbone.text_projection(pooled)
    )
    text_tower = keras.Model(token_ids, embeddings, name=TEXT_TOWER_NAME)

    inputs = {
        "images": keras.Input(shape=image_shape, dtype="uint8", name="images"),
        "token_ids": keras.Input(shape=(sequence_length,), dtype="int32", name="token_ids"),
    }
    temperature = math.exp(-float(backbone.clip_head.logit_scale.numpy()))
    logits = ContrastiveLogits(initial_temperature=temperature, name=LOGITS_NAME)(
        image_tower(inputs["images"]), text_tower(inputs["token_ids"])
    )
    return keras.Model(inputs, logits, name="dual_encoder")


def clip_image_size(preset: str) -> int:
    """The square image side a CLIP preset reads (from its `config.json`, no weights)."""
    from keras_hub.src.utils.preset_utils import load_json  # noqa: PLC0415 (no public API)

    config = load_json(keras_hub_preset(preset), "config.json")
    shape = config["config"]["vision_encoder"]["config"]["image_shape"]
    if shape[0] != shape[1]:
        raise ValueError(f"The CLIP preset {preset!r} reads {shape[:2]} images; expected square.")
    return int(shape[0])
