"""`x * scale + offset` on images, per channel or global: a KerasHub converter's normalisation."""

import numbers

import keras
from keras import ops

from xmodal_keras.api_export import xmodal_export


def _check_factor(name: str, value) -> float | list[float] | None:
    """`None`, a number, or a sequence of numbers (one per channel), as JSON-friendly floats."""
    if value is None:
        return None
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    if (
        isinstance(value, list | tuple)
        and value
        and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value)
    ):
        return [float(v) for v in value]
    raise ValueError(
        f"`{name}` must be None, a number or a non-empty list of numbers (one per channel). "
        f"Received: {name}={value!r}"
    )


@xmodal_export
class ScaleOffset(keras.layers.Layer):
    """Multiplies images by `scale`, then adds `offset`, in float32 (channels last).

    The normalisation of a KerasHub `ImageConverter` (its `scale` and `offset`, global
    or one value per channel) without its resizing, as a plain layer: core TensorFlow
    ops (`Cast`, `Mul`, `AddV2`), so serving graphs stay core-only and `.keras` files
    reload with `safe_mode=True`. It computes in float32 and returns the layer's
    compute dtype, so a mixed-precision backbone gets bfloat16 / float16 inputs.

    Args:
        scale: `None` (1), a number, or one number per channel. Defaults to `None`.
        offset: `None` (0), a number, or one number per channel. Defaults to `None`.
        **kwargs: forwarded to `keras.layers.Layer`.

    Example:

    >>> import numpy as np
    >>> layer = ScaleOffset(scale=1 / 127.5, offset=[-1.0, -1.0, 0.0])
    >>> np.asarray(layer(np.full((1, 1, 1, 3), 255, "uint8"))).tolist()
    [[[[1.0, 1.0, 2.0]]]]
    """

    def __init__(self, scale=None, offset=None, **kwargs):
        super().__init__(**kwargs)
        self.scale = _check_factor("scale", scale)
        self.offset = _check_factor("offset", offset)
        self.built = True

    def call(self, images):
        x = ops.cast(images, "float32")
        if self.scale is not None:
            x = x * ops.convert_to_tensor(self.scale, "float32")
        if self.offset is not None:
            x = x + ops.convert_to_tensor(self.offset, "float32")
        return ops.cast(x, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"scale": self.scale, "offset": self.offset})
        return config
