import keras
import numpy as np
import pytest
from helpers import run_layer_test, run_model_saving_test

from xmodal_keras.layers.bilinear_fusion import BilinearFusion
from xmodal_keras.layers.concat_fusion import ConcatFusion
from xmodal_keras.layers.cross_attention_fusion import CrossAttentionFusion
from xmodal_keras.layers.fusion_registry import FUSION_LAYERS, FUSION_NAMES, get_fusion_layer
from xmodal_keras.layers.gated_fusion import GatedFusion
from xmodal_keras.layers.product_fusion import ProductFusion
from xmodal_keras.layers.weighted_sum_fusion import WeightedSumFusion

RNG = np.random.default_rng(0)
A = RNG.normal(size=(2, 4)).astype("float32")
B = RNG.normal(size=(2, 4)).astype("float32")
C = RNG.normal(size=(2, 4)).astype("float32")
B3 = RNG.normal(size=(2, 3)).astype("float32")


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def run_vector_fusion_test(layer_cls, init_kwargs, inputs, expected_shape, num_weights):
    """`run_layer_test` for layers called on a *list* of tensors (the helper takes one)."""
    layer = layer_cls(**init_kwargs)
    config = layer.get_config()
    assert all(key in config for key in init_kwargs)
    assert layer_cls.from_config(config).get_config() == config
    registered = keras.saving.get_registered_name(layer_cls)
    assert registered == f"xmodal_keras>{layer_cls.__name__}"
    assert keras.saving.get_registered_object(registered) is layer_cls

    built = layer_cls(**init_kwargs)
    built.build([x.shape for x in inputs])
    assert built.built and len(built.trainable_weights) == num_weights

    layer = layer_cls(**init_kwargs)
    symbolic = [keras.Input(batch_shape=x.shape, name=f"m{i}") for i, x in enumerate(inputs)]
    symbolic_out = layer(symbolic)
    assert tuple(symbolic_out.shape) == expected_shape
    model = keras.Model(symbolic, symbolic_out)
    eager = keras.ops.convert_to_numpy(layer(inputs))
    assert eager.shape == expected_shape
    np.testing.assert_allclose(eager, model(inputs), atol=1e-6)
    run_model_saving_test(model, inputs)

    # One fit step moves the layer's weights (when it has any).
    head = keras.layers.Dense(1)(symbolic_out)
    trainable = keras.Model(symbolic, head)
    trainable.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    before = [w.numpy().copy() for w in layer.trainable_weights]
    trainable.fit(inputs, np.ones((2, 1), "float32"), epochs=1, batch_size=2, verbose=0)
    for old, new in zip(before, layer.trainable_weights, strict=True):
        assert not np.allclose(old, new.numpy())


@pytest.mark.parametrize(
    "layer_cls, kwargs, inputs, shape, num_weights",
    [
        (ConcatFusion, {}, [A, B3], (2, 7), 0),
        (WeightedSumFusion, {}, [A, B, C], (2, 4), 1),
        (ProductFusion, {}, [A, B], (2, 4), 0),
        (GatedFusion, {"output_dim": 5}, [A, B3, C], (2, 5), 8),  # 3 x (W_i, b_i) + W_z, b_z
        (BilinearFusion, {"rank": 6, "output_dim": 3}, [A, B3], (2, 3), 6),
        (BilinearFusion, {"rank": 6}, [A, B3, C], (2, 6), 6),
    ],
)
def test_vector_fusion_contract(layer_cls, kwargs, inputs, shape, num_weights):
    run_vector_fusion_test(layer_cls, kwargs, inputs, shape, num_weights)


def test_concat_and_product_values_and_dict_order():
    np.testing.assert_allclose(ConcatFusion()([A, B3]), np.concatenate([A, B3], -1))
    # Dicts are read in sorted key order, whatever order they were written in.
    np.testing.assert_allclose(
        ConcatFusion()({"text": B3, "image": A}), np.concatenate([A, B3], -1)
    )
    np.testing.assert_allclose(ProductFusion()([A, B, C]), A * B * C, rtol=1e-6)


def test_weighted_sum_uses_softmax_weights():
    layer = WeightedSumFusion()
    np.testing.assert_allclose(layer([A, B]), (A + B) / 2, rtol=1e-6)  # zero init = average
    layer.modality_logits.assign(np.array([np.log(3.0), 0.0], "float32"))
    np.testing.assert_allclose(layer.modality_weights(), [0.75, 0.25], rtol=1e-6)
    np.testing.assert_allclose(layer([A, B]), 0.75 * A + 0.25 * B, rtol=1e-5, atol=1e-6)


def test_gated_fusion_is_the_bimodal_gmu_for_two_modalities():
    layer = GatedFusion(output_dim=3)
    fused = keras.ops.convert_to_numpy(layer([A, B3]))
    (w1, b1), (w2, b2) = ([w.numpy() for w in d.weights] for d in layer.modality_denses)
    wz, bz = (w.numpy() for w in layer.gate_dense.weights)
    h1, h2 = np.tanh(A @ w1 + b1), np.tanh(B3 @ w2 + b2)
    logits = (np.concatenate([A, B3], -1) @ wz + bz).reshape(2, 2, 3)
    z = _sigmoid(logits[:, 0] - logits[:, 1])  # Arevalo et al.: h = z h_v + (1 - z) h_t
    np.testing.assert_allclose(fused, z * h1 + (1 - z) * h2, rtol=1e-5, atol=1e-6)


def test_gated_fusion_mixed_precision():
    layer = GatedFusion(output_dim=3, dtype="mixed_float16")
    fused = layer([A.astype("float16"), B3.astype("float16")])
    assert fused.dtype == "float16"
    assert layer.gate_dense.kernel.dtype == "float32"


def test_bilinear_fusion_matches_mlb_formula():
    layer = BilinearFusion(rank=5, output_dim=2)
    fused = keras.ops.convert_to_numpy(layer([A, B3]))
    (u, bu), (v, bv) = ([w.numpy() for w in d.weights] for d in layer.modality_denses)
    p, bp = (w.numpy() for w in layer.output_dense.weights)
    expected = (np.tanh(A @ u + bu) * np.tanh(B3 @ v + bv)) @ p + bp
    np.testing.assert_allclose(fused, expected, rtol=1e-5, atol=1e-6)


TEXT = RNG.normal(size=(2, 5, 8)).astype("float32")
REGIONS = RNG.normal(size=(2, 6, 6)).astype("float32")
TEXT_MASK = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
REGION_MASK = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]], bool)


def test_cross_attention_contract():
    run_layer_test(
        CrossAttentionFusion,
        init_kwargs={"num_heads": 2, "key_dim": 4, "dropout": 0.0, "name": "co_attention"},
        input_data={
            "first": TEXT,
            "second": REGIONS,
            "first_mask": TEXT_MASK,
            "second_mask": REGION_MASK,
        },
        expected_output_shape=(2, 14),
        # 2 x MultiHeadAttention (q, k, v, o kernels + biases) + 2 x LayerNorm (gamma, beta)
        expected_num_trainable_weights=2 * 8 + 2 * 2,
        atol=1e-5,
    )


def test_cross_attention_ignores_padding_content():
    layer = CrossAttentionFusion(num_heads=2)
    reference = keras.ops.convert_to_numpy(
        layer(TEXT, REGIONS, first_mask=TEXT_MASK, second_mask=REGION_MASK)
    )
    noisy_text, noisy_regions = TEXT.copy(), REGIONS.copy()
    noisy_text[~TEXT_MASK] = 100.0
    noisy_regions[~REGION_MASK] = -50.0
    perturbed = layer(noisy_text, noisy_regions, first_mask=TEXT_MASK, second_mask=REGION_MASK)
    np.testing.assert_allclose(perturbed, reference, rtol=1e-5, atol=1e-5)
    # A valid token does change it, and without masks padding is attended to.
    noisy_text[0, 0] += 1.0
    changed = layer(noisy_text, noisy_regions, first_mask=TEXT_MASK, second_mask=REGION_MASK)
    assert not np.allclose(changed[0], reference[0], atol=1e-4)
    np.testing.assert_allclose(changed[1], reference[1], rtol=1e-5, atol=1e-5)
    unmasked = layer(TEXT, REGIONS)
    assert not np.allclose(unmasked, reference, atol=1e-4)
    all_valid = np.ones((2, 5), bool), np.ones((2, 6), bool)
    np.testing.assert_allclose(
        layer(TEXT, REGIONS, first_mask=all_valid[0], second_mask=all_valid[1]),
        unmasked,
        rtol=1e-6,
        atol=1e-6,
    )


def test_cross_attention_rejects_vectors():
    with pytest.raises(ValueError, match=r"expects `first` of shape \[batch, length, dim\]"):
        CrossAttentionFusion()(A, REGIONS)


@pytest.mark.parametrize("layer_cls", [WeightedSumFusion, ProductFusion])
def test_equal_size_layers_refuse_different_sizes(layer_cls):
    with pytest.raises(ValueError, match=r"same known size. Received: last dimensions \[4, 3\]"):
        layer_cls()([A, B3])


@pytest.mark.parametrize("layer_cls", [ConcatFusion, ProductFusion, GatedFusion])
def test_single_tensor_is_refused(layer_cls):
    with pytest.raises(ValueError, match=r"expects a list or dict of per-modality tensors"):
        layer_cls()(A)


@pytest.mark.parametrize(
    "layer_cls, kwargs, message",
    [
        (GatedFusion, {"output_dim": 0}, "output_dim=0"),
        (BilinearFusion, {"rank": 2.5}, "rank=2.5"),
        (BilinearFusion, {"rank": 4, "dropout": 1.0}, "dropout=1.0"),
        (CrossAttentionFusion, {"num_heads": 0}, "num_heads=0"),
        (CrossAttentionFusion, {"dropout": -0.1}, "dropout=-0.1"),
    ],
)
def test_bad_arguments(layer_cls, kwargs, message):
    with pytest.raises(ValueError, match=f"Received: {message}"):
        layer_cls(**kwargs)


def test_registry():
    assert FUSION_NAMES == (
        "concat",
        "weighted_sum",
        "product",
        "gated",
        "cross_attention",
        "bilinear",
    )
    layer = get_fusion_layer("bilinear", rank=3, name="mlb")
    assert isinstance(layer, BilinearFusion) and layer.name == "mlb" and layer.rank == 3
    for name, cls in FUSION_LAYERS.items():
        assert keras.saving.get_registered_object(f"xmodal_keras>{cls.__name__}") is cls, name
    with pytest.raises(ValueError, match=r"Unknown fusion.*Received: name='sum'"):
        get_fusion_layer("sum")
