"""Text encoders: token ids -> per-token features and a masked-mean pooled vector.

Token ids come from `xmodal_keras.data.text_tokenizer.CaptionTokenizer` (in-graph, core
ops), with 0 = `<pad>`. Three kinds:

- `"bigru"`: `Embedding` + `num_layers` bidirectional GRUs;
- `"transformer"`: KerasHub `TokenAndPositionEmbedding` + `num_layers` KerasHub
  `TransformerEncoder`s;
- `"keras_hub:PRESET_OR_DIR"`: a pretrained KerasHub text backbone (BERT family), its ids
  from the preset's `WordPieceTextTokenizer` (see `keras_hub_text_encoder`).

The padding mask (`PaddingMask` layer, `token_ids != 0`) is passed explicitly to the
GRUs / self-attention and to the masked-mean pooling (`GlobalAveragePooling1D(mask=)`),
so padding never changes the pooled vector. The `"sequence"` output carries no Keras
mask: callers that attend over it build the same mask with `PaddingMask`.
"""

import keras
import keras_hub

from xmodal_keras.argument_checks import check_positive_int
from xmodal_keras.encoders.keras_hub_presets import KERAS_HUB_PREFIX, is_keras_hub_preset
from xmodal_keras.encoders.keras_hub_text_encoder import build_keras_hub_text_encoder
from xmodal_keras.layers.padding_mask import PaddingMask

TEXT_ENCODER_KINDS: tuple[str, ...] = ("bigru", "transformer")
"""The from-scratch values `build_text_encoder(kind=...)` accepts (and `keras_hub:...`)."""
TEXT_ENCODER_HELP = "bigru, transformer or keras_hub:PRESET_OR_DIR (a BERT-family preset)"


def check_text_encoder_kind(kind, argument: str = "text_encoder") -> None:
    """Raise unless `kind` is one of `TEXT_ENCODER_KINDS` or `keras_hub:PRESET_OR_DIR`."""
    if kind in TEXT_ENCODER_KINDS or (is_keras_hub_preset(kind) and kind != KERAS_HUB_PREFIX):
        return
    raise ValueError(
        f"`{argument}` must be one of {TEXT_ENCODER_KINDS} or `{KERAS_HUB_PREFIX}PRESET_OR_DIR`."
        f" Received: {argument}={kind!r}"
    )


def check_text_encoder_settings(text_encoder, text_trainable_layers) -> None:
    """Raise unless `text_encoder` is a kind `build_text_encoder` takes and
    `text_trainable_layers` is None or, with a `keras_hub:` preset, an int >= 0."""
    check_text_encoder_kind(text_encoder)
    if text_trainable_layers is not None and (
        not is_keras_hub_preset(text_encoder)
        or isinstance(text_trainable_layers, bool)
        or not isinstance(text_trainable_layers, int)
        or text_trainable_layers < 0
    ):
        raise ValueError(
            "`text_trainable_layers` must be None or an int >= 0, with a `keras_hub:` text "
            f"encoder. Received: text_trainable_layers={text_trainable_layers!r}, "
            f"text_encoder={text_encoder!r}"
        )


def build_text_encoder(
    *,
    vocabulary_size: int,
    sequence_length: int,
    embedding_dim: int = 128,
    hidden_dim: int = 128,
    kind: str = "bigru",
    num_layers: int = 1,
    num_heads: int = 2,
    intermediate_dim: int | None = None,
    dropout: float = 0.0,
    trainable_layers: int | None = None,
    name: str = "text_encoder",
) -> keras.Model:
    """Builds a text encoder returning per-token features and a pooled vector.

    Args:
        vocabulary_size: number of token ids (id 0 is padding).
        sequence_length: length `S` of the `token_ids` input. A
            `CaptionTokenizer(sequence_length=S - 1)` emits exactly `S` ids.
        embedding_dim: token embedding size. For `"transformer"` it must equal
            `hidden_dim` (the residual stream). Defaults to 128.
        hidden_dim: feature size of both outputs. Must be even for `"bigru"`
            (each direction has `hidden_dim // 2` units). Defaults to 128.
        kind: `"bigru"`, `"transformer"` or `"keras_hub:PRESET_OR_DIR"` (a pretrained
            backbone: the sizes below do not apply, see `build_keras_hub_text_encoder`).
            Defaults to `"bigru"`.
        num_layers: stacked GRU / Transformer layers. Defaults to 1.
        num_heads: attention heads (`"transformer"` only; must divide
            `hidden_dim`). Defaults to 2.
        intermediate_dim: feed-forward size (`"transformer"` only). Defaults to
            `None`: `2 * hidden_dim`.
        dropout: dropout rate in [0, 1). Defaults to 0.0.
        trainable_layers: a preset's last Transformer layers that train (None: all, 0:
            frozen). Defaults to None.
        name: model name. Defaults to `"text_encoder"`.

    Returns:
        A `keras.Model` with int input `"token_ids"` `[batch, S]` and outputs
        `{"sequence": [batch, S, hidden_dim], "pooled": [batch, hidden_dim]}`;
        `"pooled"` is the mean of `"sequence"` over non-padding positions.

    Example:

    >>> import numpy as np
    >>> encoder = build_text_encoder(vocabulary_size=12, sequence_length=5,
    ...                              embedding_dim=8, hidden_dim=8)
    >>> out = encoder(np.array([[2, 4, 5, 3, 0], [2, 6, 3, 0, 0]]))
    >>> tuple(out["sequence"].shape), tuple(out["pooled"].shape)
    ((2, 5, 8), (2, 8))
    """
    check_text_encoder_kind(kind, "kind")
    if is_keras_hub_preset(kind):
        return build_keras_hub_text_encoder(
            kind,
            sequence_length=sequence_length,
            vocabulary_size=vocabulary_size,
            trainable_layers=trainable_layers,
            encoder_name=name,
        )
    if trainable_layers is not None:
        raise ValueError(
            "`trainable_layers` applies to `keras_hub:` presets only. "
            f"Received: kind={kind!r}, trainable_layers={trainable_layers!r}"
        )
    for arg, value in (
        ("vocabulary_size", vocabulary_size),
        ("sequence_length", sequence_length),
        ("embedding_dim", embedding_dim),
        ("hidden_dim", hidden_dim),
        ("num_layers", num_layers),
        ("num_heads", num_heads),
    ):
        check_positive_int(arg, value)
    if intermediate_dim is not None:
        check_positive_int("intermediate_dim", intermediate_dim)
    if isinstance(dropout, bool) or not isinstance(dropout, int | float) or not 0 <= dropout < 1:
        raise ValueError(f"`dropout` must be a float in [0, 1). Received: dropout={dropout!r}")

    token_ids = keras.Input(shape=(sequence_length,), dtype="int32", name="token_ids")
    padding_mask = PaddingMask(name="padding_mask")(token_ids)
    if kind == "bigru":
        if hidden_dim % 2:
            raise ValueError(
                f"`hidden_dim` must be even for kind='bigru'. Received: hidden_dim={hidden_dim}"
            )
        x = keras.layers.Embedding(vocabulary_size, embedding_dim, name="token_embedding")(
            token_ids
        )
        for i in range(num_layers):
            x = keras.layers.Bidirectional(
                keras.layers.GRU(hidden_dim // 2, return_sequences=True, dropout=dropout),
                merge_mode="concat",
                name=f"bigru_{i}",
            )(x, mask=padding_mask)
    else:
        if embedding_dim != hidden_dim:
            raise ValueError(
                "`embedding_dim` must equal `hidden_dim` for kind='transformer'. Received: "
                f"embedding_dim={embedding_dim}, hidden_dim={hidden_dim}"
            )
        if hidden_dim % num_heads:
            raise ValueError(
                "`num_heads` must divide `hidden_dim`. "
                f"Received: num_heads={num_heads}, hidden_dim={hidden_dim}"
            )
        x = keras_hub.layers.TokenAndPositionEmbedding(
            vocabulary_size=vocabulary_size,
            sequence_length=sequence_length,
            embedding_dim=embedding_dim,
            name="token_and_position_embedding",
        )(token_ids)
        if dropout:
            x = keras.layers.Dropout(dropout, name="embedding_dropout")(x)
        for i in range(num_layers):
            x = keras_hub.layers.TransformerEncoder(
                intermediate_dim=intermediate_dim or 2 * hidden_dim,
                num_heads=num_heads,
                dropout=dropout,
                name=f"transformer_encoder_{i}",
            )(x, padding_mask=padding_mask)
    sequence = keras.layers.Identity(name="sequence")(x)
    pooled = keras.layers.GlobalAveragePooling1D(name="pooled")(x, mask=padding_mask)
    return keras.Model(token_ids, {"sequence": sequence, "pooled": pooled}, name=name)
