import math

import numpy as np
import pytest
from helpers import run_layer_test

from xmodal_keras.layers.projection_head import ProjectionHead

X = np.random.default_rng(0).normal(size=(2, 3, 5)).astype("float32")


def test_layer_contract():
    run_layer_test(
        ProjectionHead,
        init_kwargs={"projection_dim": 4, "dropout": 0.1, "name": "head"},
        input_data=X,
        expected_output_shape=(2, 3, 4),
        expected_num_trainable_weights=6,  # 2 dense kernels + biases, LayerNorm gamma + beta
    )


def test_matches_numpy_formula():
    head = ProjectionHead(projection_dim=4)
    out = np.asarray(head(X[:, 0]))
    w1, b1 = (v.numpy() for v in head.projection_dense.weights)
    w2, b2 = (v.numpy() for v in head.hidden_dense.weights)
    gamma, beta = (v.numpy() for v in head.layer_norm.weights)
    p = X[:, 0] @ w1 + b1
    erf = np.vectorize(math.erf)
    gelu = 0.5 * p * (1 + erf(p / np.sqrt(2)))
    y = p + gelu @ w2 + b2
    y = (y - y.mean(-1, keepdims=True)) / np.sqrt(y.var(-1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(out, y * gamma + beta, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"projection_dim": 0}, "projection_dim=0"),
        ({"projection_dim": 4, "dropout": 1.0}, "dropout=1.0"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=f"Received: {match}"):
        ProjectionHead(**kwargs)
