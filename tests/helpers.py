"""Shared checks for tests, after KerasHub's `TestCase.run_layer_test`."""

import pathlib
import tempfile

import keras
import numpy as np
from keras import tree


def _as_numpy(structure):
    return tree.lists_to_tuples(tree.map_structure(keras.ops.convert_to_numpy, structure))


def _assert_shapes(outputs, expected_output_shape) -> None:
    shapes = tree.map_structure(lambda x: tuple(x.shape), outputs)
    expected = tree.lists_to_tuples(expected_output_shape)
    assert shapes == expected, f"output shapes {shapes} != expected {expected}"


def _call(layer, input_data):
    if isinstance(input_data, dict):
        return layer(**input_data)
    return layer(input_data)


def run_layer_test(
    layer_cls: type,
    init_kwargs: dict,
    input_data,
    expected_output_shape,
    *,
    expected_num_trainable_weights: int | None = None,
    run_saving_test: bool = True,
    atol: float = 1e-6,
) -> None:
    """Checks the layer contract of `layer_cls` (DESIGN.md §4).

    - `get_config()` round trip: `from_config(get_config())` has the same config;
    - build from input shapes: the layer is built and has the expected weights;
    - symbolic call (functional graph) and eager call, both with the expected
      output shapes;
    - the layer inside a functional model saved to `.keras` and reloaded with
      `safe_mode=True` gives identical outputs.

    Args:
        layer_cls: the layer class.
        init_kwargs: keyword arguments for the constructor.
        input_data: one array, or a dict of call keyword arguments (arrays).
        expected_output_shape: a shape tuple, or a structure of them matching
            the outputs (tuple / dict).
        expected_num_trainable_weights: when given, checked after building.
        run_saving_test: set `False` to skip the `.keras` round trip.
        atol: tolerance of the reload comparison.
    """
    # Config round trip.
    layer = layer_cls(**init_kwargs)
    config = layer.get_config()
    for key in init_kwargs:
        assert key in config, f"get_config() lacks constructor argument {key!r}"
    revived = layer_cls.from_config(config)
    assert revived.get_config() == config
    registered = keras.saving.get_registered_name(layer_cls)
    assert keras.saving.get_registered_object(registered) is layer_cls, (
        f"{layer_cls.__name__} is not registered (use @xmodal_export)"
    )

    # Build from shapes.
    layer = layer_cls(**init_kwargs)
    shapes = tree.map_structure(lambda x: tuple(np.shape(x)), input_data)
    if isinstance(shapes, dict):
        layer.build(**{f"{k}_shape": v for k, v in shapes.items()})
    else:
        layer.build(shapes)
    assert layer.built
    if expected_num_trainable_weights is not None:
        assert len(layer.trainable_weights) == expected_num_trainable_weights

    # Symbolic call.
    layer = layer_cls(**init_kwargs)

    def to_input(x, name=None):
        return keras.Input(batch_shape=np.shape(x), dtype=np.asarray(x).dtype.name, name=name)

    if isinstance(input_data, dict):
        symbolic_inputs = {k: to_input(v, name=k) for k, v in input_data.items()}
    else:
        symbolic_inputs = to_input(input_data)
    symbolic_outputs = _call(layer, symbolic_inputs)
    _assert_shapes(symbolic_outputs, expected_output_shape)
    model = keras.Model(symbolic_inputs, symbolic_outputs)

    # Eager call.
    eager_outputs = _as_numpy(_call(layer, input_data))
    _assert_shapes(eager_outputs, expected_output_shape)
    model_outputs = _as_numpy(model(input_data))
    tree.map_structure(
        lambda a, b: np.testing.assert_allclose(a, b, atol=atol), eager_outputs, model_outputs
    )

    if run_saving_test:
        run_model_saving_test(model, input_data, atol=atol)


def run_model_saving_test(model: keras.Model, input_data, *, atol: float = 1e-6) -> keras.Model:
    """Saves `model` to `.keras`, reloads it with `safe_mode=True`, compares outputs.

    Returns the reloaded model.
    """
    expected = _as_numpy(model(input_data))
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "model.keras"
        model.save(path)
        restored = keras.saving.load_model(path, safe_mode=True)
    actual = _as_numpy(restored(input_data))
    tree.map_structure(lambda a, b: np.testing.assert_allclose(a, b, atol=atol), expected, actual)
    return restored


class Killed(RuntimeError):
    """What a kill of the training process looks like to a test."""


class KillAtEpochEnd(keras.callbacks.Callback):
    """Raise `Killed` at the end of (0-based) `epoch`, where it sits among the callbacks."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise Killed(f"killed at the end of epoch {epoch}")
