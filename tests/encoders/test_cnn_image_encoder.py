import types

import keras
import numpy as np
import pytest
from helpers import run_model_saving_test

from xmodal_keras.encoders import IMAGE_BACKBONES, IMAGE_ENCODER_NAMES, build_image_encoder
from xmodal_keras.encoders.cnn_image_encoder import _assign_blocks

IMAGES = np.random.default_rng(0).integers(0, 256, size=(2, 32, 32, 3)).astype("uint8")


def _trainable_layer_names(model):
    return {layer.name for layer in model.layers if layer.trainable and layer.weights}


def test_names():
    assert IMAGE_ENCODER_NAMES == (
        "residual_cnn",
        "small_cnn",
        "mobilenet_v3_small",
        "mobilenet_v3_large",
        "efficientnet_v2_b0",
        "resnet50",
        "inception_v3",
    )


def test_small_cnn_outputs_grid_and_pooled():
    encoder = build_image_encoder(image_shape=(32, 32, 3), hidden_dim=8, num_layers=2)
    assert encoder.input.name == "images"
    out = encoder(IMAGES)
    assert set(out) == {"grid", "pooled"}
    assert tuple(out["grid"].shape) == (2, 64, 8)  # 8x8 regions after two 2x2 pools
    assert tuple(out["pooled"].shape) == (2, 8)
    np.testing.assert_allclose(out["pooled"], np.mean(out["grid"], axis=1), rtol=1e-5, atol=1e-6)
    # uint8 and float RGB give the same features.
    np.testing.assert_allclose(encoder(IMAGES.astype("float32"))["grid"], out["grid"], atol=1e-6)
    # Random weights: everything trains.
    assert encoder.get_layer("backbone").trainable
    assert len(encoder.trainable_weights) == 4


def test_small_cnn_widths_and_saving():
    encoder = build_image_encoder(image_shape=(32, 48, 3), hidden_dim=32)
    backbone = encoder.get_layer("backbone")
    widths = [layer.filters for layer in backbone.layers if isinstance(layer, keras.layers.Conv2D)]
    assert widths == [8, 16, 32]
    assert tuple(encoder.output["grid"].shape) == (None, 4 * 6, 32)
    run_model_saving_test(encoder, np.random.default_rng(1).integers(0, 256, (2, 32, 48, 3)))


def test_weights_file_loads_and_freezes(tmp_path):
    source = build_image_encoder(image_shape=(32, 32, 3), hidden_dim=8)
    path = tmp_path / "backbone.weights.h5"
    source.get_layer("backbone").save_weights(path)
    encoder = build_image_encoder(image_shape=(32, 32, 3), hidden_dim=8, weights=str(path))
    np.testing.assert_allclose(encoder(IMAGES)["grid"], source(IMAGES)["grid"], atol=1e-6)
    assert encoder.trainable_weights == []
    tuned = build_image_encoder(
        image_shape=(32, 32, 3), hidden_dim=8, weights=str(path), trainable_blocks=1
    )
    assert _trainable_layer_names(tuned.get_layer("backbone")) == {"block3_conv"}
    assert len(tuned.trainable_weights) == 2


def test_mobilenet_v3_small_tiny_images():
    encoder = build_image_encoder("mobilenet_v3_small", image_shape=(32, 32, 3))
    out = encoder(IMAGES)
    assert tuple(out["grid"].shape) == (2, 1, 576)
    assert tuple(out["pooled"].shape) == (2, 576)
    run_model_saving_test(encoder, IMAGES, atol=1e-5)


def test_trainable_blocks_unfreezes_last_blocks():
    encoder = build_image_encoder("mobilenet_v3_small", image_shape=(32, 32, 3), trainable_blocks=2)
    names = _trainable_layer_names(encoder.get_layer("backbone"))
    assert names
    assert all(n.startswith(("expanded_conv_10_", "conv_1")) for n in names), names
    assert any(n.startswith("expanded_conv_10_") for n in names)
    assert not encoder.get_layer("backbone").get_layer("expanded_conv_9_project").trainable


def _fake_layers(*names):
    return [types.SimpleNamespace(name=n) for n in names]


def test_assign_blocks_joins_unmatched_layers_to_neighbours():
    layers = _fake_layers("input", "conv1_conv", "act", "conv2_block1_conv", "add", "out")
    assert _assign_blocks(layers, r"^(conv1|conv\d_block\d+)_", False) == [
        "conv1",
        "conv1",
        "conv1",
        "conv2_block1",
        "conv2_block1",
        "conv2_block1",
    ]
    inception = _fake_layers("input", "conv2d", "mixed0", "conv2d_1", "mixed1", "pool")
    assert _assign_blocks(inception, r"^(mixed\d+)$", True) == [
        "mixed0",
        "mixed0",
        "mixed0",
        "mixed1",
        "mixed1",
        "mixed1",
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "vgg16"}, r"Received: name='vgg16'"),
        ({"image_shape": (32, 32)}, r"Received: image_shape=\(32, 32\)"),
        ({"image_shape": (32, 32, 1)}, r"Received: image_shape=\(32, 32, 1\)"),
        ({"name": "inception_v3", "image_shape": (64, 64, 3)}, r">= 75 for 'inception_v3'"),
        ({"weights": "imagenet"}, r"no ImageNet weights.*Received: weights='imagenet'"),
        ({"weights": "/nonexistent.weights.h5"}, r"Received: weights='/nonexistent"),
        ({"trainable_blocks": -1}, r"Received: trainable_blocks=-1"),
        ({"trainable_blocks": 4}, r"'small_cnn' has 3 blocks. Received: trainable_blocks=4"),
        ({"hidden_dim": 0}, r"Received: hidden_dim=0"),
        ({"num_layers": 6}, r"too small for 6 2x2 poolings"),
        ({"name": "resnet50", "hidden_dim": 8}, r"only apply to \('residual_cnn', 'small_cnn'\)"),
    ],
)
def test_bad_arguments(kwargs, message):
    kwargs = {"image_shape": (32, 32, 3), **kwargs}
    with pytest.raises(ValueError, match=message):
        build_image_encoder(**kwargs)


PREPROCESS = {
    "mobilenet_v3_small": keras.applications.mobilenet_v3.preprocess_input,
    "mobilenet_v3_large": keras.applications.mobilenet_v3.preprocess_input,
    "efficientnet_v2_b0": keras.applications.efficientnet_v2.preprocess_input,
    "resnet50": keras.applications.resnet50.preprocess_input,
    "inception_v3": keras.applications.inception_v3.preprocess_input,
}
NUM_BLOCKS = {
    "mobilenet_v3_small": 13,
    "mobilenet_v3_large": 17,
    "efficientnet_v2_b0": 23,
    "resnet50": 17,
    "inception_v3": 11,
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(IMAGE_BACKBONES))
def test_backbone_takes_raw_rgb_and_reloads(name):
    size = IMAGE_BACKBONES[name].min_size
    images = np.random.default_rng(2).integers(0, 256, (2, size, size, 3)).astype("uint8")
    encoder = build_image_encoder(name, image_shape=(size, size, 3))
    backbone = encoder.get_layer("backbone")
    # Preprocessing lives inside: raw RGB in == Keras' preprocess_input + backbone.
    expected = backbone(PREPROCESS[name](images.astype("float32")))
    out = encoder(images)
    np.testing.assert_allclose(out["pooled"], np.mean(expected, axis=(1, 2)), rtol=1e-4, atol=1e-4)
    spec = IMAGE_BACKBONES[name]
    blocks = set(_assign_blocks(backbone.layers, spec.block_pattern, spec.marker_ends_block))
    assert None not in blocks and len(blocks) == NUM_BLOCKS[name]
    run_model_saving_test(encoder, images, atol=1e-4)


def test_residual_cnn_grid_keeps_positions_and_saves():
    encoder = build_image_encoder("residual_cnn", image_shape=(32, 32, 3), hidden_dim=16)
    backbone = encoder.get_layer("backbone")
    widths = [layer.filters for layer in backbone.layers if isinstance(layer, keras.layers.Conv2D)]
    # Per stage: a strided conv and a two-conv residual block; widths at least 16.
    assert widths == [16] * 9
    norms = [
        layer for layer in backbone.layers if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert len(norms) == 9 and all(layer.momentum == 0.9 for layer in norms)
    assert sum(isinstance(layer, keras.layers.Add) for layer in backbone.layers) == 3
    # The grid is the conv features plus one learned embedding row per region.
    embedding = encoder.get_layer("grid_position_embedding")
    embedding.set_weights([np.zeros((16, 16), "float32")])
    features = np.asarray(encoder(IMAGES)["grid"])
    table = np.random.default_rng(2).normal(size=(16, 16)).astype("float32")
    embedding.set_weights([table])
    np.testing.assert_allclose(encoder(IMAGES)["grid"], features + table, atol=1e-5)
    run_model_saving_test(encoder, IMAGES, atol=1e-5)


def test_residual_cnn_stages_are_blocks():
    encoder = build_image_encoder(
        "residual_cnn", image_shape=(32, 32, 3), hidden_dim=16, num_layers=2, trainable_blocks=1
    )
    names = _trainable_layer_names(encoder.get_layer("backbone"))
    assert names and all(n.startswith("stage2_") for n in names), names
    assert tuple(encoder.output["grid"].shape) == (None, 64, 16)
    with pytest.raises(ValueError, match="too small for 6 stride-2 stages"):
        build_image_encoder("residual_cnn", image_shape=(32, 32, 3), num_layers=6)
    with pytest.raises(ValueError, match="no ImageNet weights"):
        build_image_encoder("residual_cnn", weights="imagenet")
