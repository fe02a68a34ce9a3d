import keras
import numpy as np
import pytest

from xmodal_keras.metrics import MaskedTokenAccuracy

RNG = np.random.default_rng(0)
Y_TRUE = np.array([[5, 2, 7, 3, 0, 0], [4, 4, 3, 0, 0, 0]], "int32")


def numpy_accuracy(y_true, logits, weights=None):
    mask = (y_true != 0).astype("float64")
    if weights is not None:
        mask = mask * (weights[:, None] if weights.ndim == 1 else weights)
    return ((logits.argmax(-1) == y_true) * mask).sum() / mask.sum()


def _logits_with_hits(hits):
    """Logits whose arg-max is the true token exactly where `hits`, and at pads."""
    logits = RNG.normal(size=(*Y_TRUE.shape, 9)).astype("float32")
    wrong = (Y_TRUE + 1) % 9
    target = np.where(hits | (Y_TRUE == 0), Y_TRUE, wrong)
    np.put_along_axis(logits, target[..., None], 10.0, axis=-1)
    return logits


def test_counts_only_non_pad_positions():
    hits = np.array([[1, 0, 1, 1, 0, 0], [0, 1, 0, 0, 0, 0]], bool)
    logits = _logits_with_hits(hits)  # pads predicted "right": must not count
    metric = MaskedTokenAccuracy()
    metric.update_state(Y_TRUE, logits)
    assert float(metric.result()) == pytest.approx(4 / 7)
    assert float(metric.result()) == pytest.approx(numpy_accuracy(Y_TRUE, logits))


def test_accumulates_and_resets():
    metric = MaskedTokenAccuracy()
    batches = [RNG.normal(size=(*Y_TRUE.shape, 9)).astype("float32") for _ in range(3)]
    for logits in batches:
        metric.update_state(Y_TRUE, logits)
    expected = numpy_accuracy(np.concatenate([Y_TRUE] * 3), np.concatenate(batches))
    assert float(metric.result()) == pytest.approx(expected)
    metric.reset_state()
    assert float(metric.result()) == 0.0
    metric.update_state(Y_TRUE, batches[0])
    assert float(metric.result()) == pytest.approx(numpy_accuracy(Y_TRUE, batches[0]))


@pytest.mark.parametrize("weights", [np.array([1.0, 3.0]), RNG.uniform(size=(2, 6))])
def test_sample_weight(weights):
    logits = RNG.normal(size=(*Y_TRUE.shape, 9)).astype("float32")
    metric = MaskedTokenAccuracy()
    metric.update_state(Y_TRUE, logits, sample_weight=weights)
    assert float(metric.result()) == pytest.approx(numpy_accuracy(Y_TRUE, logits, weights))


def test_config_round_trip_and_registration():
    metric = MaskedTokenAccuracy(name="acc")
    config = keras.metrics.serialize(metric)
    assert config["registered_name"] == "xmodal_keras>MaskedTokenAccuracy"
    revived = keras.metrics.deserialize(config)
    assert isinstance(revived, MaskedTokenAccuracy)
    assert revived.get_config() == metric.get_config()


def test_in_compiled_model_and_reload(tmp_path):
    inputs = keras.Input(shape=(6,), dtype="int32")
    logits = keras.layers.Dense(9)(keras.layers.Embedding(9, 4)(inputs))
    model = keras.Model(inputs, logits)
    model.compile(
        optimizer="sgd",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[MaskedTokenAccuracy()],
    )
    result = model.evaluate(Y_TRUE, Y_TRUE, verbose=0, return_dict=True)
    predicted = model.predict(Y_TRUE, verbose=0)
    assert result["masked_token_accuracy"] == pytest.approx(numpy_accuracy(Y_TRUE, predicted))
    model.save(tmp_path / "m.keras")
    restored = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert restored.evaluate(Y_TRUE, Y_TRUE, verbose=0, return_dict=True) == pytest.approx(result)


def test_bad_pad_id():
    with pytest.raises(ValueError, match=r"Received: pad_id='0'"):
        MaskedTokenAccuracy(pad_id="0")
