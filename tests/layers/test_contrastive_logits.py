import math

import keras
import numpy as np
import pytest
from helpers import run_layer_test

from xmodal_keras.layers.contrastive_logits import ContrastiveLogits

RNG = np.random.default_rng(0)
A = RNG.normal(size=(3, 4)).astype("float32")
B = RNG.normal(size=(3, 4)).astype("float32")


def test_layer_contract():
    run_layer_test(
        ContrastiveLogits,
        init_kwargs={"initial_temperature": 0.1, "max_logit_scale": 50.0, "name": "logits"},
        input_data={"a": A, "b": B},
        expected_output_shape=(3, 3),
        expected_num_trainable_weights=1,
        atol=1e-5,
    )


def test_scaled_dot_products_and_clipping():
    layer = ContrastiveLogits(initial_temperature=0.07)
    np.testing.assert_allclose(layer(A, B), (A @ B.T) / 0.07, rtol=1e-5)
    assert layer.temperature == pytest.approx(0.07)
    layer.logit_scale.assign(math.log(1000.0))  # beyond max_logit_scale=100
    np.testing.assert_allclose(layer(A, B), 100.0 * (A @ B.T), rtol=1e-5)
    layer.logit_scale.assign(-3.0)  # temperature > 1 is clipped to 1
    np.testing.assert_allclose(layer(A, B), A @ B.T, rtol=1e-5)


def test_frozen_temperature_and_float32_logits():
    layer = ContrastiveLogits(trainable_temperature=False, dtype="mixed_float16")
    out = layer(A.astype("float16"), B.astype("float16"))
    assert out.dtype == "float32"
    assert not layer.trainable_weights and len(layer.non_trainable_weights) == 1


def test_temperature_learns_with_fit():
    a = keras.Input((4,), name="a")
    b = keras.Input((4,), name="b")
    model = keras.Model([a, b], ContrastiveLogits(initial_temperature=1.0, name="logits")(a, b))
    from xmodal_keras.losses.info_nce_loss import InfoNCELoss

    model.compile(optimizer=keras.optimizers.SGD(0.5), loss=InfoNCELoss())
    eye = np.eye(4, dtype="float32")
    model.fit([eye, eye], np.arange(4), epochs=2, verbose=0)
    # Matching pairs are perfectly aligned: the loss falls by sharpening (temperature down).
    assert model.get_layer("logits").temperature < 1.0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"initial_temperature": 0.0}, "initial_temperature=0.0"),
        ({"max_logit_scale": 0.5}, "max_logit_scale=0.5"),
        ({"trainable_temperature": "yes"}, "trainable_temperature='yes'"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=f"Received: {match}"):
        ContrastiveLogits(**kwargs)


def test_mismatched_dims():
    with pytest.raises(ValueError, match="same last dimension"):
        ContrastiveLogits()(A, B[:, :3])
