"""Text encoders from KerasHub presets: `keras_hub:PRESET_OR_DIR` -> our text-encoder contract.

A KerasHub text backbone (`BertBackbone`, `DistilBertBackbone`, `ElectraBackbone`, ...)
loaded with `keras_hub.models.Backbone.from_preset` (a preset name, which downloads, or a
local preset folder written by `save_to_preset`) is wrapped so it reads what the
from-scratch encoders read: int32 `"token_ids"` `[batch, S]` with 0 as padding (the
`WordPieceTextTokenizer` of the same preset writes them), and returns
`{"sequence": [batch, S, hidden], "pooled": [batch, hidden]}`. The padding mask is
`token_ids != 0`, segment ids (BERT) are all 0, and `"pooled"` is the masked mean of the
sequence, as for the other encoders (not BERT's tanh pooler, which DistilBERT lacks and
which was trained for next-sentence prediction, not for similarity).

Named presets and their download size (KerasHub's preset pages; not fetched here):
`bert_tiny_en_uncased` (17 MB), `bert_small_en_uncased` (115 MB),
`bert_base_en_uncased` (420 MB), `distil_bert_base_en_uncased` (250 MB).

Example (a tiny BERT saved as a local preset):

>>> import tempfile, keras_hub, numpy as np
>>> preset = tempfile.mkdtemp()
>>> keras_hub.models.BertBackbone(vocabulary_size=30, num_layers=1, num_heads=2,
...     hidden_dim=8, intermediate_dim=16, max_sequence_length=16).save_to_preset(preset)
>>> encoder = build_keras_hub_text_encoder("keras_hub:" + preset, sequence_length=6)
>>> tuple(encoder(np.array([[2, 5, 3, 0, 0, 0]]))["pooled"].shape)  # doctest: +SKIP
(1, 8)
"""

import keras
import keras_hub
from keras import ops

from xmodal_keras.api_export import xmodal_export
from xmodal_keras.encoders.backbone_layer import BackboneLayer
from xmodal_keras.encoders.keras_hub_presets import keras_hub_preset
from xmodal_keras.layers.padding_mask import PaddingMask


def load_keras_hub_text_backbone(name: str) -> keras.Model:
    """The text backbone of `keras_hub:PRESET_OR_DIR`, computing in the global dtype policy
    (so a run's `precision` applies to it as to the other layers)."""
    preset = keras_hub_preset(name)
    try:
        backbone = keras_hub.models.Backbone.from_preset(
            preset, dtype=keras.config.dtype_policy().name
        )
    except Exception as error:  # KerasHub raises several kinds for a bad preset
        raise ValueError(f"Cannot load the KerasHub preset {preset!r}: {error}") from error
    if "token_ids" not in backbone.input or "padding_mask" not in backbone.input:
        raise ValueError(
            f"{preset!r} is not a text backbone: its inputs are {sorted(backbone.input)}, "
            "expected `token_ids` and `padding_mask`"
        )
    return backbone


def load_keras_hub_tokenizer(name: str):
    """The KerasHub tokenizer saved with `keras_hub:PRESET_OR_DIR`."""
    preset = keras_hub_preset(name)
    try:
        return keras_hub.tokenizers.Tokenizer.from_preset(preset)
    except Exception as error:  # KerasHub raises several kinds for a bad preset
        raise ValueError(
            f"Cannot load the tokenizer of the KerasHub preset {preset!r}: {error}"
        ) from error


def build_keras_hub_text_encoder(
    name: str,
    *,
    sequence_length: int,
    vocabulary_size: int | None = None,
    trainable_layers: int | None = None,
    encoder_name: str = "text_encoder",
) -> keras.Model:
    """A `keras_hub:PRESET_OR_DIR` text backbone as a text encoder (see the module docstring).

    Args:
        name: `keras_hub:` and a preset name or a local preset folder.
        sequence_length: length `S` of the `token_ids` input; at most the backbone's
            `max_sequence_length`.
        vocabulary_size: when given, must equal the backbone's (the run's tokenizer).
        trainable_layers: None (all trainable), 0 (frozen backbone) or the number of last
            Transformer layers that train (the embeddings and earlier layers frozen).
        encoder_name: the model's name. Defaults to `"text_encoder"`.

    Returns:
        A `keras.Model` `"token_ids"` -> `{"sequence", "pooled"}`.
    """
    backbone = load_keras_hub_text_backbone(name)
    max_length = getattr(backbone, "max_sequence_length", None)
    if max_length is not None and sequence_length > max_length:
        raise ValueError(
            f"The backbone reads at most {max_length} tokens. "
            f"Received: sequence_length={sequence_length}"
        )
    if vocabulary_size is not None and vocabulary_size != backbone.vocabulary_size:
        raise ValueError(
            f"The tokenizer has {vocabulary_size} tokens but the backbone embeds "
            f"{backbone.vocabulary_size}: use the tokenizer of the same preset."
        )
    token_ids = keras.Input(shape=(sequence_length,), dtype="int32", name="token_ids")
    padding_mask = PaddingMask(name="padding_mask")(token_ids)
    sequence = PresetTextBackbone(backbone, trainable_layers, name="preset_backbone")(
        token_ids, padding_mask
    )
    sequence = keras.layers.Identity(name="sequence")(sequence)
    pooled = keras.layers.GlobalAveragePooling1D(name="pooled")(sequence, mask=padding_mask)
    return keras.Model(token_ids, {"sequence": sequence, "pooled": pooled}, name=encoder_name)


@xmodal_export
class PresetTextBackbone(BackboneLayer):
    """A KerasHub text backbone read as `(token_ids, padding_mask) -> sequence output`.

    It keeps which of the backbone's layers train (`trainable_layers`, and the layers the
    sequence does not go through, such as BERT's pooler, frozen) in its config: a KerasHub
    backbone rebuilds its layers from its constructor arguments, which would make a loaded
    `.keras` file train everything (and its optimizer state not match).

    Args:
        backbone: a KerasHub text backbone (or its serialized config).
        trainable_layers: see `freeze_all_but_last_layers`.
        **kwargs: forwarded to `keras.layers.Layer`.
    """

    freeze_argument = "trainable_layers"

    def __init__(self, backbone, trainable_layers: int | None = None, **kwargs):
        super().__init__(backbone, **kwargs)
        backbone = self.backbone
        self.trainable_layers = trainable_layers
        freeze_all_but_last_layers(backbone, trainable_layers)
        freeze_layers_off_the_sequence(backbone)

    def call(self, token_ids, padding_mask):
        inputs = {"token_ids": token_ids, "padding_mask": padding_mask}
        if "segment_ids" in self.backbone.input:
            inputs["segment_ids"] = ops.zeros_like(token_ids)
        outputs = self.backbone(inputs)
        return outputs["sequence_output"] if isinstance(outputs, dict) else outputs


def freeze_layers_off_the_sequence(backbone: keras.Model) -> None:
    """Freeze the backbone layers the sequence output does not go through (BERT's pooler:
    its weights would get no gradient)."""
    outputs = backbone.output
    if not isinstance(outputs, dict):
        return
    used, stack = set(), [outputs["sequence_output"]]
    while stack:
        operation, node_index, _ = stack.pop()._keras_history
        if id(operation) in used:
            continue
        used.add(id(operation))
        stack.extend(operation._inbound_nodes[node_index].input_tensors)
    for layer in backbone.layers:
        if id(layer) not in used:
            layer.trainable = False


def freeze_all_but_last_layers(backbone: keras.Model, trainable_layers: int | None) -> None:
    """Freeze `backbone` but its last `trainable_layers` Transformer layers (None: train
    all; 0: freeze all)."""
    if trainable_layers is None:
        return
    layers = list(getattr(backbone, "transformer_layers", []))
    if isinstance(trainable_layers, bool) or not isinstance(trainable_layers, int):
        raise ValueError(
            f"`trainable_layers` must be None or an int. Received: {trainable_layers!r}"
        )
    if not 0 <= trainable_layers <= len(layers):
        raise ValueError(
            f"The backbone has {len(layers)} Transformer layers. "
            f"Received: trainable_layers={trainable_layers}"
        )
    if trainable_layers == 0:
        backbone.trainable = False
        return
    keep = {id(layer) for layer in layers[len(layers) - trainable_layers :]}
    for layer in backbone.layers:
        layer.trainable = id(layer) in keep
