"""A captioner trained in mixed_bfloat16 exports as float32: LiteRT has no bfloat16 kernels."""

import numpy as np
import pytest
import tensorflow as tf
from captioner_runs import untrained_run

from xmodal_keras.data.image_preprocessing import load_image
from xmodal_keras.decoding import CaptionGenerator
from xmodal_keras.export.float32_model import float32_copy
from xmodal_keras.export.tflite_captioner import TFLiteCaptioner
from xmodal_keras.export.tflite_ops import non_builtin_ops
from xmodal_keras.tasks.captioning.export import export_saved_model, export_tflite
from xmodal_keras.tasks.captioning.predict import load_captioner
from xmodal_keras.tasks.captioning.settings import CaptionerTrainConfig
from xmodal_keras.tasks.captioning.train import build_captioner_from_config

pytestmark = pytest.mark.filterwarnings(
    r"ignore:\s*Warning. tf.lite.Interpreter is deprecated:UserWarning"
)

SMALL = {
    "decoder": "transformer",
    "encoder": "residual_cnn",
    "image_size": 32,
    "encoder_hidden_dim": 8,
    "hidden_dim": 8,
    "num_heads": 2,
    "num_layers": 1,
    "sequence_length": 6,
}


def _inputs():
    rng = np.random.default_rng(0)
    return {
        "images": rng.integers(0, 256, (2, 32, 32, 3)).astype("uint8"),
        "token_ids": rng.integers(1, 12, (2, 6)).astype("int32"),
    }


def test_a_mixed_captioner_computes_like_its_float32_twin_once_copied():
    mixed = build_captioner_from_config(
        CaptionerTrainConfig(precision="mixed_bfloat16", **SMALL), 12
    )
    twin = build_captioner_from_config(CaptionerTrainConfig(precision="float32", **SMALL), 12)
    twin.set_weights(mixed.get_weights())

    copy = float32_copy(mixed)
    layers = copy._flatten_layers(include_self=True, recursive=True)
    assert {layer.dtype_policy.name for layer in layers} == {"float32"}
    inputs = _inputs()
    np.testing.assert_allclose(copy(inputs), twin(inputs), rtol=1e-5, atol=1e-5)
    assert not np.allclose(mixed(inputs), twin(inputs), rtol=1e-5, atol=1e-5)  # was bf16
    assert float32_copy(twin) is twin


def test_a_mixed_run_exports_to_builtin_tflite_and_to_serving(tiny_shapes_dir, tmp_path):
    run = untrained_run(
        tiny_shapes_dir, tmp_path / "run", precision="mixed_bfloat16", decoder="transformer"
    )
    model, tokenizer, _ = load_captioner(run)
    assert model.get_layer("caption_decoder").dtype_policy.name == "mixed_bfloat16"

    path = export_tflite(run, tmp_path / "tflite")
    assert non_builtin_ops(path / "model.tflite") == []
    names = (tiny_shapes_dir / "Flickr_8k.testImages.txt").read_text().split()[:3]
    images = np.stack([load_image(str(tiny_shapes_dir / "Images" / n), (32, 32)) for n in names])
    expected = CaptionGenerator(float32_copy(model), tokenizer).generate(images)["tokens"]
    result = TFLiteCaptioner(path).caption_images(images)
    np.testing.assert_array_equal(np.stack(result["tokens"]), expected.numpy())

    version = export_saved_model(run, base_dir=tmp_path / "serving")
    served = tf.saved_model.load(str(version)).signatures["caption_pixels"](
        images=tf.constant(images)
    )
    np.testing.assert_array_equal(served["tokens"].numpy(), expected.numpy())
