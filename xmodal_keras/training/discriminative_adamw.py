"""`DiscriminativeAdamW`: AdamW whose pretrained towers learn slower, and not at all at first.

Fine-tuning a pretrained tower under a fresh head is usually done with two knobs
(ULMFiT's discriminative learning rates, and the "train the head first" warm-up of most
transfer-learning guides): the tower trains at a fraction of the head's learning rate,
and for the first steps not at all, so that the random head's first gradients do not
undo what the tower learned. Keras 3 has no per-variable learning rate (TF-Addons'
`MultiOptimizer` was Keras 2 only), so this optimizer scales the rate per variable in
`update_step`: one optimizer, one schedule, one set of slots, saved and restored by
`BackupAndRestore` like plain AdamW.

The frozen phase is a function of the optimizer's step count, not a callback that flips
`trainable` (which would need a recompile): a resumed run is frozen exactly as long as an
uninterrupted one. Its towers still get gradients then (Adam's moments warm up on them);
only their updates and their weight decay are zero.
"""

from collections.abc import Sequence

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="xmodal_keras")
class DiscriminativeAdamW(keras.optimizers.AdamW):
    """AdamW that scales the learning rate of the variables named in `tower_variable_paths`.

    Args:
        tower_variable_paths: `Variable.path`s of the pretrained towers' variables
            (`tower_fine_tuning.tower_variable_paths` lists them).
        tower_learning_rate_scale: the towers' learning rate as a fraction of the
            schedule's (> 0). Defaults to 1.
        tower_frozen_steps: optimizer steps at the start where the towers do not move
            (>= 0). Defaults to 0.
        **kwargs: `keras.optimizers.AdamW`'s arguments.

    Weight decay scales with each variable's own rate, as AdamW's decoupled decay does.

    Example:

    >>> import numpy as np
    >>> from xmodal_keras.training.tower_fine_tuning import tower_variable_paths
    >>> inputs = keras.Input((2,))
    >>> model = keras.Sequential([inputs, keras.layers.Dense(2, name="tower"),
    ...     keras.layers.Dense(1, name="head")])
    >>> optimizer = DiscriminativeAdamW(learning_rate=0.1,
    ...     tower_variable_paths=tower_variable_paths(model, ["tower"]),
    ...     tower_frozen_steps=1)
    >>> model.compile(optimizer=optimizer, loss="mse")
    >>> before = model.get_layer("tower").get_weights()[0].copy()
    >>> _ = model.fit(np.ones((4, 2)), np.ones((4, 1)), batch_size=4, verbose=0)
    >>> bool(np.array_equal(before, model.get_layer("tower").get_weights()[0]))
    True
    """

    def __init__(
        self,
        *,
        tower_variable_paths: Sequence[str] = (),
        tower_learning_rate_scale: float = 1.0,
        tower_frozen_steps: int = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(tower_variable_paths, str) or not all(
            isinstance(path, str) for path in tower_variable_paths
        ):
            raise ValueError(
                "`tower_variable_paths` must be a sequence of variable paths (str). "
                f"Received: tower_variable_paths={tower_variable_paths!r}"
            )
        if isinstance(tower_learning_rate_scale, bool) or not tower_learning_rate_scale > 0:
            raise ValueError(
                "`tower_learning_rate_scale` must be a number > 0. "
                f"Received: tower_learning_rate_scale={tower_learning_rate_scale!r}"
            )
        if (
            isinstance(tower_frozen_steps, bool)
            or not isinstance(tower_frozen_steps, int)
            or tower_frozen_steps < 0
        ):
            raise ValueError(
                "`tower_frozen_steps` must be an int >= 0. "
                f"Received: tower_frozen_steps={tower_frozen_steps!r}"
            )
        self.tower_variable_paths = tuple(tower_variable_paths)
        self.tower_learning_rate_scale = float(tower_learning_rate_scale)
        self.tower_frozen_steps = tower_frozen_steps
        self._tower_indices: frozenset[int] = frozenset()

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        wanted = set(self.tower_variable_paths)
        self._tower_indices = frozenset(
            self._get_variable_index(variable) for variable in variables if variable.path in wanted
        )
        found = {variable.path for variable in variables} & wanted
        if wanted and not found:
            raise ValueError(
                "None of `tower_variable_paths` is a trainable variable of the model "
                f"(first: {self.tower_variable_paths[0]!r}); the model's start with "
                f"{[variable.path for variable in variables[:3]]}."
            )

    def _tower_scale(self, dtype):
        scale = ops.cast(self.tower_learning_rate_scale, dtype)
        if not self.tower_frozen_steps:
            return scale
        return ops.where(self.iterations < self.tower_frozen_steps, ops.zeros_like(scale), scale)

    def _apply_weight_decay(self, variables):
        # Folded into `update_step`, where each variable's own rate is known: a frozen
        # tower must not shrink.
        return

    def update_step(self, gradient, variable, learning_rate):
        learning_rate = ops.cast(learning_rate, variable.dtype)
        if self._get_variable_index(variable) in self._tower_indices:
            learning_rate = learning_rate * self._tower_scale(variable.dtype)
        if self.weight_decay is not None and self._use_weight_decay(variable):
            decay = ops.cast(self.weight_decay, variable.dtype)
            variable.assign(variable - variable * decay * learning_rate)
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        config = super().get_config()
        config.update(
            tower_variable_paths=list(self.tower_variable_paths),
            tower_learning_rate_scale=self.tower_learning_rate_scale,
            tower_frozen_steps=self.tower_frozen_steps,
        )
        return config
