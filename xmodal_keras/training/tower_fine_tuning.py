"""How a run's pretrained towers fine-tune: the settings, their check, the optimizer's view.

Two settings, the same in every task's `config.json` (and so resumable like the others):

- `tower_learning_rate_scale`: the pretrained towers' learning rate as a fraction of
  `learning_rate` (discriminative learning rates; 0.1 is a common choice);
- `tower_frozen_epochs`: first epochs in which the towers do not train, while the fresh
  layers warm up.

A tower is pretrained when its weights come from somewhere: `weights` (keras.applications),
a `keras_hub:` image or text encoder, or `init_from`. `DiscriminativeAdamW` applies them.
"""

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

import keras

from xmodal_keras.encoders.keras_hub_presets import is_keras_hub_preset
from xmodal_keras.runs.settings_flags import setting

TOWER_LEARNING_RATE_SCALE_HELP = (
    "learning rate of the pretrained towers as a fraction of --learning-rate, e.g. 0.1 "
    "(discriminative fine-tuning)"
)
TOWER_FROZEN_EPOCHS_HELP = (
    "first epochs in which the pretrained towers do not train, while the new layers warm up"
)


def tower_learning_rate_scale_setting() -> Any:
    """The `tower_learning_rate_scale` settings field (default 1: one learning rate)."""
    return setting(1.0, TOWER_LEARNING_RATE_SCALE_HELP)


def tower_frozen_epochs_setting() -> Any:
    """The `tower_frozen_epochs` settings field (default 0)."""
    return setting(0, TOWER_FROZEN_EPOCHS_HELP)


def pretrained_towers(
    *, encoder: str | None, weights: str | None, text_encoder: str | None = None
) -> tuple[str, ...]:
    """Names of the tower layers (`"image_encoder"`, `"text_encoder"`) whose weights are
    loaded: `weights` or a `keras_hub:` preset for the image, a preset for the text.

    Example:

    >>> pretrained_towers(encoder="resnet50", weights="imagenet", text_encoder="bigru")
    ('image_encoder',)
    """
    towers = []
    if encoder is not None and (weights is not None or is_keras_hub_preset(encoder)):
        towers.append("image_encoder")
    if text_encoder is not None and is_keras_hub_preset(text_encoder):
        towers.append("text_encoder")
    return tuple(towers)


def check_tower_fine_tuning(
    learning_rate_scale: float,
    frozen_epochs: int,
    *,
    epochs: int,
    pretrained_towers: Sequence[str],
) -> None:
    """Raise `ValueError` for bad values, or for values that would act on no tower.

    Example:

    >>> check_tower_fine_tuning(0.1, 1, epochs=3, pretrained_towers=("image_encoder",))
    >>> check_tower_fine_tuning(0.1, 0, epochs=3, pretrained_towers=())
    Traceback (most recent call last):
    ...
    ValueError: `tower_learning_rate_scale` and `tower_frozen_epochs` act on pretrained towers...
    """
    if isinstance(learning_rate_scale, bool) or not isinstance(learning_rate_scale, int | float):
        raise ValueError(
            "`tower_learning_rate_scale` must be a number > 0. "
            f"Received: tower_learning_rate_scale={learning_rate_scale!r}"
        )
    if not learning_rate_scale > 0:
        raise ValueError(
            "`tower_learning_rate_scale` must be > 0 (freeze a tower with `trainable_blocks` "
            "or `text_trainable_layers` 0). "
            f"Received: tower_learning_rate_scale={learning_rate_scale!r}"
        )
    if isinstance(frozen_epochs, bool) or not isinstance(frozen_epochs, int) or frozen_epochs < 0:
        raise ValueError(
            "`tower_frozen_epochs` must be an int >= 0. "
            f"Received: tower_frozen_epochs={frozen_epochs!r}"
        )
    if frozen_epochs and frozen_epochs >= epochs:
        raise ValueError(
            "`tower_frozen_epochs` must be less than `epochs` (else the towers never train). "
            f"Received: tower_frozen_epochs={frozen_epochs}, epochs={epochs}"
        )
    if (learning_rate_scale != 1 or frozen_epochs) and not pretrained_towers:
        raise ValueError(
            "`tower_learning_rate_scale` and `tower_frozen_epochs` act on pretrained towers, "
            "and this run has none: give the image encoder `weights`, use a keras_hub: image "
            "or text encoder, or start from a run (`init_from`). Received: "
            f"tower_learning_rate_scale={learning_rate_scale}, tower_frozen_epochs={frozen_epochs}"
        )


@dataclasses.dataclass(frozen=True)
class TowerFineTuning:
    """The pretrained towers (layer names) and how they train, for `compile_*` helpers.

    Example:

    >>> towers = TowerFineTuning(("tower",), learning_rate_scale=0.1)
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, name="tower")],
    ...     name="model")
    >>> towers.optimizer_arguments(model)["tower_variable_paths"]
    ['model/tower/kernel', 'model/tower/bias']
    """

    layer_names: tuple[str, ...] = ()
    learning_rate_scale: float = 1.0
    frozen_steps: int = 0

    @classmethod
    def from_settings(
        cls, settings, steps_per_epoch: int, model: keras.Model | None = None
    ) -> "TowerFineTuning":
        """The towers of run `settings` (`pretrained_towers`, `tower_learning_rate_scale`,
        `tower_frozen_epochs`); with `model`, only those it has (a fusion model started
        from a captioner reads text with `captioner_text_reader`, not `text_encoder`)."""
        names = tuple(settings.pretrained_towers)
        if model is not None:
            present = {layer.name for layer in _nested_layers(model)}
            names = tuple(name for name in names if name in present)
        return cls(
            layer_names=names,
            learning_rate_scale=settings.tower_learning_rate_scale,
            frozen_steps=settings.tower_frozen_epochs * steps_per_epoch,
        )

    @property
    def active(self) -> bool:
        return bool(self.layer_names) and (self.learning_rate_scale != 1 or self.frozen_steps > 0)

    def optimizer_arguments(self, model: keras.Model) -> dict:
        """`DiscriminativeAdamW`'s tower arguments for `model` (empty when not `active`).

        A `ValueError` says when the towers have nothing left to train.
        """
        if not self.active:
            return {}
        paths = tower_variable_paths(model, self.layer_names)
        if not paths:
            raise ValueError(
                f"The pretrained towers {list(self.layer_names)} have no trainable variables, so "
                "`tower_learning_rate_scale` and `tower_frozen_epochs` have nothing to act on: "
                "let some of their blocks train (`trainable_blocks`, `text_trainable_layers`)."
            )
        return {
            "tower_variable_paths": paths,
            "tower_learning_rate_scale": self.learning_rate_scale,
            "tower_frozen_steps": self.frozen_steps,
        }


def tower_variable_paths(model: keras.Model, layer_names: Iterable[str]) -> list[str]:
    """The trainable variables' paths of `model`'s layers named `layer_names`, at any depth.

    A `ValueError` names a layer that is missing, and a path that a variable outside
    those layers shares (the optimizer could not tell them apart).

    Example:

    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, name="tower")],
    ...     name="model")
    >>> tower_variable_paths(model, ["tower"])
    ['model/tower/kernel', 'model/tower/bias']
    """
    layer_names = list(layer_names)
    by_name = {layer.name: layer for layer in _nested_layers(model)}
    missing = [name for name in layer_names if name not in by_name]
    if missing:
        raise ValueError(
            f"The model {model.name!r} has no layer named {missing[0]!r} (its layers: "
            f"{[layer.name for layer in getattr(model, 'layers', [])]})."
        )
    tower = {id(v) for name in layer_names for v in by_name[name].trainable_variables}
    paths = [v.path for v in model.trainable_variables if id(v) in tower]
    shared = set(paths) & {v.path for v in model.trainable_variables if id(v) not in tower}
    if shared:
        raise ValueError(
            f"The variable path {sorted(shared)[0]!r} is both in the towers {layer_names} "
            "and outside them; rename one of the layers so that the paths are unique."
        )
    return paths


def _nested_layers(layer: keras.layers.Layer):
    for child in getattr(layer, "layers", []) or []:
        yield child
        yield from _nested_layers(child)
