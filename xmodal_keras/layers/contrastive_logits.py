"""Scaled cosine-similarity logits between two batches of embeddings, learnable temperature."""

import math

import keras
from keras import ops

from xmodal_keras.api_export import xmodal_export


@xmodal_export
class ContrastiveLogits(keras.layers.Layer):
    """`logits = exp(logit_scale) * a @ b^T`: the similarity matrix CLIP trains on.

    The temperature lives here, in the model, as a log-scale weight `logit_scale`
    (CLIP: `log(1 / temperature)`, initialised to `log(1 / initial_temperature)`),
    clipped to `[0, log(max_logit_scale)]` when used, so plain `model.fit` learns it
    and it is saved with the model. Row `i`, column `j` scores `a[i]` against `b[j]`;
    pass L2-normalised embeddings for cosine similarities. The logits are float32
    also under mixed precision (Radford et al., 2021, *Learning Transferable Visual
    Models From Natural Language Supervision*).

    Args:
        initial_temperature: starting temperature, > 0. Defaults to 0.07 (CLIP).
        max_logit_scale: the scale `1 / temperature` is clipped to at most this.
            Defaults to 100.0 (CLIP).
        trainable_temperature: learn the temperature. Defaults to `True`.
        **kwargs: forwarded to `keras.layers.Layer`.

    Example:

    >>> import numpy as np
    >>> layer = ContrastiveLogits(initial_temperature=0.5)
    >>> layer(np.eye(2), np.eye(2)).numpy().tolist()
    [[2.0, 0.0], [0.0, 2.0]]
    """

    def __init__(
        self,
        initial_temperature: float = 0.07,
        max_logit_scale: float = 100.0,
        trainable_temperature: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for arg, value in (
            ("initial_temperature", initial_temperature),
            ("max_logit_scale", max_logit_scale),
        ):
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"`{arg}` must be a number > 0. Received: {arg}={value!r}")
        if max_logit_scale < 1:
            raise ValueError(
                f"`max_logit_scale` must be >= 1. Received: max_logit_scale={max_logit_scale!r}"
            )
        if not isinstance(trainable_temperature, bool):
            raise ValueError(
                "`trainable_temperature` must be a bool. "
                f"Received: trainable_temperature={trainable_temperature!r}"
            )
        self.initial_temperature = float(initial_temperature)
        self.max_logit_scale = float(max_logit_scale)
        self.trainable_temperature = trainable_temperature

    def build(self, a_shape, b_shape):
        if a_shape[-1] is not None and b_shape[-1] is not None and a_shape[-1] != b_shape[-1]:
            raise ValueError(
                "Both embeddings must have the same last dimension. "
                f"Received: a_shape={a_shape}, b_shape={b_shape}"
            )
        self.logit_scale = self.add_weight(
            name="logit_scale",
            shape=(),
            initializer=keras.initializers.Constant(math.log(1.0 / self.initial_temperature)),
            trainable=self.trainable_temperature,
            dtype="float32",
            autocast=False,  # stays float32 under mixed precision
        )
        self.built = True

    @property
    def scale(self):
        """The clipped `1 / temperature` the logits are multiplied by."""
        return ops.exp(ops.clip(self.logit_scale, 0.0, math.log(self.max_logit_scale)))

    @property
    def temperature(self) -> float:
        """The current (clipped) temperature as a Python float."""
        return float(1.0 / ops.convert_to_numpy(self.scale))

    def call(self, a, b):
        a = ops.cast(a, "float32")
        b = ops.cast(b, "float32")
        return self.scale * ops.matmul(a, ops.transpose(b))

    def compute_output_shape(self, a_shape, b_shape):
        return (a_shape[0], b_shape[0])

    def compute_output_spec(self, a, b):
        return keras.KerasTensor((a.shape[0], b.shape[0]), dtype="float32")

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "initial_temperature": self.initial_temperature,
                "max_logit_scale": self.max_logit_scale,
                "trainable_temperature": self.trainable_temperature,
            }
        )
        return config
