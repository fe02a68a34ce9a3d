"""recipes/hateful_memes_bert_resnet.py end to end on the tiny shapes pairs (the Hateful-Memes
layout), with a tiny random-weight BERT preset and a from-scratch image encoder in place of
the downloads; its defaults are the full-size towers."""

import pytest
from keras_hub_presets import tiny_bert_preset
from test_recipes import load_recipe


@pytest.mark.slow
def test_recipe_trains_evaluates_and_exports(tiny_shapes_dir, tmp_path):
    recipe = load_recipe("hateful_memes_bert_resnet")
    defaults = recipe.parse_args(["--data", "d"])
    assert defaults.image_encoder == "resnet50" and defaults.weights == "imagenet"
    assert defaults.text_encoder == "keras_hub:bert_base_en_uncased"
    preset = tiny_bert_preset(tmp_path / "bert")
    metrics = recipe.main(
        ["--data", str(tiny_shapes_dir), "--out", str(tmp_path / "run"),
         "--export-dir", str(tmp_path / "saved"), "--image-encoder", "small_cnn",
         "--weights", "none", "--trainable-blocks", "1", "--image-size", "32",
         "--text-encoder", f"keras_hub:{preset}", "--text-trainable-layers", "1",
         "--sequence-length", "12", "--projection-dim", "8", "--epochs", "1",
         "--batch-size", "16", "--no-baselines"]
    )  # fmt: skip
    assert 0 <= metrics["accuracy"] <= 1
    assert (tmp_path / "saved" / "run" / "1" / "saved_model.pb").is_file()
