"""recipes/shared_space_autoencoder.py runs end to end in a subprocess on tiny shapes data."""

import json
import pathlib
import subprocess
import sys

import pytest

RECIPE = pathlib.Path(__file__).parents[2] / "recipes" / "shared_space_autoencoder.py"


# Slow like the other recipe runs (tests/recipes/test_recipes.py); the model it trains is
# tested directly in tests/models/.
@pytest.mark.slow
def test_shared_space_autoencoder_recipe_runs(tiny_shapes_dir, tmp_path):
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, str(RECIPE), "--data", str(tiny_shapes_dir), "--out", str(out),
         "--code-dim", "8", "--hidden-dim", "16", "--epochs", "20", "--batch-size", "32"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["chance_text_to_image_recall@1"] == 1 / 4  # 4 test images
    for name in ("trained", "random_init"):
        assert 0.0 <= metrics[f"{name}_test_text_to_image_recall@1"] <= 1.0
    # Training lowers the test reconstruction loss below the untrained model's.
    assert metrics["trained_test_loss"] < metrics["random_init_test_loss"]
    for name in ("config.json", "model.keras", "history.csv"):
        assert (out / name).is_file(), name
    assert "trained_test_text_to_image_recall@1: " in result.stdout
