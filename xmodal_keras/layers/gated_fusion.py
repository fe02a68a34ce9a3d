"""Gated multimodal unit (GMU), generalised to any number of modalities."""

import keras
from keras import ops

from xmodal_keras.api_export import xmodal_export
from xmodal_keras.argument_checks import check_positive_int
from xmodal_keras.layers.fusion_inputs import modality_list


@xmodal_export
class GatedFusion(keras.layers.Layer):
    """Gated multimodal unit: a learned, per-example, per-unit mix of modalities.

    Arevalo et al., *Gated Multimodal Units for Information Fusion* (2017):
    each modality `i` gets `h_i = tanh(W_i x_i + b_i)`; gates computed from all
    inputs, `z = W_z [x_1; ...; x_N] + b_z` reshaped to `[N, output_dim]`, are
    softmaxed over the modalities, and `fused = sum_i z_i * h_i`. For two
    modalities the softmax of two logits is `sigmoid(a - b)`, so this is the
    paper's bimodal GMU `z h_1 + (1 - z) h_2` exactly; for N it keeps the gates
    a convex combination per unit.

    Call arguments:
        inputs: a list of `[batch, d_i]` tensors (sizes may differ), or a dict
            of them (sorted key order).

    Returns:
        `[batch, output_dim]`.

    Args:
        output_dim: int, size of the fused vector. Defaults to `None`: the
            size of the first modality.
        **kwargs: forwarded to `keras.layers.Layer` (`name`, `dtype`, ...).

    Example:

    >>> import numpy as np
    >>> layer = GatedFusion(output_dim=5)
    >>> fused = layer([np.ones((2, 4)), np.ones((2, 3)), np.ones((2, 6))])
    >>> tuple(fused.shape)
    (2, 5)
    """

    def __init__(self, output_dim: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if output_dim is not None:
            check_positive_int("output_dim", output_dim)
        self.output_dim = output_dim

    def _units(self, shapes) -> int:
        return self.output_dim if self.output_dim is not None else shapes[0][-1]

    def build(self, input_shape):
        shapes = modality_list(input_shape, type(self).__name__)
        units = self._units(shapes)
        self.modality_denses = []
        for i, shape in enumerate(shapes):
            dense = keras.layers.Dense(
                units, activation="tanh", name=f"modality_{i}_dense", dtype=self.dtype_policy
            )
            dense.build(shape)
            self.modality_denses.append(dense)
        self.gate_dense = keras.layers.Dense(
            units * len(shapes), name="gate_dense", dtype=self.dtype_policy
        )
        self.gate_dense.build((*shapes[0][:-1], sum(shape[-1] for shape in shapes)))
        self.built = True

    def call(self, inputs):
        tensors = modality_list(inputs, type(self).__name__)
        num_modalities = len(tensors)
        hidden = ops.stack(
            [dense(x) for dense, x in zip(self.modality_denses, tensors, strict=True)], axis=1
        )  # [batch, modalities, units]
        gate_logits = self.gate_dense(ops.concatenate(tensors, axis=-1))
        gate_logits = ops.reshape(gate_logits, (-1, num_modalities, hidden.shape[-1]))
        # Softmax over the modalities, in float32 so mixed precision cannot overflow it.
        gates = ops.cast(ops.softmax(ops.cast(gate_logits, "float32"), axis=1), hidden.dtype)
        return ops.sum(gates * hidden, axis=1)

    def compute_output_shape(self, input_shape):
        shapes = modality_list(input_shape, type(self).__name__)
        return (*shapes[0][:-1], self._units(shapes))

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"output_dim": self.output_dim})
        return config
