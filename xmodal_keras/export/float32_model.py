"""`float32_copy`: a mixed-precision model rebuilt to compute in float32, for export.

A model trained under `mixed_bfloat16` or `mixed_float16` keeps float32 variables but
computes in 16 bits. LiteRT has no builtin bfloat16 kernels (the converter refuses
`tf.AddV2` on bfloat16), and a TF Serving host without native bfloat16 emulates it
slowly, so the exporters serve the same weights in float32.
"""

from typing import Any

import keras

FLOAT32 = "float32"


def _computes_in_16_bits(model: keras.Model) -> bool:
    layers = model._flatten_layers(include_self=True, recursive=True)
    return any(layer.dtype_policy.name != FLOAT32 for layer in layers)


def _with_float32_policies(config: Any) -> Any:
    """The serialized model with every DTypePolicy's name set to float32."""
    if isinstance(config, list):
        return [_with_float32_policies(item) for item in config]
    if not isinstance(config, dict):
        return config
    if config.get("class_name") == "DTypePolicy" and isinstance(config.get("config"), dict):
        return {**config, "config": {**config["config"], "name": FLOAT32}}
    return {key: _with_float32_policies(value) for key, value in config.items()}


def float32_copy(model: keras.Model) -> keras.Model:
    """`model` itself when it computes in float32, else a float32 copy with its weights.

    The copy is rebuilt from the serialized architecture (safe mode) with float32 dtype
    policies; the variables are float32 in both, so the weights carry over unchanged.

    Example:

    >>> import numpy as np
    >>> dense = keras.layers.Dense(2, dtype="mixed_bfloat16")
    >>> mixed = keras.Sequential([keras.Input((3,)), dense])
    >>> copy = float32_copy(mixed)
    >>> keras.backend.standardize_dtype(copy(np.ones((1, 3))).dtype)
    'float32'
    >>> float32_copy(copy) is copy
    True
    """
    if not _computes_in_16_bits(model):
        return model
    config = _with_float32_policies(keras.saving.serialize_keras_object(model))
    copy = keras.saving.deserialize_keras_object(config, safe_mode=True)
    copy.set_weights(model.get_weights())
    return copy
