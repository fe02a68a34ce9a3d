"""`BackboneLayer`: the base of the layers that hold a KerasHub backbone and what of it trains.

A KerasHub backbone rebuilds its layers from its constructor arguments, so a loaded `.keras`
file would train all of it (and its optimizer state would not match). Each subclass names
its freezing argument in `freeze_argument`, stores it under that name and freezes the
backbone in `__init__`; this base keeps the backbone and that argument in the config.

Example:

>>> import keras
>>> class Wrapper(BackboneLayer):
...     freeze_argument = "trainable_layers"
...     def __init__(self, backbone, trainable_layers=None, **kwargs):
...         super().__init__(backbone, **kwargs)
...         self.trainable_layers = trainable_layers
>>> layer = Wrapper(keras.Sequential([keras.layers.Dense(2)]), trainable_layers=0)
>>> sorted(set(layer.get_config()) & {"backbone", "trainable_layers"})
['backbone', 'trainable_layers']
"""

from typing import ClassVar

import keras


class BackboneLayer(keras.layers.Layer):
    """Holds `backbone` (a KerasHub backbone, or its serialized config) as `.backbone`.

    Args:
        backbone: the backbone model or its `serialize_keras_object` config.
        **kwargs: forwarded to `keras.layers.Layer`.
    """

    freeze_argument: ClassVar[str]

    def __init__(self, backbone, **kwargs):
        super().__init__(**kwargs)
        if isinstance(backbone, dict):
            backbone = keras.saving.deserialize_keras_object(backbone)
        self.backbone = backbone

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "backbone": keras.saving.serialize_keras_object(self.backbone),
                self.freeze_argument: getattr(self, self.freeze_argument),
            }
        )
        return config
