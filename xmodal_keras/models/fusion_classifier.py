"""Fusion classifiers: per-modality encoders -> shared space -> fusion -> classification head.

The same builder makes the unimodal baselines (`modalities=("image",)`,
`modalities=("text",)`), so the fusion gain is measured with everything else equal.
"""

from collections.abc import Mapping, Sequence

import keras

from xmodal_keras.argument_checks import check_positive_int
from xmodal_keras.encoders.audio_encoder import build_audio_encoder
from xmodal_keras.encoders.cnn_image_encoder import build_image_encoder
from xmodal_keras.encoders.keras_hub_presets import is_keras_hub_preset
from xmodal_keras.encoders.keras_hub_text_encoder import load_keras_hub_text_backbone
from xmodal_keras.encoders.mmbt_encoder import MMBTEncoder
from xmodal_keras.encoders.tabular_encoder import build_tabular_encoder
from xmodal_keras.encoders.text_encoder import build_text_encoder
from xmodal_keras.layers.fusion_registry import FUSION_NAMES, get_fusion_layer
from xmodal_keras.layers.padding_mask import PaddingMask
from xmodal_keras.layers.projection_head import ProjectionHead

MODALITIES: tuple[str, ...] = ("image", "text", "audio", "tabular")
"""The modalities `build_fusion_classifier` knows, in the order their inputs appear."""

MODALITY_INPUTS: dict[str, str] = {
    "image": "images",
    "text": "token_ids",
    "audio": "audio",
    "tabular": "tabular",
}
"""The model input key of each modality."""

CLASSIFIER_FUSIONS: tuple[str, ...] = (*FUSION_NAMES, "late", "mmbt")
"""`fusion=` values: the fusion layers by name, `"late"` (average of per-modality logits)
and `"mmbt"` (image regions read with the text by a pretrained BERT, `MMBTEncoder`)."""

OUTPUTS: tuple[str, ...] = ("probabilities", "logits")

# Which encoder output is the sequence cross-attention looks at, per modality.
_SEQUENCE_OUTPUTS = {"image": "grid", "text": "sequence", "audio": "sequence"}
# Cross-attention's `first` is the earlier of the two in this order (text tokens attend
# to image regions / audio frames, and those attend back).
_CROSS_ATTENTION_ORDER = ("text", "image", "audio")


def build_fusion_classifier(
    *,
    modalities: Sequence[str] | Mapping[str, Mapping | keras.Model | None],
    num_classes: int,
    fusion: str = "concat",
    projection_dim: int = 64,
    hidden_dim: int | None = None,
    multi_label: bool = False,
    dropout: float = 0.0,
    fusion_kwargs: Mapping | None = None,
    output: str = "probabilities",
    name: str = "fusion_classifier",
) -> keras.Model:
    """Builds a multimodal (or unimodal) classifier as one functional model.

    Each modality's encoder output (`"pooled"`) goes through its own
    `ProjectionHead` into a shared `projection_dim` space; the fusion layer
    combines the projections; a head `Dense(hidden_dim, relu) -> dropout ->
    Dense(units)` gives the logits. With `fusion="cross_attention"` the two
    modalities' *sequences* (text tokens with their padding mask, image regions
    `"grid"`, audio frames) are projected and co-attend instead. With
    `fusion="late"` every modality gets its own head and the logits are
    averaged (the late-fusion baseline). With `fusion="mmbt"` (image and a
    `keras_hub:` BERT text only) the image encoder's grid is projected to the BERT's
    width and read with the word pieces by its own layers (`MMBTEncoder`, layer
    `"text_encoder"`); the head reads its pooled `[CLS]`. With one modality there is nothing to
    fuse and `fusion` is ignored: that is the unimodal baseline.

    Heads: `num_classes=2` (and not `multi_label`) is binary, one sigmoid unit
    giving P(class 1); `num_classes > 2` is multi-class (softmax); `multi_label`
    gives `num_classes` independent sigmoids. Train with
    `classifier_loss(...)` (binary / sparse categorical / binary cross-entropy
    on multi-hot labels). Class imbalance: pass `class_weight=` to `fit` or
    resample the training split.

    Args:
        modalities: which inputs to use, from `MODALITIES`: a sequence of names
            (default encoder settings), or a dict `{modality: settings}` where
            settings is a dict of encoder arguments, a ready `keras.Model`
            (e.g. a pre-trained dual encoder tower; transfer learning) or
            `None` (defaults). Encoders: `"image"` -> `build_image_encoder`
            (its `name` key picks the backbone; default `"small_cnn"` on 64x64),
            `"text"` -> `build_text_encoder` (needs `vocabulary_size` and
            `sequence_length`), `"audio"` -> `build_audio_encoder`,
            `"tabular"` -> `build_tabular_encoder` (needs `frame` and columns).
        num_classes: int >= 2.
        fusion: one of `CLASSIFIER_FUSIONS`. Defaults to `"concat"`.
        projection_dim: size of the shared space. Defaults to 64.
        hidden_dim: size of the head's hidden layer. Defaults to `None`:
            `projection_dim`.
        multi_label: independent sigmoid per class. Defaults to `False`.
        dropout: dropout in the projection heads and the head. Defaults to 0.0.
        fusion_kwargs: extra arguments of the fusion layer (e.g. `{"rank":
            32}` for `"bilinear"`, `{"num_heads": 4}` for `"cross_attention"`).
            Defaults to `None` (`"bilinear"` gets `rank=projection_dim`).
        output: `"probabilities"` (last layer named `"probabilities"`) or
            `"logits"` (last layer `"logits"`; use `from_logits=True` losses).
            Defaults to `"probabilities"`.
        name: model name. Defaults to `"fusion_classifier"`.

    Returns:
        A `keras.Model`. Inputs: a dict with, per modality used, `"images"`
        uint8 `[batch, H, W, 3]`, `"token_ids"` int32 `[batch, S]` (0 =
        padding), `"audio"` float32 `[batch, samples]` or `[batch, frames,
        features]`, `"tabular"` a dict `{column: [batch, 1]}` (see
        `tabular_features`). Output: `[batch, 1]` (binary) or `[batch,
        num_classes]`, float32, probabilities or logits per `output`.

    Example:

    >>> import numpy as np
    >>> model = build_fusion_classifier(
    ...     modalities={"image": {"image_shape": (16, 16, 3), "hidden_dim": 8, "num_layers": 1},
    ...                 "text": {"vocabulary_size": 12, "sequence_length": 4,
    ...                          "embedding_dim": 8, "hidden_dim": 8}},
    ...     fusion="gated", projection_dim=8, num_classes=2)
    >>> probabilities = model({"images": np.zeros((2, 16, 16, 3), "uint8"),
    ...                        "token_ids": np.array([[2, 5, 3, 0], [2, 6, 7, 3]])})
    >>> tuple(probabilities.shape)
    (2, 1)
    """
    modalities = _modality_settings(modalities)
    if fusion not in CLASSIFIER_FUSIONS:
        raise ValueError(
            f"`fusion` must be one of {CLASSIFIER_FUSIONS}. Received: fusion={fusion!r}"
        )
    if output not in OUTPUTS:
        raise ValueError(f"`output` must be one of {OUTPUTS}. Received: output={output!r}")
    check_positive_int("num_classes", num_classes)
    if num_classes < 2:
        raise ValueError(
            "`num_classes` must be >= 2 (2 = binary, one sigmoid unit). "
            f"Received: num_classes={num_classes}"
        )
    check_positive_int("projection_dim", projection_dim)
    hidden_dim = projection_dim if hidden_dim is None else hidden_dim
    check_positive_int("hidden_dim", hidden_dim)
    if isinstance(dropout, bool) or not isinstance(dropout, int | float) or not 0 <= dropout < 1:
        raise ValueError(f"`dropout` must be a float in [0, 1). Received: dropout={dropout!r}")
    if fusion_kwargs is not None and not isinstance(fusion_kwargs, Mapping):
        raise ValueError(
            f"`fusion_kwargs` must be a dict. Received: fusion_kwargs={fusion_kwargs!r}"
        )
    if fusion == "cross_attention" and len(modalities) > 1:
        _check_cross_attention(modalities)

    units = 1 if num_classes == 2 and not multi_label else num_classes
    if fusion == "mmbt" and len(modalities) > 1:
        inputs, pooled = _mmbt(modalities)
        logits = classifier_logits(pooled, hidden_dim, units, dropout, prefix="")
        return keras.Model(inputs, classifier_output(logits, units, multi_label, output), name=name)

    inputs, encoded, token_ids = {}, {}, None
    for modality, settings in modalities.items():
        encoder = _encoder(modality, settings)
        inputs[MODALITY_INPUTS[modality]] = _model_input(modality, encoder)
        encoded[modality] = encoder(inputs[MODALITY_INPUTS[modality]])
        if modality == "text":
            token_ids = inputs["token_ids"]

    if fusion == "late" and len(modalities) > 1:
        per_modality = [
            classifier_logits(
                ProjectionHead(projection_dim, dropout=dropout, name=f"{m}_projection")(
                    encoded[m]["pooled"]
                ),
                hidden_dim,
                units,
                dropout,
                prefix=f"{m}_",
            )
            for m in modalities
        ]
        logits = keras.layers.Average(name="logits", dtype="float32")(per_modality)
    else:
        if fusion == "cross_attention" and len(modalities) > 1:
            fused = _cross_attention(
                encoded, token_ids, projection_dim, dropout, dict(fusion_kwargs or {})
            )
        else:
            projected = [
                ProjectionHead(projection_dim, dropout=dropout, name=f"{m}_projection")(
                    encoded[m]["pooled"]
                )
                for m in modalities
            ]
            if len(projected) == 1:
                fused = projected[0]
            else:
                fused = get_fusion_layer(
                    fusion,
                    name="fusion",
                    **_default_fusion_kwargs(fusion, projection_dim, fusion_kwargs),
                )(projected)
        logits = classifier_logits(fused, hidden_dim, units, dropout, prefix="")
    return keras.Model(inputs, classifier_output(logits, units, multi_label, output), name=name)


def classifier_loss(
    *, num_classes: int, multi_label: bool = False, from_logits: bool = False
) -> keras.losses.Loss:
    """The loss matching `build_fusion_classifier`'s head.

    Binary: `BinaryCrossentropy` on 0/1 labels; multi-class:
    `SparseCategoricalCrossentropy` on class ids; multi-label:
    `BinaryCrossentropy` on multi-hot `[batch, num_classes]` labels.

    Example:

    >>> type(classifier_loss(num_classes=3)).__name__
    'SparseCategoricalCrossentropy'
    """
    check_positive_int("num_classes", num_classes)
    if num_classes == 2 or multi_label:
        return keras.losses.BinaryCrossentropy(from_logits=from_logits)
    return keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)


def _modality_settings(modalities) -> dict:
    if isinstance(modalities, str):
        modalities = (modalities,)
    if isinstance(modalities, Mapping):
        settings = dict(modalities)
    elif isinstance(modalities, Sequence):
        settings = dict.fromkeys(modalities)
        if len(settings) != len(modalities):
            raise ValueError(f"`modalities` has duplicates. Received: modalities={modalities!r}")
    else:
        raise ValueError(
            "`modalities` must be a sequence of names or a dict. "
            f"Received: modalities={modalities!r}"
        )
    unknown = [m for m in settings if m not in MODALITIES]
    if not settings or unknown:
        raise ValueError(
            f"`modalities` must name one or more of {MODALITIES}. "
            f"Received: modalities={modalities!r}"
        )
    for modality, value in settings.items():
        if value is not None and not isinstance(value, Mapping | keras.Model):
            raise ValueError(
                f"Settings of modality {modality!r} must be a dict, a keras.Model or None. "
                f"Received: {modality}={value!r}"
            )
    # Always the same order, whatever order the caller wrote.
    return {m: settings[m] for m in MODALITIES if m in settings}


def _mmbt(modalities: dict) -> tuple[dict, keras.KerasTensor]:
    """The inputs and pooled `[CLS]` of an MMBT read of images and text."""
    if set(modalities) != {"image", "text"}:
        raise ValueError(
            f"fusion='mmbt' reads images and text only. Received: modalities={tuple(modalities)}"
        )
    if isinstance(modalities["text"], keras.Model):
        raise ValueError("fusion='mmbt' builds its text side from settings, not a model.")
    text = dict(modalities["text"] or {})
    kind = text.get("kind", "")
    if not is_keras_hub_preset(kind):
        raise ValueError(
            "fusion='mmbt' reads the text with a pretrained BERT: the text settings need "
            f"kind='keras_hub:PRESET_OR_DIR'. Received: kind={kind!r}"
        )
    image_encoder = _encoder("image", modalities["image"])
    images = _model_input("image", image_encoder)
    grid = image_encoder(images)["grid"]
    backbone = load_keras_hub_text_backbone(kind)
    sequence_length = text["sequence_length"]
    if text.get("vocabulary_size", backbone.vocabulary_size) != backbone.vocabulary_size:
        raise ValueError(
            f"The tokenizer has {text['vocabulary_size']} tokens but {kind!r} embeds "
            f"{backbone.vocabulary_size}."
        )
    if grid.shape[1] + sequence_length > backbone.max_sequence_length:
        raise ValueError(
            f"fusion='mmbt' reads {grid.shape[1]} image regions + {sequence_length} token ids, "
            f"more than the {backbone.max_sequence_length} positions of {kind!r}: use a smaller "
            "image grid (a smaller image size or more encoder stages) or a shorter "
            "sequence_length."
        )
    token_ids = keras.Input(shape=(sequence_length,), dtype="int32", name="token_ids")
    image_tokens = keras.layers.Dense(backbone.hidden_dim, name="image_to_text_embedding")(grid)
    encoded = MMBTEncoder(backbone, text.get("trainable_layers"), name="text_encoder")(
        token_ids, image_tokens
    )
    return {"images": images, "token_ids": token_ids}, encoded["pooled"]


def _check_cross_attention(modalities: dict) -> None:
    names = tuple(modalities)
    if len(names) != 2 or "tabular" in names:
        raise ValueError(
            "fusion='cross_attention' needs exactly two sequence modalities "
            f"({_CROSS_ATTENTION_ORDER}). Received: modalities={names}"
        )


def _encoder(modality: str, settings) -> keras.Model:
    if isinstance(settings, keras.Model):
        return settings
    kwargs = dict(settings or {})
    if modality == "image":
        encoder = build_image_encoder(kwargs.pop("name", "small_cnn"), **kwargs)
        encoder.name = "image_encoder"  # like the other modalities (and the captioners)
        return encoder
    kwargs.setdefault("name", f"{modality}_encoder")
    if modality == "text":
        missing = [k for k in ("vocabulary_size", "sequence_length") if k not in kwargs]
        if missing:
            raise ValueError(
                f"Text settings need {missing}. Received: text={dict(settings or {})!r}"
            )
        return build_text_encoder(**kwargs)
    if modality == "audio":
        return build_audio_encoder(**kwargs)
    if "frame" not in kwargs:
        raise ValueError(
            "Tabular settings need `frame` (a DataFrame with a split column) and columns. "
            f"Received: tabular={dict(settings or {})!r}"
        )
    return build_tabular_encoder(kwargs.pop("frame"), **kwargs)


def _model_input(modality: str, encoder: keras.Model):
    """A fresh input of the classifier shaped like `encoder`'s input."""
    if modality == "tabular":
        return {
            key: keras.Input(shape=tensor.shape[1:], dtype=tensor.dtype, name=key)
            for key, tensor in encoder.input.items()
        }
    tensor = encoder.inputs[0]
    dtype = {"image": "uint8", "text": "int32", "audio": "float32"}[modality]
    return keras.Input(shape=tensor.shape[1:], dtype=dtype, name=MODALITY_INPUTS[modality])


def _default_fusion_kwargs(fusion: str, projection_dim: int, fusion_kwargs) -> dict:
    kwargs = dict(fusion_kwargs or {})
    if fusion == "bilinear":
        kwargs.setdefault("rank", projection_dim)
    return kwargs


def _cross_attention(encoded: dict, token_ids, projection_dim: int, dropout: float, kwargs: dict):
    first, second = sorted(encoded, key=_CROSS_ATTENTION_ORDER.index)
    sequences = {
        m: ProjectionHead(projection_dim, dropout=dropout, name=f"{m}_sequence_projection")(
            encoded[m][_SEQUENCE_OUTPUTS[m]]
        )
        for m in (first, second)
    }
    masks = {m: None for m in (first, second)}
    if "text" in masks:
        masks["text"] = PaddingMask(name="text_padding_mask")(token_ids)
    kwargs.setdefault("dropout", dropout)
    return get_fusion_layer("cross_attention", name="fusion", **kwargs)(
        sequences[first],
        sequences[second],
        first_mask=masks[first],
        second_mask=masks[second],
    )


def classifier_logits(x, hidden_dim: int, units: int, dropout: float, *, prefix: str = ""):
    """The classification head on features `x`: `Dense(hidden_dim, relu) -> dropout ->
    Dense(units)` (float32 logits, layers named `f"{prefix}head_dense"`, ... `"logits"`).
    """
    x = keras.layers.Dense(hidden_dim, activation="relu", name=f"{prefix}head_dense")(x)
    x = keras.layers.Dropout(dropout, name=f"{prefix}head_dropout")(x)
    return keras.layers.Dense(units, name=f"{prefix}logits", dtype="float32")(x)


def classifier_output(logits, units: int, multi_label: bool, output: str):
    """`logits` as they are (`output="logits"`) or through the head's activation, a layer
    named `"probabilities"`: sigmoid for one unit or multi-label, softmax otherwise.
    """
    if output == "logits":
        return logits
    activation = "sigmoid" if units == 1 or multi_label else "softmax"
    return keras.layers.Activation(activation, name="probabilities", dtype="float32")(logits)
