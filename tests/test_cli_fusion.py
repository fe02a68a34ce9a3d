"""`xmodal train fusion` -> `xmodal evaluate` -> `xmodal export` in subprocesses, the way a
user runs them, on the tiny shapes dataset's statement-verification view."""

import json

import numpy as np
import tensorflow as tf
from test_cli import run_xmodal

TINY_FLAGS = [
    "--image-size=32",
    "--encoder-hidden-dim=8",
    "--embedding-dim=8",
    "--hidden-dim=8",
    "--projection-dim=8",
    "--epochs=1",
    "--batch-size=16",
    "--strategy=default",
    "--fusion=gated",
]


def test_train_evaluate_and_export_a_fusion_run(tiny_shapes_dir, tmp_path):
    run = tmp_path / "run"
    trained = run_xmodal(
        "train", "fusion", "--data", str(tiny_shapes_dir), *TINY_FLAGS, "--out", str(run)
    )
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert json.loads((run / "config.json").read_text())["fusion"] == "gated"

    evaluated = run_xmodal("evaluate", str(run), "--split", "test")
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert evaluated.stdout.startswith("test: accuracy ")

    exported = run_xmodal("export", str(run), "--out", str(tmp_path / "saved"), "--name", "v")
    assert exported.returncode == 0, exported.stderr[-2000:]
    assert "(signatures: classify, serving_default)" in exported.stdout
    classify = tf.saved_model.load(str(tmp_path / "saved" / "v" / "1")).signatures["classify"]
    image = (tiny_shapes_dir / "Images" / "shapes_00000.png").read_bytes()
    probabilities = classify(image_bytes=tf.constant([image]), text=tf.constant(["a red circle"]))[
        "probabilities"
    ].numpy()
    assert probabilities.shape == (1, 1) and np.all((probabilities >= 0) & (probabilities <= 1))

    refused = run_xmodal("export", str(run), "--format", "tflite", "--quantize", "int8")
    assert refused.returncode != 0
    assert "Fusion classifiers export float32, float16 or dynamic" in refused.stderr
