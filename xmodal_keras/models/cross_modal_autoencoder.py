"""`build_cross_modal_autoencoder`: a shared code that reconstructs every modality.

After Ngiam et al. (2011), *Multimodal Deep Learning*: each modality's features (e.g. the
pooled outputs of an image and a text encoder) are projected to a code in one shared
space; the shared code is the mean of the codes. One decoder per modality reconstructs
that modality from the shared code **and from each single modality's code**, so the
training asks the text code alone to rebuild the image features and back: the codes of
the two modalities of one example are pulled together without labels.

Example:

>>> import numpy as np
>>> model = build_cross_modal_autoencoder(feature_dims={"image": 6, "text": 4},
...                                       code_dim=3, hidden_dim=8)
>>> features = {"image": np.ones((2, 6), "float32"), "text": np.ones((2, 4), "float32")}
>>> sorted(model(features))[:3]
['image_from_image', 'image_from_shared', 'image_from_text']
>>> targets = cross_modal_autoencoder_targets(features)
>>> tuple(targets["image_from_text"].shape), len(targets)
((2, 6), 6)
"""

from collections.abc import Mapping

import keras

from xmodal_keras.argument_checks import check_positive_int
from xmodal_keras.layers.projection_head import ProjectionHead

SHARED = "shared"


def build_cross_modal_autoencoder(
    *,
    feature_dims: Mapping[str, int],
    code_dim: int = 32,
    hidden_dim: int = 64,
    dropout: float = 0.0,
    name: str = "cross_modal_autoencoder",
) -> keras.Model:
    """Build the autoencoder: `{modality: [B, dim]}` -> `{"<target>_from_<source>": [B, dim]}`.

    Sources are every modality and `"shared"` (the mean code). Train with
    `model.fit(features, cross_modal_autoencoder_targets(features), ...)` and mean
    squared error on every output. `shared_code_model(model)` returns features -> code.

    Args:
        feature_dims: `{modality name: feature size}`, two or more modalities.
        code_dim: size of the shared code. Defaults to 32.
        hidden_dim: hidden size of each decoder. Defaults to 64.
        dropout: dropout in the encoders' projection heads. Defaults to 0.
        name: model name. Defaults to `"cross_modal_autoencoder"`.
    """
    if not isinstance(feature_dims, Mapping) or len(feature_dims) < 2:
        raise ValueError(
            "`feature_dims` must map two or more modality names to feature sizes. "
            f"Received: feature_dims={feature_dims!r}"
        )
    for modality, dim in feature_dims.items():
        if not isinstance(modality, str) or not modality.isidentifier() or modality == SHARED:
            raise ValueError(
                "Modality names must be identifiers other than 'shared'. "
                f"Received: feature_dims={dict(feature_dims)!r}"
            )
        check_positive_int(f"feature_dims[{modality!r}]", dim)
    check_positive_int("code_dim", code_dim)
    check_positive_int("hidden_dim", hidden_dim)

    inputs = {m: keras.Input(shape=(dim,), name=m) for m, dim in feature_dims.items()}
    codes = {
        m: ProjectionHead(code_dim, dropout=dropout, name=f"{m}_to_code")(x)
        for m, x in inputs.items()
    }
    codes[SHARED] = keras.layers.Average(name="shared_code")(list(codes.values()))
    outputs = {}
    for target, dim in feature_dims.items():
        hidden = keras.layers.Dense(hidden_dim, activation="gelu", name=f"{target}_decoder_hidden")
        out = keras.layers.Dense(dim, name=f"{target}_decoder_output", dtype="float32")
        for source, code in codes.items():
            outputs[f"{target}_from_{source}"] = out(hidden(code))
    return keras.Model(inputs, outputs, name=name)


def cross_modal_autoencoder_targets(features: Mapping[str, object]) -> dict[str, object]:
    """The `y` of `fit`: each output's target is its target modality's features."""
    sources = [*features, SHARED]
    return {f"{t}_from_{s}": features[t] for t in features for s in sources}


def shared_code_model(autoencoder: keras.Model) -> keras.Model:
    """`{modality: features}` -> the shared code `[B, code_dim]` (shares the weights)."""
    return keras.Model(
        autoencoder.input, autoencoder.get_layer("shared_code").output, name="shared_code"
    )
