import keras
import numpy as np
import pytest
from helpers import run_layer_test

from xmodal_keras.layers import BackbonePreprocessing

IMAGES = np.random.default_rng(0).integers(0, 256, size=(2, 4, 5, 3)).astype("uint8")


@pytest.mark.parametrize("mode", ["caffe", "tf", "torch"])
def test_matches_keras_applications_preprocess_input(mode):
    expected = keras.applications.imagenet_utils.preprocess_input(
        IMAGES.astype("float32"), mode=mode
    )
    actual = BackbonePreprocessing(mode=mode)(IMAGES)
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-4)


def test_layer_contract():
    run_layer_test(
        BackbonePreprocessing,
        init_kwargs={"mode": "caffe"},
        input_data=IMAGES.astype("float32"),
        expected_output_shape=(2, 4, 5, 3),
        expected_num_trainable_weights=0,
    )


def test_bad_mode():
    with pytest.raises(ValueError, match=r"Received: mode='bgr'"):
        BackbonePreprocessing(mode="bgr")
