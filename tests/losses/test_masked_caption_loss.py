import keras
import numpy as np
import pytest

from xmodal_keras.losses import MaskedCaptionLoss

RNG = np.random.default_rng(0)
Y_TRUE = np.array([[5, 2, 7, 3, 0, 0], [4, 4, 3, 0, 0, 0]], "int32")
LOGITS = RNG.normal(size=(2, 6, 9)).astype("float32")


def numpy_loss(y_true, logits, label_smoothing=0.0, weights=None):
    log_probs = logits - logits.max(-1, keepdims=True)
    log_probs -= np.log(np.exp(log_probs).sum(-1, keepdims=True))
    num_classes = logits.shape[-1]
    target = np.eye(num_classes)[y_true] * (1 - label_smoothing) + label_smoothing / num_classes
    token_loss = -(target * log_probs).sum(-1)
    mask = (y_true != 0).astype("float64")
    if weights is not None:
        mask = mask * (weights[:, None] if weights.ndim == 1 else weights)
    return (token_loss * mask).sum() / mask.sum()


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_matches_numpy_reference(label_smoothing):
    loss = MaskedCaptionLoss(label_smoothing=label_smoothing)
    expected = numpy_loss(Y_TRUE, LOGITS, label_smoothing)
    np.testing.assert_allclose(float(loss(Y_TRUE, LOGITS)), expected, rtol=1e-5)


def test_without_smoothing_matches_keras_on_non_pad_tokens():
    keep = Y_TRUE != 0
    expected = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(
        Y_TRUE[keep], LOGITS[keep]
    )
    np.testing.assert_allclose(float(MaskedCaptionLoss()(Y_TRUE, LOGITS)), float(expected), 1e-5)


def test_pad_positions_do_not_change_the_loss():
    loss = MaskedCaptionLoss(label_smoothing=0.1)
    changed = LOGITS.copy()
    changed[Y_TRUE == 0] = RNG.normal(size=changed[Y_TRUE == 0].shape) * 100
    assert float(loss(Y_TRUE, changed)) == pytest.approx(float(loss(Y_TRUE, LOGITS)), rel=1e-6)
    # Extra padding columns do not change it either (mean over non-pad tokens).
    padded_true = np.pad(Y_TRUE, ((0, 0), (0, 4)))
    padded_logits = np.concatenate([LOGITS, RNG.normal(size=(2, 4, 9)).astype("float32")], 1)
    assert float(loss(padded_true, padded_logits)) == pytest.approx(
        float(loss(Y_TRUE, LOGITS)), rel=1e-6
    )


def test_all_padding_gives_zero():
    assert float(MaskedCaptionLoss()(np.zeros((2, 3), "int32"), LOGITS[:, :3])) == 0.0


@pytest.mark.parametrize("weights", [np.array([1.0, 3.0]), RNG.uniform(size=(2, 6))])
def test_sample_weight(weights):
    loss = MaskedCaptionLoss()
    expected = numpy_loss(Y_TRUE, LOGITS, weights=weights)
    np.testing.assert_allclose(float(loss(Y_TRUE, LOGITS, sample_weight=weights)), expected, 1e-5)


def test_float16_logits_computed_in_float32():
    value = MaskedCaptionLoss()(Y_TRUE, LOGITS.astype("float16"))
    assert value.dtype == "float32"
    np.testing.assert_allclose(float(value), numpy_loss(Y_TRUE, LOGITS), rtol=1e-3)


def test_config_round_trip_and_registration():
    loss = MaskedCaptionLoss(label_smoothing=0.2, pad_id=0, name="caption_loss")
    config = keras.losses.serialize(loss)
    assert config["registered_name"] == "xmodal_keras>MaskedCaptionLoss"
    revived = keras.losses.deserialize(config)
    assert isinstance(revived, MaskedCaptionLoss)
    assert revived.get_config() == loss.get_config()
    assert revived.label_smoothing == 0.2


def test_compiled_model_trains_and_reloads(tmp_path):
    inputs = keras.Input(shape=(6,), dtype="int32")
    logits = keras.layers.Dense(9)(keras.layers.Embedding(9, 4)(inputs))
    model = keras.Model(inputs, logits)
    model.compile(optimizer="sgd", loss=MaskedCaptionLoss(label_smoothing=0.1))
    history = model.fit(Y_TRUE, Y_TRUE, epochs=2, batch_size=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    model.save(tmp_path / "m.keras")
    restored = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert isinstance(restored.loss, MaskedCaptionLoss)
    assert restored.loss.label_smoothing == 0.1
    np.testing.assert_allclose(
        restored.evaluate(Y_TRUE, Y_TRUE, verbose=0),
        model.evaluate(Y_TRUE, Y_TRUE, verbose=0),
        rtol=1e-6,
    )


@pytest.mark.parametrize("label_smoothing", [-0.1, 1.0])
def test_bad_label_smoothing(label_smoothing):
    with pytest.raises(ValueError, match=rf"Received: label_smoothing={label_smoothing}"):
        MaskedCaptionLoss(label_smoothing=label_smoothing)
