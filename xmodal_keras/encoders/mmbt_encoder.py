"""`MMBTEncoder`: image regions read with the text by a pretrained BERT's own layers (MMBT).

Kiela et al., *Supervised Multimodal Bitransformers for Classifying Images and Text*
(2019): the image's region features, projected to the text backbone's width, are
inserted into its input sequence after `[CLS]` and read, with the word pieces, by the
pretrained Transformer layers; the classifier reads the pooled `[CLS]`. Here the sequence
is

```
[CLS] region_1 ... region_R pieces... [SEP] [PAD]...
```

with the backbone's own token, position and segment embeddings (segment 1 for the
regions when the backbone has two segments, 0 for the text), its embedding layer norm
and dropout, its Transformer layers and its pooler (`pooled_dense`). BERT-family
backbones with those layers (`BertBackbone`; `DistilBertBackbone` has no segments or
pooler) are supported. The layer keeps `trainable_layers` in its config, as
`PresetTextBackbone` does, so a reloaded `.keras` file trains the same layers.
"""

import keras
from keras import ops

from xmodal_keras.api_export import xmodal_export
from xmodal_keras.encoders.backbone_layer import BackboneLayer
from xmodal_keras.encoders.keras_hub_text_encoder import freeze_all_but_last_layers

_NEEDED = (
    "token_embedding",
    "position_embedding",
    "segment_embedding",
    "embeddings_layer_norm",
    "embeddings_dropout",
    "transformer_layers",
    "pooled_dense",
)


@xmodal_export
class MMBTEncoder(BackboneLayer):
    """`(token_ids [B, S], image_tokens [B, R, hidden])` -> `{"sequence", "pooled"}`.

    `token_ids` are a `WordPieceTextTokenizer`'s (`[CLS]` first, 0 = padding);
    `image_tokens` the regions already projected to the backbone's `hidden_dim`.

    Args:
        backbone: a KerasHub `BertBackbone` (or its serialized config).
        trainable_layers: its last Transformer layers that train (None: all; 0: none;
            see `freeze_all_but_last_layers`).
        **kwargs: forwarded to `keras.layers.Layer`.

    Example:

    >>> import keras_hub, numpy as np
    >>> bert = keras_hub.models.BertBackbone(vocabulary_size=10, num_layers=1,
    ...     num_heads=1, hidden_dim=4, intermediate_dim=8, max_sequence_length=8)
    >>> out = MMBTEncoder(bert)(np.array([[2, 5, 3, 0]]), np.zeros((1, 2, 4), "float32"))
    >>> tuple(out["sequence"].shape), tuple(out["pooled"].shape)
    ((1, 6, 4), (1, 4))
    """

    freeze_argument = "trainable_layers"

    def __init__(self, backbone, trainable_layers: int | None = None, **kwargs):
        super().__init__(backbone, **kwargs)
        backbone = self.backbone
        missing = [name for name in _NEEDED if not hasattr(backbone, name)]
        if missing:
            raise ValueError(
                f"MMBT reads a BERT-style backbone (token, position and segment embeddings, "
                f"a pooler); {type(backbone).__name__} has no {missing[0]!r}."
            )
        self.trainable_layers = trainable_layers
        freeze_all_but_last_layers(backbone, trainable_layers)

    def call(self, token_ids, image_tokens, training=None):
        backbone = self.backbone
        text = backbone.token_embedding(token_ids)
        image_tokens = ops.cast(image_tokens, text.dtype)
        x = ops.concatenate([text[:, :1], image_tokens, text[:, 1:]], axis=1)
        regions = ops.shape(image_tokens)[1]
        batch = ops.shape(token_ids)[0]
        image_segment = 1 if backbone.num_segments > 1 else 0
        segment_ids = ops.concatenate(
            [
                ops.zeros((batch, 1), "int32"),
                ops.full((batch, regions), image_segment, "int32"),
                ops.zeros_like(token_ids[:, 1:]),
            ],
            axis=1,
        )
        x = backbone.embeddings_add(
            (x, backbone.position_embedding(x), backbone.segment_embedding(segment_ids))
        )
        x = backbone.embeddings_layer_norm(x)
        x = backbone.embeddings_dropout(x, training=training)
        padding_mask = ops.concatenate(
            [
                ops.ones((batch, 1), "bool"),
                ops.ones((batch, regions), "bool"),
                ops.not_equal(token_ids[:, 1:], 0),
            ],
            axis=1,
        )
        for layer in backbone.transformer_layers:
            x = layer(x, padding_mask=padding_mask, training=training)
        return {"sequence": x, "pooled": backbone.pooled_dense(x[:, 0])}

    def compute_output_spec(self, token_ids, image_tokens, training=None):
        length = None
        if token_ids.shape[1] is not None and image_tokens.shape[1] is not None:
            length = token_ids.shape[1] + image_tokens.shape[1]
        hidden = self.backbone.hidden_dim
        dtype = self.compute_dtype
        return {
            "sequence": keras.KerasTensor((token_ids.shape[0], length, hidden), dtype=dtype),
            "pooled": keras.KerasTensor((token_ids.shape[0], hidden), dtype=dtype),
        }
