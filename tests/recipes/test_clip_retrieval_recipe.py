import importlib.util
import json
import pathlib

RECIPE = pathlib.Path(__file__).parents[2] / "recipes" / "clip_retrieval.py"


def test_clip_retrieval_recipe_runs(tiny_shapes_dir, tmp_path):
    spec = importlib.util.spec_from_file_location("clip_retrieval", RECIPE)
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    out = tmp_path / "run"
    metrics = recipe.main(
        ["--data", str(tiny_shapes_dir), "--out", str(out), "--image-size", "32",
         "--encoder-hidden-dim", "8", "--hidden-dim", "8", "--projection-dim", "8",
         "--epochs", "1", "--batch-size", "16"]
    )  # fmt: skip
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert 0.0 <= metrics["text_to_image_recall@1"] <= metrics["text_to_image_recall@10"] <= 1.0
    assert (out / "model.keras").is_file() and (out / "vocab.txt").is_file()
