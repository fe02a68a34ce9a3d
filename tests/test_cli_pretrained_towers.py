"""`xmodal train fusion --image-encoder resnet50 --text-encoder keras_hub:DIR` and `xmodal train
retrieval --text-encoder keras_hub:DIR --image-encoder keras_hub:DIR` end to end from the
command line, on local presets (tiny random-weight KerasHub backbones written by
`save_to_preset`, loaded by `from_preset(dir)` like a preset name), then `xmodal export`."""

import json

import pytest
import tensorflow as tf
from keras_hub_presets import tiny_bert_preset, tiny_resnet_backbone

from xmodal_keras.cli import main
from xmodal_keras.export.graph_ops import non_core_ops, saved_model_ops

SMALL = ["--image-size=32", "--projection-dim=8", "--epochs=1", "--batch-size=16"]
SMALL += ["--strategy=default", "--precision=float32", "--sequence-length=12"]


@pytest.fixture(scope="module")
def presets(tmp_path_factory):
    root = tmp_path_factory.mktemp("presets")
    resnet = root / "tiny_resnet"
    tiny_resnet_backbone().save_to_preset(resnet)
    return {"bert": tiny_bert_preset(root / "tiny_bert"), "resnet": resnet}


@pytest.mark.slow
def test_fusion_with_resnet50_and_a_bert_preset(presets, tiny_shapes_dir, tmp_path, capsys):
    run = tmp_path / "fusion"
    argv = ["train", "fusion", "--data", str(tiny_shapes_dir), *SMALL, "--out", str(run)]
    argv += ["--image-encoder", "resnet50", "--text-encoder", f"keras_hub:{presets['bert']}"]
    assert main(argv) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["encoder"] == "resnet50"
    assert config["text_encoder"] == f"keras_hub:{presets['bert']}"
    assert main(["export", str(run), "--out", str(tmp_path / "saved"), "--name", "f"]) == 0
    version = tmp_path / "saved" / "f" / "1"
    assert non_core_ops(saved_model_ops(version)) == []
    classify = tf.saved_model.load(str(version)).signatures["classify"]
    image = (tiny_shapes_dir / "Images" / "shapes_00000.png").read_bytes()
    out = classify(image_bytes=tf.constant([image]), text=tf.constant(["a red circle"]))
    assert out["probabilities"].shape == (1, 1)


@pytest.mark.slow
def test_retrieval_with_image_and_text_presets(presets, tiny_shapes_dir, tmp_path, capsys):
    run = tmp_path / "retrieval"
    argv = ["train", "retrieval", "--data", str(tiny_shapes_dir), *SMALL, "--out", str(run)]
    argv += ["--image-encoder", f"keras_hub:{presets['resnet']}", "--trainable-blocks", "1"]
    argv += ["--text-encoder", f"keras_hub:{presets['bert']}", "--text-trainable-layers", "1"]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(["retrieve", str(run), "--query", "a small red circle", "-k", "2"]) == 0
    assert "1." in capsys.readouterr().out
    assert main(["export", str(run), "--out", str(tmp_path / "saved"), "--name", "r"]) == 0
    version = tmp_path / "saved" / "r" / "1"
    assert non_core_ops(saved_model_ops(version)) == []
    embed_text = tf.saved_model.load(str(version)).signatures["embed_text"]
    assert embed_text(text=tf.constant(["a red circle"]))["embedding"].shape == (1, 8)


@pytest.mark.slow
def test_fusion_mmbt_with_a_bert_preset(presets, tiny_shapes_dir, tmp_path):
    run = tmp_path / "mmbt"
    argv = ["train", "fusion", "--data", str(tiny_shapes_dir), *SMALL, "--out", str(run)]
    argv += ["--fusion", "mmbt", "--text-encoder", f"keras_hub:{presets['bert']}"]
    argv += ["--encoder-num-layers", "3", "--tower-learning-rate-scale", "0.5"]
    assert main(argv) == 0
    assert json.loads((run / "config.json").read_text())["fusion"] == "mmbt"
    assert main(["export", str(run), "--out", str(tmp_path / "saved"), "--name", "m"]) == 0
    version = tmp_path / "saved" / "m" / "1"
    assert non_core_ops(saved_model_ops(version)) == []
    classify = tf.saved_model.load(str(version)).signatures["classify"]
    image = (tiny_shapes_dir / "Images" / "shapes_00000.png").read_bytes()
    out = classify(image_bytes=tf.constant([image]), text=tf.constant(["a red circle"]))
    assert out["probabilities"].shape == (1, 1)
