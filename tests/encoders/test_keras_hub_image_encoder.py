"""`build_image_encoder("keras_hub:DIR")` on tiny random KerasHub presets saved to disk."""

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf
from helpers import run_model_saving_test
from keras_hub_presets import tiny_resnet_backbone

from xmodal_keras.data.shapes import render_scene, sample_scene
from xmodal_keras.encoders import (
    KERAS_HUB_PREFIX,
    build_image_encoder,
    is_keras_hub_preset,
)
from xmodal_keras.encoders.keras_hub_image_encoder import DEFAULT_SCALE
from xmodal_keras.export.float32_model import float32_copy
from xmodal_keras.export.graph_ops import non_core_ops
from xmodal_keras.models.dual_encoder import build_dual_encoder
from xmodal_keras.models.transformer_captioner import build_transformer_captioner
from xmodal_keras.training.compile_dual_encoder import compile_dual_encoder
from xmodal_keras.training.precision import dtype_policy

SHAPE = (32, 32, 3)
RNG = np.random.default_rng(0)
# Real images: two rendered shapes scenes (flat colours, edges, textured backgrounds).
IMAGES = np.stack(
    [render_scene(sample_scene(RNG, f"{i}.png", image_size=32), 32, RNG) for i in range(2)]
).astype("uint8")
# ImageNet mean / std as a converter's scale / offset (what ResNet presets carry).
MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
SCALE, OFFSET = list(1 / (255 * STD)), list(-MEAN / STD)


def _save(tmp_path_factory, name, backbone, converter=None) -> str:
    path = str(tmp_path_factory.mktemp(name))
    backbone.save_to_preset(path)
    if converter is not None:
        converter.save_to_preset(path)
    return path


@pytest.fixture(scope="module")
def presets(tmp_path_factory) -> dict[str, str]:
    """Preset directories: ResNet + converter, ViT + converter, DINOv2 (2 registers), none."""
    resnet = tiny_resnet_backbone()
    vit = keras_hub.models.ViTBackbone(
        image_shape=SHAPE, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32
    )
    dinov2 = keras_hub.models.DINOV2Backbone(
        patch_size=8,
        num_layers=2,
        hidden_dim=16,
        num_heads=2,
        intermediate_dim=32,
        num_register_tokens=2,
        image_shape=SHAPE,
        position_embedding_shape=SHAPE,
    )
    return {
        "resnet": _save(
            tmp_path_factory,
            "resnet",
            resnet,
            keras_hub.layers.ResNetImageConverter(image_size=(32, 32), scale=SCALE, offset=OFFSET),
        ),
        "vit": _save(
            tmp_path_factory,
            "vit",
            vit,
            keras_hub.layers.ViTImageConverter(image_size=(32, 32), scale=1 / 127.5, offset=-1.0),
        ),
        "dinov2": _save(tmp_path_factory, "dinov2", dinov2),
    }


@pytest.fixture(scope="module")
def encoders(presets) -> dict[str, keras.Model]:
    return {
        name: build_image_encoder(KERAS_HUB_PREFIX + path, image_shape=SHAPE)
        for name, path in presets.items()
    }


def _trainable_paths(model) -> list[str]:
    return [w.path for w in model.trainable_weights]


def test_prefix():
    assert KERAS_HUB_PREFIX == "keras_hub:"
    assert is_keras_hub_preset("keras_hub:resnet_18_imagenet")
    assert not is_keras_hub_preset("resnet50") and not is_keras_hub_preset(None)


def test_conv_backbone_grid_pooled_and_converter_normalisation(presets, encoders):
    encoder = encoders["resnet"]
    backbone = encoder.get_layer("backbone").backbone
    assert isinstance(backbone, keras_hub.models.ResNetBackbone)
    assert encoder.input.name == "images"
    out = encoder(IMAGES)
    assert tuple(out["grid"].shape) == (2, 16, 16)  # 32 / 2 (pool) / 2 (stack1) = 4x4 regions
    assert tuple(out["pooled"].shape) == (2, 16)
    # The preprocessing inside is the preset converter's scale / offset, on a real image.
    converter = keras_hub.layers.ImageConverter.from_preset(presets["resnet"])
    expected_input = np.asarray(converter(IMAGES))
    assert not np.allclose(expected_input, IMAGES)
    np.testing.assert_allclose(
        encoder.get_layer("preprocessing")(IMAGES), expected_input, rtol=1e-5, atol=1e-5
    )
    features = np.asarray(backbone(expected_input))
    np.testing.assert_allclose(out["grid"], features.reshape(2, 16, 16), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out["pooled"], features.mean(axis=(1, 2)), rtol=1e-4, atol=1e-4)
    # Weights come from the preset: frozen by default, BatchNorm in inference mode.
    assert encoder.trainable_weights == []
    np.testing.assert_allclose(encoder(IMAGES, training=True)["grid"], out["grid"], atol=1e-5)


def test_token_backbones_grid_is_patches_pooled_is_class_token(presets, encoders):
    for name, leading in (("vit", 1), ("dinov2", 3)):  # class (+ 2 DINOv2 registers)
        encoder = encoders[name]
        backbone = encoder.get_layer("backbone").backbone
        x = np.asarray(encoder.get_layer("preprocessing")(IMAGES))
        tokens = np.asarray(backbone({"images": x} if name == "dinov2" else x))
        assert tokens.shape == (2, leading + 16, 16), name
        out = encoder(IMAGES)
        np.testing.assert_allclose(out["grid"], tokens[:, leading:], atol=1e-5, err_msg=name)
        np.testing.assert_allclose(out["pooled"], tokens[:, 0], atol=1e-5, err_msg=name)
    # ViT: its converter maps [0, 255] to [-1, 1]; DINOv2's preset has no converter.
    vit_input = encoders["vit"].get_layer("preprocessing")(IMAGES)
    np.testing.assert_allclose(vit_input, IMAGES / 127.5 - 1.0, atol=1e-6)
    assert encoders["dinov2"].get_layer("preprocessing").scale == DEFAULT_SCALE
    # DINOv2 rebuilds at another size (its position embeddings interpolate); ViT cannot.
    bigger = build_image_encoder(KERAS_HUB_PREFIX + presets["dinov2"], image_shape=(48, 48, 3))
    assert tuple(bigger.output["grid"].shape) == (None, 36, 16)
    with pytest.raises(ValueError, match=r"takes images of shape \(32, 32, 3\)"):
        build_image_encoder(KERAS_HUB_PREFIX + presets["vit"], image_shape=(48, 48, 3))


def test_trainable_blocks_freeze_all_but_the_last(presets):
    resnet = build_image_encoder(
        KERAS_HUB_PREFIX + presets["resnet"], image_shape=SHAPE, trainable_blocks=1
    )
    paths = _trainable_paths(resnet)
    assert paths and all(p.startswith("stack1_block0_") for p in paths), paths
    backbone = resnet.get_layer("backbone").backbone
    assert not backbone.get_layer("stack0_block0_1_bn").trainable  # inference-mode BN
    assert backbone.get_layer("stack1_block0_1_bn").trainable
    # Stem, stack0_block0, stack1_block0: all three blocks cover every layer.
    everything = build_image_encoder(
        KERAS_HUB_PREFIX + presets["resnet"], image_shape=SHAPE, trainable_blocks=3
    )
    count = len(everything.trainable_weights)
    everything.get_layer("backbone").backbone.trainable = True
    assert count == len(everything.trainable_weights)

    vit = build_image_encoder(
        KERAS_HUB_PREFIX + presets["vit"], image_shape=SHAPE, trainable_blocks=1
    )
    paths = _trainable_paths(vit)
    assert {p.split("/")[1] for p in paths} == {"transformer_block_2", "ln"}, paths
    dinov2 = build_image_encoder(
        KERAS_HUB_PREFIX + presets["dinov2"], image_shape=SHAPE, trainable_blocks=2
    )
    paths = _trainable_paths(dinov2)
    assert all("encoder/layers_" in p or "layernorm" in p for p in paths), paths
    assert any("layers_0" in p for p in paths) and any("layernorm" in p for p in paths)
    with pytest.raises(ValueError, match=r"has 3 blocks. Received: trainable_blocks=4"):
        build_image_encoder(
            KERAS_HUB_PREFIX + presets["vit"], image_shape=SHAPE, trainable_blocks=4
        )


def test_deit_dinov3_and_efficientnet_layouts(tmp_path_factory):
    token_kwargs = {"patch_size": 8, "num_layers": 2, "num_heads": 2, "hidden_dim": 16}
    families = {
        # [class, distillation, patches]; [class, register, patches]
        "deit": (keras_hub.models.DeiTBackbone, 2, {"intermediate_dim": 32, **token_kwargs}),
        "dinov3": (
            keras_hub.models.DINOV3Backbone,
            2,
            {"intermediate_dim": 32, "num_register_tokens": 1, **token_kwargs},
        ),
    }
    for name, (cls, leading, kwargs) in families.items():
        preset = _save(tmp_path_factory, name, cls(image_shape=SHAPE, **kwargs))
        encoder = build_image_encoder(KERAS_HUB_PREFIX + preset, image_shape=SHAPE)
        backbone = encoder.get_layer("backbone").backbone
        x = encoder.get_layer("preprocessing")(IMAGES)
        tokens = np.asarray(backbone({"pixel_values": x} if name == "dinov3" else x))
        out = encoder(IMAGES)
        np.testing.assert_allclose(out["grid"], tokens[:, leading:], atol=1e-5, err_msg=name)
        np.testing.assert_allclose(out["pooled"], tokens[:, 0], atol=1e-5, err_msg=name)
        tuned = build_image_encoder(
            KERAS_HUB_PREFIX + preset, image_shape=SHAPE, trainable_blocks=1
        )
        paths = _trainable_paths(tuned)
        # The last transformer layer and the final layer norm, nothing else.
        last = {
            "deit": ("deit_encoder/transformer_block_2/", "deit_encoder/ln/"),
            "dinov3": ("dinov3_backbone_encoder/layers_1/", "dinov3_backbone_layernorm/"),
        }[name]
        assert all(p.startswith(last) for p in paths), paths
        assert all(any(p.startswith(prefix) for p in paths) for prefix in last), paths
    efficientnet = keras_hub.models.EfficientNetBackbone(
        stackwise_width_coefficients=[1.0, 1.0],
        stackwise_depth_coefficients=[1.0, 1.0],
        stackwise_kernel_sizes=[3, 3],
        stackwise_num_repeats=[1, 1],
        stackwise_input_filters=[8, 8],
        stackwise_output_filters=[8, 16],
        stackwise_expansion_ratios=[1, 4],
        stackwise_squeeze_and_excite_ratios=[0.0, 0.25],
        stackwise_strides=[1, 2],
        stackwise_block_types=["fused", "unfused"],
    )
    preset = _save(tmp_path_factory, "efficientnet", efficientnet)
    tuned = build_image_encoder(KERAS_HUB_PREFIX + preset, image_shape=SHAPE, trainable_blocks=2)
    assert tuple(tuned.output["grid"].shape) == (None, 64, 1280)  # stride 4, default top conv
    assert {p.split("/")[0] for p in _trainable_paths(tuned)} == {"block2a_", "top_conv", "top_bn"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"weights": "imagenet"}, r"brings its own weights.*Received: weights='imagenet'"),
        ({"hidden_dim": 8}, r"only apply to \('residual_cnn', 'small_cnn'\)"),
        ({"num_layers": 2}, r"Received: name='keras_hub:.*num_layers=2"),
        ({"name": "keras_hub:"}, r"Expected a KerasHub preset.*Received: preset=''"),
        ({"name": "vit_base"}, r"or 'keras_hub:PRESET_OR_DIR'. Received: name='vit_base'"),
    ],
)
def test_bad_arguments(presets, kwargs, message):
    kwargs = {"name": KERAS_HUB_PREFIX + presets["vit"], "image_shape": SHAPE, **kwargs}
    with pytest.raises(ValueError, match=message):
        build_image_encoder(**kwargs)


@pytest.mark.parametrize("name", ["vit", "dinov2"])
def test_saves_and_reloads_in_safe_mode(encoders, name):
    restored = run_model_saving_test(encoders[name], IMAGES, atol=1e-5)
    assert type(restored.get_layer("backbone").backbone) is type(
        encoders[name].get_layer("backbone").backbone
    )


def test_serving_graph_has_only_core_ops(encoders):
    for name, encoder in encoders.items():
        serve = tf.function(
            lambda images, encoder=encoder: encoder(tf.cast(images, tf.float32), training=False),
            input_signature=[tf.TensorSpec([None, *SHAPE], tf.uint8)],
        )
        graph = serve.get_concrete_function().graph.as_graph_def()
        functions = {f.signature.name for f in graph.library.function}
        nodes = [*graph.node, *(n for f in graph.library.function for n in f.node_def)]
        ops = {n.op for n in nodes if n.op not in functions}
        assert {"Conv2D", "Mul"} <= ops, name
        assert non_core_ops(ops) == [], name


def test_follows_the_global_mixed_precision_policy(presets):
    with dtype_policy("mixed_bfloat16"):
        encoder = build_image_encoder(KERAS_HUB_PREFIX + presets["vit"], image_shape=SHAPE)
    backbone = encoder.get_layer("backbone").backbone
    assert backbone.dtype_policy.name == "mixed_bfloat16"
    assert {w.dtype for w in backbone.weights} == {"float32"}
    out = encoder(IMAGES)
    assert keras.backend.standardize_dtype(out["grid"].dtype) == "bfloat16"
    assert np.isfinite(np.asarray(out["pooled"], "float32")).all()
    # Exports serve it in float32 (`float32_copy` rewrites the nested backbone's policy).
    copy = float32_copy(encoder)
    assert copy.get_layer("backbone").backbone.dtype_policy.name == "float32"
    np.testing.assert_allclose(
        copy(IMAGES)["pooled"], np.asarray(out["pooled"], "float32"), rtol=0.1, atol=0.1
    )


# Eager: one graph-mode step costs ~15 s of tracing on 2 CPU cores; the slow run traces it.
@pytest.mark.parametrize("run_eagerly", [True, pytest.param(False, marks=pytest.mark.slow)])
def test_dual_encoder_fit_step_and_captioner(presets, run_eagerly):
    tiny = {"image_shape": SHAPE, "encoder": KERAS_HUB_PREFIX + presets["vit"]}
    model = build_dual_encoder(
        vocabulary_size=12,
        sequence_length=6,
        trainable_blocks=1,
        embedding_dim=8,
        hidden_dim=8,
        projection_dim=4,
        **tiny,
    )
    compile_dual_encoder(model, total_steps=2, learning_rate=1e-2, warmup_steps=0)
    model.run_eagerly = run_eagerly
    backbone = (
        model.get_layer("image_tower").get_layer("image_encoder").get_layer("backbone").backbone
    )
    encoder_layer = backbone.get_layer("vit_encoder")
    tuned = encoder_layer.encoder_layers[1].trainable_weights[0]
    frozen = encoder_layer.encoder_layers[0].weights[0]
    before = np.array(tuned), np.array(frozen)
    ids = np.array([[2, 4, 5, 3, 0, 0], [2, 6, 3, 0, 0, 0]], "int32")
    history = model.fit({"images": IMAGES, "token_ids": ids}, np.arange(2), verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert not np.array_equal(before[0], tuned) and np.array_equal(before[1], frozen)

    captioner = build_transformer_captioner(
        vocabulary_size=12, sequence_length=6, hidden_dim=8, num_layers=1, num_heads=2, **tiny
    )
    logits = captioner({"images": IMAGES, "token_ids": ids})
    assert tuple(logits.shape) == (2, 6, 12)
    assert tuple(captioner.get_layer("image_encoder").output["grid"].shape) == (None, 16, 16)


def test_a_reloaded_encoder_trains_the_same_blocks(presets, tmp_path):
    encoder = build_image_encoder(
        KERAS_HUB_PREFIX + presets["resnet"], image_shape=SHAPE, trainable_blocks=1
    )
    encoder.save(tmp_path / "encoder.keras")
    again = keras.saving.load_model(tmp_path / "encoder.keras", safe_mode=True)
    paths = _trainable_paths(encoder)
    assert _trainable_paths(again) == paths and paths
    assert len(again.weights) > len(paths)
    np.testing.assert_allclose(again(IMAGES)["pooled"], encoder(IMAGES)["pooled"], rtol=1e-5)
