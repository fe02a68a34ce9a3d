"""The one registration decorator for everything xmodal_keras serialises.

Example:

>>> import keras
>>> from xmodal_keras.api_export import xmodal_export
>>> @xmodal_export
... class Doubler(keras.layers.Layer):
...     def call(self, x):
...         return 2 * x
>>> keras.saving.get_registered_name(Doubler)
'xmodal_keras>Doubler'
"""

import keras

PACKAGE = "xmodal_keras"


def xmodal_export(cls: type) -> type:
    """Register `cls` with Keras so `.keras` files load it with `safe_mode=True`."""
    return keras.saving.register_keras_serializable(package=PACKAGE)(cls)
