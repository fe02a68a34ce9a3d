"""`DiscriminativeAdamW`: the towers step at their own rate, stand still (no decay either)
for the first steps, and the optimizer saves and loads with the model in safe mode."""

import keras
import numpy as np
import pytest

from xmodal_keras.training.discriminative_adamw import DiscriminativeAdamW
from xmodal_keras.training.tower_fine_tuning import tower_variable_paths

FEATURES = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
TARGETS = np.ones((8, 1), "float32")


def tower_and_head(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((3,))
    hidden = keras.layers.Dense(4, name="tower")(inputs)
    return keras.Model(inputs, keras.layers.Dense(1, name="head")(hidden), name="model")


def weights(model: keras.Model, layer: str) -> list[np.ndarray]:
    return [w.copy() for w in model.get_layer(layer).get_weights()]


def fit(model: keras.Model, steps: int) -> None:
    model.fit(FEATURES, TARGETS, batch_size=len(FEATURES) // steps, epochs=1, verbose=0)


def one_step_changes(make_optimizer) -> dict[str, list[np.ndarray]]:
    model = tower_and_head()
    before = {layer: weights(model, layer) for layer in ("tower", "head")}
    model.compile(optimizer=make_optimizer(model), loss="mse")
    fit(model, steps=1)
    return {
        layer: [
            after - start for after, start in zip(weights(model, layer), before[layer], strict=True)
        ]
        for layer in before
    }


def test_the_towers_step_at_their_scale_of_the_rate_weight_decay_included():
    def plain(model):
        return keras.optimizers.AdamW(learning_rate=0.01, weight_decay=0.5)

    def scaled(model):
        return DiscriminativeAdamW(
            learning_rate=0.01,
            weight_decay=0.5,
            tower_variable_paths=tower_variable_paths(model, ["tower"]),
            tower_learning_rate_scale=0.1,
        )

    expected, got = one_step_changes(plain), one_step_changes(scaled)
    for reference, change in zip(expected["head"], got["head"], strict=True):
        np.testing.assert_allclose(change, reference, rtol=1e-5, atol=1e-9)
    for reference, change in zip(expected["tower"], got["tower"], strict=True):
        assert np.abs(reference).max() > 1e-3
        np.testing.assert_allclose(change, 0.1 * reference, rtol=1e-4, atol=1e-9)


def test_frozen_towers_stand_still_for_the_first_steps_then_train():
    model = tower_and_head()
    optimizer = DiscriminativeAdamW(
        learning_rate=0.01,
        weight_decay=0.5,
        tower_variable_paths=tower_variable_paths(model, ["tower"]),
        tower_frozen_steps=2,
    )
    model.compile(optimizer=optimizer, loss="mse")
    tower, head = weights(model, "tower"), weights(model, "head")
    fit(model, steps=2)
    assert all(np.array_equal(a, b) for a, b in zip(tower, weights(model, "tower"), strict=True))
    assert not np.allclose(head[0], weights(model, "head")[0])
    fit(model, steps=1)
    assert not np.allclose(tower[0], weights(model, "tower")[0])


def test_the_frozen_phase_follows_the_restored_step_count():
    """A resumed run (its optimizer's `iterations` restored) is past the frozen steps."""
    model = tower_and_head()
    optimizer = DiscriminativeAdamW(
        learning_rate=0.01,
        tower_variable_paths=tower_variable_paths(model, ["tower"]),
        tower_frozen_steps=2,
    )
    model.compile(optimizer=optimizer, loss="mse")
    optimizer.build(model.trainable_variables)
    optimizer.iterations.assign(2)
    tower = weights(model, "tower")
    fit(model, steps=1)
    assert not np.allclose(tower[0], weights(model, "tower")[0])


def test_saved_with_the_model_and_loaded_in_safe_mode(tmp_path):
    model = tower_and_head()
    paths = tower_variable_paths(model, ["tower"])
    schedule = keras.optimizers.schedules.CosineDecay(0.01, decay_steps=10)
    optimizer = DiscriminativeAdamW(
        learning_rate=schedule,
        tower_variable_paths=paths,
        tower_learning_rate_scale=0.25,
        tower_frozen_steps=3,
    )
    model.compile(optimizer=optimizer, loss="mse")
    fit(model, steps=1)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    assert type(loaded.optimizer) is DiscriminativeAdamW
    assert loaded.optimizer.tower_variable_paths == tuple(paths)
    assert loaded.optimizer.tower_learning_rate_scale == 0.25
    assert loaded.optimizer.tower_frozen_steps == 3
    assert int(loaded.optimizer.iterations) == 1
    tower = weights(loaded, "tower")
    fit(loaded, steps=1)  # step 2 of 3 frozen: the loaded optimizer still freezes
    assert all(np.array_equal(a, b) for a, b in zip(tower, weights(loaded, "tower"), strict=True))


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"tower_learning_rate_scale": 0.0}, "tower_learning_rate_scale` must be a number > 0"),
        ({"tower_learning_rate_scale": True}, "tower_learning_rate_scale` must be a number > 0"),
        ({"tower_frozen_steps": -1}, "tower_frozen_steps` must be an int >= 0"),
        ({"tower_frozen_steps": 1.5}, "tower_frozen_steps` must be an int >= 0"),
        ({"tower_variable_paths": "tower/kernel"}, "sequence of variable paths"),
    ],
)
def test_bad_arguments_are_refused(arguments, message):
    with pytest.raises(ValueError, match=message):
        DiscriminativeAdamW(learning_rate=0.01, **arguments)


def test_paths_that_name_no_variable_of_the_model_are_refused():
    model = tower_and_head()
    model.compile(
        optimizer=DiscriminativeAdamW(tower_variable_paths=["renamed/kernel"]), loss="mse"
    )
    with pytest.raises(ValueError, match="'renamed/kernel'"):
        fit(model, steps=1)
