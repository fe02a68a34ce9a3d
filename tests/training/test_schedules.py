import math

import keras
import numpy as np
import pytest

from xmodal_keras.training import make_learning_rate_schedule


def formula(step, *, peak, total, warmup, alpha, initial=0.0):
    if step < warmup:
        return initial + (peak - initial) * step / warmup
    progress = (min(step, total) - warmup) / (total - warmup)
    return peak * ((1 - alpha) * 0.5 * (1 + math.cos(math.pi * progress)) + alpha)


@pytest.mark.parametrize(
    ("warmup", "alpha", "initial"), [(10, 0.1, 0.0), (0, 0.0, 0.0), (7, 0.5, 1e-4)]
)
def test_values_follow_warmup_cosine_formula(warmup, alpha, initial):
    kwargs = {"peak_learning_rate": 2e-3, "total_steps": 50, "warmup_steps": warmup}
    schedule = make_learning_rate_schedule(**kwargs, alpha=alpha, initial_learning_rate=initial)
    steps = list(range(0, 60, 3)) + [warmup, 50, 1000]
    actual = [float(schedule(s)) for s in steps]
    expected = [
        formula(s, peak=2e-3, total=50, warmup=warmup, alpha=alpha, initial=initial) for s in steps
    ]
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-9)
    assert max(actual) == pytest.approx(2e-3)
    assert actual[-1] == pytest.approx(alpha * 2e-3, abs=1e-9)


def test_config_round_trip_and_optimizer_saving(tmp_path):
    schedule = make_learning_rate_schedule(
        peak_learning_rate=1e-3, total_steps=100, warmup_steps=10, alpha=0.1
    )
    revived = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert revived.get_config() == schedule.get_config()
    assert [float(revived(s)) for s in (0, 5, 40)] == [float(schedule(s)) for s in (0, 5, 40)]

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=schedule), loss="mse")
    model.fit(np.ones((4, 2)), np.ones((4, 1)), epochs=1, batch_size=2, verbose=0)
    model.save(tmp_path / "m.keras")
    restored = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    restored_schedule = restored.optimizer.get_config()["learning_rate"]
    assert restored_schedule["class_name"] == "CosineDecay"
    assert restored_schedule["config"] == schedule.get_config()
    assert int(restored.optimizer.iterations) == 2
    assert float(restored.optimizer.learning_rate) == pytest.approx(float(schedule(2)))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"peak_learning_rate": 0.0}, r"Received: peak_learning_rate=0.0"),
        ({"total_steps": 10, "warmup_steps": 10}, r"Received: total_steps=10, warmup_steps=10"),
        ({"total_steps": 2.5}, r"Received: total_steps=2.5"),
        ({"warmup_steps": -1}, r"Received: warmup_steps=-1"),
        ({"alpha": 1.5}, r"Received: alpha=1.5"),
        ({"initial_learning_rate": -1.0}, r"Received: initial_learning_rate=-1.0"),
    ],
)
def test_bad_arguments(kwargs, message):
    kwargs = {"peak_learning_rate": 1e-3, "total_steps": 100, **kwargs}
    with pytest.raises(ValueError, match=message):
        make_learning_rate_schedule(**kwargs)


@pytest.mark.parametrize("total_steps", [0, -3, True, 2.5])
def test_adamw_optimizer_refuses_a_bad_step_count(total_steps):
    # The one check every compile helper (captioner, dual encoder, multi-task, fusion) gets.
    from xmodal_keras.training.schedules import make_adamw_optimizer

    with pytest.raises(
        ValueError,
        match=rf"`total_steps` must be a positive int\. Received: total_steps={total_steps!r}",
    ):
        make_adamw_optimizer(
            learning_rate=1e-3,
            total_steps=total_steps,
            warmup_steps=None,
            weight_decay=1e-4,
            clipnorm=1.0,
        )
