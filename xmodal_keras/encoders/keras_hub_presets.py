"""Encoder names that ask for a KerasHub preset: `keras_hub:PRESET_OR_DIR`.

A preset is a name KerasHub downloads once (`bert_base_en_uncased`, `resnet_50_imagenet`,
...) or a local folder written by `save_to_preset`.

Example:

>>> is_keras_hub_preset("keras_hub:resnet_18_imagenet"), is_keras_hub_preset("resnet50")
(True, False)
>>> keras_hub_preset("keras_hub:bert_tiny_en_uncased")
'bert_tiny_en_uncased'
"""

import os

KERAS_HUB_PREFIX = "keras_hub:"
"""`build_image_encoder(KERAS_HUB_PREFIX + preset)` and `build_text_encoder(kind=...)` load a
KerasHub backbone preset."""


def is_keras_hub_preset(name) -> bool:
    """Whether an encoder `name` asks for a KerasHub preset (`"keras_hub:..."`)."""
    return isinstance(name, str) and name.startswith(KERAS_HUB_PREFIX)


def keras_hub_preset(name: str) -> str:
    """The preset name or folder of `keras_hub:PRESET_OR_DIR`."""
    if not is_keras_hub_preset(name) or not name[len(KERAS_HUB_PREFIX) :]:
        raise ValueError(
            f"Expected `{KERAS_HUB_PREFIX}PRESET_OR_DIR` (a KerasHub preset name or a folder "
            f"written by `save_to_preset`). Received: {name!r}"
        )
    return name[len(KERAS_HUB_PREFIX) :]


def absolute_preset(name: str) -> str:
    """`name` with a relative local preset folder made absolute (other names as they are),
    so a run resumed from another working directory finds it."""
    if is_keras_hub_preset(name) and os.path.isdir(keras_hub_preset(name)):
        return KERAS_HUB_PREFIX + os.path.abspath(keras_hub_preset(name))
    return name
