import keras
import numpy as np
import pytest
from helpers import run_layer_test

from xmodal_keras.layers import AdditiveVisualAttention

RNG = np.random.default_rng(0)
FEATURES = RNG.normal(size=(2, 6, 4)).astype("float32")
HIDDEN = RNG.normal(size=(2, 5)).astype("float32")


def test_layer_contract():
    run_layer_test(
        AdditiveVisualAttention,
        init_kwargs={"hidden_dim": 8, "name": "attention"},
        input_data={"features": FEATURES, "hidden": HIDDEN},
        expected_output_shape=((2, 4), (2, 6)),
        expected_num_trainable_weights=4,  # W_f kernel + bias, W_h kernel, v kernel
    )


def _numpy_attention(layer, features, hidden, mask=None):
    wf, bf = (w.numpy() for w in layer.features_dense.weights)
    (wh,) = (w.numpy() for w in layer.hidden_dense.weights)
    (v,) = (w.numpy() for w in layer.score_dense.weights)
    scores = (np.tanh(features @ wf + bf + (hidden @ wh)[:, None, :]) @ v)[..., 0]
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    return (weights[..., None] * features).sum(1), weights


def test_matches_numpy_bahdanau_formula():
    layer = AdditiveVisualAttention(hidden_dim=3)
    context, weights = layer(FEATURES, HIDDEN)
    expected_context, expected_weights = _numpy_attention(layer, FEATURES, HIDDEN)
    np.testing.assert_allclose(weights, expected_weights, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(context, expected_context, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.sum(weights, axis=-1), 1.0, rtol=1e-6)


def test_features_mask_gives_zero_weight():
    mask = np.array([[1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 0]], bool)
    layer = AdditiveVisualAttention(hidden_dim=3)
    context, weights = layer(FEATURES, HIDDEN, features_mask=mask)
    expected_context, expected_weights = _numpy_attention(layer, FEATURES, HIDDEN, mask)
    assert np.all(np.asarray(weights)[~mask] == 0.0)
    np.testing.assert_allclose(weights, expected_weights, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(context, expected_context, rtol=1e-5, atol=1e-6)


def test_mixed_precision_outputs_compute_dtype():
    layer = AdditiveVisualAttention(hidden_dim=3, dtype="mixed_float16")
    context, weights = layer(FEATURES.astype("float16"), HIDDEN.astype("float16"))
    assert layer.features_dense.dtype_policy.name == "mixed_float16"
    assert context.dtype == "float16" and weights.dtype == "float16"
    assert layer.features_dense.kernel.dtype == "float32"


@pytest.mark.parametrize("hidden_dim", [0, -1, 2.5, None])
def test_bad_hidden_dim(hidden_dim):
    with pytest.raises(ValueError, match=r"Received: hidden_dim="):
        AdditiveVisualAttention(hidden_dim=hidden_dim)


def test_sublayer_names():
    layer = AdditiveVisualAttention(hidden_dim=3)
    layer(FEATURES, HIDDEN)
    names = sorted(w.path for w in layer.weights)
    assert all(n.startswith(layer.name + "/") for n in names), names
    assert {n.split("/")[1] for n in names} == {"features_dense", "hidden_dense", "score_dense"}
    assert isinstance(layer.score_dense, keras.layers.Dense)
