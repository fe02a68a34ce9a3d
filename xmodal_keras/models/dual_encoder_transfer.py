"""Transfer: start a fusion classifier from a trained dual encoder's towers.

The dual encoder's towers hold an `"image_encoder"` / `"text_encoder"` (nested models)
and `"image_projection"` / `"text_projection"` heads; `build_fusion_classifier` names its
per-modality heads the same way. `build_fusion_classifier_from_dual_encoder` copies the
encoders (fresh models with the trained weights, not shared with the dual encoder), builds
the classifier on them and copies the projection heads when their sizes match.
`transfer_weights_by_name` is the general tool: copy layer weights between any two models
by layer name, searching nested models.
"""

from collections.abc import Iterable, Mapping, Sequence

import keras

from xmodal_keras.models.dual_encoder import IMAGE_TOWER_NAME, TEXT_TOWER_NAME
from xmodal_keras.models.fusion_classifier import build_fusion_classifier

_TOWERS = {"image": IMAGE_TOWER_NAME, "text": TEXT_TOWER_NAME}


def find_layer(model: keras.Model, name: str) -> keras.layers.Layer:
    """The layer called `name` in `model` or any nested model (depth first).

    Raises:
        ValueError: if no layer has that name, or several do.
    """
    found = []

    def visit(layer):
        for child in getattr(layer, "layers", []):
            if child.name == name:
                found.append(child)
            visit(child)

    visit(model)
    if len(found) != 1:
        raise ValueError(
            f"Expected exactly one layer named {name!r} in model {model.name!r}. "
            f"Received: {len(found)} matches"
        )
    return found[0]


def transfer_weights_by_name(
    source: keras.Model,
    target: keras.Model,
    names: Iterable[str] | Mapping[str, str],
) -> list[str]:
    """Copy the weights of named layers (or nested models) from `source` to `target`.

    Args:
        source: the trained model.
        target: the model to initialise.
        names: layer names present in both, or a `{source_name: target_name}` dict.

    Returns:
        The target layer names whose weights were set.

    Raises:
        ValueError: a name missing in either model, or weights of other shapes (the
            message lists them).
    """
    pairs = dict(names) if isinstance(names, Mapping) else {n: n for n in names}
    done = []
    for source_name, target_name in pairs.items():
        source_layer = find_layer(source, source_name)
        target_layer = find_layer(target, target_name)
        source_weights = source_layer.get_weights()
        target_shapes = [tuple(w.shape) for w in target_layer.weights]
        source_shapes = [tuple(w.shape) for w in source_weights]
        if source_shapes != target_shapes:
            raise ValueError(
                f"Weights of {source_name!r} do not fit {target_name!r}. "
                f"Received: source shapes {source_shapes}, target shapes {target_shapes}"
            )
        target_layer.set_weights(source_weights)
        done.append(target_name)
    return done


def dual_encoder_encoders(dual_encoder: keras.Model) -> dict[str, keras.Model]:
    """Copies of the dual encoder's `"image"` and `"text"` encoders, trained weights in.

    Each returns `{"grid", "pooled"}` / `{"sequence", "pooled"}` like a freshly built
    encoder, so it can be passed as a modality's settings to `build_fusion_classifier`.
    """
    encoders = {}
    for modality, tower in _TOWERS.items():
        original = find_layer(dual_encoder.get_layer(tower), f"{modality}_encoder")
        copy = keras.models.clone_model(original)
        copy.set_weights(original.get_weights())
        encoders[modality] = copy
    return encoders


def build_fusion_classifier_from_dual_encoder(
    dual_encoder: keras.Model,
    *,
    num_classes: int,
    fusion: str = "concat",
    projection_dim: int | None = None,
    freeze_encoders: bool = False,
    modalities: Sequence[str] = ("image", "text"),
    **kwargs,
) -> keras.Model:
    """A fusion classifier (image + text) whose encoders start from a trained dual encoder.

    The encoders are copies (see `dual_encoder_encoders`); the classifier's
    `"image_projection"` / `"text_projection"` heads start from the dual encoder's when
    `projection_dim` is the dual encoder's (the default) and `fusion` projects pooled
    vectors (not `"cross_attention"`). The fusion layer and the head start fresh.
    `modalities=("image",)` or `("text",)` gives the unimodal baseline from one tower.

    Args:
        dual_encoder: a trained `build_dual_encoder` model.
        num_classes, fusion: see `build_fusion_classifier`.
        projection_dim: shared space of the classifier. Defaults to `None`: the dual
            encoder's, so the projection heads transfer too.
        freeze_encoders: keep the copied encoders frozen (linear probing of the shared
            space). Defaults to `False` (fine-tune everything).
        modalities: the towers used, a non-empty subset of `("image", "text")`.
            Defaults to both.
        **kwargs: more `build_fusion_classifier` arguments (`hidden_dim`, `dropout`, ...).
    """
    if isinstance(modalities, str):
        modalities = (modalities,)
    modalities = tuple(modalities)
    if not modalities or len(set(modalities)) != len(modalities) or set(modalities) - set(_TOWERS):
        raise ValueError(
            f"`modalities` must be distinct names from {tuple(_TOWERS)}. "
            f"Received: modalities={modalities!r}"
        )
    source_dim = dual_encoder.get_layer(IMAGE_TOWER_NAME).output.shape[-1]
    projection_dim = source_dim if projection_dim is None else projection_dim
    encoders = {m: e for m, e in dual_encoder_encoders(dual_encoder).items() if m in modalities}
    if freeze_encoders:
        for encoder in encoders.values():
            encoder.trainable = False
    classifier = build_fusion_classifier(
        modalities=encoders,
        num_classes=num_classes,
        fusion=fusion,
        projection_dim=projection_dim,
        **kwargs,
    )
    if projection_dim == source_dim and fusion != "cross_attention":
        transfer_weights_by_name(dual_encoder, classifier, [f"{m}_projection" for m in encoders])
    return classifier
