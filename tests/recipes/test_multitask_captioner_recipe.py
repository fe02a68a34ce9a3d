"""recipes/multitask_captioner.py runs end to end in a subprocess on the tiny shapes data."""

import json
import pathlib
import subprocess
import sys

import pytest

RECIPE = pathlib.Path(__file__).parents[2] / "recipes" / "multitask_captioner.py"


# Slow like the other recipe runs (tests/recipes/test_recipes.py); the model it trains is
# tested directly in tests/models/.
@pytest.mark.slow
def test_multitask_captioner_recipe_runs(tiny_shapes_dir, tmp_path):
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, str(RECIPE), "--data", str(tiny_shapes_dir), "--out", str(out),
         "--image-size", "32", "--encoder-hidden-dim", "8", "--hidden-dim", "8",
         "--projection-dim", "8", "--sequence-length", "8", "--epochs", "1",
         "--batch-size", "16", "--num-captions-shown", "2"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("test_caption_loss", "test_contrastive_loss", "temperature"):
        assert metrics[key] > 0, key
    assert 0.0 <= metrics["test_text_to_image_recall@1"] <= metrics["test_text_to_image_recall@5"]
    assert metrics["chance_recall@1_text_to_image"] == 1 / 4  # 4 test images
    for name in ("config.json", "vocab.txt", "model.keras", "captioner.keras", "history.csv"):
        assert (out / name).is_file(), name
    # Two greedy captions printed, each beside its reference.
    assert result.stdout.count("(reference: ") == 2
    assert "test_image_to_text_recall@1: " in result.stdout
