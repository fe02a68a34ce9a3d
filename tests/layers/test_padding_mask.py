import numpy as np
import pytest
from helpers import run_layer_test

from xmodal_keras.layers.padding_mask import PaddingMask

IDS = np.array([[2, 5, 3, 0], [2, 3, 0, 0]], "int32")


def test_layer_contract():
    run_layer_test(
        PaddingMask,
        init_kwargs={"pad_id": 0, "name": "mask"},
        input_data=IDS,
        expected_output_shape=(2, 4),
        expected_num_trainable_weights=0,
    )


def test_values():
    np.testing.assert_array_equal(PaddingMask()(IDS), IDS != 0)
    np.testing.assert_array_equal(PaddingMask(pad_id=3)(IDS), IDS != 3)


def test_bad_pad_id():
    with pytest.raises(ValueError, match=r"Received: pad_id='0'"):
        PaddingMask(pad_id="0")
