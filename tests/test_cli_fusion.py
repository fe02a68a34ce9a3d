"""`xmodal train fusion` -> `xmodal evaluate` -> `xmodal export` in subprocesses, the way a
user runs them, on the tiny shapes dataset's statement-verification view; the side-input flags
(tabular columns, audio) parsed into `FusionTrainConfig` and one tiny run on a pair CSV."""

import json
import pathlib
import shutil

import numpy as np
import pytest
import tensorflow as tf
from pair_csvs import make_pair_csv
from test_cli import run_xmodal

from xmodal_keras.cli import build_parser, commands, main

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


def test_train_evaluate_and_export_a_fusion_run(tiny_shapes_dir, tmp_path, capsys):
    run = tmp_path / "run"
    trained = run_xmodal(
        "train", "fusion", "--data", str(tiny_shapes_dir), *TINY_FLAGS, "--out", str(run)
    )
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert json.loads((run / "config.json").read_text())["fusion"] == "gated"

    # The other commands in this process (each fresh process costs a TensorFlow start-up):
    # the same `main` the console script runs.
    capsys.readouterr()
    assert main(["evaluate", str(run), "--split", "test"]) == 0
    evaluated = capsys.readouterr().out
    assert evaluated.startswith("test: accuracy ")
    copy = shutil.copytree(tiny_shapes_dir, tmp_path / "pairs copy")
    assert main(["evaluate", str(run), "--split", "test", "--data", str(copy)]) == 0
    assert capsys.readouterr().out == evaluated  # the same pairs elsewhere: same scores
    assert (run / "metrics" / "data_pairs_copy" / "test_classification" / "metrics.json").is_file()

    assert main(["export", str(run), "--out", str(tmp_path / "saved"), "--name", "v"]) == 0
    assert "(signatures: classify, serving_default)" in capsys.readouterr().out
    classify = tf.saved_model.load(str(tmp_path / "saved" / "v" / "1")).signatures["classify"]
    image = (tiny_shapes_dir / "Images" / "shapes_00000.png").read_bytes()
    probabilities = classify(image_bytes=tf.constant([image]), text=tf.constant(["a red circle"]))[
        "probabilities"
    ].numpy()
    assert probabilities.shape == (1, 1) and np.all((probabilities >= 0) & (probabilities <= 1))

    assert main(["export", str(run), "--format", "tflite", "--quantize", "int8"]) == 2
    assert "Fusion classifiers export float32, float16 or dynamic" in capsys.readouterr().err


def fusion_config(*argv: str):
    """The `FusionTrainConfig` that `xmodal train fusion ARGV` trains with."""
    return commands.fusion_config(
        build_parser().parse_args(["train", "fusion", *argv, "--out", "run"])
    )


def test_side_input_flags_set_their_config_fields():
    config = fusion_config(
        "--data=pairs.csv",
        "--numeric-columns=age, income",
        "--categorical-columns=city",
        "--audio-column=clip",
        "--audio-samples=800",
        "--audio-sample-rate=8000",
        "--audio-num-mel-bins=16",
        "--audio-hidden-dim=6",
        "--tabular-embedding-dim=4",
        "--tabular-hidden-dim=5",
        "--head-hidden-dim=7",
    )
    assert config.data == "pairs.csv"
    assert config.modalities == ("image", "text", "tabular", "audio")
    assert config.numeric_columns == ("age", "income")
    assert config.categorical_columns == ("city",)
    assert config.audio_column == "clip"
    assert (config.audio_samples, config.audio_sample_rate) == (800, 8000)
    assert (config.audio_num_mel_bins, config.audio_hidden_dim) == (16, 6)
    assert (config.tabular_embedding_dim, config.tabular_hidden_dim) == (4, 5)
    assert config.head_hidden_dim == 7


def test_encoder_precision_and_xla_flags_reach_fusion_and_retrieval():
    config = fusion_config(
        "--encoder=residual_cnn", "--weights=w.h5", "--precision=mixed_bfloat16", "--jit-compile"
    )
    assert (config.encoder, config.weights) == ("residual_cnn", "w.h5")
    assert (config.precision, config.jit_compile) == ("mixed_bfloat16", True)
    assert (fusion_config().precision, fusion_config().jit_compile) == ("auto", False)
    argv = ["train", "retrieval", "--precision=float32", "--jit-compile", "--out", "run"]
    retrieval = commands.retrieval_config(build_parser().parse_args(argv))
    assert (retrieval.precision, retrieval.jit_compile) == ("float32", True)


def test_modalities_default_to_image_text_plus_the_side_inputs_given():
    plain = fusion_config()
    assert plain.modalities == ("image", "text")
    assert plain.numeric_columns == () and plain.audio_column is None
    assert plain.audio_samples == 16000
    assert fusion_config("--numeric-columns=age").modalities == ("image", "text", "tabular")
    assert fusion_config("--categorical-columns=a,b").modalities == ("image", "text", "tabular")
    assert fusion_config("--audio-column=clip").modalities == ("image", "text", "audio")
    explicit = fusion_config("--modalities=text,tabular", "--categorical-columns=city")
    assert explicit.modalities == ("text", "tabular")


def test_inconsistent_side_input_flags_are_refused(capsys, tmp_path):
    # An explicit --modalities wins; the config reports the column it does not use.
    argv = ["train", "fusion", "--modalities=image,text", "--numeric-columns=age"]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 2
    assert not (tmp_path / "run").exists()
    assert (
        "xmodal: error: The 'tabular' modality and `numeric_columns` / `categorical_columns` "
        "go together. Received: modalities=('image', 'text'), numeric_columns=('age',)"
        in capsys.readouterr().err
    )
    with pytest.raises(SystemExit):
        fusion_config("--numeric-columns=age,,income")
    error = capsys.readouterr().err
    assert "--numeric-columns: expected comma-separated names, got 'age,,income'" in error


@pytest.fixture(scope="module")
def side_pairs_csv(tmp_path_factory) -> pathlib.Path:
    """`make_pair_csv`: 18 rows of 16x16 images with columns age, height, color, audio_path."""
    return make_pair_csv(tmp_path_factory.mktemp("pairs"))[0]


@pytest.mark.slow  # 30-40 s; the tabular training itself is tested in test_train_fusion_side_inputs
def test_train_fusion_with_tabular_columns(side_pairs_csv, tmp_path):
    run = tmp_path / "run"
    flags = [f for f in TINY_FLAGS if not f.startswith(("--image-size", "--batch-size"))]
    argv = ["train", "fusion", "--data", str(side_pairs_csv), *flags, "--image-size=16"]
    argv += ["--batch-size=4", "--tabular-hidden-dim=4", "--numeric-columns=age,height"]
    assert main([*argv, "--categorical-columns=color", "--out", str(run)]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["modalities"] == ["image", "text", "tabular"]
    assert config["numeric_columns"] == ["age", "height"]
    assert config["categorical_columns"] == ["color"]
    assert config["audio_column"] is None and config["tabular_hidden_dim"] == 4
