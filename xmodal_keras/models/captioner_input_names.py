"""`with_current_input_names`: a captioner saved before the input rename, renamed.

Captioners take `{"images", "token_ids"}` (KerasHub's names, as the dual encoder and the
fusion classifier do). Runs written by xmodal_keras 0.1 saved captioners whose inputs were
`{"image", "caption_in"}`; a functional model matches a dict by its input names, so such
a model cannot read today's datasets. Loading renames the two input layers in the
serialized architecture and carries the weights over (the layers and their order do not
change, so the weights match one for one).
"""

from typing import Any

import keras

# Old input name -> current input name.
LEGACY_INPUT_NAMES = {"image": "images", "caption_in": "token_ids"}


def _renamed_history(value: Any, names: dict[str, str]) -> Any:
    """`value` (a node's arguments) with every `keras_history` that names an old input renamed."""
    if isinstance(value, (list, tuple)):
        return [_renamed_history(item, names) for item in value]
    if not isinstance(value, dict):
        return value
    renamed = {key: _renamed_history(item, names) for key, item in value.items()}
    history = value.get("keras_history")
    if isinstance(history, (list, tuple)) and history and history[0] in names:
        renamed["keras_history"] = [names[history[0]], *history[1:]]
    return renamed


def _renamed_layer(layer: dict, names: dict[str, str]) -> dict:
    layer = {**layer, "inbound_nodes": _renamed_history(layer["inbound_nodes"], names)}
    if layer["class_name"] == "InputLayer" and layer["name"] in names:
        new_name = names[layer["name"]]
        layer["name"] = new_name
        layer["config"] = {**layer["config"], "name": new_name}
    return layer


def with_current_input_names(model: keras.Model) -> keras.Model:
    """`model` itself when its inputs are `{"images", "token_ids"}`, else a renamed copy.

    Only the top-level functional graph is rewritten; nested models (the image encoder)
    keep their own input names, which no caller sees.

    Example:

    >>> import numpy as np
    >>> image = keras.Input((4, 4, 3), name="image")
    >>> caption_in = keras.Input((3,), dtype="int32", name="caption_in")
    >>> pooled = keras.layers.GlobalAveragePooling2D()(image)
    >>> embedded = keras.layers.Flatten()(keras.layers.Embedding(5, 2)(caption_in))
    >>> old = keras.Model({"image": image, "caption_in": caption_in},
    ...                   keras.layers.Concatenate()([pooled, embedded]))
    >>> new = with_current_input_names(old)
    >>> sorted(new.input)
    ['images', 'token_ids']
    >>> inputs = {"images": np.ones((1, 4, 4, 3)), "token_ids": np.ones((1, 3), "int32")}
    >>> old_inputs = {"image": inputs["images"], "caption_in": inputs["token_ids"]}
    >>> bool(np.allclose(new(inputs), old(old_inputs)))
    True
    >>> with_current_input_names(new) is new
    True

    Raises:
        ValueError: if the model's inputs are neither the current nor the old names.
    """
    inputs = model.input
    current = set(LEGACY_INPUT_NAMES.values())
    if not isinstance(inputs, dict):
        raise ValueError(
            "A captioner takes a dict of inputs {'images', 'token_ids'}. "
            f"Received: model.input={inputs!r}"
        )
    if set(inputs) == current:
        return model
    if set(inputs) != set(LEGACY_INPUT_NAMES):
        raise ValueError(
            f"A captioner takes inputs {sorted(current)} (or, saved by xmodal_keras 0.1, "
            f"{sorted(LEGACY_INPUT_NAMES)}). Received: inputs {sorted(inputs)}"
        )
    serialized = keras.saving.serialize_keras_object(model)
    config = serialized["config"]
    config = {
        **config,
        "layers": [_renamed_layer(layer, LEGACY_INPUT_NAMES) for layer in config["layers"]],
        "input_layers": {
            LEGACY_INPUT_NAMES[key]: [LEGACY_INPUT_NAMES[key], *history[1:]]
            for key, history in config["input_layers"].items()
        },
    }
    copy = keras.saving.deserialize_keras_object({**serialized, "config": config}, safe_mode=True)
    copy.set_weights(model.get_weights())
    return copy
