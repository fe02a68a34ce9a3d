import keras
import numpy as np
import pytest
import tensorflow as tf

from xmodal_keras.training.learning_rate_range_test import learning_rate_range_test


def _regression(batch_size=8):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 4)).astype("float32")
    y = x @ np.arange(1, 5, dtype="float32")[:, None]
    return x, y, tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size).repeat()


def _model():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])


def test_records_each_batch_loss_on_an_exponential_ramp():
    x, y, data = _regression()
    model = _model()
    first_batch_loss = float(np.mean((model(x[:8]).numpy() - y[:8]) ** 2))
    result = learning_rate_range_test(
        model, data, loss=keras.losses.MeanSquaredError(), num_steps=40, max_learning_rate=1.0
    )
    assert result.losses[0] == pytest.approx(first_batch_loss, rel=1e-4)
    np.testing.assert_allclose(result.learning_rates[[0, 39]], [1e-5, 1.0], rtol=1e-6)
    ratios = result.learning_rates[1:] / result.learning_rates[:-1]
    np.testing.assert_allclose(ratios, ratios[0], rtol=1e-6)
    # Per-batch losses, not the running mean: with a growing rate the loss ends far lower.
    assert result.losses[-1] < 0.2 * result.losses[0]
    best = int(np.argmin(result.smoothed_losses))
    assert result.suggested_learning_rate == pytest.approx(result.learning_rates[best] / 10)
    assert not result.stopped_early


def test_stops_when_the_loss_diverges():
    _, _, data = _regression()
    result = learning_rate_range_test(
        _model(),
        data,
        loss=keras.losses.MeanSquaredError(),
        num_steps=80,
        min_learning_rate=1e-3,
        max_learning_rate=1e3,
        clipnorm=None,
    )
    assert result.stopped_early and len(result.losses) < 80
    assert result.suggested_learning_rate < result.learning_rates[-1] / 10
    assert "| step | learning rate |" in result.table()


def test_bad_arguments():
    _, _, data = _regression()
    with pytest.raises(ValueError, match="min_learning_rate < max_learning_rate"):
        learning_rate_range_test(
            _model(),
            data,
            loss=keras.losses.MeanSquaredError(),
            min_learning_rate=1.0,
            max_learning_rate=0.1,
        )
    with pytest.raises(ValueError, match="num_steps"):
        learning_rate_range_test(_model(), data, loss=keras.losses.MeanSquaredError(), num_steps=0)
