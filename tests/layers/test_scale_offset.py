import keras
import numpy as np
import pytest
from helpers import run_layer_test

from xmodal_keras.layers import ScaleOffset
from xmodal_keras.training.precision import dtype_policy

IMAGES = np.random.default_rng(0).integers(0, 256, size=(2, 4, 5, 3)).astype("uint8")


def test_per_channel_and_global_factors():
    out = ScaleOffset(scale=[1.0, 0.5, 0.25], offset=-1.0)(IMAGES)
    expected = IMAGES.astype("float32") * np.array([1.0, 0.5, 0.25], "float32") - 1.0
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    np.testing.assert_array_equal(ScaleOffset()(IMAGES), IMAGES.astype("float32"))


def test_mixed_precision_returns_compute_dtype():
    with dtype_policy("mixed_bfloat16"):
        layer = ScaleOffset(scale=1 / 255)
    assert keras.backend.standardize_dtype(layer(IMAGES).dtype) == "bfloat16"


def test_layer_contract():
    run_layer_test(
        ScaleOffset,
        init_kwargs={"scale": [0.1, 0.2, 0.3], "offset": [-1.0, 0.0, 1.0]},
        input_data=IMAGES.astype("float32"),
        expected_output_shape=(2, 4, 5, 3),
        expected_num_trainable_weights=0,
    )


@pytest.mark.parametrize("bad", [{"scale": "1/255"}, {"offset": []}, {"scale": [1, True]}])
def test_bad_factors(bad):
    with pytest.raises(ValueError, match="Received: (scale|offset)="):
        ScaleOffset(**bad)
