"""A KerasHub image backbone loaded from a preset, as an image encoder.

`build_image_encoder("keras_hub:PRESET_OR_DIR")` comes here. Any KerasHub image backbone
whose output is a feature map or a token sequence works:

- conv backbones (`ResNetBackbone`, `EfficientNetBackbone`, ...: `[batch, h, w, c]`):
  grid = the feature map flattened row by row, pooled = its global average;
- token backbones (`ViTBackbone`, `DeiTBackbone`, `DINOV2Backbone`, `DINOV3Backbone`:
  `[batch, tokens, dim]`): grid = the patch tokens, pooled = the class token.

The class token is the pooled vector because it is what these backbones were trained to
summarise the image in (ViT's and DeiT's classifier heads read it; DINOv2's image-level
objective is on it), while the patch tokens are the regions. KerasHub lays tokens out as
`[class, patches...]` (ViT), `[class, distillation, patches...]` (DeiT) and
`[class, registers..., patches...]` (DINOv2, DINOv3, `num_register_tokens` registers);
a ViT without class token is pooled by the mean of its patches.
"""

import re

import keras
import keras_hub

from xmodal_keras.api_export import xmodal_export
from xmodal_keras.encoders.backbone_layer import BackboneLayer
from xmodal_keras.encoders.keras_hub_presets import KERAS_HUB_PREFIX
from xmodal_keras.layers.scale_offset import ScaleOffset

DEFAULT_SCALE = 1.0 / 255
"""Scale of presets without an image converter: RGB in [0, 1], as the from-scratch CNNs."""

# Conv backbones: a regex whose group 1 names a layer's block; unmatched layers join the
# block before them (the input layer joins the first block).
_CONV_BLOCKS = {
    "ResNetBackbone": r"^(conv1|stack\d+_block\d+)_",
    "EfficientNetBackbone": r"^(stem|block\d+[a-z]|top)_",
}
KNOWN_BLOCK_LAYOUTS: tuple[str, ...] = (
    *_CONV_BLOCKS,
    "ViTBackbone",
    "DeiTBackbone",
    "DINOV2Backbone",
    "DINOV3Backbone",
)
"""Backbone classes whose blocks `trainable_blocks` can count."""


def build_keras_hub_image_encoder(
    preset: str,
    *,
    image_shape: tuple[int, int, int] = (224, 224, 3),
    trainable_blocks: int | None = None,
) -> keras.Model:
    """Builds an image encoder around `keras_hub.models.Backbone.from_preset(preset)`.

    The backbone (nested model `"backbone"`, weights from the preset) follows the global
    dtype policy (`keras.config.dtype_policy()`), so building under `mixed_bfloat16`
    gives a bfloat16 backbone with float32 variables. In front of it, a `ScaleOffset`
    layer (`"preprocessing"`) applies the `scale` and `offset` of the preset's image
    converter (`keras_hub.layers.ImageConverter.from_preset(preset)`), or `DEFAULT_SCALE`
    when the preset has none. The converter's resizing is not repeated: images arrive at
    `image_shape`; for the best pretrained features make that the converter's
    `image_size`. Backbones with a fixed input size (ViT, DeiT: their position
    embeddings) need `image_shape` equal to the preset's; others are rebuilt at
    `image_shape` (DINOv2 interpolates its position embeddings).

    Trainable blocks: ResNet: the stem and each residual block (`stack{i}_block{j}`);
    EfficientNet: the stem, each MBConv block and the top conv; ViT / DeiT / DINOv2 /
    DINOv3: the patch embedding and each transformer layer (the final layer norm goes
    with the last). `trainable_blocks=N` freezes all but the last N; frozen
    BatchNormalization runs in inference mode. Other backbones can only be frozen (0).
    The backbone sits in a `PresetImageBackbone` layer (`"backbone"`) that keeps
    `trainable_blocks`, so a reloaded `.keras` file trains the same variables.

    Args:
        preset: a KerasHub preset name, a Kaggle / Hugging Face handle, or a local preset
            directory (without the `"keras_hub:"` prefix).
        image_shape: `(height, width, 3)`. Defaults to `(224, 224, 3)`.
        trainable_blocks: how many of the last blocks train. Defaults to `None`: none
            (the preset's weights are pretrained).

    Returns:
        A `keras.Model` with input `"images"` (RGB in [0, 255]) and outputs
        `{"grid": [batch, regions, channels], "pooled": [batch, channels]}`.

    Example:

    >>> import tempfile, numpy as np
    >>> preset = tempfile.mkdtemp()
    >>> keras_hub.models.ViTBackbone(image_shape=(16, 16, 3), patch_size=8, num_layers=1,
    ...     num_heads=1, hidden_dim=4, mlp_dim=8).save_to_preset(preset)
    >>> encoder = build_keras_hub_image_encoder(preset, image_shape=(16, 16, 3))
    >>> out = encoder(np.zeros((2, 16, 16, 3), "uint8"))
    >>> tuple(out["grid"].shape), tuple(out["pooled"].shape)
    ((2, 4, 4), (2, 4))
    """
    if not isinstance(preset, str) or not preset:
        raise ValueError(
            "Expected a KerasHub preset name, handle or directory after "
            f"{KERAS_HUB_PREFIX!r}. Received: preset={preset!r}"
        )
    backbone = _load_backbone(preset, tuple(image_shape))
    scale, offset = converter_scale_offset(preset)
    images = keras.Input(shape=tuple(image_shape), name="images")
    x = ScaleOffset(scale=scale, offset=offset, name="preprocessing")(images)
    if trainable_blocks is None:
        trainable_blocks = 0
    features = PresetImageBackbone(backbone, trainable_blocks, name="backbone")(x)

    if len(features.shape) == 4:
        height, width, channels = features.shape[1:]
        grid = keras.layers.Reshape((height * width, channels), name="grid")(features)
        pooled = keras.layers.GlobalAveragePooling2D(name="pooled")(features)
    elif len(features.shape) == 3:
        grid, pooled = _split_tokens(backbone, features, preset)
    else:
        raise ValueError(
            f"KerasHub preset {preset!r} ({type(backbone).__name__}) outputs shape "
            f"{features.shape}; expected a feature map [batch, h, w, c] or tokens "
            "[batch, tokens, dim]."
        )
    return keras.Model(images, {"grid": grid, "pooled": pooled}, name="keras_hub_image_encoder")


def _input_shape(backbone) -> tuple:
    return tuple(keras.tree.flatten(backbone.input)[0].shape[1:])


def _accepts(backbone, image_shape) -> bool:
    shape = _input_shape(backbone)
    return len(shape) == 3 and all(
        d is None or d == s for d, s in zip(shape, image_shape, strict=True)
    )


def _load_backbone(preset: str, image_shape: tuple[int, int, int]) -> keras.Model:
    # The global policy, also over a float dtype saved in the preset.
    dtype = keras.config.dtype_policy()
    backbone = keras_hub.models.Backbone.from_preset(preset, dtype=dtype)
    if not _accepts(backbone, image_shape):
        config = backbone.get_config()
        key = next((k for k in ("image_shape", "input_shape") if k in config), None)
        preset_shape = _input_shape(backbone)
        try:
            if key is None:
                raise ValueError(f"{type(backbone).__name__} has no image_shape argument")
            backbone = keras_hub.models.Backbone.from_preset(
                preset, dtype=dtype, **{key: image_shape}
            )
        except ValueError as error:
            raise ValueError(
                f"KerasHub preset {preset!r} ({type(backbone).__name__}) takes images of "
                f"shape {preset_shape} and could not be rebuilt for others (the error "
                f"above says why). Received: image_shape={image_shape!r}"
            ) from error
    if not isinstance(backbone, keras.Model):
        raise ValueError(f"KerasHub preset {preset!r} is not a backbone model.")
    return backbone


@xmodal_export
class PresetImageBackbone(BackboneLayer):
    """A KerasHub image backbone read as `images -> feature map or tokens`.

    It keeps which blocks train (`trainable_blocks`) in its config: a KerasHub backbone
    rebuilds its layers from its constructor arguments, which would make a loaded `.keras`
    file train everything (and its optimizer state not match).

    Args:
        backbone: a KerasHub image backbone (or its serialized config).
        trainable_blocks: how many of the last blocks train (0: none; see
            `build_keras_hub_image_encoder`).
        **kwargs: forwarded to `keras.layers.Layer`.
    """

    freeze_argument = "trainable_blocks"

    def __init__(self, backbone, trainable_blocks: int = 0, **kwargs):
        super().__init__(backbone, **kwargs)
        backbone = self.backbone
        self.trainable_blocks = trainable_blocks
        _freeze_all_but_last_blocks(backbone, trainable_blocks)

    def call(self, images):
        return self.backbone(self._backbone_inputs(images))

    def compute_output_spec(self, images):
        # The backbone's own symbolic pass keeps static token counts (DINOv3's would be
        # lost tracing `call`).
        return self.backbone.compute_output_spec(self._backbone_inputs(images))

    def _backbone_inputs(self, images):
        backbone_input = self.backbone.input
        if isinstance(backbone_input, dict):
            return {next(iter(backbone_input)): images}
        return images


def converter_scale_offset(preset: str):
    """`(scale, offset)` of the preset's image converter (`DEFAULT_SCALE`, None without one)."""
    try:
        converter = keras_hub.layers.ImageConverter.from_preset(preset)
    except FileNotFoundError:  # The preset has no `image_converter.json`.
        return DEFAULT_SCALE, None
    return converter.scale, converter.offset


def _leading_tokens(backbone) -> int:
    """How many tokens come before the patch tokens (class first)."""
    models = keras_hub.models
    if isinstance(backbone, models.ViTBackbone):
        return int(bool(backbone.use_class_token))
    if isinstance(backbone, models.DeiTBackbone):
        return 2  # class, distillation
    if isinstance(backbone, models.DINOV2Backbone | models.DINOV3Backbone):
        return 1 + int(backbone.num_register_tokens)
    raise ValueError(
        f"{type(backbone).__name__} outputs tokens in a layout this encoder does not know; "
        "known token backbones: ViTBackbone, DeiTBackbone, DINOV2Backbone, DINOV3Backbone."
    )


def _split_tokens(backbone, tokens, preset: str):
    leading = _leading_tokens(backbone)
    num_tokens = tokens.shape[1]
    patch_size = getattr(backbone, "patch_size", None)
    if isinstance(patch_size, int):
        patch_size = (patch_size, patch_size)
    height, width = _input_shape(backbone)[:2]
    if patch_size and num_tokens - leading != (height // patch_size[0]) * (width // patch_size[1]):
        raise ValueError(
            f"KerasHub preset {preset!r} ({type(backbone).__name__}) outputs {num_tokens} "
            f"tokens; expected {leading} leading tokens and one per {patch_size} patch of "
            f"{(height, width)}."
        )
    grid = keras.layers.Cropping1D((leading, 0), name="grid")(tokens)
    if leading == 0:
        return grid, keras.layers.GlobalAveragePooling1D(name="pooled")(grid)
    class_token = keras.layers.Cropping1D((0, num_tokens - 1), name="class_token")(tokens)
    return grid, keras.layers.Reshape((tokens.shape[2],), name="pooled")(class_token)


def _blocks(backbone) -> list[list[keras.layers.Layer]] | None:
    """The backbone's blocks in order, each a list of layers; `None` when unknown."""
    name = type(backbone).__name__
    if name in _CONV_BLOCKS:
        blocks: dict[str, list] = {}
        pattern = re.compile(_CONV_BLOCKS[name])
        current, pending = None, []
        for layer in backbone.layers:
            match = pattern.match(layer.name)
            current = match.group(1) if match else current
            if current is None:
                pending.append(layer)  # before the first block: joins it
                continue
            blocks.setdefault(current, []).extend([*pending, layer])
            pending = []
        return list(blocks.values())
    if name in ("ViTBackbone", "DeiTBackbone"):
        prefix = "vit" if name == "ViTBackbone" else "deit"
        encoder = backbone.get_layer(f"{prefix}_encoder")
        blocks = [[backbone.get_layer(f"{prefix}_patching_and_embedding")]]
        blocks += [[layer] for layer in encoder.encoder_layers]
        blocks[-1].append(encoder.layer_norm)
        return blocks
    if name in ("DINOV2Backbone", "DINOV3Backbone"):
        blocks = [[backbone.embeddings]] + [[layer] for layer in backbone.encoder.layers]
        blocks[-1].append(backbone.layernorm)
        return blocks
    return None


def _freeze_all_but_last_blocks(backbone, trainable_blocks: int) -> None:
    if trainable_blocks == 0:
        backbone.trainable = False
        return
    blocks = _blocks(backbone)
    if blocks is None:
        raise ValueError(
            f"`trainable_blocks` > 0 needs the block layout of {type(backbone).__name__}, "
            f"which is not known (known: {KNOWN_BLOCK_LAYOUTS}); use 0 to freeze it. "
            f"Received: trainable_blocks={trainable_blocks}"
        )
    if trainable_blocks > len(blocks):
        raise ValueError(
            f"The KerasHub {type(backbone).__name__} has {len(blocks)} blocks. "
            f"Received: trainable_blocks={trainable_blocks}"
        )
    backbone.trainable = True
    in_blocks = set()
    for i, layers in enumerate(blocks):
        for layer in layers:
            layer.trainable = i >= len(blocks) - trainable_blocks
            in_blocks.update(id(v) for v in layer.weights)
    for variable in backbone.trainable_weights:
        if id(variable) not in in_blocks:  # a layer the layout does not name: not a last block
            variable.trainable = False
