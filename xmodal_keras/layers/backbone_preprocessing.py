"""A backbone's ImageNet input preprocessing as a serialisable layer."""

import keras
from keras import ops

from xmodal_keras.api_export import xmodal_export

_MODES = ("caffe", "tf", "torch")
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)


@xmodal_export
class BackbonePreprocessing(keras.layers.Layer):
    """Maps RGB images in [0, 255] to what an ImageNet backbone expects.

    The same three modes as `keras.applications.imagenet_utils.preprocess_input`,
    as a layer (no `Lambda`), so a `.keras` file reloads with `safe_mode=True`
    and exported models take raw RGB:

    - `"caffe"` (ResNet50, VGG): RGB -> BGR, minus the ImageNet mean, no scaling.
    - `"tf"` (InceptionV3, MobileNetV2, Xception): scale to [-1, 1].
    - `"torch"` (DenseNet): scale to [0, 1], then ImageNet mean / std per channel.

    Args:
        mode: one of `"caffe"`, `"tf"`, `"torch"`. Defaults to `"caffe"`.
        **kwargs: forwarded to `keras.layers.Layer`.

    Example:

    >>> import numpy as np
    >>> layer = BackbonePreprocessing(mode="tf")
    >>> np.asarray(layer(np.full((1, 1, 1, 3), 255, "uint8"))).tolist()
    [[[[1.0, 1.0, 1.0]]]]
    """

    def __init__(self, mode: str = "caffe", **kwargs):
        super().__init__(**kwargs)
        if mode not in _MODES:
            raise ValueError(f"`mode` must be one of {_MODES}. Received: mode={mode!r}")
        self.mode = mode
        self.built = True

    def call(self, images):
        x = ops.cast(images, self.compute_dtype)
        if self.mode == "caffe":
            return ops.flip(x, axis=-1) - ops.convert_to_tensor(_CAFFE_MEAN_BGR, x.dtype)
        if self.mode == "tf":
            return x / 127.5 - 1.0
        mean = ops.convert_to_tensor(_TORCH_MEAN, x.dtype)
        std = ops.convert_to_tensor(_TORCH_STD, x.dtype)
        return (x / 255.0 - mean) / std

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"mode": self.mode})
        return config
